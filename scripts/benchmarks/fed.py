"""Federation overhead on the Deployment Engine: 3 regions x 3 rounds on loopback.

A real SuperLink and three SuperNodes on 127.0.0.1 run FedAvg with about 30 s of
local training per region per round (3 regions share 2 cores) and no evaluation, so
everything else in a round is what the federation costs: message dispatch and the
SuperNodes' polling, ClientApp start-up, weight (de)serialisation, aggregation and the
checkpoint. Figures, from the run's ``metrics.jsonl``:

* ``round_s``: median wall time of a round (server: train messages out -> checkpoint);
* ``train_s``: median over rounds of the slowest region's local training time;
* ``overhead_s``: median over rounds of each round's time minus its slowest
  region's local training: what the federation adds per round, whatever the
  round's length (goal: <= 0.5 s);
* ``overhead_share``: ``(round_s - train_s) / round_s`` (goal: < 0.10).

``--local-steps 4096 --rounds 8`` measures the overhead where rounds are short.

``--isolation subprocess`` measures Flower's default (a fresh ClientApp process per
message) for comparison with the warm executor (``fl_clients.worker``).
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path
from typing import Any

from fl_server.config import compose
from scripts.federate import run as run_federation


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Budget, isolation and folders of the benchmark."""
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--local-steps",
        type=int,
        default=61_440,
        help="env steps per region per round (about 30 s with 3 regions on 2 cores)",
    )
    parser.add_argument("--isolation", choices=["warm", "subprocess"], default="warm")
    parser.add_argument(
        "--app-dir", default="", help="Flower app folder (default: project)"
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=None,
        help="run folder (default outputs/bench/fed-<time>)",
    )


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Run the federation and read its per-round timing back."""
    out = args.out or Path("outputs/bench") / time.strftime("fed-%Y-%m-%d_%H-%M-%S")
    cfg = compose(
        [
            "task=bench-fed",
            "scenario=small",
            "engine=deployment",
            f"engine.isolation={args.isolation}",
            f"engine.app_dir={args.app_dir}",
            "federation=three_regions",
            f"federation.rounds={args.rounds}",
            f"federation.local_steps={args.local_steps}",
            "federation.client_eval=false",
            "federation.eval_every=0",
            "federation.resume=false",
        ]
    )
    folder = run_federation(cfg, out)
    rows = [
        json.loads(line) for line in (folder / "metrics.jsonl").read_text().splitlines()
    ]
    rounds = [r for r in rows if r["phase"] == "round"]
    if len(rounds) != args.rounds:
        raise RuntimeError(
            f"expected {args.rounds} timed rounds in {folder}, got {len(rounds)}"
        )
    round_s = statistics.median(r["fed/round_s"] for r in rounds)
    train_s = statistics.median(r["fed/train_s"] for r in rounds)
    overhead_s = statistics.median(r["fed/round_s"] - r["fed/train_s"] for r in rounds)
    return {
        "round_s": round(round_s, 2),
        "train_s": round(train_s, 2),
        "overhead_s": round(overhead_s, 3),
        "overhead_share": round((round_s - train_s) / round_s, 4),
    }
