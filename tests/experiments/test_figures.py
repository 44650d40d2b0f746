"""Figure conventions that a reader relies on across the figures of one paper."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from analysis.collect import Collected
from analysis.figures import PALETTE, _heuristic_points, group_colour


def test_a_strategy_keeps_its_colour_whatever_else_is_plotted() -> None:
    """The probability-of-improvement plot lacks the reference row; colours must not shift."""
    everyone = ["centralized", "fedavg", "fedprox", "local"]
    without_local = ["centralized", "fedavg", "fedprox"]
    for name in without_local:
        assert group_colour(name, everyone) == group_colour(name, without_local)
    colours = {group_colour(n, everyone) for n in everyone}
    assert len(colours) == len(everyone)
    assert colours <= set(PALETTE)


def test_sweep_values_take_their_rank() -> None:
    """Groups that are not strategy names (a mu grid) are coloured by their order."""
    values = ["0.0", "0.01", "0.1"]
    assert [group_colour(v, values) for v in values] == list(PALETTE[:3])


def _collected_with_two_weight_cells() -> Collected:
    """Two reward-weight cells, one run each: a fixed heuristic and a weight-reader."""
    runs = pd.DataFrame(
        {"run": ["a", "b"], "group": ["carbon=0", "carbon=2"], "complete": [1, 1]}
    )
    rows = []
    for run, carbon_of_reader in (("a", 0.021), ("b", 0.014)):
        for policy, carbon, p95 in (
            ("latency", 0.021, 240.0),  # reads no weight: the same in both cells
            ("weighted_greedy", carbon_of_reader, 240.0 if run == "a" else 490.0),
        ):
            rows.append(
                {
                    "run": run,
                    "round": 0,
                    "policy": policy,
                    "latency_p95_ms": p95,
                    "carbon_g_per_1k": carbon,
                    "cost_usd_per_1k": 0.001,
                }
            )
    return Collected(Path("."), runs, pd.DataFrame(rows), pd.DataFrame())


def test_a_heuristic_that_reads_the_weights_is_a_front_not_an_average() -> None:
    """Averaging weighted-greedy's cells would draw a point that no run produced."""
    single, fronts = _heuristic_points(
        _collected_with_two_weight_cells(), "latency_p95_ms"
    )
    assert list(single["policy"]) == ["latency"]
    assert single["carbon_g_per_1k"].tolist() == [0.021]
    reader = fronts[fronts["policy"] == "weighted_greedy"].sort_values("group")
    assert reader["carbon_g_per_1k"].tolist() == [0.021, 0.014]
    assert reader["latency_p95_ms"].tolist() == [240.0, 490.0]
