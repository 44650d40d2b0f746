"""Pareto fronts of minimised objectives: non-dominated points and 2-D hypervolume."""

from __future__ import annotations

import numpy as np


def non_dominated(points: np.ndarray) -> np.ndarray:
    """Mask of the points no other point dominates (every objective minimised).

    ``q`` dominates ``p`` when it is no worse in every objective and better in one.
    """
    points = np.asarray(points, dtype=float)
    if points.ndim != 2:
        raise ValueError(
            f"points: expected an (n x objectives) array, got {points.shape}"
        )
    keep = np.ones(len(points), dtype=bool)
    for i, p in enumerate(points):
        no_worse = np.all(points <= p, axis=1)
        better = np.any(points < p, axis=1)
        keep[i] = not np.any(no_worse & better)
    return keep


def hypervolume_2d(points: np.ndarray, reference: np.ndarray) -> float:
    """Area dominated by ``points`` and bounded by ``reference`` (both minimised).

    Points not strictly better than the reference in both objectives add nothing.
    The area is the union of the rectangles ``[x, ref_x] x [y, ref_y]``: sweep the
    front by increasing x and add each step's strip.
    """
    points = np.asarray(points, dtype=float).reshape(-1, 2)
    ref = np.asarray(reference, dtype=float)
    inside = points[np.all(points < ref, axis=1)]
    if not len(inside):
        return 0.0
    front = inside[non_dominated(inside)]
    front = front[np.argsort(front[:, 0])]
    area, ceiling = 0.0, ref[1]
    for i, (x, y) in enumerate(front):
        right = front[i + 1, 0] if i + 1 < len(front) else ref[0]
        ceiling = min(ceiling, y)
        area += (right - x) * (ref[1] - ceiling)
    return float(area)
