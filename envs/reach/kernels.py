"""Numba kernels of the batched rescheduling core: sampling, latency, masks, features.

All kernels read the packed arrays of :mod:`envs.reach.layout` (imported as ``rl``):
``sf``/``si`` hold the static description (float/int), ``fr``/``ir`` one
environment's dynamic float and int row. ``si[rl.O_X]`` is the offset of field X, so
``sf[si[rl.O_SVC_CPU] + s]`` is the CPU request of service ``s``. Plain offsets
(rather than named views) keep the compile time of a cold cache low. Randomness
comes only from the per-environment xoroshiro streams of :mod:`envs.rng`; numba's
global ``np.random`` is never used.

Work per move is incremental: a move from node a to node b changes the placement
counters and free resources of a and b, the traffic, bandwidth, load and queue wait
of the pods on a and b only, hence the execution time and hops of the calls whose
caller or callee has a pod there, the two mask rows of a and b plus the moved pod's
mask column, and the observation rows of a, b and the pod. Only those are
recomputed; the DFS sums over calls are redone (cheap). Resets and in-episode
events recompute everything.
"""

from __future__ import annotations

import math
from typing import Any

import numba as nb
import numpy as np

import envs.reach.layout as rl  # the field indices of the packed arrays
from envs.queues import mmc_mean_wait
from envs.rng import randint, uniform

CLOUD, EDGE, CLIENT = 0, 1, 2
EVERY_NODE = np.int64(-1)
"""Node argument meaning "all nodes"; a numpy scalar so numba compiles one signature."""

_INTERNAL: dict[str, Any] = {
    "cache": True,
    "error_model": "numpy",  # no ZeroDivisionError branches: denominators are guarded
    "no_cpython_wrapper": True,
    "no_cfunc_wrapper": True,
}
_inner = nb.njit(**_INTERNAL)
"""Decorator of kernels called only from other kernels (no Python wrapper to build)."""
_hot = nb.njit(forceinline=True, **_INTERNAL)
"""Small kernels on the per-step path: LLVM inlines them into their callers."""
BANDWIDTH_SATURATION = 0.9


# ---------------------------------------------------------------- sampling & placement
@_hot
def _sample(
    sf: np.ndarray, si: np.ndarray, o_values: int, o_ptr: int, n: int,
    rng: np.ndarray, b: int,
) -> float:  # fmt: skip
    """REACH 6aa794e: two entries are a uniform range, otherwise pick one entry."""
    values = si[o_values]
    ptr = si[o_ptr]
    start = si[ptr + n]
    count = si[ptr + n + 1] - start
    if count == 2:
        low = sf[values + start]
        return float(low + (sf[values + start + 1] - low) * uniform(rng, b))
    return float(sf[values + start + randint(rng, b, count)])


@_hot
def _fits(
    sf: np.ndarray, si: np.ndarray, fr: np.ndarray, ir: np.ndarray, s: int, n: int
) -> bool:
    return bool(
        ir[si[rl.O_OK] + n] != 0
        and fr[si[rl.O_CPU_FREE] + n] + rl.EPS >= sf[si[rl.O_SVC_CPU] + s]
        and fr[si[rl.O_MEM_FREE] + n] + rl.EPS >= sf[si[rl.O_SVC_MEM] + s]
    )


@_hot
def _hop_vector(
    si: np.ndarray, fr: np.ndarray, s: int, layer: int, sign: float
) -> None:
    """Keep ``hop[s, lb] = sum over s's pods a of L(layer(a), lb)`` (+ the way back).

    Then the layer part of a call x -> y, summed over all pod pairs, is
    ``sum over lb of hop[x, lb] * pods of y in layer lb``: 3 products per call.
    """
    o_lat = si[rl.O_LAT]
    row = si[rl.O_HOPVEC] + s * 3
    response = si[rl.HI_RESPONSE] != 0
    for lb in range(3):
        hop = fr[o_lat + layer * 3 + lb]
        if response:
            hop += fr[o_lat + lb * 3 + layer]
        fr[row + lb] += sign * hop


@_hot
def _assign(
    sf: np.ndarray, si: np.ndarray, fr: np.ndarray, ir: np.ndarray, slot: int, n: int
) -> None:
    """Put pod ``slot`` on node ``n`` and claim its requests there."""
    s = si[si[rl.O_SLOT_SVC] + slot]
    ir[si[rl.O_POD_NODE] + slot] = n
    fr[si[rl.O_CPU_FREE] + n] -= sf[si[rl.O_SVC_CPU] + s]
    fr[si[rl.O_MEM_FREE] + n] -= sf[si[rl.O_SVC_MEM] + s]
    ir[si[rl.O_CNT] + s * si[rl.HI_N] + n] += 1
    layer = si[si[rl.O_NODE_LAYER] + n]
    ir[si[rl.O_LCNT] + s * 3 + layer] += 1
    _hop_vector(si, fr, s, layer, 1.0)


@_hot
def _release(
    sf: np.ndarray, si: np.ndarray, fr: np.ndarray, ir: np.ndarray, slot: int
) -> int:
    """Take pod ``slot`` off its node, releasing its requests; return that node."""
    s = si[si[rl.O_SLOT_SVC] + slot]
    n = ir[si[rl.O_POD_NODE] + slot]
    fr[si[rl.O_CPU_FREE] + n] += sf[si[rl.O_SVC_CPU] + s]
    fr[si[rl.O_MEM_FREE] + n] += sf[si[rl.O_SVC_MEM] + s]
    ir[si[rl.O_CNT] + s * si[rl.HI_N] + n] -= 1
    layer = si[si[rl.O_NODE_LAYER] + n]
    ir[si[rl.O_LCNT] + s * 3 + layer] -= 1
    _hop_vector(si, fr, s, layer, -1.0)
    ir[si[rl.O_POD_NODE] + slot] = -1
    return int(n)


