"""Policy quality: learned vs the strongest heuristics, one training seed (issue 15).

Two-tier: the learned policy's mean reward per decision against ``weighted_greedy``
(the best myopic rule for the run's reward weights) on held-out seeds. Rescheduling:
the learned policy's latency reduction against one-step greedy and an offline
best-improvement local search (the reference, not a deployable policy). Keys:
``two_tier_learned_reward``, ``two_tier_weighted_greedy_reward``,
``two_tier_gain_pct``, ``reschedule_learned_pct``, ``reschedule_greedy_pct``,
``reschedule_reference_pct``, ``train_s`` (both trainings). Under 20 minutes on 2
cores; the multi-seed tables with confidence intervals are in docs/quality/.
"""

from __future__ import annotations

import argparse
import importlib
from typing import Any

PARTS = ("two_tier", "reschedule")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Which halves to run, and each half's own options."""
    parser.add_argument(
        "--only", choices=PARTS, default=None, help="run one half (default: both)"
    )
    for part in PARTS:
        try:
            module = importlib.import_module(f"scripts.benchmarks.quality_{part}")
        except ModuleNotFoundError:  # a half not written yet: fails when run
            continue
        if hasattr(module, "add_arguments"):
            module.add_arguments(parser)


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Both halves, then the total training time."""
    figures: dict[str, Any] = {}
    train_s = 0.0
    for part in PARTS if args.only is None else (args.only,):
        module = importlib.import_module(f"scripts.benchmarks.quality_{part}")
        result = module.measure(args)
        train_s += float(result.pop(f"{part}_train_s", 0.0))
        figures.update(result)
    figures["train_s"] = round(train_s, 1)
    return figures
