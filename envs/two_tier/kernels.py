"""Numba kernels of the two-tier simulator: B environments advanced by one call.

Event flow of one environment (times in seconds since its reset):

1. Arrivals of *all* regions form one merged non-homogeneous Poisson process whose
   rate is piecewise constant per simulated second (``rate_r = hourly rate x burst
   factor``). The next arrival is drawn by inverting the integrated rate; its origin
   in proportion to the regions' rates, its type from the origin's mix, and a
   unit-mean Gamma service factor.
2. An arrival from a region the agent does not control (or during warm-up) is served
   in its own region by the background heuristic. An arrival from a controlled region
   becomes the pending request: the load balancer (tier 1) picks a region, then the
   scheduler (tier 2) a node in it. A tier played by a heuristic is resolved here; the
   kernel returns when a learned tier must act.
3. Dispatch: the request reaches the node after half the RTT plus its upload, queues
   FCFS for the earliest-free core (:func:`envs.queues.dispatch`), runs for
   ``execution time x factor / speed`` and returns after the download and the other
   half of the RTT. Cost, energy and carbon follow from the node and the hour.

Random numbers: environment ``b`` has two streams, rows ``b`` and ``B + b`` of the
``rng`` state. The first (the *world*) draws everything that does not depend on
decisions: arrival times, origins, types, service factors, start hours and burst
offsets. The second draws what decisions cause: the RTT of a request served in
another region and the choices of random heuristics. Two policies run on one seed
therefore meet the same requests (common random numbers), and their paired
difference measures their decisions, not different arrival sequences.

How it is made fast (B = 1024 steps run ~4x faster than with plain helper calls):
the entry points take the static ``world`` and dynamic ``state`` tuples (layouts in
:mod:`envs.two_tier.core`), unpack them once and *borrow* every array
(:mod:`envs.kernel_memory`: no reference counting); the helpers of a step are
inlined into the entry point (``inline="always"``), so no call passes dozens of
array descriptors; innermost loops index with unsigned integers (no negative-index
fix-ups, so they vectorise); the state-free part of each observation is copied from
templates, and per-hour features are cached per region when the hour turns; while
one environment is simulated, the memory of the next ones is prefetched. Region
utilisation is kept incrementally and rescanned only after a core release. The
price is compilation: about a minute on first use, then cached on disk.
No ``while True`` loops: numba 0.68 can drop assignments inside them.
"""

from __future__ import annotations

import math

import numba as nb
import numpy as np

from envs.kernel_memory import borrow, prefetch_row, prefetch_span
from envs.queues import dispatch_at
from envs.rng import exponential, gamma_unit_mean, randint, standard_normal, uniform
from envs.scenario import (
    HOUR_CARBON,
    HOUR_LOCAL,
    HOUR_RATE,
    NODE_ACCESS_RTT_S,
    NODE_CORE_OFFSET,
    NODE_CORES,
    NODE_PRICE_CORE_S,
    NODE_WATTS_BUSY_CORE,
    PAIR_BW_BPS,
    PAIR_EGRESS_USD_GB,
    PAIR_RTT_S,
    PAIR_RTT_SIGMA,
    REG_BURST_LEN,
    REG_CONTROLLED,
    REG_END,
    REG_START,
    TYPE_BYTES,
    TYPE_CARBON_REF,
    TYPE_COST_REF,
    TYPE_IN_GB,
    TYPE_OUT_GB,
    TYPE_SLO_S,
)
from envs.two_tier.heuristics import (
    AGENT,
    LATENCY,
    LEAST_LOADED,
    N_SCORING,
    choose_node,
    choose_region,
    gamma_q,
)
from envs.two_tier.layout import (
    NF_CARBON,
    NF_UTIL,
    NF_VALID,
    NF_WAIT,
    NODE_FEATURES,
    PHASE_LB,
    PHASE_SCHEDULER,
    REGION_FEATURES,
    RF_BEST_COMPLETION,
    RF_CARBON,
    RF_IS_SELECTED,
    RF_RTT,
    RF_TRANSFER,
    RF_UTIL,
    RF_VALID,
)

# Float parameters (``params``).
P_SAT_WAIT, P_GAMMA_SHAPE, P_W_LAT, P_W_QUEUE, P_W_SLO, P_W_COST, P_W_CARBON = range(7)
P_WARMUP, P_CLIP, P_INVALID_PENALTY, P_TERM_CAP = 7, 8, 9, 10
# The weighted heuristic's ``scoring`` vector (``heuristics.scoring_params``).
P_SCORING = 11
N_PARAMS = P_SCORING + N_SCORING
"""Fixed parameters; ``K`` per-type latency limits (s), their weights and the limit
signal flag follow (``P_LIMITS``: :attr:`RewardConfig.limit_s`, ``limit_exceeded``,
``limit_signal``)."""
P_LIMITS = N_PARAMS
# Integer parameters (``iparams``).
IP_LB_MODE, IP_SCHED_MODE, IP_BG_MODE, IP_EP_LEN, IP_NMAX, IP_START_HOUR = range(6)
IP_OFF_TYPE, IP_OFF_SCALAR, IP_OFF_ORIGIN, IP_OFF_REGION, IP_OFF_NODE = 6, 7, 8, 9, 10
IP_FALLBACK_LB, IP_FALLBACK_SCHED, IP_CONTINUE = 11, 12, 13
IP_OFF_LOAD = 14  # start of the regions' offered loads, -1 = not observed
N_IPARAMS = 15
# Per (type, node) table ``tn``: raw expected service (inf = cannot serve), then the
# observation's static node features, already normalised and clipped.
TN_EXEC, TN_CAPABLE, TN_EXEC_N, TN_COST_N, TN_CARBON_COEF, TN_IS_EDGE = range(6)
N_TN = 6
# Per (type, origin, region) table ``reg_static``.
RS_VALID, RS_RTT, RS_TRANSFER, RS_COST, RS_CARBON_COEF, RS_INV_CORES = range(6)
RS_INV_CAPACITY = 6  # 1 / requests per second the serving region serves at full load
N_RS = 7
# Per-env float state (``fs``).
FS_T, FS_G, FS_SEC_TOTAL, FS_RETURN, FS_LATENCY, FS_WAIT, FS_VIOL = range(7)
FS_COST, FS_CARBON, FS_ENERGY, FS_PLACED, FS_T_START = 7, 8, 9, 10, 11
N_FS = 12
# Per-env integer state (``ist``).
IS_PHASE, IS_TYPE, IS_ORIGIN, IS_SELECTED, IS_STEP, IS_SEC, IS_HOUR0, IS_PENDING = (
    range(8)
)
N_IS = 8
# Per-node dynamic state (``node_dyn[b, field, node]``).
ND_FREE, ND_NEXT, ND_BUSY = 0, 1, 2
N_ND = 3
# Per-region dynamic state (``reg_dyn[b, field, region]``): busy cores, next core
# release, arrival rate of the current second, and of the current hour: carbon
# intensity, sine and cosine of the local hour (the observation's clock).
RD_BUSY, RD_NEXT, RD_RATE, RD_CARBON, RD_SIN, RD_COS = range(6)
N_RD = 6
# Components of the last step (``comps``).
C_PLACED, C_LATENCY, C_WAIT, C_RTT, C_TRANSFER, C_SERVICE, C_VIOL = range(7)
C_COST, C_EGRESS, C_ENERGY, C_CARBON, C_REGION, C_NODE, C_ORIGIN = range(7, 14)
C_TYPE, C_REWARD, C_INVALID = 14, 15, 16
N_COMPS = 17
COMPONENT_NAMES = (
    "placed", "latency_s", "queue_wait_s", "rtt_s", "transfer_s", "service_s",
    "slo_violated", "cost_usd", "egress_usd", "energy_j", "carbon_g",
    "region", "node", "origin", "request_type", "reward", "invalid_action",
)  # fmt: skip
# Episode summary (``ep_out``): FS_RETURN..FS_PLACED, then length and simulated time.
E_LENGTH, E_SIM_SECONDS = FS_PLACED + 1, FS_PLACED + 2
N_EP = FS_PLACED + 3