@_hot
def _k8s_score(
    sf: np.ndarray, si: np.ndarray, fr: np.ndarray, ir: np.ndarray, s: int, n: int,
    most: int,
) -> int:  # fmt: skip
    """Default-scheduler score: LeastAllocated + BalancedAllocation + 2 x spreading."""
    cap_c = fr[si[rl.O_CPU_CAP] + n]
    cap_m = fr[si[rl.O_MEM_CAP] + n]
    req_c = sf[si[rl.O_SVC_CPU] + s]
    req_m = sf[si[rl.O_SVC_MEM] + s]
    used_c = (cap_c - fr[si[rl.O_CPU_FREE] + n] + req_c) / cap_c if cap_c > 0 else 1.0
    used_m = (cap_m - fr[si[rl.O_MEM_FREE] + n] + req_m) / cap_m if cap_m > 0 else 1.0
    least = math.floor(((1.0 - used_c) + (1.0 - used_m)) * 50.0 + 1e-9)
    balanced = math.floor((1.0 - abs(used_c - used_m) / 2.0) * 100.0 + 1e-9)
    spread = 100.0
    if most > 0:
        same = ir[si[rl.O_CNT] + s * si[rl.HI_N] + n]
        spread = math.floor(100.0 * (most - same) / most + 1e-9)
    return int(least + balanced + 2.0 * spread)


@_inner
def _choose_node(
    sf: np.ndarray, si: np.ndarray, fr: np.ndarray, ir: np.ndarray,
    rng: np.ndarray, b: int, s: int,
) -> int:  # fmt: skip
    """A fitting node of the service's layers: random (REACH) or default-scheduler."""
    n_nodes = si[rl.HI_N]
    allowed = si[si[rl.O_SVC_ALLOWED] + s]
    o_layer = si[rl.O_NODE_LAYER]
    random_mode = si[rl.HI_PLACEMENT] == rl.PLACEMENT_RANDOM
    chosen = -1
    seen = 0
    most = np.int64(0)
    for n in range(n_nodes):
        if (allowed >> si[o_layer + n]) & 1 and _fits(sf, si, fr, ir, s, n):
            if random_mode:  # reservoir sampling: uniform over the fitting nodes
                seen += 1
                if randint(rng, b, seen) == 0:
                    chosen = n
            else:
                most = max(most, ir[si[rl.O_CNT] + s * n_nodes + n])
    if random_mode:
        return chosen
    best_score = -1
    for n in range(n_nodes):
        if (allowed >> si[o_layer + n]) & 1 and _fits(sf, si, fr, ir, s, n):
            score = _k8s_score(sf, si, fr, ir, s, n, most)
            if score > best_score:
                chosen, best_score, seen = n, score, 1
            elif score == best_score:  # random tie-break, as kube-scheduler does
                seen += 1
                if randint(rng, b, seen) == 0:
                    chosen = n
    return chosen


@_inner
def _clear_placement(si: np.ndarray, fr: np.ndarray, ir: np.ndarray) -> None:
    n_nodes = si[rl.HI_N]
    for n in range(n_nodes):
        fr[si[rl.O_CPU_FREE] + n] = fr[si[rl.O_CPU_CAP] + n]
        fr[si[rl.O_MEM_FREE] + n] = fr[si[rl.O_MEM_CAP] + n]
    ir[si[rl.O_CNT] : si[rl.O_CNT] + si[rl.HI_S] * n_nodes] = 0
    ir[si[rl.O_LCNT] : si[rl.O_LCNT] + si[rl.HI_S] * 3] = 0
    fr[si[rl.O_HOPVEC] : si[rl.O_HOPVEC] + si[rl.HI_S] * 3] = 0.0
    ir[si[rl.O_POD_NODE] : si[rl.O_POD_NODE] + si[rl.HI_P]] = -1


@_inner
def _place(
    sf: np.ndarray, si: np.ndarray, fr: np.ndarray, ir: np.ndarray,
    rng: np.ndarray, b: int,
) -> bool:  # fmt: skip
    """Place every running pod, service by service in file order; False if one fails."""
    _clear_placement(si, fr, ir)
    for s in range(si[rl.HI_S]):
        first = si[si[rl.O_SVC_FIRST] + s]
        for r in range(ir[si[rl.O_REP] + s]):
            n = _choose_node(sf, si, fr, ir, rng, b, s)
            if n < 0:
                return False
            _assign(sf, si, fr, ir, first + r, n)
    return True


@_inner
def _sample_cluster(
    sf: np.ndarray, si: np.ndarray, fr: np.ndarray, ir: np.ndarray,
    rng: np.ndarray, b: int,
) -> None:  # fmt: skip
    """Spec §5.5 steps 1-3: node resources, layer latencies, replica counts."""
    for n in range(si[rl.HI_N]):
        fr[si[rl.O_CPU_CAP] + n] = _sample(
            sf, si, rl.O_CPU_CHOICES, rl.O_CPU_PTR, n, rng, b
        )
        fr[si[rl.O_MEM_CAP] + n] = _sample(
            sf, si, rl.O_MEM_CHOICES, rl.O_MEM_PTR, n, rng, b
        )
        util = _sample(sf, si, rl.O_UTIL_CHOICES, rl.O_UTIL_PTR, n, rng, b)
        fr[si[rl.O_BG] + n] = util * sf[si[rl.O_NODE_BW] + n]
        fr[si[rl.O_SLOW] + n] = 1.0
        ir[si[rl.O_OK] + n] = 1
    for cell in range(9):
        low = sf[si[rl.O_LAT_LO] + cell]
        high = sf[si[rl.O_LAT_HI] + cell]
        fr[si[rl.O_LAT] + cell] = low + (high - low) * uniform(rng, b)
    for layer in range(3):  # same layer: 1 ms whatever the config says (6aa794e)
        fr[si[rl.O_LAT] + layer * 4] = 1.0
    fr[si[rl.O_SCAL] + rl.SC_RPS_SCALE] = 1.0
    for s in range(si[rl.HI_S]):
        most = si[si[rl.O_SVC_MAX] + s]
        count = most if si[rl.HI_REPLICAS] == 1 else 1 + randint(rng, b, most)
        ir[si[rl.O_REP] + s] = count


