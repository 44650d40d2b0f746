"""Heuristic load balancers and schedulers, scored on observation blocks.

The same functions place background traffic inside the simulator, stand in for the
tier that is not learned, and back the baseline policies (which decode an observation
and call them), so "the heuristic" means one thing everywhere. Invalid entries
(column 0 == 0) are never chosen; ties go to the lowest index unless stated.
"""

from __future__ import annotations

import numba as nb
import numpy as np

from envs.rng import randint, uniform
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

LB_HEURISTICS = {
    "local": LOCAL,
    "random": RANDOM,
    "round_robin": ROUND_ROBIN,
    "least_loaded": LEAST_LOADED,
    "latency": LATENCY,
    "cost": COST,
    "carbon": CARBON,
}
"""Region choosers: stay at the origin; uniform; cycle; lowest utilisation; lowest
expected latency (RTT + transfer + best node completion); cheapest; lowest carbon."""

SCHEDULER_HEURISTICS = {
    "random": RANDOM,
    "round_robin": ROUND_ROBIN,
    "least_loaded": LEAST_LOADED,
    "latency": LATENCY,
    "cost": COST,
    "carbon": CARBON,
    "kube_default": KUBE_DEFAULT,
}
"""Node choosers: uniform; cycle; shortest queue wait (then utilisation); earliest
completion (wait + execution); cheapest; lowest carbon; Kubernetes-default-like
(LeastAllocated score on a 0-100 integer scale, random among the best: spreading)."""


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
    mode: int, block: np.ndarray, rng: np.ndarray, counter: np.ndarray, b: int
) -> int:
    """Pick a region row of ``block`` (``[R, REGION_FEATURES]``) by ``mode``."""
    valid = block[:, RF_VALID]
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
    mode: int, block: np.ndarray, rng: np.ndarray, counter: np.ndarray, b: int
) -> int:
    """Pick a node row of ``block`` (``[N_max, NODE_FEATURES]``) by ``mode``."""
    valid = block[:, NF_VALID]
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
