"""Aggregate scores over training seeds with rliable's estimators and intervals.

Follows Agarwal et al. (2021, "Deep RL at the Edge of the Statistical Precipice") and
calls their library, rliable, rather than re-implementing the bootstrap:

* a *run* is one training seed, a *task* one region (x scenario); a score matrix is
  ``(n_runs, n_tasks)``, normalised per task first (:func:`normalised`) so tasks of
  different scales can be pooled;
* point estimates: the interquartile mean (IQM, the 25 %-trimmed mean of all runs x
  tasks pooled) and the mean;
* intervals: percentile stratified bootstrap, resampling runs *within* each task;
* probability of improvement P(X > Y): per task the Mann-Whitney U statistic over
  ``n_x x n_y`` (ties count one half), averaged over tasks, with its own interval.

rliable draws bootstrap indices from NumPy's *global* generator (its
``random_state`` argument does not reach those draws), so :func:`seeded` seeds that
generator for the call and restores the caller's state afterwards: the same scores
and seed give the same intervals. rliable (and its arch/scipy/pandas stack) is the
``paper`` extra; it is imported on first use.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np

ESTIMATORS = ("iqm", "mean")
"""Aggregate estimators :func:`interval_estimates` knows."""

DEFAULT_REPS = 2000
"""Bootstrap resamples (RL Zoo's default; the rliable paper uses 50,000 for final
figures: pass ``reps`` for those)."""


@dataclass(frozen=True)
class Estimate:
    """One aggregate with its interval (one row of ``summary.csv``)."""

    algorithm: str
    estimator: str
    point: float
    ci_low: float
    ci_high: float
    n_runs: int
    n_tasks: int
    reps: int
    ci_level: float


@contextmanager
def seeded(seed: int) -> Iterator[None]:
    """Seed NumPy's global generator (rliable draws from it), then restore it."""
    state = np.random.get_state()
    np.random.seed(seed)
    try:
        yield
    finally:
        np.random.set_state(state)


def _rliable() -> tuple[Any, Any]:
    try:
        from rliable import library, metrics
    except ImportError as err:  # pragma: no cover - depends on the install
        raise ImportError(
            "policies.stats needs rliable: pip install -e '.[paper]'"
        ) from err
    return library, metrics


def _matrix(name: str, scores: Any) -> np.ndarray:
    array = np.asarray(scores, dtype=float)
    if array.ndim != 2 or array.shape[0] < 1 or array.shape[1] < 1:
        raise ValueError(
            f"scores[{name!r}]: expected a (runs x tasks) matrix, got shape "
            f"{array.shape}"
        )
    if not np.isfinite(array).all():
        raise ValueError(f"scores[{name!r}]: expected finite values, got NaN or inf")
    return array


def iqm(scores: np.ndarray) -> float:
    """Interquartile mean of all runs x tasks pooled (rliable's ``aggregate_iqm``)."""
    _, metrics = _rliable()
    return float(metrics.aggregate_iqm(np.asarray(scores, dtype=float)))


def interval_estimates(
    scores: Mapping[str, Any],
    estimators: Sequence[str] = ESTIMATORS,
    reps: int = DEFAULT_REPS,
    ci_level: float = 0.95,
    seed: int = 0,
) -> list[Estimate]:
    """Point estimates and stratified-bootstrap percentile CIs per algorithm.

    Args:
        scores: algorithm -> ``(n_runs, n_tasks)`` scores (runs = training seeds).
        estimators: names of :data:`ESTIMATORS`.
        reps: bootstrap resamples.
        ci_level: interval size, e.g. 0.95.
        seed: seed of the resampling (NumPy's global generator, restored after).
    """
    unknown = [e for e in estimators if e not in ESTIMATORS]
    if unknown:
        raise ValueError(f"estimators: expected names of {ESTIMATORS}, got {unknown}")
    if not 0 < ci_level < 1:
        raise ValueError(f"ci_level: expected a value in (0, 1), got {ci_level}")
    if reps < 1:
        raise ValueError(f"reps: expected >= 1, got {reps}")
    library, metrics = _rliable()
    functions: dict[str, Callable[[np.ndarray], float]] = {
        "iqm": metrics.aggregate_iqm,
        "mean": metrics.aggregate_mean,
    }
    chosen = [functions[e] for e in estimators]

    def aggregate(matrix: np.ndarray) -> np.ndarray:
        return np.array([f(matrix) for f in chosen])

    matrices = {name: _matrix(name, value) for name, value in scores.items()}
    out: list[Estimate] = []
    for name, matrix in matrices.items():
        if matrix.shape[0] < 2:  # one run: nothing to resample
            points = aggregate(matrix)
            lows = highs = np.full(len(chosen), math.nan)
        else:
            with seeded(seed):
                point, interval = library.get_interval_estimates(
                    {name: matrix},
                    aggregate,
                    reps=reps,
                    confidence_interval_size=ci_level,
                )
            points, (lows, highs) = point[name], interval[name]
        for i, estimator in enumerate(estimators):
            out.append(
                Estimate(
                    name,
                    estimator,
                    float(points[i]),
                    float(lows[i]),
                    float(highs[i]),
                    matrix.shape[0],
                    matrix.shape[1],
                    reps,
                    ci_level,
                )
            )
    return out


