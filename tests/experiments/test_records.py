"""Tidy result files: the same rows give the same bytes, whatever their order."""

from __future__ import annotations

import math
import random
from pathlib import Path

import numpy as np

from policies.evaluation import QUANTILES, SeedEvaluation, quantile_column
from policies.records import (
    IDENTITY,
    read_rows,
    seed_rows,
    sketch_rows,
    tidy_csv,
    write_tidy_csv,
)


def rows() -> list[dict]:
    out = []
    for server_round in (0, 1):
        for region in ("b", "a"):
            for seed in (1001, 1000):
                out.append(
                    {"round": server_round, "phase": "server-eval", "policy": "p",
                     "region": region, "train_seed": 3, "eval_seed": seed,
                     "env_steps": 100 * server_round, "zeta": 0.1 * seed,
                     "alpha": math.nan, "node": 12345, "train/seconds": 1.5}
                )  # fmt: skip
    return out


def test_row_order_does_not_change_the_bytes() -> None:
    ordered = rows()
    shuffled = list(ordered)
    random.Random(0).shuffle(shuffled)
    assert tidy_csv(ordered) == tidy_csv(shuffled)


def test_identity_first_metrics_sorted_missing_empty_timings_dropped() -> None:
    text = tidy_csv(rows())
    header, first, *_ = text.splitlines()
    assert header.split(",") == [*IDENTITY, "alpha", "zeta"]
    assert first.split(",")[:6] == ["0", "server-eval", "p", "a", "3", "1000"]
    assert first.split(",")[7] == ""  # NaN is an empty cell
    assert "12345" not in text and "1.5" not in text


def test_written_rows_read_back_as_numbers(tmp_path: Path) -> None:
    path = tmp_path / "m.csv"
    write_tidy_csv(path, rows())
    back = read_rows(path)
    assert len(back) == 8
    assert back[0]["eval_seed"] == 1000 and isinstance(back[0]["eval_seed"], int)
    assert back[0]["zeta"] == 0.1 * 1000
    assert "alpha" not in back[0]  # missing stays missing


def test_one_metrics_row_and_one_sketch_per_seed_and_request_type() -> None:
    levels = np.asarray(QUANTILES)
    results = [
        SeedEvaluation(
            seed=7,
            metrics={"mean_reward": -1.0},
            latency_quantiles={"all": levels * 10, "web": levels * 5},
            slo_ms={"web": 120.0},
        )
    ]
    (metrics,) = seed_rows(results, round=2, policy="global")
    assert metrics == {"round": 2, "policy": "global", "eval_seed": 7,
                       "mean_reward": -1.0}  # fmt: skip
    sketches = sketch_rows(results, round=2)
    assert [s["request_type"] for s in sketches] == ["all", "web"]
    assert math.isnan(sketches[0]["slo_ms"]) and sketches[1]["slo_ms"] == 120.0
    assert sketches[1][quantile_column(0.95)] == 4.75
    assert sketches[0][quantile_column(0.999)] == 9.99
