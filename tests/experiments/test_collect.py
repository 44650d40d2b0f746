"""collect -> summary -> figures on a synthetic experiment whose numbers are known.

Run folders are written the way runs write them (policies.records), with scores
drawn from a seeded generator; every expected value is recomputed here with numpy.
"""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from analysis.collect import collect, write_tables
from analysis.summary import summary_table
from policies.records import write_tidy_csv
from scripts.collect import main as collect_main
from scripts.plot_results import make_all

REGIONS = ("r1", "r2")
EVAL_SEEDS = (1000, 1001)
RANDOM = {"r1": -2.0, "r2": -4.0}
LATENCY = {"r1": -1.0, "r2": -2.0}  # the best heuristic of both regions


def learned_score(group: str, seed: int, region: str, eval_seed: int) -> float:
    rng = np.random.default_rng([len(group), seed, eval_seed, len(region)])
    shift = 0.6 if group == "fedavg" else 0.3
    return (
        RANDOM[region] + shift * (LATENCY[region] - RANDOM[region]) + rng.normal(0, 0.1)
    )


def write_run(root: Path, group: str, seed: int, complete: bool) -> None:
    folder = root / f"seed={seed},strategy={group}"
    rows = []
    for region, eval_seed in itertools.product(REGIONS, EVAL_SEEDS):
        base = {"phase": "server-eval", "region": region, "train_seed": seed,
                "eval_seed": eval_seed}  # fmt: skip
        for name, values in (("random", RANDOM), ("latency", LATENCY)):
            rows.append({**base, "round": 0, "policy": name, "env_steps": 0,
                         "mean_reward": values[region],
                         "latency_p95_ms": 100.0 + values[region]})  # fmt: skip
        for server_round, steps in ((1, 1000), (2, 2000)):
            score = learned_score(group, seed, region, eval_seed) * server_round / 2
            rows.append({**base, "round": server_round, "policy": "global",
                         "env_steps": steps, "mean_reward": score,
                         "latency_p95_ms": 50.0 - score})  # fmt: skip
    write_tidy_csv(folder / "metrics.csv", rows)
    config = {"strategy.name": group, "seed": seed, "env": "two_tier",
              "scenario.name": "small", "federation.regions": '["r1","r2"]'}  # fmt: skip
    (folder / "config.json").write_text(json.dumps(config))
    state = {"last_round": 2 if complete else 1, "rounds": 2, "complete": complete}
    (folder / "state.json").write_text(json.dumps(state))


@pytest.fixture
def experiment(tmp_path: Path) -> Path:
    root = tmp_path / "synthetic"
    for group, seed in itertools.product(("fedavg", "local"), (0, 1, 2)):
        write_run(root, group, seed, complete=(group, seed) != ("local", 2))
    return root


def normalised_scores(group: str, seeds: tuple[int, ...]) -> np.ndarray:
    """(runs x regions) matrix of the final round's normalised score, by hand."""
    out = np.zeros((len(seeds), len(REGIONS)))
    for i, seed in enumerate(seeds):
        for j, region in enumerate(REGIONS):
            raw = np.mean([learned_score(group, seed, region, e) for e in EVAL_SEEDS])
            out[i, j] = (raw - RANDOM[region]) / (LATENCY[region] - RANDOM[region])
    return out


def test_incomplete_runs_are_listed_and_kept_out_of_the_statistics(
    experiment: Path,
) -> None:
    collected = collect(experiment)
    assert collected.incomplete == ["seed=2,strategy=local"]
    assert len(collected.runs) == 6
    assert sorted(collected.runs["group"].unique()) == ["fedavg", "local"]
    assert len(collected.evals) == 6 * len(REGIONS) * len(EVAL_SEEDS) * 4

    summary = summary_table(collected, reps=300)
    rows = summary.set_index(["metric", "algorithm", "estimator"])
    fedavg = rows.loc[("normalised_score", "fedavg", "mean")]
    local = rows.loc[("normalised_score", "local", "mean")]
    assert (fedavg["n_runs"], local["n_runs"]) == (3, 2)  # the cut run is out
    assert fedavg["n_tasks"] == 2 and fedavg["runs_are"] == "train_seeds"
    expected = normalised_scores("fedavg", (0, 1, 2))
    assert fedavg["point"] == pytest.approx(expected.mean())
    assert fedavg["ci_low"] <= fedavg["point"] <= fedavg["ci_high"]
    assert local["point"] == pytest.approx(normalised_scores("local", (0, 1)).mean())
    heuristic = rows.loc[("normalised_score", "latency", "mean")]
    assert heuristic["point"] == pytest.approx(1.0)
    assert heuristic["runs_are"] == "eval_seeds"

    p95 = rows.loc[("latency_p95_ms", "local", "mean")]
    raw = [learned_score("local", s, r, e) for s in (0, 1) for r in REGIONS
           for e in EVAL_SEEDS]  # fmt: skip
    assert p95["point"] == pytest.approx(np.mean([50.0 - x for x in raw]))

    poi = rows.loc[("normalised_score", "fedavg", "poi_vs_local")]
    x, y = expected, normalised_scores("local", (0, 1))
    wins = [np.mean([(a > b) + 0.5 * (a == b) for a in x[:, t] for b in y[:, t]])
            for t in range(2)]  # fmt: skip
    assert poi["point"] == pytest.approx(np.mean(wins))