def probability_of_improvement(
    scores: Mapping[str, Any],
    reference: str,
    reps: int = DEFAULT_REPS,
    ci_level: float = 0.95,
    seed: int = 0,
) -> list[Estimate]:
    """P(algorithm > ``reference``) for every other algorithm, with CIs.

    Each algorithm's runs are resampled independently within each task
    (rliable's ``StratifiedIndependentBootstrap``); the point is the average over
    tasks of the Mann-Whitney U / (n_x n_y). Rows name the algorithm, the estimator
    is ``poi_vs_<reference>``.
    """
    if reference not in scores:
        raise ValueError(
            f"reference: expected one of {sorted(scores)}, got {reference!r}"
        )
    library, metrics = _rliable()
    ref = _matrix(reference, scores[reference])
    out: list[Estimate] = []
    for name, value in scores.items():
        if name == reference:
            continue
        matrix = _matrix(name, value)
        if matrix.shape[1] != ref.shape[1]:
            raise ValueError(
                f"scores[{name!r}]: expected {ref.shape[1]} tasks like "
                f"{reference!r}, got {matrix.shape[1]}"
            )
        if min(matrix.shape[0], ref.shape[0]) < 2:
            point = float(metrics.probability_of_improvement(matrix, ref))
            low = high = math.nan
        else:
            with seeded(seed):
                points, intervals = library.get_interval_estimates(
                    {name: (matrix, ref)},
                    metrics.probability_of_improvement,
                    reps=reps,
                    confidence_interval_size=ci_level,
                )
            point = float(points[name])
            low, high = (float(v) for v in np.ravel(intervals[name]))
        out.append(
            Estimate(
                name,
                f"poi_vs_{reference}",
                point,
                low,
                high,
                matrix.shape[0],
                matrix.shape[1],
                reps,
                ci_level,
            )
        )
    return out


def normalised(
    score: np.ndarray | float, random: np.ndarray | float, best: np.ndarray | float
) -> np.ndarray:
    """Per-task normalised score: 0 = the random-valid policy, 1 = the best heuristic.

    Above 1 beats the best heuristic of that task. ``random``, ``best`` broadcast
    against ``score`` (one value per task, the last axis). A task where the best
    heuristic does no better than random has no scale: its scores are NaN.
    """
    score, random, best = (np.asarray(a, dtype=float) for a in (score, random, best))
    span = best - random
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(span > 0, (score - random) / span, np.nan)


def difference_of_means(
    x: Any,
    y: Any,
    reps: int = DEFAULT_REPS,
    ci_level: float = 0.95,
    seed: int = 0,
) -> tuple[float, float, float]:
    """Mean of ``x`` minus mean of ``y`` with a percentile bootstrap CI.

    For two independent samples (e.g. one region's scores of a federated strategy
    and of local-only training over their own training seeds): rliable has no
    two-sample difference, so this is ``scipy.stats.bootstrap``, which resamples
    each sample on its own. Returns (point, low, high); NaN bounds when a sample has
    fewer than two values.
    """
    from scipy import stats

    a, b = np.asarray(x, dtype=float).ravel(), np.asarray(y, dtype=float).ravel()
    if a.size == 0 or b.size == 0:
        raise ValueError("difference_of_means: expected non-empty samples")
    point = float(a.mean() - b.mean())
    if min(a.size, b.size) < 2:
        return point, math.nan, math.nan

    def statistic(u: np.ndarray, v: np.ndarray, axis: int = -1) -> np.ndarray:
        return np.asarray(u.mean(axis=axis) - v.mean(axis=axis))

    result = stats.bootstrap(
        (a, b),
        statistic,
        n_resamples=reps,
        confidence_level=ci_level,
        method="percentile",
        vectorized=True,
        rng=np.random.default_rng(seed),
    )
    low, high = result.confidence_interval
    return point, float(low), float(high)


def two_way_mean_interval(
    matrix: Any,
    reps: int = DEFAULT_REPS,
    ci_level: float = 0.95,
    seed: int = 0,
) -> tuple[float, float, float]:
    """Mean of a ``(n_runs, n_tasks)`` matrix, with runs *and* tasks resampled.

    rliable's stratified bootstrap keeps the tasks fixed (here: the evaluation seeds
    of a paired comparison): it asks "would another training seed do as well" with
    these requests. A rare-event rate (an SLO miss share of 0.02 % is a handful of
    requests) also varies with the requests drawn, so each replicate here draws
    rows and columns independently with replacement (a two-way, or pigeonhole,
    bootstrap; Owen 2007), which covers both sources. One run: columns only.
    Returns (point, low, high); NaN bounds with one run and one task.
    """
    scores = np.asarray(matrix, dtype=float)
    if scores.ndim != 2 or scores.size == 0 or np.isnan(scores).any():
        raise ValueError(
            f"matrix: expected a non-empty (runs, tasks) matrix without NaN, "
            f"got shape {scores.shape}"
        )
    if not 0 < ci_level < 1:
        raise ValueError(f"ci_level: expected a value in (0, 1), got {ci_level}")
    if reps < 1:
        raise ValueError(f"reps: expected >= 1, got {reps}")
    point = float(scores.mean())
    runs, tasks = scores.shape
    if runs == 1 and tasks == 1:
        return point, math.nan, math.nan
    rng = np.random.default_rng(seed)
    rows = rng.integers(0, runs, (reps, runs))
    cols = rng.integers(0, tasks, (reps, tasks))
    # mean of scores[rows][:, cols] = mean over the picked rows of the picked columns
    row_means = scores[:, cols].mean(axis=2).T  # (reps, runs): each row on each draw
    replicates = np.take_along_axis(row_means, rows, axis=1).mean(axis=1)
    tail = 100 * (1 - ci_level) / 2
    low, high = np.percentile(replicates, [tail, 100 - tail])
    return point, float(low), float(high)