HOURS = 8760

# Unsigned indices for the innermost loops: numba adds a negative-index fix-up to
# every signed subscript, which there costs more than the work and blocks SIMD.
_u = nb.uint64
_U_NF_VALID, _U_NF_WAIT, _U_NF_UTIL, _U_NF_CARBON = (
    np.uint64(NF_VALID),
    np.uint64(NF_WAIT),
    np.uint64(NF_UTIL),
    np.uint64(NF_CARBON),
)
_U_TN_CARBON_COEF = np.uint64(TN_CARBON_COEF)


@nb.njit(cache=True, inline="always")
def _copy_into(dst, start, src):
    """``dst[start : start + len(src)] = src`` (1-D, no index fix-ups)."""
    base = _u(start)
    for j in range(src.shape[0]):
        u = _u(j)
        dst[base + u] = src[u]


# ---------------------------------------------------------------- arrival process
@nb.njit(cache=True)
def _hour_features(b, hour, reg_dyn, hourly):
    """Cache each region's carbon intensity and local clock for hour ``hour``."""
    for r in range(hourly.shape[0]):
        reg_dyn[b, RD_CARBON, r] = hourly[r, hour, HOUR_CARBON]
        angle = 2.0 * math.pi * hourly[r, hour, HOUR_LOCAL] / 24.0
        reg_dyn[b, RD_SIN, r] = math.sin(angle)
        reg_dyn[b, RD_COS, r] = math.cos(angle)