# ---------------------------------------------------------------- latency model
@_hot
def _replica_set_latency(
    sf: np.ndarray, si: np.ndarray, fr: np.ndarray, ir: np.ndarray, x: int, y: int,
    data_size: float,
) -> float:  # fmt: skip
    """Mean of ``net(a, b)`` over pod pairs of services x (caller) and y (callee)."""
    o_rep = si[rl.O_REP]
    rx = ir[o_rep + x]
    ry = ir[o_rep + y]
    if rx == 0 or ry == 0:
        return 0.0
    response = si[rl.HI_RESPONSE] != 0
    hop = si[rl.O_HOPVEC] + x * 3
    count = si[rl.O_LCNT] + y * 3
    total = (
        fr[hop] * ir[count] + fr[hop + 1] * ir[count + 1] + fr[hop + 2] * ir[count + 2]
    )
    if data_size > 0.0:
        # ds / min(pbw_a, pbw_b) == ds * max(1 / pbw_a, 1 / pbw_b): no division here.
        o_inv = si[rl.O_PBW]
        o_first = si[rl.O_SVC_FIRST]
        fx = o_inv + si[o_first + x]
        fy = o_inv + si[o_first + y]
        inverse = 0.0
        for i in range(rx):
            ia = fr[fx + i]
            for j in range(ry):
                ib = fr[fy + j]
                inverse += ia if ia > ib else ib
        size = data_size
        if response:
            size += data_size * sf[si[rl.O_PARAMS] + rl.PR_RESPONSE_RATIO]
        total += size * inverse
    o_inv_rep = si[rl.O_INV_REP]
    return float(total * fr[o_inv_rep + x] * fr[o_inv_rep + y])


@_hot
def _traffic_and_load(
    sf: np.ndarray, si: np.ndarray, fr: np.ndarray, ir: np.ndarray, a: int, b: int
) -> None:
    """Pod traffic (spec §4.2), node usage, predicted bandwidth and node load.

    With ``a < 0`` every node is recomputed. After a move from node ``a`` to node
    ``b`` only those two nodes need it: a pod's traffic depends on how many partner
    pods share its node, which changes only there. The ``pbw`` field holds the
    *inverse* predicted bandwidth, which is what the transfer term needs.
    """
    n_nodes = si[rl.HI_N]
    n_types = si[rl.HI_T]
    every = a < 0
    scale = fr[si[rl.O_SCAL] + rl.SC_RPS_SCALE]
    o_usage, o_lam, o_busy = si[rl.O_USAGE], si[rl.O_LAM], si[rl.O_BUSY]
    o_node, o_tb, o_inv = si[rl.O_POD_NODE], si[rl.O_TB], si[rl.O_PBW]
    o_rep, o_cnt, o_slow = si[rl.O_REP], si[rl.O_CNT], si[rl.O_SLOW]
    o_adj_ptr, o_adj_svc, o_adj_w = (
        si[rl.O_ADJ_PTR],
        si[rl.O_ADJ_SVC],
        si[rl.O_ADJ_W],
    )
    o_bg, o_bw = si[rl.O_BG], si[rl.O_NODE_BW]
    o_rate, o_work, o_type = (
        si[rl.O_SVC_RATE],
        si[rl.O_SVC_WORK],
        si[rl.O_NODE_CPU_TYPE],
    )
    o_inv_rep = si[rl.O_INV_REP]
    for n in range(n_nodes):
        if every or n == a or n == b:
            fr[o_usage + n] = fr[o_bg + n]
            fr[o_lam + n] = 0.0
            fr[o_busy + n] = 0.0
    if every:  # empty slots carry nothing (and never fill within an episode)
        for p in range(si[rl.HI_P]):
            if ir[o_node + p] < 0:
                fr[o_tb + p] = 0.0
                fr[o_inv + p] = 0.0
    # Running pods of a service fill its first slots; visit only the services with a
    # pod on a node being recomputed.
    n_services = si[rl.HI_S]
    o_first = si[rl.O_SVC_FIRST]
    for s in range(n_services):
        row = o_cnt + s * n_nodes
        if not (every or ir[row + a] > 0 or ir[row + b] > 0):
            continue
        first = si[o_first + s]
        share = scale * fr[o_inv_rep + s]
        work_row = o_work + s * n_types
        for p in range(first, first + ir[o_rep + s]):
            n = ir[o_node + p]
            if not (every or n == a or n == b):
                continue
            acc = 0.0
            for j in range(si[o_adj_ptr + s], si[o_adj_ptr + s + 1]):
                y = si[o_adj_svc + j]
                away = ir[o_rep + y] - ir[o_cnt + y * n_nodes + n]
                acc += sf[o_adj_w + j] * away * fr[o_inv_rep + y]
            acc *= share
            fr[o_tb + p] = acc
            fr[o_usage + n] += acc
            fr[o_lam + n] += sf[o_rate + s] * share * 0.001
            work = sf[work_row + si[o_type + n]]
            fr[o_busy + n] += work * share * 0.001 * fr[o_slow + n]
    for s in range(n_services):
        row = o_cnt + s * n_nodes
        if not (every or ir[row + a] > 0 or ir[row + b] > 0):
            continue
        first = si[o_first + s]
        for p in range(first, first + ir[o_rep + s]):
            n = ir[o_node + p]
            if every or n == a or n == b:
                bw = sf[o_bw + n]
                used = fr[o_usage + n] - fr[o_tb + p]
                saturated = used / bw >= BANDWIDTH_SATURATION
                fr[o_inv + p] = 10.0 / bw if saturated else 1.0 / (bw - used)


@_hot
def _queue_waits(
    sf: np.ndarray, si: np.ndarray, fr: np.ndarray, a: int, b: int
) -> None:
    """M/M/c waiting per node (extension): servers = floor(cores), capped."""
    cap = sf[si[rl.O_PARAMS] + rl.PR_QUEUE_CAP]
    o_lam, o_busy, o_cap, o_wait = (
        si[rl.O_LAM], si[rl.O_BUSY], si[rl.O_CPU_CAP], si[rl.O_WAIT]
    )  # fmt: skip
    for n in range(si[rl.HI_N]):
        if a >= 0 and n != a and n != b:
            continue
        lam = fr[o_lam + n]
        busy = fr[o_busy + n]
        wait = 0.0
        if lam > 0.0 and busy > 0.0:
            servers = max(1, math.floor(fr[o_cap + n] + 1e-9))
            wait = mmc_mean_wait(lam, lam / busy, servers)
            if not math.isfinite(wait) or wait > cap:
                wait = cap
        fr[o_wait + n] = wait