def test_collect_writes_tidy_tables_and_the_summary(experiment: Path) -> None:
    out = experiment / "collected"
    assert collect_main([str(experiment), "--reps", "200"]) == 0
    for name in ("runs.csv", "evals.csv", "summary.csv"):
        assert (out / name).exists()
    summary = pd.read_csv(out / "summary.csv")
    assert list(summary.columns[:10]) == [
        "metric", "algorithm", "estimator", "point", "ci_low", "ci_high", "n_runs",
        "n_tasks", "reps", "ci_level",
    ]  # fmt: skip
    runs = pd.read_csv(out / "runs.csv")
    assert runs.loc[runs["run"] == "seed=2,strategy=local", "complete"].item() == 0
    evals = pd.read_csv(out / "evals.csv")
    assert {"train_seed", "eval_seed", "env_steps"} <= set(evals.columns)
    for column in ("point", "ci_low", "ci_high", "n_runs"):
        assert pd.api.types.is_numeric_dtype(summary[column])


def test_figures_and_results_md_are_written(experiment: Path, tmp_path: Path) -> None:
    collected = collect(experiment)
    write_tables(collected, tmp_path / "tables")
    written = make_all(collected, tmp_path / "figures", reps=200)
    names = {p.name for p in written}
    for figure in ("learning_curves", "interval_estimates",
                   "probability_of_improvement", "region_gain_vs_local"):  # fmt: skip
        assert {f"{figure}.png", f"{figure}.pdf"} <= names
    report = (tmp_path / "figures" / "results.md").read_text()
    assert "seed=2,strategy=local" in report  # listed as incomplete
    point = normalised_scores("fedavg", (0, 1, 2)).mean()
    assert f"{point:.3f} [" in report
    curves = pd.read_csv(tmp_path / "figures" / "learning_curves.csv")
    assert sorted(curves["env_steps"].unique()) == [1000.0, 2000.0]


def test_the_demo_figures_of_one_run_folder(tmp_path: Path) -> None:
    from analysis.demo import write_demo_figures

    write_run(tmp_path, "fedavg", 0, complete=True)
    run = tmp_path / "seed=0,strategy=fedavg"
    message = write_demo_figures(run)
    for name in ("learning_curves.png", "interval_estimates.png", "results.md"):
        assert (run / "figures" / name).exists()
        assert name in message
    report = (run / "figures" / "results.md").read_text()
    expected = normalised_scores("fedavg", (0,)).mean()
    assert f"| fedavg | 1 train seed | 2 | {expected:.3f} | {expected:.3f} |" in report


def test_a_sweep_cell_is_compared_with_the_same_cell_trained_locally() -> None:
    from analysis.summary import reference_of

    groups = {
        "scenario.heterogeneity=0.0,strategy=fedavg",
        "scenario.heterogeneity=0.0,strategy=local",
        "scenario.heterogeneity=2.0,strategy=fedavg",
    }
    assert (
        reference_of("scenario.heterogeneity=0.0,strategy=fedavg", "local", groups)
        == "scenario.heterogeneity=0.0,strategy=local"
    )
    assert (
        reference_of("scenario.heterogeneity=2.0,strategy=fedavg", "local", groups)
        is None
    )
    assert reference_of("fedavg", "local", {"fedavg", "local"}) == "local"
    assert reference_of("local", "local", {"fedavg", "local"}) is None
