"""Heuristic load balancers and schedulers, scored on observation blocks.

The same functions place background traffic inside the simulator, stand in for the
tier that is not learned, and back the baseline policies (which decode an observation
and call them), so "the heuristic" means one thing everywhere. Invalid entries
(column 0 == 0) are never chosen; ties go to the lowest index unless stated.

``weighted`` is the best myopic rule for any reward weights: each row is scored by
the expected reward of serving the request there, computed from the block's own
features (see :func:`expected_penalty`); the other rules are special cases or
single terms of it. Its weights, term cap and service-time shape are the run's
(:func:`scoring_params`), passed to every chooser as ``scoring``.
"""

from __future__ import annotations

import math

import numba as nb
import numpy as np

from envs.rng import randint, uniform
from envs.two_tier.config import RewardConfig
from envs.two_tier.layout import (
    NF_CARBON,
    NF_COST,
    NF_EXEC,
    NF_UTIL,
    NF_VALID,
    NF_WAIT,
    RF_BEST_COMPLETION,
    RF_CARBON,
    RF_COST,
    RF_IS_ORIGIN,
    RF_RTT,
    RF_TRANSFER,
    RF_UTIL,
    RF_VALID,
)

AGENT = 0
LOCAL, RANDOM, ROUND_ROBIN, LEAST_LOADED, LATENCY, COST, CARBON, KUBE_DEFAULT = range(
    1, 9
)
WEIGHTED = 9

LB_HEURISTICS = {
    "local": LOCAL,
    "random": RANDOM,
    "round_robin": ROUND_ROBIN,
    "least_loaded": LEAST_LOADED,
    "latency": LATENCY,
    "cost": COST,
    "carbon": CARBON,
    "weighted": WEIGHTED,
}
"""Region choosers: stay at the origin; uniform; cycle; lowest utilisation; lowest
expected latency (RTT + transfer + best node completion); cheapest; lowest carbon;
lowest expected weighted penalty (:func:`weighted_region`)."""

SCHEDULER_HEURISTICS = {
    "random": RANDOM,
    "round_robin": ROUND_ROBIN,
    "least_loaded": LEAST_LOADED,
    "latency": LATENCY,
    "cost": COST,
    "carbon": CARBON,
    "kube_default": KUBE_DEFAULT,
    "weighted": WEIGHTED,
}
"""Node choosers: uniform; cycle; shortest queue wait (then utilisation); earliest
completion (wait + execution); cheapest; lowest carbon; Kubernetes-default-like
(LeastAllocated score on a 0-100 integer scale, random among the best: spreading);
lowest expected weighted penalty (:func:`weighted_node`)."""

# The ``scoring`` vector of the weighted rule: the reward weights, the term cap and
# the Gamma shape of service times (1 / service_time_cv^2; 0 = deterministic).
S_W_LAT, S_W_QUEUE, S_W_SLO, S_W_COST, S_W_CARBON, S_CAP, S_SHAPE = range(7)
N_SCORING = 7


def scoring_params(reward: RewardConfig, service_shape: float) -> np.ndarray:
    """The ``scoring`` vector of a run: its reward weights, cap and service shape."""
    out = np.zeros(N_SCORING)
    out[S_W_LAT : S_W_CARBON + 1] = (
        reward.latency,
        reward.queueing,
        reward.slo_violation,
        reward.cost,
        reward.carbon,
    )
    out[S_CAP] = reward.term_cap
    out[S_SHAPE] = service_shape
    return out


# ------------------------------------------------------------- the weighted rule
@nb.njit(cache=True)
def gamma_q(a: float, x: float) -> float:
    """Regularised upper incomplete gamma function ``Q(a, x) = Gamma(a, x) / Gamma(a)``.

    ``P(X > x)`` for ``X ~ Gamma(a, 1)``; ``a > 0``. The power series of ``P`` below
    ``x = a + 1`` and the continued fraction of ``Q`` (evaluated by the modified
    Lentz method) above, both to about 1e-15; exact forms for ``a`` = 1 and 2.
    """
    if x <= 0.0:
        return 1.0
    if a == 1.0:
        return math.exp(-x)
    if a == 2.0:
        return (1.0 + x) * math.exp(-x)
    front = math.exp(a * math.log(x) - x - math.lgamma(a))
    if x < a + 1.0:  # P(a, x) = front * sum_n x^n / (a (a+1) ... (a+n))
        term = 1.0 / a
        total = term
        denominator = a
        for _ in range(1000):
            denominator += 1.0
            term *= x / denominator
            total += term
            if term < total * 1e-16:
                break
        return max(1.0 - front * total, 0.0)
    # Q(a, x) = front / (x + 1 - a - 1 (1 - a) / (x + 3 - a - 2 (2 - a) / (...)))
    tiny = 1e-300
    bn = x + 1.0 - a
    c = 1.0 / tiny
    d = 1.0 / bn
    fraction = d
    for i in range(1, 1000):
        an = -i * (i - a)
        bn += 2.0
        d = an * d + bn
        d = tiny if abs(d) < tiny else d
        c = bn + an / c
        c = tiny if abs(c) < tiny else c
        d = 1.0 / d
        step = d * c
        fraction *= step
        if abs(step - 1.0) < 1e-16:
            break
    return min(front * fraction, 1.0)