@_inner
def latency(
    sf: np.ndarray, si: np.ndarray, fr: np.ndarray, ir: np.ndarray, a: int, b: int
) -> float:
    """Update the model (spec §4) of one environment; store and return the mean.

    ``a < 0`` recomputes everything. Otherwise the state differs from the last
    evaluated one by one move between nodes ``a`` and ``b``: only services with a
    pod on ``a`` or ``b`` (the moved one included) can have a new execution time
    (host, queue wait) or a new hop (layer counts, predicted bandwidth), so only
    calls touching them are recomputed; the group sums and maxima are redone.
    """
    _traffic_and_load(sf, si, fr, ir, a, b)
    if si[rl.HI_QUEUEING]:
        _queue_waits(sf, si, fr, a, b)
    full = a < 0
    n_nodes = si[rl.HI_N]
    n_types = si[rl.HI_T]
    o_gsum, o_node, o_slow = si[rl.O_GSUM], si[rl.O_POD_NODE], si[rl.O_SLOW]
    o_wait, o_exec, o_type = (
        si[rl.O_WAIT],
        si[rl.O_CALL_EXEC],
        si[rl.O_NODE_CPU_TYPE],
    )
    o_svc, o_parent = si[rl.O_CALL_SVC], si[rl.O_CALL_PARENT]
    o_gstart, o_gcount = si[rl.O_CALL_GSTART], si[rl.O_CALL_GCOUNT]
    o_rep, o_first, o_ds = si[rl.O_REP], si[rl.O_SVC_FIRST], si[rl.O_CALL_DS]
    o_group, o_cnt = si[rl.O_CALL_GROUP], si[rl.O_CNT]
    o_own, o_hop, o_inv_rep = si[rl.O_OWN], si[rl.O_HOP], si[rl.O_INV_REP]
    o_ep_lat, o_endpoint = si[rl.O_EP_LAT], si[rl.O_CALL_ENDPOINT]
    for g in range(max(si[rl.HI_G], 1)):
        fr[o_gsum + g] = 0.0
    # Calls are in pre-order, so walking backwards finishes children before parents.
    for k in range(si[rl.HI_K] - 1, -1, -1):
        best = 0.0
        start = si[o_gstart + k]
        for g in range(start, start + si[o_gcount + k]):
            best = max(best, fr[o_gsum + g])
        parent = si[o_parent + k]
        if parent < 0:  # the endpoint's root: no execution time of its own
            fr[o_ep_lat + si[o_endpoint + k]] = best
            continue
        s = si[o_svc + k]
        callee_dirty = (
            full or ir[o_cnt + s * n_nodes + a] > 0 or ir[o_cnt + s * n_nodes + b] > 0
        )
        if callee_dirty:
            own = 0.0
            replicas = ir[o_rep + s]
            first = o_node + si[o_first + s]
            row = o_exec + k * n_types
            for j in range(replicas):
                n = ir[first + j]
                own += sf[row + si[o_type + n]] * fr[o_slow + n] + fr[o_wait + n]
            fr[o_own + k] = own * fr[o_inv_rep + s]
        caller = si[o_svc + parent]
        if (
            callee_dirty
            or ir[o_cnt + caller * n_nodes + a] > 0
            or ir[o_cnt + caller * n_nodes + b] > 0
        ):
            fr[o_hop + k] = _replica_set_latency(
                sf, si, fr, ir, caller, s, sf[o_ds + k]
            )
        fr[o_gsum + si[o_group + k]] += fr[o_own + k] + best + fr[o_hop + k]
    total = 0.0
    violating = 0
    n_endpoints = si[rl.HI_E]
    o_qos = si[rl.O_EP_QOS]
    for e in range(n_endpoints):
        value = fr[o_ep_lat + e]
        total += value
        if value > sf[o_qos + e]:
            violating += 1
    mean = float(total / n_endpoints)
    fr[si[rl.O_SCAL] + rl.SC_LATENCY] = mean
    fr[si[rl.O_SCAL] + rl.SC_VIOLATION] = violating / n_endpoints
    return mean


# ---------------------------------------------------------------- masks
# Spec §5.3: move pod p to node n iff p runs, n is not its node, p is neither
# persistent nor client-layer, n is not a client node (nor failed), and n has the
# free CPU and memory for p's requests, or, for a live-cluster state, n is in
# pod_deployable[p]. Stop is always valid.
@_hot
def _mask_row(
    sf: np.ndarray, si: np.ndarray, fr: np.ndarray, ir: np.ndarray,
    allow: np.ndarray, mask: np.ndarray, n: int,
) -> None:  # fmt: skip
    n_pods = si[rl.HI_P]
    row = n * si[rl.HI_PM]
    if si[si[rl.O_NODE_TARGET] + n] == 0 or ir[si[rl.O_OK] + n] == 0:
        mask[row : row + n_pods] = False
        return
    o_node = si[rl.O_POD_NODE]
    o_movable = si[rl.O_SLOT_MOVABLE]
    if ir[si[rl.O_ISCAL] + rl.ISC_PAYLOAD]:
        base = n * n_pods
        for p in range(n_pods):
            src = ir[o_node + p]
            mask[row + p] = (
                (si[o_movable + p] != 0)
                & (src >= 0)
                & (src != n)
                & (allow[base + p] != 0)
            )
        return
    cpu = fr[si[rl.O_CPU_FREE] + n] + rl.EPS
    mem = fr[si[rl.O_MEM_FREE] + n] + rl.EPS
    o_cpu = si[rl.O_SLOT_CPU]
    o_mem = si[rl.O_SLOT_MEM]
    for p in range(n_pods):  # non-short-circuit & keeps the loop branch-free
        src = ir[o_node + p]
        mask[row + p] = (
            (si[o_movable + p] != 0)
            & (src >= 0)
            & (src != n)
            & (sf[o_cpu + p] <= cpu)
            & (sf[o_mem + p] <= mem)
        )


@_hot
def _mask_column(
    sf: np.ndarray, si: np.ndarray, fr: np.ndarray, ir: np.ndarray,
    allow: np.ndarray, mask: np.ndarray, p: int,
) -> None:  # fmt: skip
    pm = si[rl.HI_PM]
    src = ir[si[rl.O_POD_NODE] + p]
    movable = si[si[rl.O_SLOT_MOVABLE] + p] != 0 and src >= 0
    payload = ir[si[rl.O_ISCAL] + rl.ISC_PAYLOAD] != 0
    cpu = sf[si[rl.O_SLOT_CPU] + p] - rl.EPS
    mem = sf[si[rl.O_SLOT_MEM] + p] - rl.EPS
    o_target, o_ok = si[rl.O_NODE_TARGET], si[rl.O_OK]
    o_cpu, o_mem = si[rl.O_CPU_FREE], si[rl.O_MEM_FREE]
    n_pods = si[rl.HI_P]
    for n in range(si[rl.HI_N]):
        ok = movable and n != src and si[o_target + n] != 0 and ir[o_ok + n] != 0
        if ok:
            if payload:
                ok = allow[n * n_pods + p] != 0
            else:
                ok = fr[o_cpu + n] >= cpu and fr[o_mem + n] >= mem
        mask[n * pm + p] = ok


