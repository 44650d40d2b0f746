"""Per-type multipliers of latency limits, found by dual ascent on tuning seeds.

A rule that minimises ``reward + sum_k W_k x P(latency > T_k)`` for the row's type
``k`` (:class:`policies.networks.two_tier.FpiGreedyPolicy` with ``[K]`` weights) is
the Lagrangian of "every type's p95 within ``T_k``": one multiplier per limit. No
closed form gives the multipliers (queues couple the types), so they are searched
the way Lagrangian methods do, by dual ascent on measured runs: raise a type's
multiplier while its p95 is over its limit, lower it while under. The search sees
only the seeds it is given, so the multipliers it returns are judged on others.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

RAISE_CAP = 2.0
"""Most a multiplier grows in one step (x)."""
RAISE_MIN = 1.25
"""Least it grows when its limit is broken (x): a p95 just over its limit, that a
larger multiplier moves little, must not stall the search."""
RAISE_GAIN = 4.0
"""Growth per unit of relative excess: p95 10 % over its limit raises W by 40 %."""
RAISE_FLOOR = 0.5
"""Added on every raise, so a multiplier at 0 can leave it."""
LOWER = 1.25
"""A multiplier whose type keeps its limit is divided by this."""


@dataclass(frozen=True)
class Measured:
    """What one run of the rule at some multipliers gave on the tuning seeds."""

    p95_s: np.ndarray
    """``[K]`` p95 latency of each type (``inf`` for a type with no request)."""
    pooled_p95_s: float
    slo_miss_share: float
    objective: float
    """What the multipliers should make small (e.g. expected gCO2 per request)."""


@dataclass(frozen=True)
class Limits:
    """Per-type p95s (``inf``: none), pooled p95 (``inf``: none), SLO-miss share."""

    p95_s: np.ndarray
    pooled_p95_s: float
    slo_miss_share: float

    def kept_by(self, run: Measured) -> bool:
        """Whether ``run`` keeps every limit (a type with no request breaks none).

        The SLO-miss limit is checked here but has no multiplier of its own (the
        rule's reward already prices SLO misses): a step breaking it is never picked.
        """
        seen = np.isfinite(run.p95_s)
        return bool(
            np.all(~seen | (run.p95_s <= self.p95_s))
            and run.pooled_p95_s <= self.pooled_p95_s
            and run.slo_miss_share <= self.slo_miss_share
        )

    def excess(self, run: Measured) -> np.ndarray:
        """``[K]`` p95 over limit per type (0 where unlimited).

        With a pooled limit, its ratio for every type (one constraint priced on all).
        """
        finite = np.isfinite(self.p95_s)
        safe_limit = np.where(finite, self.p95_s, 1.0)
        seen = np.where(np.isfinite(run.p95_s), run.p95_s, 0.0)
        ratio = np.where(finite, seen / safe_limit, 0.0)
        if np.isfinite(self.pooled_p95_s):
            ratio = np.maximum(ratio, run.pooled_p95_s / self.pooled_p95_s)
        return ratio


def next_multipliers(weights: np.ndarray, ratio: np.ndarray) -> np.ndarray:
    """One dual-ascent step: raise where ``ratio > 1`` (a limit broken), else lower."""
    raised = weights * np.clip(1.0 + RAISE_GAIN * (ratio - 1.0), RAISE_MIN, RAISE_CAP)
    return np.where(ratio > 1.0, raised + RAISE_FLOOR, weights / LOWER)


@dataclass(frozen=True)
class Calibration:
    """Every step of the search and the multipliers it picks."""

    steps: list[tuple[np.ndarray, Measured]]
    best: np.ndarray | None
    """The multipliers of the step with the smallest objective among those keeping
    every limit; ``None`` when no step kept them."""


def calibrate(
    measure: Callable[[np.ndarray], Measured],
    limits: Limits,
    start: np.ndarray,
    steps: int,
) -> Calibration:
    """Dual ascent from ``start`` for ``steps`` runs of ``measure``.

    Raises:
        ValueError: ``start`` is not finite and non-negative or ``steps`` < 1.
    """
    weights = np.asarray(start, dtype=float)
    if not (np.all(np.isfinite(weights)) and np.all(weights >= 0)):
        raise ValueError(f"start: finite multipliers >= 0, got {weights.tolist()}")
    if steps < 1:
        raise ValueError(f"steps: at least 1, got {steps}")
    seen: list[tuple[np.ndarray, Measured]] = []
    best: tuple[float, np.ndarray] | None = None
    for _ in range(steps):
        run = measure(weights.copy())
        seen.append((weights.copy(), run))
        if limits.kept_by(run) and (best is None or run.objective < best[0]):
            best = (run.objective, weights.copy())
        weights = next_multipliers(weights, limits.excess(run))
    return Calibration(seen, None if best is None else best[1])