@nb.njit(cache=True)
def _load_second(b, sec, ist, fs, reg_dyn, burst_off, region_i, hourly, burst):
    """Cache every region's arrival rate for simulated second ``sec``.

    The hour of the year is that of the current second: the clock of every rate,
    price and carbon figure. Its features are refreshed when the hour turns.
    """
    hour = (ist[b, IS_HOUR0] + sec // 3600) % HOURS
    total = 0.0
    for r in range(region_i.shape[0]):
        idx = (burst_off[b, r] + sec) % region_i[r, REG_BURST_LEN]
        rate = hourly[r, hour, HOUR_RATE] * burst[r, idx]
        reg_dyn[b, RD_RATE, r] = rate
        total += rate
    fs[b, FS_SEC_TOTAL] = total
    if sec % 3600 == 0 or sec != ist[b, IS_SEC] + 1:  # a new hour, or a (re)start
        _hour_features(b, hour, reg_dyn, hourly)
    ist[b, IS_SEC] = sec


@nb.njit(cache=True, inline="always")
def _next_arrival(b, ist, fs, reg_dyn, burst_off, rng, region_i, hourly, burst):
    """Advance the clock to the merged process's next arrival; return its origin."""
    t = fs[b, FS_T]
    e = exponential(rng, b)
    sec = ist[b, IS_SEC]
    lam = fs[b, FS_SEC_TOTAL]
    while lam * ((sec + 1) - t) <= e:  # the arrival falls after this second
        e -= lam * ((sec + 1) - t)
        t = float(sec + 1)
        _load_second(b, sec + 1, ist, fs, reg_dyn, burst_off, region_i, hourly, burst)
        sec = ist[b, IS_SEC]
        lam = fs[b, FS_SEC_TOTAL]
    t += e / lam
    fs[b, FS_T] = t
    pick = uniform(rng, b) * lam
    n_regions = region_i.shape[0]
    for r in range(n_regions - 1):
        pick -= reg_dyn[b, RD_RATE, r]
        if pick < 0.0:
            return r
    return n_regions - 1


@nb.njit(cache=True, inline="always")
def _draw_type(b, o, fs, rng, mix_cum, gamma_shape):
    """Type of an arrival from ``o``; its service factor goes to ``fs[b, FS_G]``."""
    u = uniform(rng, b)
    k = 0
    while k < mix_cum.shape[1] - 1 and u >= mix_cum[o, k]:
        k += 1
    fs[b, FS_G] = gamma_unit_mean(rng, b, gamma_shape)
    return k


# ------------------------------------------------------------------- node state
@nb.njit(cache=True, inline="always")
def _refresh_node(b, n, q, t, node_f, core_free, node_dyn, reg_dyn):
    """Recount node ``n``'s busy cores at ``t`` (keeps its region's total in step)."""
    earliest = np.inf
    nxt = np.inf
    busy = 0.0
    first = int(node_f[n, NODE_CORE_OFFSET])
    cores = core_free[b]
    for c in range(first, first + int(node_f[n, NODE_CORES])):
        f = cores[_u(c)]
        if f < earliest:
            earliest = f
        if f > t:
            busy += 1.0
            if f < nxt:
                nxt = f
    reg_dyn[b, RD_BUSY, q] += busy - node_dyn[b, ND_BUSY, n]
    node_dyn[b, ND_FREE, n] = earliest
    node_dyn[b, ND_NEXT, n] = nxt
    node_dyn[b, ND_BUSY, n] = busy


@nb.njit(cache=True, inline="always")
def _rescan_region(b, q, t, region_i, node_f, core_free, node_dyn, reg_dyn):
    """Refresh the nodes of region ``q`` that released a core, and its next release."""
    nxt = np.inf
    release = node_dyn[b, ND_NEXT]
    for n in range(region_i[q, REG_START], region_i[q, REG_END]):
        if t >= release[_u(n)]:
            _refresh_node(b, n, q, t, node_f, core_free, node_dyn, reg_dyn)
        if release[_u(n)] < nxt:
            nxt = release[_u(n)]
    reg_dyn[b, RD_NEXT, q] = nxt


# ----------------------------------------------------------------- observations
# What does not depend on the state is written from templates built with the world
# (``head_tpl[k, o]``: header and region block of a type-``k`` request from ``o`` in
# the LB phase; ``node_tpl[k, q]``: region ``q``'s node block for type ``k``, padding
# included); the writers below copy them and fill in the dynamic features.
@nb.njit(cache=True, inline="always")
def _fill_nodes(
    out, b, off, q, k, t, inv_slo, clip, sat, region_i, node_f, tn, node_tpl,
    inv_cores, core_free, node_dyn, reg_dyn,
):  # fmt: skip
    """Node features of region ``q`` for a type-``k`` request, into ``out[b, off:]``.

    Written in place (float32), row-major ``[N_max, NODE_FEATURES]``.
    """
    if t >= reg_dyn[b, RD_NEXT, q]:  # a core of the region was released: recount
        _rescan_region(b, q, t, region_i, node_f, core_free, node_dyn, reg_dyn)
    row = out[b]
    _copy_into(row, off, node_tpl[k, q])
    carbon = reg_dyn[b, RD_CARBON, q]
    free = node_dyn[b, ND_FREE]
    busy = node_dyn[b, ND_BUSY]
    static = tn[k]
    lo = region_i[q, REG_START]
    count = region_i[q, REG_END] - lo
    any_room = False
    for i in range(count):
        n = _u(lo + i)
        j = _u(off + i * NODE_FEATURES)
        wait = max(free[n] - t, 0.0)
        row[j + _U_NF_WAIT] = min(wait * inv_slo, clip)
        row[j + _U_NF_UTIL] = busy[n] * inv_cores[n]
        row[j + _U_NF_CARBON] = min(static[n, _U_TN_CARBON_COEF] * carbon, clip)
        if row[j + _U_NF_VALID] > 0.0 and (sat <= 0.0 or wait <= sat):
            any_room = True
    if any_room and sat > 0.0:  # decided on float64 waits, as ``any_room`` was
        for i in range(count):
            if free[_u(lo + i)] - t > sat:
                row[_u(off + i * NODE_FEATURES) + _U_NF_VALID] = 0.0


@nb.njit(cache=True, inline="always")
def _fill_regions(
    out, b, off, o, k, t, inv_slo, clip, region_i, node_f, tn_exec, reg_static,
    head_tpl, core_free, node_dyn, reg_dyn,
):  # fmt: skip
    """Region features of serving a type-``k`` request from ``o``: ``out[b, off:]``."""
    row = out[b]
    template = head_tpl[k, o]
    for j in range(off, template.shape[0]):
        row[_u(j)] = template[_u(j)]
    free = node_dyn[b, ND_FREE]
    exec_s = tn_exec[k]
    for q in range(region_i.shape[0]):
        if t >= reg_dyn[b, RD_NEXT, q]:
            _rescan_region(b, q, t, region_i, node_f, core_free, node_dyn, reg_dyn)
        best = np.inf
        for n in range(region_i[q, REG_START], region_i[q, REG_END]):
            best = min(best, max(free[_u(n)] - t, 0.0) + exec_s[_u(n)])
        j = off + q * REGION_FEATURES
        row[j + RF_BEST_COMPLETION] = min(best * inv_slo, clip)
        row[j + RF_UTIL] = reg_dyn[b, RD_BUSY, q] * reg_static[k, o, q, RS_INV_CORES]
        carbon = reg_static[k, o, q, RS_CARBON_COEF] * reg_dyn[b, RD_CARBON, q]
        row[j + RF_CARBON] = min(carbon, clip)


@nb.njit(cache=True, inline="always")
def _write_obs(
    b, obs, mask, ist, fs, core_free, node_dyn, reg_dyn, region_i, node_f, tn, tn_exec,
    inv_cores, reg_static, type_f, head_tpl, node_tpl, params, iparams,
):  # fmt: skip
    """Observation and mask of the pending decision of environment ``b``.

    In the scheduler phase the region block already describes this request (written
    at its LB phase, by the agent's observation or the heuristic LB): only the
    selection flag changes.
    """
    n_regions = region_i.shape[0]
    n_max = iparams[IP_NMAX]
    o = ist[b, IS_ORIGIN]
    k = ist[b, IS_TYPE]
    phase = ist[b, IS_PHASE]
    selected = ist[b, IS_SELECTED]
    t = fs[b, FS_T]
    inv_slo = 1.0 / type_f[k, TYPE_SLO_S]
    clip = params[P_CLIP]
    off_r = iparams[IP_OFF_REGION]
    off_n = iparams[IP_OFF_NODE]
    row = obs[b]
    template = head_tpl[k, o]
    for j in range(off_r):
        row[_u(j)] = template[_u(j)]
    s = iparams[IP_OFF_SCALAR]
    row[s + 2] = reg_dyn[b, RD_SIN, o]
    row[s + 3] = reg_dyn[b, RD_COS, o]
    off_load = iparams[IP_OFF_LOAD]
    if off_load >= 0:
        for r in range(n_regions):
            load = reg_dyn[b, RD_RATE, r] * reg_static[0, 0, r, RS_INV_CAPACITY]
            row[off_load + r] = min(load, clip)
    view = o
    if phase == PHASE_LB:
        _fill_regions(
            obs,
            b,
            off_r,
            o,
            k,
            t,
            inv_slo,
            clip,
            region_i,
            node_f,
            tn_exec,
            reg_static,
            head_tpl,
            core_free,
            node_dyn,
            reg_dyn,
        )
    else:
        row[PHASE_LB] = 0.0
        row[PHASE_SCHEDULER] = 1.0
        view = selected
        for q in range(n_regions):
            row[off_r + q * REGION_FEATURES + RF_IS_SELECTED] = (
                1.0 if q == selected else 0.0
            )
    _fill_nodes(
        obs,
        b,
        off_n,
        view,
        k,
        t,
        inv_slo,
        clip,
        params[P_SAT_WAIT],
        region_i,
        node_f,
        tn,
        node_tpl,
        inv_cores,
        core_free,
        node_dyn,
        reg_dyn,
    )
    mask_row = mask[b]
    for a in range(mask_row.shape[0]):
        mask_row[a] = False
    if phase == PHASE_LB:
        for q in range(n_regions):
            mask_row[q] = row[off_r + q * REGION_FEATURES + RF_VALID] > 0.0
    else:
        for i in range(min(n_max, mask_row.shape[0])):
            mask_row[i] = row[off_n + i * NODE_FEATURES + NF_VALID] > 0.0


# ---------------------------------------------------------------------- serving
@nb.njit(cache=True)
def _background_node(
    b, q, k, mode, t, sat, clip, inv_slo, region_i, node_f, tn, inv_cores, core_free,
    node_dyn, reg_dyn,
):  # fmt: skip
    """Least-loaded or latency placement of background traffic, without a block.

    The rule of :func:`envs.two_tier.heuristics.choose_node` on the values its block
    would hold (wait and execution over the SLO, clipped, and utilisation, all
    float32; saturated nodes masked), computed node by node: background traffic is
    most of what the simulator does in a region's env, and writing a block for each
    request would dominate. ``tests/envs/test_two_tier_heuristics.py`` checks that
    both give the same node.
    """
    if t >= reg_dyn[b, RD_NEXT, q]:
        _rescan_region(b, q, t, region_i, node_f, core_free, node_dyn, reg_dyn)
    start, stop = region_i[q, REG_START], region_i[q, REG_END]
    limit = np.inf
    if sat > 0.0:
        for n in range(start, stop):
            if tn[k, n, TN_CAPABLE] > 0.0 and node_dyn[b, ND_FREE, n] - t <= sat:
                limit = sat  # some capable node has room: saturated ones are masked
                break
    best = -1
    best_score = np.float32(0.0)
    best_util = np.float32(0.0)
    for n in range(start, stop):
        if tn[k, n, TN_CAPABLE] <= 0.0:
            continue
        wait = max(node_dyn[b, ND_FREE, n] - t, 0.0)
        if wait > limit:
            continue
        score = np.float32(min(wait * inv_slo, clip))
        if mode == LATENCY:
            score = score + np.float32(tn[k, n, TN_EXEC_N])
        util = np.float32(node_dyn[b, ND_BUSY, n] * inv_cores[n])
        if best < 0 or score < best_score or (score == best_score and util < best_util):
            best, best_score, best_util = n, score, util
    return best


@nb.njit(cache=True, inline="always")
def _serve(
    b, o, q, n, k, t, g, rng, node_f, pair_f, type_f, tn, core_free, node_dyn, reg_dyn
):
    """Queue the request on node ``n`` in ``q``: (rtt, transfer, wait, service)."""
    bandwidth = pair_f[o, q, PAIR_BW_BPS]
    rtt = node_f[n, NODE_ACCESS_RTT_S]
    if q != o:
        sigma = pair_f[o, q, PAIR_RTT_SIGMA]
        median = pair_f[o, q, PAIR_RTT_S]
        rtt += (
            median * math.exp(sigma * standard_normal(rng, b + rng.shape[0] // 2))
            if sigma > 0.0
            else median
        )
    upload = type_f[k, TYPE_IN_GB] * 1e9 / bandwidth
    service = tn[k, n, TN_EXEC] * g
    first = int(node_f[n, NODE_CORE_OFFSET])
    cores = int(node_f[n, NODE_CORES])
    wait = dispatch_at(core_free, b, first, cores, t + 0.5 * rtt + upload, service)
    _refresh_node(b, n, q, t, node_f, core_free, node_dyn, reg_dyn)
    if node_dyn[b, ND_NEXT, n] < reg_dyn[b, RD_NEXT, q]:
        reg_dyn[b, RD_NEXT, q] = node_dyn[b, ND_NEXT, n]
    return rtt, type_f[k, TYPE_BYTES] / bandwidth, wait, service


@nb.njit(cache=True, inline="always")
def _account(
    b, o, q, n, k, intensity, rtt, transfer, wait, service, g, node_f, pair_f, type_f,
    params, fs, comps,
):  # fmt: skip
    """Latency, SLO, cost, energy and carbon of a placed request; returns its reward.

    ``intensity`` is the serving region's carbon intensity now (gCO2/kWh); ``g`` the
    request's service factor (``service`` = the node's mean x ``g``).
    """
    latency = rtt + transfer + wait + service
    slo = type_f[k, TYPE_SLO_S]
    violated = 1.0 if latency > slo else 0.0
    egress = (
        type_f[k, TYPE_IN_GB] * pair_f[o, q, PAIR_EGRESS_USD_GB]
        + type_f[k, TYPE_OUT_GB] * pair_f[q, o, PAIR_EGRESS_USD_GB]
    )
    cost = service * node_f[n, NODE_PRICE_CORE_S] + egress
    energy = service * node_f[n, NODE_WATTS_BUSY_CORE]
    carbon = energy / 3.6e6 * intensity
    cap = params[P_TERM_CAP]
    n_types = type_f.shape[0]
    price = params[P_LIMITS + n_types + k]
    over_limit = 0.0  # an unpriced type's limit may be inf: never charged, never read
    if price > 0.0:
        limit = params[P_LIMITS + k]
        over_limit = 1.0 if latency > limit else 0.0
        shape = params[P_GAMMA_SHAPE]
        if params[P_LIMITS + 2 * n_types] > 0.0 and shape > 0.0 and g > 0.0:
            # E[over | all but the service draw]: S = service / g x Gamma(k, 1/k)
            slack = limit - (latency - service)
            over_limit = (
                gamma_q(shape, shape * g * slack / service) if slack > 0.0 else 1.0
            )
    reward = -(
        params[P_W_LAT] * min(latency / slo, cap)
        + params[P_W_QUEUE] * min(wait / slo, cap)
        + params[P_W_SLO] * violated
        + params[P_W_COST] * min(cost / type_f[k, TYPE_COST_REF], cap)
        + params[P_W_CARBON] * min(carbon / type_f[k, TYPE_CARBON_REF], cap)
        + price * over_limit
    )
    comps[b, C_PLACED] = 1.0
    comps[b, C_LATENCY] = latency
    comps[b, C_WAIT] = wait
    comps[b, C_RTT] = rtt
    comps[b, C_TRANSFER] = transfer
    comps[b, C_SERVICE] = service
    comps[b, C_VIOL] = violated
    comps[b, C_COST] = cost
    comps[b, C_EGRESS] = egress
    comps[b, C_ENERGY] = energy
    comps[b, C_CARBON] = carbon
    comps[b, C_REGION] = q
    comps[b, C_NODE] = n
    comps[b, C_ORIGIN] = o
    comps[b, C_TYPE] = k
    fs[b, FS_RETURN] += reward
    fs[b, FS_LATENCY] += latency
    fs[b, FS_WAIT] += wait
    fs[b, FS_VIOL] += violated
    fs[b, FS_COST] += cost
    fs[b, FS_CARBON] += carbon
    fs[b, FS_ENERGY] += energy
    fs[b, FS_PLACED] += 1.0
    return reward


# Heuristic tiers score the blocks the agent would see. Not inlined: each inlined
# copy of an observation writer costs seconds of compilation, and the default env
# (both tiers learned, every region controlled) never runs them.
@nb.njit(cache=True)
def _heuristic_node(
    mode, b, o, q, k, t, region_i, node_f, tn, node_tpl, type_f, inv_cores,
    reg_static, params, core_free, node_dyn, reg_dyn, scratch, rng, counter,
):  # fmt: skip
    """The node (world index) scheduler heuristic ``mode`` picks in region ``q``.

    ``o`` is the request's origin: the weighted rule reads the RTT and transfer of
    ``o -> q`` as the region block holds them (float32).
    """
    _fill_nodes(
        scratch, b, 0, q, k, t, 1.0 / type_f[k, TYPE_SLO_S], params[P_CLIP],
        params[P_SAT_WAIT], region_i, node_f, tn, node_tpl, inv_cores, core_free,
        node_dyn, reg_dyn,
    )  # fmt: skip
    block = scratch[b].reshape((scratch.shape[1] // NODE_FEATURES, NODE_FEATURES))
    rtt = float(np.float32(reg_static[k, o, q, RS_RTT]))  # as the block holds it
    transfer = float(np.float32(reg_static[k, o, q, RS_TRANSFER]))
    scoring = params[P_SCORING : P_SCORING + N_SCORING]
    draws = rng[rng.shape[0] // 2 :]  # the decision streams
    chosen = choose_node(mode, block, draws, counter, b, scoring, rtt, transfer)
    return region_i[q, REG_START] + chosen


@nb.njit(cache=True)
def _heuristic_region(
    b, obs, region_i, node_f, tn_exec, reg_static, head_tpl, type_f, params, iparams,
    ist, fs, core_free, node_dyn, reg_dyn, rng, counter,
):  # fmt: skip
    """The region the LB heuristic picks for the pending request.

    Its region block is written to ``obs[b]``, where the scheduler's observation
    keeps it.
    """
    o, k, t = ist[b, IS_ORIGIN], ist[b, IS_TYPE], fs[b, FS_T]
    off = iparams[IP_OFF_REGION]
    n_regions = region_i.shape[0]
    _fill_regions(
        obs, b, off, o, k, t, 1.0 / type_f[k, TYPE_SLO_S], params[P_CLIP], region_i,
        node_f, tn_exec, reg_static, head_tpl, core_free, node_dyn, reg_dyn,
    )  # fmt: skip
    block = obs[b, off : off + n_regions * REGION_FEATURES].reshape(
        (n_regions, REGION_FEATURES)
    )
    scoring = params[P_SCORING : P_SCORING + N_SCORING]
    draws = rng[rng.shape[0] // 2 :]  # the decision streams
    return choose_region(iparams[IP_LB_MODE], block, draws, counter, b, scoring)


# ------------------------------------------------------------------ one env's step
# The functions below take the unpacked ``world`` and ``state`` arrays as explicit
# arguments, in this order (the entry points unpack the tuples once per call):
#   W = node_f, region_i, tn, reg_static, type_f, hourly, burst, pair_f, mix_cum,
#       params, iparams, tn_exec, inv_cores, head_tpl, node_tpl
#   S = ist, fs, core_free, node_dyn, reg_dyn, burst_off, rng, rr, scratch, comps


@nb.njit(cache=True, inline="always")
def _advance(
    b, obs, node_f, region_i, tn, reg_static, type_f, hourly, burst, pair_f, mix_cum,
    params, iparams, tn_exec, inv_cores, head_tpl, node_tpl, ist, fs, core_free,
    node_dyn, reg_dyn, burst_off, rng, rr, scratch,
):  # fmt: skip
    """Simulate environment ``b`` until a learned tier must decide.

    Background traffic (and all traffic during warm-up) is served in its region by
    the background heuristic; a heuristic LB writes the region block of ``obs[b]``,
    which the scheduler observation then reuses.
    """
    bg_mode = iparams[IP_BG_MODE]
    sat = params[P_SAT_WAIT]
    clip = params[P_CLIP]
    shape = params[P_GAMMA_SHAPE]
    warmup = params[P_WARMUP]
    while ist[b, IS_PENDING] == 0:
        o = _next_arrival(b, ist, fs, reg_dyn, burst_off, rng, region_i, hourly, burst)
        k = _draw_type(b, o, fs, rng, mix_cum, shape)
        t = fs[b, FS_T]
        if region_i[o, REG_CONTROLLED] == 1 and t >= warmup:
            ist[b, IS_PENDING] = 1
            ist[b, IS_ORIGIN] = o
            ist[b, IS_TYPE] = k
            ist[b, IS_PHASE] = PHASE_LB
            ist[b, IS_SELECTED] = -1
            continue
        if bg_mode == LEAST_LOADED or bg_mode == LATENCY:
            n = _background_node(
                b, o, k, bg_mode, t, sat, clip, 1.0 / type_f[k, TYPE_SLO_S],
                region_i, node_f, tn, inv_cores, core_free, node_dyn, reg_dyn,
            )  # fmt: skip
        else:
            n = _heuristic_node(
                bg_mode, b, o, o, k, t, region_i, node_f, tn, node_tpl, type_f,
                inv_cores, reg_static, params, core_free, node_dyn, reg_dyn, scratch,
                rng, rr[2],
            )  # fmt: skip
        _serve(
            b,
            o,
            o,
            n,
            k,
            t,
            fs[b, FS_G],
            rng,
            node_f,
            pair_f,
            type_f,
            tn,
            core_free,
            node_dyn,
            reg_dyn,
        )
    if ist[b, IS_PHASE] == PHASE_LB and iparams[IP_LB_MODE] != AGENT:
        ist[b, IS_SELECTED] = _heuristic_region(
            b, obs, region_i, node_f, tn_exec, reg_static, head_tpl, type_f, params,
            iparams, ist, fs, core_free, node_dyn, reg_dyn, rng, rr[0],
        )  # fmt: skip
        ist[b, IS_PHASE] = PHASE_SCHEDULER
    # A learned tier decides next (both tiers heuristic is rejected by the core).


@nb.njit(cache=True, inline="always")
def _place(
    b, n, node_f, tn, type_f, hourly, pair_f, params, ist, fs, core_free, node_dyn,
    reg_dyn, rng, comps,
):  # fmt: skip
    """Serve and account the pending request on node ``n``; returns its reward."""
    o, q, k, t = ist[b, IS_ORIGIN], ist[b, IS_SELECTED], ist[b, IS_TYPE], fs[b, FS_T]
    rtt, transfer, wait, service = _serve(
        b,
        o,
        q,
        n,
        k,
        t,
        fs[b, FS_G],
        rng,
        node_f,
        pair_f,
        type_f,
        tn,
        core_free,
        node_dyn,
        reg_dyn,
    )
    ist[b, IS_PENDING] = 0
    return _account(
        b,
        o,
        q,
        n,
        k,
        reg_dyn[b, RD_CARBON, q],
        rtt,
        transfer,
        wait,
        service,
        fs[b, FS_G],
        node_f,
        pair_f,
        type_f,
        params,
        fs,
        comps,
    )


@nb.njit(cache=True)
def _reset_one(
    b, obs, mask, node_f, region_i, tn, reg_static, type_f, hourly, burst, pair_f,
    mix_cum, params, iparams, tn_exec, inv_cores, head_tpl, node_tpl, ist, fs,
    core_free, node_dyn, reg_dyn, burst_off, rng, rr, scratch,
):  # fmt: skip
    """Start a new episode in environment ``b``: empty queues, then the warm-up."""
    start = iparams[IP_START_HOUR]
    ist[b, :] = 0
    ist[b, IS_HOUR0] = start if start >= 0 else randint(rng, b, HOURS)
    fs[b, :] = 0.0
    core_free[b, :] = 0.0
    node_dyn[b, ND_FREE, :] = 0.0
    node_dyn[b, ND_NEXT, :] = np.inf
    node_dyn[b, ND_BUSY, :] = 0.0
    reg_dyn[b, RD_BUSY, :] = 0.0
    reg_dyn[b, RD_NEXT, :] = np.inf
    for r in range(region_i.shape[0]):
        burst_off[b, r] = randint(rng, b, region_i[r, REG_BURST_LEN])
    for j in range(rr.shape[0]):
        rr[j, b] = 0
    _load_second(b, 0, ist, fs, reg_dyn, burst_off, region_i, hourly, burst)
    _advance(
        b,
        obs,
        node_f,
        region_i,
        tn,
        reg_static,
        type_f,
        hourly,
        burst,
        pair_f,
        mix_cum,
        params,
        iparams,
        tn_exec,
        inv_cores,
        head_tpl,
        node_tpl,
        ist,
        fs,
        core_free,
        node_dyn,
        reg_dyn,
        burst_off,
        rng,
        rr,
        scratch,
    )
    fs[b, FS_T_START] = fs[b, FS_T]
    _write_obs(
        b,
        obs,
        mask,
        ist,
        fs,
        core_free,
        node_dyn,
        reg_dyn,
        region_i,
        node_f,
        tn,
        tn_exec,
        inv_cores,
        reg_static,
        type_f,
        head_tpl,
        node_tpl,
        params,
        iparams,
    )


@nb.njit(cache=True)
def write_obs(b, world, state, obs, mask):
    """Entry point: the observation and mask of environment ``b``'s current state."""
    node_f, region_i, tn, reg_static, type_f = world[:5]
    params, iparams, tn_exec, inv_cores = world[9], world[10], world[11], world[12]
    head_tpl, node_tpl = world[13], world[14]
    ist, fs, core_free, node_dyn, reg_dyn = state[:5]
    _write_obs(
        b,
        obs,
        mask,
        ist,
        fs,
        core_free,
        node_dyn,
        reg_dyn,
        region_i,
        node_f,
        tn,
        tn_exec,
        inv_cores,
        reg_static,
        type_f,
        head_tpl,
        node_tpl,
        params,
        iparams,
    )


@nb.njit(cache=True)
def write_live(
    first, types, origins, selected, hours, rows, cols, waits, busy, rates, world,
    state, obs, mask,
):  # fmt: skip
    """Set rows ``first..first+n-1`` to live states and write their observations.

    Row ``first + i`` gets request type ``types[i]`` from ``origins[i]`` at hour of
    year ``hours[i]``, in the LB phase (``selected[i] < 0``) or the scheduler phase of
    region ``selected[i]``. Node loads come as sparse entries ``(rows[j] (0-based in
    the batch), cols[j] (node), waits[j] (s until a core is free), busy[j] (cores))``;
    absent nodes are idle. ``rates[i, r]`` is region ``r``'s arrival rate (requests/s)
    seen by row ``first + i`` (observed only when the layout has region loads). The
    state is placed at ``t = 0``, so a wait is a free time, and no core-level detail
    exists, so nothing is recounted. The observation is the simulator's own writer;
    in the scheduler phase the region block is first written in the LB phase, as
    during an episode.
    """
    region_i, hourly = world[1], world[5]
    ist, fs, node_dyn, reg_dyn = state[0], state[1], state[3], state[4]
    n = types.shape[0]
    for i in range(n):
        b = first + i
        ist[b, :] = 0
        ist[b, IS_HOUR0] = hours[i]
        ist[b, IS_PENDING] = 1
        ist[b, IS_ORIGIN] = origins[i]
        ist[b, IS_TYPE] = types[i]
        ist[b, IS_SELECTED] = selected[i]
        fs[b, :] = 0.0
        _hour_features(b, hours[i], reg_dyn, hourly)
        node_dyn[b, ND_FREE, :] = 0.0
        node_dyn[b, ND_NEXT, :] = np.inf
        node_dyn[b, ND_BUSY, :] = 0.0
        for r in range(region_i.shape[0]):
            reg_dyn[b, RD_RATE, r] = rates[i, r]
    for j in range(rows.shape[0]):
        node_dyn[first + rows[j], ND_FREE, cols[j]] = waits[j]
        node_dyn[first + rows[j], ND_BUSY, cols[j]] = busy[j]
    for i in range(n):
        b = first + i
        for q in range(region_i.shape[0]):
            total = 0.0
            for node in range(region_i[q, REG_START], region_i[q, REG_END]):
                total += node_dyn[b, ND_BUSY, node]
            reg_dyn[b, RD_BUSY, q] = total
            reg_dyn[b, RD_NEXT, q] = np.inf
        ist[b, IS_PHASE] = PHASE_LB
        write_obs(b, world, state, obs, mask)
        if selected[i] >= 0:
            ist[b, IS_PHASE] = PHASE_SCHEDULER
            write_obs(b, world, state, obs, mask)


@nb.njit(cache=True)
def reset_env(b, world, state, obs, mask):
    """Start a new episode in environment ``b`` (its random stream is kept)."""
    node_f, region_i, tn, reg_static, type_f, hourly, burst, pair_f, mix_cum = world[:9]
    params, iparams, tn_exec, inv_cores = world[9], world[10], world[11], world[12]
    head_tpl, node_tpl = world[13], world[14]
    ist, fs, core_free, node_dyn, reg_dyn, burst_off, rng, rr, scratch = state[:9]
    _reset_one(
        b,
        obs,
        mask,
        node_f,
        region_i,
        tn,
        reg_static,
        type_f,
        hourly,
        burst,
        pair_f,
        mix_cum,
        params,
        iparams,
        tn_exec,
        inv_cores,
        head_tpl,
        node_tpl,
        ist,
        fs,
        core_free,
        node_dyn,
        reg_dyn,
        burst_off,
        rng,
        rr,
        scratch,
    )


@nb.njit(cache=True)
def _restart_episode(
    b, obs, mask, node_f, region_i, tn, reg_static, type_f, hourly, burst, params,
    iparams, tn_exec, inv_cores, head_tpl, node_tpl, ist, fs, core_free, node_dyn,
    reg_dyn, burst_off, rng,
):  # fmt: skip
    """Begin a new episode on the running world (auto-reset in ``continue`` mode).

    Queues and the pending request stay (a start drawn from the world's own
    dynamics, with no warm-up to pay); the hour of the year and the burst offsets are
    drawn again, and the episode counters restart.
    """
    t = fs[b, FS_T]
    start = iparams[IP_START_HOUR]
    hour = start if start >= 0 else randint(rng, b, HOURS)
    ist[b, IS_HOUR0] = (hour - ist[b, IS_SEC] // 3600) % HOURS  # now `hour`
    for r in range(region_i.shape[0]):
        burst_off[b, r] = randint(rng, b, region_i[r, REG_BURST_LEN])
    _load_second(
        b, ist[b, IS_SEC], ist, fs, reg_dyn, burst_off, region_i, hourly, burst
    )
    for j in range(FS_RETURN, FS_PLACED + 1):
        fs[b, j] = 0.0
    fs[b, FS_T_START] = t
    ist[b, IS_STEP] = 0
    _write_obs(
        b,
        obs,
        mask,
        ist,
        fs,
        core_free,
        node_dyn,
        reg_dyn,
        region_i,
        node_f,
        tn,
        tn_exec,
        inv_cores,
        reg_static,
        type_f,
        head_tpl,
        node_tpl,
        params,
        iparams,
    )


@nb.njit(cache=True, inline="always")
def _prefetch_ahead(
    b, actions, region_i, node_f, obs, mask, ist, fs, core_free, node_dyn, reg_dyn,
    rng, comps,
):  # fmt: skip
    """Ask for the memory of the next environments while ``b`` is simulated.

    B environments' state does not fit in cache, so each step would otherwise wait
    on memory: the rows of ``b + 2``, and the cores that ``b + 1``'s scheduler
    action will use (its rows arrived during the previous step).
    """
    n_envs = actions.shape[0]
    if b + 2 < n_envs:
        ahead = b + 2
        prefetch_row(obs, ahead)
        prefetch_row(node_dyn, ahead)
        prefetch_row(reg_dyn, ahead)
        prefetch_row(ist, ahead)
        prefetch_row(fs, ahead)
        prefetch_row(comps, ahead)
        prefetch_row(mask, ahead)
        prefetch_row(rng, ahead)
    if b + 1 < n_envs and ist[b + 1, IS_PHASE] == PHASE_SCHEDULER:
        q = ist[b + 1, IS_SELECTED]
        if 0 <= q < region_i.shape[0]:
            n = region_i[q, REG_START] + actions[b + 1]
            if region_i[q, REG_START] <= n < region_i[q, REG_END]:
                first = int(node_f[n, NODE_CORE_OFFSET])
                stop = first + int(node_f[n, NODE_CORES])
                prefetch_span(core_free, b + 1, first, stop)


@nb.njit(cache=True)
def step_batch(actions, world, state, out):
    """Apply one action per environment and advance each to its next decision.

    A masked-out action is replaced by the tier's fallback heuristic and costs
    ``invalid_action_penalty`` (so unmasked algorithms can be compared).
    Environments whose episode reaches ``episode_length`` decisions are truncated:
    their last observation goes to ``final_obs``, their totals to ``ep_out``, and they
    are reset (or restarted on the running world, ``IP_CONTINUE``).
    ``episode_length == 0`` leaves truncation to the caller (TimeLimit).
    """
    node_f, region_i, tn = borrow(world[0]), borrow(world[1]), borrow(world[2])
    reg_static, type_f, hourly = borrow(world[3]), borrow(world[4]), borrow(world[5])
    burst, pair_f, mix_cum = borrow(world[6]), borrow(world[7]), borrow(world[8])
    params, iparams = borrow(world[9]), borrow(world[10])
    tn_exec, inv_cores = borrow(world[11]), borrow(world[12])
    head_tpl, node_tpl = borrow(world[13]), borrow(world[14])
    ist, fs, core_free = borrow(state[0]), borrow(state[1]), borrow(state[2])
    node_dyn, reg_dyn, burst_off = borrow(state[3]), borrow(state[4]), borrow(state[5])
    rng, rr = borrow(state[6]), borrow(state[7])
    scratch, comps = borrow(state[8]), borrow(state[9])
    obs, mask, reward = borrow(out[0]), borrow(out[1]), borrow(out[2])
    truncated, final_obs, ep_out = borrow(out[3]), borrow(out[4]), borrow(out[5])
    ep_len = iparams[IP_EP_LEN]
    n_regions = region_i.shape[0]
    n_max = iparams[IP_NMAX]
    off_r, off_n = iparams[IP_OFF_REGION], iparams[IP_OFF_NODE]
    n_envs = actions.shape[0]
    for b in range(n_envs):
        _prefetch_ahead(
            b, actions, region_i, node_f, obs, mask, ist, fs, core_free, node_dyn,
            reg_dyn, rng, comps,
        )  # fmt: skip
        a = actions[b]
        comps[b, :] = 0.0
        r = 0.0
        invalid = a < 0 or a >= mask.shape[1] or not mask[b, a]
        if invalid:  # an unmasked policy: the tier's heuristic decides, at a penalty
            comps[b, C_INVALID] = 1.0
            r = -params[P_INVALID_PENALTY]
        if ist[b, IS_PHASE] == PHASE_LB:
            if invalid:
                blk = obs[b, off_r : off_r + n_regions * REGION_FEATURES].reshape(
                    (n_regions, REGION_FEATURES)
                )
                a = choose_region(
                    iparams[IP_FALLBACK_LB], blk, rng[n_envs:], rr[0], b,
                    params[P_SCORING : P_SCORING + N_SCORING],
                )  # fmt: skip
            ist[b, IS_SELECTED] = a
            ist[b, IS_PHASE] = PHASE_SCHEDULER
            place = iparams[IP_SCHED_MODE] != AGENT  # the heuristic scheduler decides
            if place:
                n = _heuristic_node(
                    iparams[IP_SCHED_MODE], b, ist[b, IS_ORIGIN], a, ist[b, IS_TYPE],
                    fs[b, FS_T], region_i, node_f, tn, node_tpl, type_f, inv_cores,
                    reg_static, params, core_free, node_dyn, reg_dyn, scratch, rng,
                    rr[1],
                )  # fmt: skip
        else:
            if invalid:
                blk = obs[b, off_n : off_n + n_max * NODE_FEATURES].reshape(
                    (n_max, NODE_FEATURES)
                )
                q = ist[b, IS_SELECTED]
                row = off_r + q * REGION_FEATURES
                a = choose_node(
                    iparams[IP_FALLBACK_SCHED], blk, rng[n_envs:], rr[1], b,
                    params[P_SCORING : P_SCORING + N_SCORING],
                    obs[b, row + RF_RTT], obs[b, row + RF_TRANSFER],
                )  # fmt: skip
            place = True
            n = region_i[ist[b, IS_SELECTED], REG_START] + a
        if place:
            r += _place(
                b,
                n,
                node_f,
                tn,
                type_f,
                hourly,
                pair_f,
                params,
                ist,
                fs,
                core_free,
                node_dyn,
                reg_dyn,
                rng,
                comps,
            )
        _advance(
            b,
            obs,
            node_f,
            region_i,
            tn,
            reg_static,
            type_f,
            hourly,
            burst,
            pair_f,
            mix_cum,
            params,
            iparams,
            tn_exec,
            inv_cores,
            head_tpl,
            node_tpl,
            ist,
            fs,
            core_free,
            node_dyn,
            reg_dyn,
            burst_off,
            rng,
            rr,
            scratch,
        )
        _write_obs(
            b,
            obs,
            mask,
            ist,
            fs,
            core_free,
            node_dyn,
            reg_dyn,
            region_i,
            node_f,
            tn,
            tn_exec,
            inv_cores,
            reg_static,
            type_f,
            head_tpl,
            node_tpl,
            params,
            iparams,
        )
        reward[b] = r
        comps[b, C_REWARD] = r
        ist[b, IS_STEP] += 1
        truncated[b] = ep_len > 0 and ist[b, IS_STEP] >= ep_len
        if truncated[b]:
            final_obs[b, :] = obs[b, :]
            for j in range(FS_PLACED + 1):
                ep_out[b, j] = fs[b, j]
            ep_out[b, E_LENGTH] = ist[b, IS_STEP]
            ep_out[b, E_SIM_SECONDS] = fs[b, FS_T] - fs[b, FS_T_START]
            if iparams[IP_CONTINUE]:
                _restart_episode(
                    b,
                    obs,
                    mask,
                    node_f,
                    region_i,
                    tn,
                    reg_static,
                    type_f,
                    hourly,
                    burst,
                    params,
                    iparams,
                    tn_exec,
                    inv_cores,
                    head_tpl,
                    node_tpl,
                    ist,
                    fs,
                    core_free,
                    node_dyn,
                    reg_dyn,
                    burst_off,
                    rng,
                )
            else:
                _reset_one(
                    b,
                    obs,
                    mask,
                    node_f,
                    region_i,
                    tn,
                    reg_static,
                    type_f,
                    hourly,
                    burst,
                    pair_f,
                    mix_cum,
                    params,
                    iparams,
                    tn_exec,
                    inv_cores,
                    head_tpl,
                    node_tpl,
                    ist,
                    fs,
                    core_free,
                    node_dyn,
                    reg_dyn,
                    burst_off,
                    rng,
                    rr,
                    scratch,
                )