@_inner
def _mask_full(
    sf: np.ndarray, si: np.ndarray, fr: np.ndarray, ir: np.ndarray,
    allow: np.ndarray, mask: np.ndarray,
) -> None:  # fmt: skip
    mask[:] = False
    for n in range(si[rl.HI_N]):
        _mask_row(sf, si, fr, ir, allow, mask, n)
    mask[si[rl.HI_NM] * si[rl.HI_PM]] = True


@_hot
def _mask_move(
    sf: np.ndarray, si: np.ndarray, fr: np.ndarray, ir: np.ndarray,
    allow: np.ndarray, mask: np.ndarray, p: int, a: int, b: int,
) -> None:  # fmt: skip
    """After pod ``p`` moved a -> b only rows a, b and column p can change."""
    _mask_row(sf, si, fr, ir, allow, mask, a)
    _mask_row(sf, si, fr, ir, allow, mask, b)
    _mask_column(sf, si, fr, ir, allow, mask, p)


# ---------------------------------------------------------------- observation
@_hot
def _clip(x: float) -> float:
    if x < 0.0:
        return 0.0
    return rl.OBS_HIGH if x > rl.OBS_HIGH else x


@_hot
def _obs_global(
    sf: np.ndarray, si: np.ndarray, fr: np.ndarray, ir: np.ndarray, obs: np.ndarray
) -> None:
    params = si[rl.O_PARAMS]
    q = 1.0 / sf[params + rl.PR_QOS_MEAN]
    o_lat = si[rl.O_LAT]
    scal = si[rl.O_SCAL]
    obs[rl.GF_LATENCY] = _clip(fr[scal + rl.SC_LATENCY] * q)
    obs[rl.GF_VIOLATION] = fr[scal + rl.SC_VIOLATION]
    clock = rl.ISC_STEPS if si[rl.HI_HORIZON] else rl.ISC_MOVES
    obs[rl.GF_TIME] = _clip(ir[si[rl.O_ISCAL] + clock] / si[rl.HI_MAX_MOVES])
    obs[rl.GF_RPS] = _clip(fr[scal + rl.SC_RPS_SCALE] / sf[params + rl.PR_SURGE_MAX])
    obs[rl.GF_LAT_CLIENT_CLOUD] = _clip(fr[o_lat + CLIENT * 3 + CLOUD] * q)
    obs[rl.GF_LAT_CLIENT_EDGE] = _clip(fr[o_lat + CLIENT * 3 + EDGE] * q)
    obs[rl.GF_LAT_EDGE_CLOUD] = _clip(fr[o_lat + EDGE * 3 + CLOUD] * q)


@_hot
def _obs_node(
    sf: np.ndarray, si: np.ndarray, fr: np.ndarray, ir: np.ndarray, obs: np.ndarray,
    n: int,
) -> None:  # fmt: skip
    params = si[rl.O_PARAMS]
    o = rl.GLOBAL_FEATURES + n * rl.NODE_FEATURES
    layer = si[si[rl.O_NODE_LAYER] + n]
    cap_c = fr[si[rl.O_CPU_CAP] + n]
    cap_m = fr[si[rl.O_MEM_CAP] + n]
    free_c = fr[si[rl.O_CPU_FREE] + n]
    free_m = fr[si[rl.O_MEM_FREE] + n]
    obs[o + rl.NF_PRESENT] = 1.0
    obs[o + rl.NF_CLOUD] = 1.0 if layer == CLOUD else 0.0
    obs[o + rl.NF_EDGE] = 1.0 if layer == EDGE else 0.0
    obs[o + rl.NF_CLIENT] = 1.0 if layer == CLIENT else 0.0
    obs[o + rl.NF_CPU_FREE] = _clip(free_c / cap_c) if cap_c > 0 else 0.0
    obs[o + rl.NF_MEM_FREE] = _clip(free_m / cap_m) if cap_m > 0 else 0.0
    obs[o + rl.NF_CPU_CAP] = _clip(cap_c / sf[params + rl.PR_CPU_SCALE])
    obs[o + rl.NF_MEM_CAP] = _clip(cap_m / sf[params + rl.PR_MEM_SCALE])
    rel = sf[si[rl.O_NODE_REL_EXEC] + n] * fr[si[rl.O_SLOW] + n]
    obs[o + rl.NF_EXEC] = _clip(rel)
    obs[o + rl.NF_HEALTHY] = 1.0 if ir[si[rl.O_OK] + n] else 0.0
    use = fr[si[rl.O_USAGE] + n] / sf[si[rl.O_NODE_BW] + n]
    obs[o + rl.NF_BANDWIDTH] = _clip(use)
    servers = max(1.0, math.floor(cap_c + 1e-9))
    obs[o + rl.NF_LOAD] = _clip(fr[si[rl.O_BUSY] + n] / servers)
    obs[o + rl.NF_WAIT] = _clip(fr[si[rl.O_WAIT] + n] / sf[params + rl.PR_QOS_MEAN])


@_hot
def _obs_pod(
    sf: np.ndarray, si: np.ndarray, fr: np.ndarray, ir: np.ndarray, obs: np.ndarray,
    p: int,
) -> None:  # fmt: skip
    nm = si[rl.HI_NM]
    onehot = si[rl.HI_ONEHOT] != 0
    width = rl.POD_FEATURES + (nm if onehot else 0)
    o = rl.GLOBAL_FEATURES + nm * rl.NODE_FEATURES + p * width
    obs[o : o + width] = 0.0
    n = ir[si[rl.O_POD_NODE] + p]
    if n < 0:
        return
    params = si[rl.O_PARAMS]
    s = si[si[rl.O_SLOT_SVC] + p]
    fixed = si[si[rl.O_SVC_PERSISTENT] + s] or si[si[rl.O_SVC_CLIENT] + s]
    obs[o + rl.PF_OCCUPIED] = 1.0
    obs[o + rl.PF_MOVABLE] = 0.0 if fixed else 1.0
    obs[o + rl.PF_CPU] = _clip(sf[si[rl.O_SVC_CPU] + s] / sf[params + rl.PR_CPU_SCALE])
    obs[o + rl.PF_MEM] = _clip(sf[si[rl.O_SVC_MEM] + s] / sf[params + rl.PR_MEM_SCALE])
    obs[o + rl.PF_CLOUD + si[si[rl.O_NODE_LAYER] + n]] = 1.0
    cpu_type = si[si[rl.O_NODE_CPU_TYPE] + n]
    exec_ms = sf[si[rl.O_SVC_EXEC] + s * si[rl.HI_T] + cpu_type]
    exec_ms *= fr[si[rl.O_SLOW] + n]
    obs[o + rl.PF_EXEC] = _clip(exec_ms / sf[params + rl.PR_QOS_MEAN])
    if onehot:
        obs[o + rl.POD_FEATURES + n] = 1.0