@nb.njit(cache=True)
def service_tail(mean: float, slack: float, shape: float) -> float:
    """``P(mean * G > slack)`` for a unit-mean Gamma factor ``G`` of shape ``shape``."""
    if mean <= 0.0:  # no service time: late only if already past the SLO
        return 1.0 if slack < 0.0 else 0.0
    if slack <= 0.0:
        return 1.0
    if shape <= 0.0:  # deterministic service
        return 1.0 if mean > slack else 0.0
    return gamma_q(shape, shape * slack / mean)


@nb.njit(cache=True)
def service_capped_mean(mean: float, cap: float, shape: float) -> float:
    """``E[min(mean * G, cap)]`` for a unit-mean Gamma factor ``G``.

    ``E[S; S < m] = mean * P(shape + 1, shape m / mean)`` for ``S ~ Gamma``, hence
    ``mean * (1 - Q(k + 1, z)) + cap * Q(k, z)`` with ``z = k cap / mean``.
    """
    if cap <= 0.0:
        return 0.0
    if mean <= 0.0:
        return 0.0
    if shape <= 0.0:
        return min(mean, cap)
    z = shape * cap / mean
    return mean * (1.0 - gamma_q(shape + 1.0, z)) + cap * gamma_q(shape, z)


@nb.njit(cache=True)
def expected_penalty(
    scoring: np.ndarray,
    fixed: float,
    wait: float,
    service: float,
    cost: float,
    carbon: float,
) -> float:
    """Expected negative reward of a request (every argument over its SLO or ref).

    Latency over SLO is ``fixed + service * G`` (``fixed``: RTT, transfer and queue
    wait; ``service``: the mean service time; ``G`` the unit-mean Gamma factor of
    the scenario, shape ``scoring[S_SHAPE]``), so the latency term is
    ``E[min(L, cap)]``, the SLO term the Gamma tail ``P(L > 1)``, the queueing
    term ``min(wait, cap)``; cost and carbon are linear in the service time, so
    their expected normalised values are the block's columns (capped).
    """
    cap = scoring[S_CAP]
    shape = scoring[S_SHAPE]
    if fixed >= cap:
        latency = cap
    else:
        latency = fixed + service_capped_mean(service, cap - fixed, shape)
    violation = service_tail(service, 1.0 - fixed, shape)
    return (
        scoring[S_W_LAT] * latency
        + scoring[S_W_QUEUE] * min(wait, cap)
        + scoring[S_W_SLO] * violation
        + scoring[S_W_COST] * min(cost, cap)
        + scoring[S_W_CARBON] * min(carbon, cap)
    )


@nb.njit(cache=True)
def weighted_node(
    block: np.ndarray, scoring: np.ndarray, rtt: float, transfer: float
) -> int:
    """The valid node of ``block`` with the lowest expected penalty, then utilisation.

    ``rtt`` and ``transfer`` are the selected region's columns of the region block
    (over the SLO). The request reaches the node half an RTT after the decision, so
    the queue it meets is the observed wait less that (at least 0); its service
    mean, cost and carbon are the node's columns.
    """
    best = -1
    best_score = 0.0
    best_util = 0.0
    for i in range(block.shape[0]):
        if block[i, NF_VALID] <= 0.0:
            continue
        wait = max(block[i, NF_WAIT] - 0.5 * rtt, 0.0)
        score = expected_penalty(
            scoring,
            rtt + transfer + wait,
            wait,
            block[i, NF_EXEC],
            block[i, NF_COST],
            block[i, NF_CARBON],
        )
        util = block[i, NF_UTIL]
        if best < 0 or score < best_score or (score == best_score and util < best_util):
            best, best_score, best_util = i, score, util
    return best


@nb.njit(cache=True)
def weighted_region(block: np.ndarray, scoring: np.ndarray) -> int:
    """The valid region of ``block`` with the lowest expected penalty, then utilisation.

    The region block does not show a region's node waits, only its best completion
    (the smallest wait + execution over its nodes), its cheapest cost (egress
    included) and its lowest carbon. The best completion is taken as the service
    mean with no queue: exact when the best node has an idle core (the common case
    below saturation), an over-statement of the tail otherwise.
    """
    best = -1
    best_score = 0.0
    best_util = 0.0
    for i in range(block.shape[0]):
        if block[i, RF_VALID] <= 0.0:
            continue
        score = expected_penalty(
            scoring,
            block[i, RF_RTT] + block[i, RF_TRANSFER],
            0.0,
            block[i, RF_BEST_COMPLETION],
            block[i, RF_COST],
            block[i, RF_CARBON],
        )
        util = block[i, RF_UTIL]
        if best < 0 or score < best_score or (score == best_score and util < best_util):
            best, best_score, best_util = i, score, util
    return best


