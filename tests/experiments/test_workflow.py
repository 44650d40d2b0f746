"""The research workflow end to end: experiment=smoke -> collect -> plot -> notebook.

The smoke experiment really runs (Simulation Engine, 2 strategies x 2 training seeds
x 2 rounds, tiny federation) in a subprocess, into tmp. Expected numbers are
recomputed from the runs' own metrics.csv with the csv module and numpy.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import sys
from collections import defaultdict
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from analysis.collect import collect
from fl_server.config import compose
from scripts.collect import main as collect_main
from scripts.federate import run as federate
from scripts.plot_results import main as plot_main

pytestmark = pytest.mark.slow

PROJECT_ROOT = Path(__file__).resolve().parents[2]
JOBS = [
    "seed=0,strategy=fedavg",
    "seed=0,strategy=local",
    "seed=1,strategy=fedavg",
    "seed=1,strategy=local",
]


def run_experiment(sweep_dir: Path, *overrides: str) -> None:
    env = {
        **os.environ,
        "FLWR_HOME": str(sweep_dir.parent / "flwr-home"),
        "FLWR_DISABLE_UPDATE_CHECK": "1",
        "FLWR_DISABLE_RUNTIME_DEPENDENCY_INSTALLATION": "1",
    }
    subprocess.run(
        [sys.executable, "-m", "scripts.run_experiment", "experiment=smoke",
         f"hydra.sweep.dir={sweep_dir}", *overrides],
        cwd=PROJECT_ROOT, env=env, check=True, timeout=1800,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip


@pytest.fixture(scope="module")
def smoke(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("smoke") / "sweep"
    run_experiment(root)
    return root


def rows_of(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle))


def test_every_job_folder_holds_a_complete_tidy_run(smoke: Path) -> None:
    assert sorted(p.name for p in smoke.iterdir() if p.is_dir()) == JOBS
    for job in JOBS:
        folder = smoke / job
        assert json.loads((folder / "state.json").read_text())["complete"] is True
        assert json.loads((folder / "job.json").read_text())["wall_s"] > 0
        seed = int(job.split(",")[0].removeprefix("seed="))
        evals = [r for r in rows_of(folder / "metrics.csv")
                 if r["phase"] == "server-eval"]  # fmt: skip
        assert {int(r["train_seed"]) for r in evals} == {seed}
        assert {int(r["eval_seed"]) for r in evals} == {1000, 1001}
        final = {int(r["env_steps"]) for r in evals if r["round"] == "2"}
        assert final == {2 * 3 * 2048}  # 2 rounds x 3 regions x one rollout
        # the sketch's p95 is the row's pooled p95
        sketch = {(r["round"], r["policy"], r["region"], r["eval_seed"]): r
                  for r in rows_of(folder / "latency_quantiles.csv")
                  if r["request_type"] == "all"}  # fmt: skip
        for r in evals:
            key = (r["round"], r["policy"], r["region"], r["eval_seed"])
            if key in sketch:
                assert float(sketch[key]["q0.95"]) == pytest.approx(
                    float(r["latency_p95_ms"]), abs=1e-3
                )


def test_collect_and_plot_report_the_runs_numbers(smoke: Path, tmp_path: Path) -> None:
    assert collect_main([str(smoke), "--reps", "300"]) == 0
    collected_dir = smoke / "collected"
    runs = pd.read_csv(collected_dir / "runs.csv")
    assert sorted(runs["run"]) == JOBS and runs["complete"].eq(1).all()
    evals = pd.read_csv(collected_dir / "evals.csv")
    by_hand: dict[str, list[float]] = defaultdict(list)
    count = 0
    for job in JOBS:
        rows = [r for r in rows_of(smoke / job / "metrics.csv")
                if r["phase"] == "server-eval"]  # fmt: skip
        count += len(rows)
        final = [r for r in rows if r["round"] == "2"]
        per_region = defaultdict(list)
        for r in final:
            per_region[r["region"]].append(float(r["latency_p95_ms"]))
        by_hand[job.split("strategy=")[1]] += [np.mean(v) for v in per_region.values()]
    assert len(evals) == count
    summary = pd.read_csv(collected_dir / "summary.csv")
    p95 = summary[(summary["metric"] == "latency_p95_ms")
                  & (summary["estimator"] == "mean")].set_index("algorithm")  # fmt: skip
    for group, values in by_hand.items():
        assert p95.loc[group, "point"] == pytest.approx(np.mean(values))
        assert p95.loc[group, "n_runs"] == 2 and p95.loc[group, "n_tasks"] == 3

    out = tmp_path / "figures"
    assert plot_main(["--input", str(smoke), "--out", str(out), "--reps", "300"]) == 0
    for name in ("latency_cdf", "learning_curves", "interval_estimates",
                 "probability_of_improvement", "region_gain_vs_local"):  # fmt: skip
        assert (out / f"{name}.png").stat().st_size > 0
        assert (out / f"{name}.pdf").stat().st_size > 0
    report = (out / "results.md").read_text()
    assert "python -m scripts.run_experiment experiment=smoke" in report
    assert "## Incomplete runs\n\n(none)" in report


def test_a_cut_run_is_listed_then_resumed_while_finished_jobs_are_skipped(
    smoke: Path, tmp_path: Path
) -> None:
    sweep = tmp_path / "sweep"
    shutil.copytree(smoke, sweep, ignore=shutil.ignore_patterns("collected"))
    cut = sweep / "seed=1,strategy=local"
    shutil.rmtree(cut)
    # an interrupted job: its first round done and committed, the second not
    cfg = compose(["experiment=smoke", "strategy=local", "seed=1"])
    federate(replace(cfg, federation=replace(cfg.federation, rounds=1)), cut)
    state = json.loads((cut / "state.json").read_text())
    state.update(rounds=2, complete=False)
    (cut / "state.json").write_text(json.dumps(state))
    config = json.loads((cut / "config.json").read_text())
    (cut / "config.json").write_text(json.dumps({**config, "federation.rounds": 2}))

    collected = collect(sweep)
    assert collected.incomplete == ["seed=1,strategy=local"]
    before = {job: (sweep / job / "metrics.csv").read_bytes() for job in JOBS}
    round_one = [r for r in rows_of(cut / "metrics.csv") if r["round"] in ("0", "1")]

    run_experiment(sweep)
    for job in JOBS:
        attempts = json.loads((sweep / job / "job.json").read_text())["attempts"]
        if job == "seed=1,strategy=local":
            assert json.loads((cut / "state.json").read_text())["last_round"] == 2
            assert [a["status"] for a in attempts] == ["complete"]  # the resume
            rows = rows_of(cut / "metrics.csv")
            assert [r for r in rows if r["round"] in ("0", "1")] == round_one
            assert {r["round"] for r in rows} == {"0", "1", "2"}
        else:
            assert len(attempts) == 1  # skipped: no second attempt
            assert (sweep / job / "metrics.csv").read_bytes() == before[job]
    assert collect(sweep).incomplete == []


def test_the_notebook_runs_on_the_smoke_results(smoke: Path) -> None:
    import nbformat
    from nbclient import NotebookClient

    notebook = nbformat.read(
        PROJECT_ROOT / "notebooks" / "inspect_results.ipynb", as_version=4
    )
    os.environ["RESULTS_DIR"] = str(smoke)
    try:
        NotebookClient(
            notebook,
            timeout=600,
            kernel_name="python3",
            resources={"metadata": {"path": str(PROJECT_ROOT)}},
        ).execute()
    finally:
        del os.environ["RESULTS_DIR"]
    outputs = "".join(
        str(o.get("text", "")) + str(o.get("data", {}).get("text/plain", ""))
        for cell in notebook.cells
        if cell.cell_type == "code"
        for o in cell.outputs
    )
    assert "fedavg" in outputs and "local" in outputs