@_inner
def _obs_full(
    sf: np.ndarray, si: np.ndarray, fr: np.ndarray, ir: np.ndarray, obs: np.ndarray
) -> None:
    obs[:] = 0.0
    _obs_global(sf, si, fr, ir, obs)
    running = 0
    for s in range(si[rl.HI_S]):
        running += ir[si[rl.O_REP] + s]
    obs[rl.GF_RUNNING] = running / si[rl.HI_PM]
    for n in range(si[rl.HI_N]):
        _obs_node(sf, si, fr, ir, obs, n)
    for p in range(si[rl.HI_P]):
        _obs_pod(sf, si, fr, ir, obs, p)


@_inner
def _obs_gains(
    sf: np.ndarray, si: np.ndarray, fr: np.ndarray, ir: np.ndarray,
    mask: np.ndarray, obs: np.ndarray,
) -> None:  # fmt: skip
    """Move-gain block: latency drop of every valid move / QoS, on scratch copies.

    The same evaluation as :func:`greedy_batch`, so the largest entry is greedy's
    move; the scratch rows are restored by copying (cheaper than a second model
    evaluation).
    """
    nm, pm = si[rl.HI_NM], si[rl.HI_PM]
    width = rl.POD_FEATURES + (nm if si[rl.HI_ONEHOT] != 0 else 0)
    o = rl.GLOBAL_FEATURES + nm * rl.NODE_FEATURES + pm * width
    q = 1.0 / sf[si[rl.O_PARAMS] + rl.PR_QOS_MEAN]
    base = fr[si[rl.O_SCAL] + rl.SC_LATENCY]
    f = fr.copy()
    i = ir.copy()
    for a in range(nm * pm):
        obs[o + a] = 0.0
        if not mask[a]:
            continue
        p = a % pm
        n = a // pm
        src = _release(sf, si, f, i, p)
        _assign(sf, si, f, i, p, n)
        gain = (base - latency(sf, si, f, i, src, n)) * q
        for k in range(f.size):  # loops: slice copies compile slowly
            f[k] = fr[k]
        for k in range(i.size):
            i[k] = ir[k]
        obs[o + a] = max(-rl.OBS_HIGH, min(rl.OBS_HIGH, gain))


# ---------------------------------------------------------------- episode phases
@_inner
def _begin_episode(
    sf: np.ndarray, si: np.ndarray, fr: np.ndarray, ir: np.ndarray,
    allow: np.ndarray, obs: np.ndarray, mask: np.ndarray,
) -> None:  # fmt: skip
    iscal = si[rl.O_ISCAL]
    scal = si[rl.O_SCAL]
    for field in (rl.ISC_MOVES, rl.ISC_STEPS, rl.ISC_INVALID, rl.ISC_EVENTS):
        ir[iscal + field] = 0
    fr[si[rl.O_WAIT] : si[rl.O_WAIT] + si[rl.HI_N]] = 0.0
    fr[si[rl.O_INFO] : si[rl.O_INFO] + rl.N_INFO] = 0.0
    for s in range(si[rl.HI_S]):
        replicas = ir[si[rl.O_REP] + s]
        fr[si[rl.O_INV_REP] + s] = 1.0 / replicas if replicas > 0 else 0.0
    value = latency(sf, si, fr, ir, EVERY_NODE, EVERY_NODE)
    fr[scal + rl.SC_EP_RETURN] = 0.0
    fr[scal + rl.SC_EP_START] = value
    fr[scal + rl.SC_EP_BEST] = value
    _mask_full(sf, si, fr, ir, allow, mask)
    _obs_full(sf, si, fr, ir, obs)
    if si[rl.HI_GAINS]:
        _obs_gains(sf, si, fr, ir, mask, obs)


@_inner
def _reset_one(
    sf: np.ndarray, si: np.ndarray, fr: np.ndarray, ir: np.ndarray,
    rng: np.ndarray, b: int, allow: np.ndarray, obs: np.ndarray, mask: np.ndarray,
) -> bool:  # fmt: skip
    """Spec §5.5: sample a cluster and place its pods (up to 100 attempts)."""
    ir[si[rl.O_ISCAL] + rl.ISC_PAYLOAD] = 0
    _sample_cluster(sf, si, fr, ir, rng, b)
    placed = False
    for _ in range(rl.PLACEMENT_ATTEMPTS):
        if _place(sf, si, fr, ir, rng, b):
            placed = True
            break
    if not placed:
        _clear_placement(si, fr, ir)
    _begin_episode(sf, si, fr, ir, allow, obs, mask)
    return placed


@_inner
def _close_episode(si: np.ndarray, fr: np.ndarray, ir: np.ndarray, term: bool) -> None:
    scal = si[rl.O_SCAL]
    iscal = si[rl.O_ISCAL]
    fr[scal + rl.SC_LAST_RETURN] = fr[scal + rl.SC_EP_RETURN]
    fr[scal + rl.SC_LAST_START] = fr[scal + rl.SC_EP_START]
    fr[scal + rl.SC_LAST_END] = fr[scal + rl.SC_LATENCY]
    fr[scal + rl.SC_LAST_BEST] = fr[scal + rl.SC_EP_BEST]
    ir[iscal + rl.ISC_LAST_STEPS] = ir[iscal + rl.ISC_STEPS]
    ir[iscal + rl.ISC_LAST_MOVES] = ir[iscal + rl.ISC_MOVES]
    ir[iscal + rl.ISC_LAST_INVALID] = ir[iscal + rl.ISC_INVALID]
    ir[iscal + rl.ISC_LAST_EVENTS] = ir[iscal + rl.ISC_EVENTS]
    ir[iscal + rl.ISC_LAST_TERMINATED] = 1 if term else 0