@nb.njit(cache=True)
def _argmin_valid(score: np.ndarray, valid: np.ndarray, tie: np.ndarray) -> int:
    best = -1
    for i in range(score.shape[0]):
        if valid[i] <= 0.0:
            continue
        if (
            best < 0
            or score[i] < score[best]
            or (score[i] == score[best] and tie[i] < tie[best])
        ):
            best = i
    return best


@nb.njit(cache=True)
def _random_valid(valid: np.ndarray, rng: np.ndarray, b: int) -> int:
    count = 0
    for i in range(valid.shape[0]):
        if valid[i] > 0.0:
            count += 1
    pick = randint(rng, b, count)
    for i in range(valid.shape[0]):
        if valid[i] > 0.0:
            if pick == 0:
                return i
            pick -= 1
    return -1


@nb.njit(cache=True)
def _round_robin(valid: np.ndarray, counter: np.ndarray, b: int) -> int:
    n = valid.shape[0]
    for step in range(n):
        i = (counter[b] + step) % n
        if valid[i] > 0.0:
            counter[b] = i + 1
            return i
    return -1


@nb.njit(cache=True)
def choose_region(
    mode: int,
    block: np.ndarray,
    rng: np.ndarray,
    counter: np.ndarray,
    b: int,
    scoring: np.ndarray,
) -> int:
    """Pick a region row of ``block`` (``[R, REGION_FEATURES]``) by ``mode``."""
    valid = block[:, RF_VALID]
    if mode == WEIGHTED:
        return weighted_region(block, scoring)
    if mode == RANDOM:
        return _random_valid(valid, rng, b)
    if mode == ROUND_ROBIN:
        return _round_robin(valid, counter, b)
    if mode == LOCAL:
        for i in range(block.shape[0]):
            if valid[i] > 0.0 and block[i, RF_IS_ORIGIN] > 0.0:
                return i
        return _argmin_valid(block[:, RF_RTT], valid, block[:, RF_UTIL])
    if mode == LEAST_LOADED:
        return _argmin_valid(block[:, RF_UTIL], valid, block[:, RF_RTT])
    if mode == COST:
        return _argmin_valid(block[:, RF_COST], valid, block[:, RF_BEST_COMPLETION])
    if mode == CARBON:
        return _argmin_valid(block[:, RF_CARBON], valid, block[:, RF_BEST_COMPLETION])
    expected = block[:, RF_RTT] + block[:, RF_TRANSFER] + block[:, RF_BEST_COMPLETION]
    return _argmin_valid(expected, valid, block[:, RF_UTIL])


@nb.njit(cache=True)
def choose_node(
    mode: int,
    block: np.ndarray,
    rng: np.ndarray,
    counter: np.ndarray,
    b: int,
    scoring: np.ndarray,
    rtt: float,
    transfer: float,
) -> int:
    """Pick a node row of ``block`` (``[N_max, NODE_FEATURES]``) by ``mode``.

    ``rtt`` and ``transfer`` (the serving region's region-block columns) are read
    by the weighted rule only.
    """
    valid = block[:, NF_VALID]
    if mode == WEIGHTED:
        return weighted_node(block, scoring, rtt, transfer)
    if mode == RANDOM:
        return _random_valid(valid, rng, b)
    if mode == ROUND_ROBIN:
        return _round_robin(valid, counter, b)
    if mode == LATENCY:
        completion = block[:, NF_WAIT] + block[:, NF_EXEC]
        return _argmin_valid(completion, valid, block[:, NF_UTIL])
    if mode == COST:
        return _argmin_valid(block[:, NF_COST], valid, block[:, NF_WAIT])
    if mode == CARBON:
        return _argmin_valid(block[:, NF_CARBON], valid, block[:, NF_WAIT])
    if mode == KUBE_DEFAULT:
        best = -1
        best_score = -1.0
        ties = 0
        for i in range(block.shape[0]):
            if valid[i] <= 0.0:
                continue
            score = np.floor(100.0 * (1.0 - block[i, NF_UTIL]))
            if score > best_score:
                best, best_score, ties = i, score, 1
            elif score == best_score:
                ties += 1  # reservoir sampling: uniform among the best
                if uniform(rng, b) * ties < 1.0:
                    best = i
        return best
    return _argmin_valid(block[:, NF_WAIT], valid, block[:, NF_UTIL])
