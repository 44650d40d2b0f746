"""Brute-force statements of the two-tier heuristics, written from their definitions.

Each deterministic rule is "the valid row with the smallest (score, tie-break, index)"
computed with Python's ``min`` over the rows; the stochastic rules are described by
the set they draw from (uniformly). Nothing here calls the code under test. Blocks
are indexed by the documented feature names (``REGION_FEATURE_NAMES`` and
``NODE_FEATURE_NAMES`` of :mod:`envs.two_tier.layout`).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

from envs.two_tier.layout import NODE_FEATURE_NAMES, REGION_FEATURE_NAMES

Row = Callable[[int], tuple[float, float]]


def region_column(name: str) -> int:
    """Column of a region feature."""
    return REGION_FEATURE_NAMES.index(name)


def node_column(name: str) -> int:
    """Column of a node feature."""
    return NODE_FEATURE_NAMES.index(name)


def _valid_rows(block: np.ndarray) -> list[int]:
    return [i for i in range(block.shape[0]) if block[i, 0] > 0]


def _smallest(block: np.ndarray, key: Row) -> int:
    rows = _valid_rows(block)
    return min(rows, key=lambda i: (*key(i), i)) if rows else -1


def region_oracle(mode: str, block: np.ndarray) -> int:
    """The region a deterministic load balancer must pick (-1: none valid)."""
    g = {
        name: block[:, region_column(name)].astype(float)
        for name in REGION_FEATURE_NAMES
    }
    if mode == "local":
        origin = [i for i in _valid_rows(block) if g["is_origin"][i] > 0]
        if origin:
            return origin[0]
        return _smallest(block, lambda i: (g["rtt"][i], g["utilization"][i]))
    keys: dict[str, Row] = {
        "least_loaded": lambda i: (g["utilization"][i], g["rtt"][i]),
        "latency": lambda i: (
            g["rtt"][i] + g["transfer"][i] + g["best_completion"][i],
            g["utilization"][i],
        ),
        "cost": lambda i: (g["cost"][i], g["best_completion"][i]),
        "carbon": lambda i: (g["carbon"][i], g["best_completion"][i]),
    }
    return _smallest(block, keys[mode])


def node_oracle(mode: str, block: np.ndarray) -> int:
    """The node a deterministic scheduler must pick (-1: none valid)."""
    g = {name: block[:, node_column(name)].astype(float) for name in NODE_FEATURE_NAMES}
    keys: dict[str, Row] = {
        "least_loaded": lambda i: (g["wait"][i], g["utilization"][i]),
        "latency": lambda i: (g["wait"][i] + g["exec"][i], g["utilization"][i]),
        "cost": lambda i: (g["cost"][i], g["wait"][i]),
        "carbon": lambda i: (g["carbon"][i], g["wait"][i]),
    }
    return _smallest(block, keys[mode])


def kube_default_set(block: np.ndarray) -> set[int]:
    """Valid nodes with the best LeastAllocated score, floor(100 * (1 - util))."""
    rows = _valid_rows(block)
    util = node_column("utilization")
    score = {i: math.floor(100.0 * (1.0 - float(block[i, util]))) for i in rows}
    best = max(score.values(), default=None)
    return {i for i in rows if score[i] == best}


def round_robin_oracle(block: np.ndarray, pointer: int) -> tuple[int, int]:
    """The first valid row at or after ``pointer`` (cyclically), and the next pointer."""
    n = block.shape[0]
    for step in range(n):
        i = (pointer + step) % n
        if block[i, 0] > 0:
            return i, i + 1
    return -1, pointer


def grid_block(
    rng: np.random.Generator, rows: int, features: int, valid_share: float = 0.7
) -> np.ndarray:
    """A float32 block on a coarse grid: sums are exact and ties are frequent."""
    block = (rng.integers(0, 9, size=(rows, features)) / 8).astype(np.float32)
    block[:, 0] = rng.random(rows) < valid_share
    return block


# ------------------------------------------------------------- the weighted rule
def expected_penalty_oracle(
    weights: dict[str, float],
    cap: float,
    shape: float,
    fixed: float,
    wait: float,
    service: float,
    cost: float,
    carbon: float,
) -> float:
    """Expected negative reward, from scipy's Gamma law and numerical integration.

    Latency over SLO is ``fixed + service * G`` with ``G ~ Gamma(shape, 1/shape)``
    (unit mean; ``shape == 0``: ``G = 1``). ``E[min(L, cap)] = fixed + integral over
    [0, cap - fixed] of P(S > s)``; the SLO term is ``P(L > 1)``.
    """
    from scipy import integrate, stats

    room = cap - fixed
    if shape == 0 or service == 0:  # no randomness in the service time
        latency = min(fixed + service, cap)
        violation = float(fixed + service > 1.0)
    else:
        law = stats.gamma(a=shape, scale=service / shape)
        if room <= 0:
            latency = cap
        else:
            tail, _ = integrate.quad(law.sf, 0.0, room, limit=200, epsabs=1e-11)
            latency = fixed + tail
        violation = 1.0 if fixed >= 1.0 else float(law.sf(1.0 - fixed))
    return (
        weights["latency"] * latency
        + weights["queueing"] * min(wait, cap)
        + weights["slo_violation"] * violation
        + weights["cost"] * min(cost, cap)
        + weights["carbon"] * min(carbon, cap)
    )


def weighted_region_scores(
    block: np.ndarray, weights: dict[str, float], cap: float, shape: float
) -> dict[int, float]:
    """Expected penalty of each valid region, its best completion as service mean."""
    g = {
        name: block[:, region_column(name)].astype(float)
        for name in REGION_FEATURE_NAMES
    }
    return {
        i: expected_penalty_oracle(
            weights,
            cap,
            shape,
            g["rtt"][i] + g["transfer"][i],
            0.0,
            g["best_completion"][i],
            g["cost"][i],
            g["carbon"][i],
        )
        for i in _valid_rows(block)
    }


def weighted_node_scores(
    block: np.ndarray,
    weights: dict[str, float],
    cap: float,
    shape: float,
    rtt: float,
    transfer: float,
) -> dict[int, float]:
    """Expected penalty of each valid node; the request meets the wait less RTT/2."""
    g = {name: block[:, node_column(name)].astype(float) for name in NODE_FEATURE_NAMES}
    out = {}
    for i in _valid_rows(block):
        wait = max(g["wait"][i] - rtt / 2, 0.0)
        out[i] = expected_penalty_oracle(
            weights,
            cap,
            shape,
            rtt + transfer + wait,
            wait,
            g["exec"][i],
            g["cost"][i],
            g["carbon"][i],
        )
    return out


def weighted_choices(
    scores: dict[int, float], utilization: np.ndarray, tol: float = 1e-9
) -> set[int]:
    """Rows the weighted rule may pick: the lowest score (to ``tol``), then utilisation.

    Scores computed in two ways may differ in the last bits, so rows within ``tol``
    of the minimum all qualify; among exactly equal rows the utilisation decides.
    """
    if not scores:
        return {-1}
    low = min(scores.values())
    near = [i for i, s in scores.items() if s <= low + tol * max(1.0, abs(low))]
    if len(near) > 1 and len({scores[i] for i in near}) == 1:
        best = min(near, key=lambda i: (float(utilization[i]), i))
        return {best}
    return set(near)