@_inner
def _pick_node(
    si: np.ndarray, fr: np.ndarray, ir: np.ndarray, rng: np.ndarray, b: int,
    max_slowdown: float,
) -> int:  # fmt: skip
    """A uniformly random accepting edge/cloud node slowed down at most this much."""
    chosen = -1
    seen = 0
    for n in range(si[rl.HI_N]):
        if si[si[rl.O_NODE_LAYER] + n] == CLIENT or ir[si[rl.O_OK] + n] == 0:
            continue
        if fr[si[rl.O_SLOW] + n] > max_slowdown:
            continue
        seen += 1
        if randint(rng, b, seen) == 0:
            chosen = n
    return chosen


@_inner
def _events(
    sf: np.ndarray, si: np.ndarray, fr: np.ndarray, ir: np.ndarray,
    rng: np.ndarray, b: int,
) -> bool:  # fmt: skip
    """In-episode recoveries, failures, degradations and rate surges (extensions)."""
    params = si[rl.O_PARAMS]
    o_ok, o_slow, o_info = si[rl.O_OK], si[rl.O_SLOW], si[rl.O_INFO]
    rps = si[rl.O_SCAL] + rl.SC_RPS_SCALE
    recovery = sf[params + rl.PR_RECOVERY_PROB]
    changed = False
    if recovery > 0.0:
        for n in range(si[rl.HI_N]):
            hurt = ir[o_ok + n] == 0 or fr[o_slow + n] != 1.0
            if hurt and uniform(rng, b) < recovery:
                ir[o_ok + n] = 1
                fr[o_slow + n] = 1.0
                changed = True
    failure = sf[params + rl.PR_FAILURE_PROB]
    if failure > 0.0 and uniform(rng, b) < failure:
        n = _pick_node(si, fr, ir, rng, b, math.inf)
        if n >= 0:
            ir[o_ok + n] = 0
            fr[o_slow + n] = sf[params + rl.PR_FAILURE_SLOW]
            fr[o_info + rl.INFO_FAILED] = n
            changed = True
    degrade = sf[params + rl.PR_DEGRADE_PROB]
    if degrade > 0.0 and uniform(rng, b) < degrade:
        n = _pick_node(si, fr, ir, rng, b, 1.0)
        if n >= 0:
            factor = sf[params + rl.PR_DEGRADE_MAX] - 1.0
            fr[o_slow + n] = 1.0 + factor * uniform(rng, b)
            fr[o_info + rl.INFO_DEGRADED] = n
            changed = True
    surge = sf[params + rl.PR_SURGE_PROB]
    if surge > 0.0 and uniform(rng, b) < surge:
        if fr[rps] == 1.0:
            fr[rps] = 1.0 + (sf[params + rl.PR_SURGE_MAX] - 1.0) * uniform(rng, b)
        else:
            fr[rps] = 1.0
        changed = True
    if changed:
        ir[si[rl.O_ISCAL] + rl.ISC_EVENTS] += 1
    return changed


@_inner
def _step_one(
    sf: np.ndarray, si: np.ndarray, fr: np.ndarray, ir: np.ndarray,
    rng: np.ndarray, b: int, allow: np.ndarray, action: int, obs: np.ndarray,
    mask: np.ndarray,
) -> tuple[float, bool, bool]:  # fmt: skip
    """Spec §5.4: one move (or stop), its reward, then in-episode events."""
    o_info = si[rl.O_INFO]
    scal = si[rl.O_SCAL]
    iscal = si[rl.O_ISCAL]
    params = si[rl.O_PARAMS]
    fr[o_info : o_info + rl.N_INFO] = 0.0
    for field in (rl.INFO_POD, rl.INFO_SOURCE, rl.INFO_TARGET, rl.INFO_FAILED):
        fr[o_info + field] = -1.0
    fr[o_info + rl.INFO_DEGRADED] = -1.0
    before = fr[scal + rl.SC_LATENCY]
    stop = si[rl.HI_NM] * si[rl.HI_PM]
    terminated = False
    truncated = False
    cost = 0.0
    ir[iscal + rl.ISC_STEPS] += 1
    horizon = si[rl.HI_HORIZON] != 0
    if action == stop:
        fr[o_info + rl.INFO_STOP] = 1.0
        terminated = not horizon  # fixed horizon: stop waits one step
        truncated = horizon and ir[iscal + rl.ISC_STEPS] >= si[rl.HI_MAX_MOVES]
    else:
        moves = ir[iscal + rl.ISC_MOVES] + 1
        ir[iscal + rl.ISC_MOVES] = moves
        if 0 <= action < stop and mask[action]:
            n = action // si[rl.HI_PM]
            p = action % si[rl.HI_PM]
            src = _release(sf, si, fr, ir, p)
            _assign(sf, si, fr, ir, p, n)
            fr[o_info + rl.INFO_POD] = p
            fr[o_info + rl.INFO_SOURCE] = src
            fr[o_info + rl.INFO_TARGET] = n
            fr[o_info + rl.INFO_MOVED] = 1.0
            latency(sf, si, fr, ir, src, n)
            _mask_move(sf, si, fr, ir, allow, mask, p, src, n)
            # Only the two nodes' resources, traffic and load changed (see _traffic).
            _obs_node(sf, si, fr, ir, obs, src)
            _obs_node(sf, si, fr, ir, obs, n)
            _obs_pod(sf, si, fr, ir, obs, p)
        else:  # masked or out of range: no move, but the step still counts
            fr[o_info + rl.INFO_INVALID] = 1.0
            ir[iscal + rl.ISC_INVALID] += 1
        qos = sf[params + rl.PR_QOS_MEAN]
        terminated = si[rl.HI_STOP_AT_QOS] != 0 and fr[scal + rl.SC_LATENCY] <= qos
        clock = ir[iscal + rl.ISC_STEPS] if horizon else moves
        truncated = not terminated and clock >= si[rl.HI_MAX_MOVES]
        if not (terminated or truncated):  # REACH: no penalty on the final step
            growth = moves if si[rl.HI_GROWING] else 1
            cost = sf[params + rl.PR_MIGRATION_COST] * growth
    after = fr[scal + rl.SC_LATENCY]
    slo = sf[params + rl.PR_SLO_PENALTY] * fr[scal + rl.SC_VIOLATION]
    fr[o_info + rl.INFO_LAT_BEFORE] = before
    fr[o_info + rl.INFO_LAT_AFTER] = after
    fr[o_info + rl.INFO_DROP] = before - after
    fr[o_info + rl.INFO_MIGRATION_COST] = cost
    fr[o_info + rl.INFO_VIOLATION] = fr[scal + rl.SC_VIOLATION]
    done = terminated or truncated
    if si[rl.HI_EVENTS] and not done and _events(sf, si, fr, ir, rng, b):
        latency(sf, si, fr, ir, EVERY_NODE, EVERY_NODE)
        _mask_full(sf, si, fr, ir, allow, mask)
        _obs_full(sf, si, fr, ir, obs)
    if horizon:  # the events' latency change is part of the step's outcome
        after = fr[scal + rl.SC_LATENCY]
        slo = sf[params + rl.PR_SLO_PENALTY] * fr[scal + rl.SC_VIOLATION]
    gain = before - after  # the return telescopes to the start-to-end drop
    if si[rl.HI_HORIZON] == rl.HORIZON_AVERAGE:  # the return is the average slack
        gain = (sf[params + rl.PR_QOS_MEAN] - after) / si[rl.HI_MAX_MOVES]
    fr[o_info + rl.INFO_SLO_PENALTY] = slo
    reward = (gain - cost - slo) * sf[params + rl.PR_REWARD_SCALE]
    fr[o_info + rl.INFO_REWARD] = reward
    fr[o_info + rl.INFO_LAT_EVENTS] = fr[scal + rl.SC_LATENCY]
    fr[o_info + rl.INFO_RPS_SCALE] = fr[scal + rl.SC_RPS_SCALE]
    _obs_global(sf, si, fr, ir, obs)
    if si[rl.HI_GAINS]:
        _obs_gains(sf, si, fr, ir, mask, obs)
    fr[scal + rl.SC_EP_RETURN] += reward
    fr[scal + rl.SC_EP_BEST] = min(fr[scal + rl.SC_EP_BEST], fr[scal + rl.SC_LATENCY])
    return reward, terminated, truncated


