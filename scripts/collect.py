"""Gather an experiment into tidy tables: ``python -m scripts.collect <folder>``.

Writes, into ``<experiment dir>/collected`` (or ``--out``):

* ``runs.csv``: one row per run (group, training seed, config, complete, wall time);
* ``evals.csv``: every server-side evaluation row (round, policy, region,
  ``train_seed``, ``eval_seed``, ``env_steps``, metrics);
* ``latency_quantiles.csv`` and, for rescheduling, ``episodes.csv``;
* ``summary.csv``: estimator, point, ci_low, ci_high, n_runs, n_tasks, reps,
  ci_level per metric and policy (:mod:`analysis.summary`).

Incomplete runs are printed and marked ``complete = 0``; they never enter the
statistics.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from analysis.collect import collect, write_tables
from analysis.summary import summary_table
from policies.stats import DEFAULT_REPS


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m scripts.collect", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("experiment", type=Path, help="experiment (sweep) folder")
    parser.add_argument("--out", type=Path, help="default: <experiment>/collected")
    parser.add_argument(
        "--reference", help="policy of the probability of improvement (default local)"
    )
    parser.add_argument("--reps", type=int, default=DEFAULT_REPS, help="resamples")
    parser.add_argument("--seed", type=int, default=0, help="bootstrap seed")
    args = parser.parse_args(argv)
    out = args.out or args.experiment / "collected"
    try:
        collected = collect(args.experiment)
    except FileNotFoundError as err:
        parser.error(str(err))
    if collected.runs.empty:
        parser.error(f"experiment folder: no run folder in {args.experiment}")
    paths = write_tables(collected, out)
    summary = summary_table(
        collected, reference=args.reference, reps=args.reps, seed=args.seed
    )
    summary_path = out / "summary.csv"
    summary.to_csv(summary_path, index=False, lineterminator="\n")
    paths.append(summary_path)
    runs = collected.runs
    print(f"{int(runs['complete'].sum())} of {len(runs)} runs complete")
    for run in collected.incomplete:
        print(f"incomplete: {run}")
    for path in paths:
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
