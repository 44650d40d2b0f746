"""Non-dominated points and 2-D hypervolume, checked by brute force."""

from __future__ import annotations

import numpy as np
import pytest

from analysis.pareto import hypervolume_2d, non_dominated


def test_non_dominated_matches_pairwise_comparison() -> None:
    rng = np.random.default_rng(3)
    points = rng.integers(0, 6, size=(40, 2)).astype(float)  # many ties
    mask = non_dominated(points)
    for i, p in enumerate(points):
        dominated = any(
            np.all(q <= p) and np.any(q < p) for j, q in enumerate(points) if j != i
        )
        assert mask[i] == (not dominated)


def test_hypervolume_equals_the_dominated_area_counted_on_a_grid() -> None:
    points = np.array([[1.0, 4.0], [2.0, 2.0], [3.0, 1.0], [2.5, 3.0], [6.0, 0.5]])
    reference = np.array([5.0, 5.0])  # the last point lies outside: adds nothing
    step = 0.01
    xs = np.arange(0, 5, step) + step / 2
    ys = np.arange(0, 5, step) + step / 2
    gx, gy = np.meshgrid(xs, ys)
    covered = np.zeros_like(gx, dtype=bool)
    for x, y in points:
        covered |= (gx >= x) & (gy >= y) & (gx <= reference[0]) & (gy <= reference[1])
    expected = covered.sum() * step * step  # 4*1 + 3*2 ... by counting cells
    assert hypervolume_2d(points, reference) == pytest.approx(expected, abs=1e-9)
    assert hypervolume_2d(points, reference) == pytest.approx(12.0)


def test_points_beyond_the_reference_have_no_volume() -> None:
    assert hypervolume_2d(np.array([[6.0, 1.0]]), np.array([5.0, 5.0])) == 0.0