# ---------------------------------------------------------------- batch entry points
@nb.njit(cache=True, error_model="numpy")
def reset_batch(
    sf: np.ndarray, si: np.ndarray, fd: np.ndarray, idn: np.ndarray,
    allow: np.ndarray, rng: np.ndarray, obs: np.ndarray, mask: np.ndarray,
    which: np.ndarray,
) -> int:  # fmt: skip
    """Reset the environments flagged in ``which``; return how many failed to place."""
    failures = 0
    for b in range(fd.shape[0]):
        if which[b] and not _reset_one(
            sf, si, fd[b], idn[b], rng, b, allow[b], obs[b], mask[b]
        ):
            failures += 1
    return failures


@nb.njit(cache=True, error_model="numpy")
def step_batch(
    sf: np.ndarray, si: np.ndarray, fd: np.ndarray, idn: np.ndarray,
    allow: np.ndarray, rng: np.ndarray, actions: np.ndarray, obs: np.ndarray,
    mask: np.ndarray, reward: np.ndarray, terminated: np.ndarray,
    truncated: np.ndarray, final_obs: np.ndarray, autoreset: bool,
) -> int:  # fmt: skip
    """Step every environment; auto-reset finished ones; return placement failures."""
    failures = 0
    for b in range(fd.shape[0]):
        fr = fd[b]
        ir = idn[b]
        r, term, trunc = _step_one(
            sf, si, fr, ir, rng, b, allow[b], actions[b], obs[b], mask[b]
        )
        reward[b] = r
        terminated[b] = term
        truncated[b] = trunc
        if term or trunc:
            _close_episode(si, fr, ir, term)
            for j in range(obs.shape[1]):  # a loop: slice copies compile slowly
                final_obs[b, j] = obs[b, j]
            if autoreset and not _reset_one(
                sf, si, fr, ir, rng, b, allow[b], obs[b], mask[b]
            ):
                failures += 1
    return failures


@nb.njit(cache=True, error_model="numpy")
def refresh_env(
    sf: np.ndarray, si: np.ndarray, fd: np.ndarray, idn: np.ndarray,
    allow: np.ndarray, obs: np.ndarray, mask: np.ndarray, b: int,
) -> None:  # fmt: skip
    """Start an episode from a state Python wrote (payload): counters, model, obs."""
    fr = fd[b]
    ir = idn[b]
    n_nodes = si[rl.HI_N]
    ir[si[rl.O_CNT] : si[rl.O_CNT] + si[rl.HI_S] * n_nodes] = 0
    ir[si[rl.O_LCNT] : si[rl.O_LCNT] + si[rl.HI_S] * 3] = 0
    fr[si[rl.O_HOPVEC] : si[rl.O_HOPVEC] + si[rl.HI_S] * 3] = 0.0
    for p in range(si[rl.HI_P]):
        n = ir[si[rl.O_POD_NODE] + p]
        if n >= 0:
            s = si[si[rl.O_SLOT_SVC] + p]
            layer = si[si[rl.O_NODE_LAYER] + n]
            ir[si[rl.O_CNT] + s * n_nodes + n] += 1
            ir[si[rl.O_LCNT] + s * 3 + layer] += 1
            _hop_vector(si, fr, s, layer, 1.0)
    _begin_episode(sf, si, fr, ir, allow[b], obs[b], mask[b])


@nb.njit(cache=True, error_model="numpy")
def greedy_batch(
    sf: np.ndarray, si: np.ndarray, fd: np.ndarray, idn: np.ndarray,
    mask: np.ndarray, min_gain: float, out: np.ndarray,
) -> None:  # fmt: skip
    """For each env: the valid move that most lowers modelled latency, else stop."""
    stop = si[rl.HI_NM] * si[rl.HI_PM]
    pm = si[rl.HI_PM]
    for b in range(fd.shape[0]):
        fr = fd[b].copy()  # evaluate on scratch copies: the real state is untouched
        ir = idn[b].copy()
        base = fr[si[rl.O_SCAL] + rl.SC_LATENCY]
        best = stop
        best_gain = min_gain
        for a in range(stop):
            if not mask[b, a]:
                continue
            src = _release(sf, si, fr, ir, a % pm)
            _assign(sf, si, fr, ir, a % pm, a // pm)
            gain = base - latency(sf, si, fr, ir, src, a // pm)
            if gain > best_gain:
                best_gain = gain
                best = a
            _release(sf, si, fr, ir, a % pm)
            _assign(sf, si, fr, ir, a % pm, src)
            latency(sf, si, fr, ir, src, a // pm)  # restores the cached terms
        out[b] = best
