"""Figures and tables of an experiment: ``python -m scripts.plot_results``.

``--input`` is an experiment folder (``multirun/<name>``) or the ``collected``
folder of ``scripts.collect``; ``--out`` receives PNG + PDF figures (latency CDF,
learning curves, interval estimates, probability of improvement, Pareto front,
per-region gain, rescheduling latency vs moves: each where the experiment has the
data), the CSVs behind them, and ``results.md`` (tables as ``mean [low, high]`` with
the commands that made them).

    python -m scripts.plot_results --input multirun/strategies --out figures/strategies
"""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

import pandas as pd

from analysis import figures
from analysis.collect import Collected, collect, load_tables
from analysis.report import write_report
from analysis.summary import (
    default_reference,
    learning_curves,
    region_gains,
    summary_table,
)
from policies.stats import DEFAULT_REPS


def load(path: Path) -> Collected:
    """An experiment folder, or a folder of collected tables."""
    if (path / "runs.csv").exists():
        return load_tables(path)
    return collect(path)


def make_all(
    collected: Collected,
    out: Path,
    reference: str | None = None,
    reps: int = DEFAULT_REPS,
    seed: int = 0,
    command: str = "",
) -> list[Path]:
    """Every figure and table the experiment has data for; returns the files."""
    out.mkdir(parents=True, exist_ok=True)
    summary = summary_table(collected, reference=reference, reps=reps, seed=seed)
    groups = sorted(collected.runs["group"].dropna().astype(str).unique())
    gain_reference = reference or default_reference(groups) or "local"
    gains = region_gains(collected, reference=gain_reference, reps=reps, seed=seed)
    curves = learning_curves(collected, reps=reps, seed=seed)
    written: list[Path] = []
    written += figures.latency_cdf(collected, out)
    written += figures.learning_curves(curves, out)
    written += figures.interval_plot(summary, out)
    written += figures.poi_plot(summary, out)
    pareto = pd.DataFrame()
    weights = [c for c in ("reward_cost", "reward_carbon") if c in collected.runs]
    if collected.env == "two_tier" and any(
        collected.runs[c].nunique() > 1 for c in weights
    ):
        files, pareto = figures.pareto_front(collected, out)
        written += files
    written += figures.region_gain_plot(gains, out, gain_reference)
    written += figures.reschedule_plot(collected, out)
    for name, frame in (
        ("summary.csv", summary),
        ("region_gains.csv", gains),
        ("learning_curves.csv", curves),
        ("pareto.csv", pareto),
    ):
        if not frame.empty:
            frame.to_csv(out / name, index=False, lineterminator="\n")
            written.append(out / name)
    commands = {
        "collect": f"python -m scripts.collect {collected.root}",
        "plot": command
        or f"python -m scripts.plot_results --input {collected.root} --out {out}",
    }
    experiment = collected.runs["experiment"].dropna().unique()
    if len(experiment) and (collected.root / "multirun.yaml").exists():
        commands = {
            "run": f"python -m scripts.run_experiment experiment={experiment[0]}",
            **commands,
        }
    written.append(
        write_report(
            out / "results.md", collected, summary, gains, pareto, commands, written
        )
    )
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m scripts.plot_results", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--input", type=Path, required=True, help="experiment folder")
    parser.add_argument("--out", type=Path, required=True, help="figures folder")
    parser.add_argument("--reference", help="reference policy (default local)")
    parser.add_argument("--reps", type=int, default=DEFAULT_REPS, help="resamples")
    parser.add_argument("--seed", type=int, default=0, help="bootstrap seed")
    args = parser.parse_args(argv)
    try:
        collected = load(args.input)
    except FileNotFoundError as err:
        parser.error(str(err))
    if collected.runs.empty:
        parser.error(f"--input: no run folder in {args.input}")
    command = "python -m scripts.plot_results " + shlex.join(
        sys.argv[1:] if argv is None else argv
    )
    written = make_all(
        collected, args.out, args.reference, args.reps, args.seed, command
    )
    for run in collected.incomplete:
        print(f"incomplete (not in the statistics): {run}")
    for path in written:
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
