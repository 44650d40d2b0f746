"""Dual ascent of per-type limit multipliers on a model whose answer is known."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from policies.limit_multipliers import (
    Limits,
    Measured,
    calibrate,
    next_multipliers,
)

BASE_P95 = np.array([1.0, 2.0, 4.0])
CARBON = np.array([3.0, 1.0, 5.0])


def model(weights: np.ndarray) -> Measured:
    """A type's p95 falls as its multiplier rises, its carbon rises; types couple.

    Pricing type ``k`` harder moves its requests nearer, which loads the near nodes
    the other types use a little (the coupling), as queues do in the simulator.
    """
    coupling = 0.02 * (weights.sum() - weights)
    p95 = BASE_P95 / (1.0 + 0.3 * weights) + coupling
    carbon = CARBON * (1.0 - 0.6 / (1.0 + 0.3 * weights))
    return Measured(p95, float(p95.max()), 0.01, float(carbon.sum()))


def test_the_search_keeps_every_limit_and_leaves_unlimited_types_unpriced() -> None:
    limits = Limits(np.array([0.5, np.inf, 2.5]), np.inf, 0.05)
    result = calibrate(model, limits, np.zeros(3), steps=30)
    assert result.best is not None
    best = model(result.best)
    assert limits.kept_by(best)
    assert result.best[1] == pytest.approx(0.0)  # nothing to keep: never raised
    # Near the cheapest multipliers that keep the limits: a little less on either
    # limited type breaks its limit.
    for k in (0, 2):
        lower = result.best.copy()
        lower[k] *= 0.7
        assert not limits.kept_by(model(lower)), (k, result.best)
    # The pick is the cheapest step that kept the limits.
    kept = [run.objective for _, run in result.steps if limits.kept_by(run)]
    assert best.objective == pytest.approx(min(kept))


def test_no_step_keeping_the_limits_is_said_so() -> None:
    impossible = Limits(np.array([0.01, np.inf, np.inf]), np.inf, 0.05)
    result = calibrate(model, impossible, np.ones(3), steps=8)
    assert result.best is None
    assert len(result.steps) == 8
    weights = [w[0] for w, _ in result.steps]
    assert all(b > a for a, b in itertools.pairwise(weights))


def test_a_pooled_limit_prices_every_type() -> None:
    limits = Limits(np.full(3, np.inf), 2.0, 0.05)
    run = model(np.zeros(3))  # pooled p95 4.0: twice the limit
    assert limits.excess(run) == pytest.approx([2.0, 2.0, 2.0])
    raised = next_multipliers(np.array([1.0, 0.0, 3.0]), limits.excess(run))
    assert np.all(raised > [1.0, 0.0, 3.0])
    result = calibrate(model, limits, np.zeros(3), steps=30)
    assert result.best is not None and limits.kept_by(model(result.best))


def test_a_step_raises_broken_limits_and_lowers_kept_ones() -> None:
    weights = np.array([2.0, 2.0, 0.0, 0.0])
    ratio = np.array([1.1, 0.9, 1.5, 0.0])
    stepped = next_multipliers(weights, ratio)
    assert stepped[0] > 2.0 and stepped[1] < 2.0
    assert stepped[2] > 0.0 and stepped[3] == 0.0


@pytest.mark.parametrize(
    ("start", "steps", "named"),
    [(np.array([1.0, -1.0, 0.0]), 3, "start"), (np.zeros(3), 0, "steps")],
)
def test_bad_search_settings_are_refused_naming_them(
    start: np.ndarray, steps: int, named: str
) -> None:
    limits = Limits(np.ones(3), np.inf, 0.05)
    with pytest.raises(ValueError, match=named):
        calibrate(model, limits, start, steps)


def test_the_slo_limit_and_types_without_requests_are_judged_as_they_should() -> None:
    limits = Limits(np.array([1.0, 1.0, np.inf]), np.inf, 0.05)
    within = Measured(np.array([0.9, np.inf, 9.0]), 9.0, 0.04, 1.0)
    assert limits.kept_by(within)  # no request of type 1: it broke nothing
    assert limits.excess(within)[1] == 0.0  # and its multiplier is not raised
    missing = Measured(np.array([0.9, 0.5, 9.0]), 9.0, 0.06, 1.0)
    assert not limits.kept_by(missing)  # too many SLO misses
    over = Measured(np.array([1.1, 0.5, 9.0]), 9.0, 0.01, 1.0)
    assert not limits.kept_by(over)
