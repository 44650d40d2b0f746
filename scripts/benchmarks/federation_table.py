"""The federated rescheduling table: one global policy per training seed, vs greedy.

Reads what a federated run and its transfer leave (docs/quality/reschedule.md §8):
the federation's ``metrics.jsonl`` (the server's evaluation of greedy at round 0 and
of the global policy every ``eval_every`` rounds, per cluster and evaluation seed)
and ``quality_reschedule transfer --checkpoint`` lines (zero-shot and fine-tuned
figures on configs no client had). One row per cluster: greedy, the global policy's
mean over training seeds with a 95 % stratified-bootstrap CI (rliable, as
:mod:`scripts.benchmarks.reschedule_table`), its gain over greedy, and how many
training seeds beat greedy. Runs evaluated on other episodes are refused.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from scripts.benchmarks.reschedule_table import read_lines, versus_greedy

METRIC = "latency_reduction_pct"


def _row(
    cluster: str, how: str, greedy: float, greedy_moves: float, runs: list[tuple]
) -> dict[str, Any]:
    """One row from (learned %, moves) per training seed."""
    return {
        "cluster": cluster,
        "how": how,
        "greedy_moves": greedy_moves,
        **versus_greedy([value for value, _ in runs], greedy),
        "learned_moves": float(np.mean([moves for _, moves in runs])),
    }


def _agree(seen: dict[str, float], key: str, value: float, source: Path) -> None:
    """Greedy's figure of one cluster must be the same in every run (same episodes)."""
    if key in seen and not math.isclose(seen[key], value, abs_tol=1e-6):
        raise ValueError(
            f"{source}: greedy on {key} is {value:.3f}, another run has "
            f"{seen[key]:.3f}: the runs were evaluated on different episodes"
        )
    seen[key] = value


def _same_length(seen: dict[str, float], key: str, value: float, source: Path) -> None:
    """Runs pooled in one row must be equally long: an early stop would hide in it."""
    if key in seen and seen[key] != value:
        raise ValueError(
            f"{source}: {key} is {value:g}, another run's is {seen[key]:g}: "
            "runs of different lengths are not pooled"
        )
    seen[key] = value


def federation_rows(paths: Iterable[Path]) -> list[dict[str, Any]]:
    """Rows of the clusters that trained: the global policy at its last evaluation."""
    greedy: dict[str, float] = {}
    greedy_moves: dict[str, float] = {}
    lengths: dict[str, float] = {}
    runs: dict[str, list[tuple]] = {}
    for path in paths:
        evals = [r for r in read_lines(path) if r.get("phase") == "server-eval"]
        rounds = [r["round"] for r in evals if r["policy"] == "global"]
        if not rounds or not any(r["policy"] == "greedy" for r in evals):
            raise ValueError(
                f"{path}: expected server evaluations of greedy and global"
            )
        last = max(rounds)
        _same_length(lengths, "the last evaluated round", float(last), path)
        for cluster in sorted({r["region"] for r in evals}):
            base = [
                r for r in evals if r["region"] == cluster and r["policy"] == "greedy"
            ]
            final = [
                r
                for r in evals
                if r["region"] == cluster
                and r["policy"] == "global"
                and r["round"] == last
            ]
            _agree(greedy, cluster, float(np.mean([r[METRIC] for r in base])), path)
            greedy_moves[cluster] = float(np.mean([r["migrations"] for r in base]))
            runs.setdefault(cluster, []).append(
                (
                    float(np.mean([r[METRIC] for r in final])),
                    float(np.mean([r["migrations"] for r in final])),
                )
            )
    return [
        _row(c, "trained", greedy[c], greedy_moves[c], runs[c]) for c in sorted(runs)
    ]


def transfer_rows(paths: Iterable[Path]) -> list[dict[str, Any]]:
    """Rows of the unseen configs: zero-shot, and after the longest fine-tuning."""
    greedy: dict[str, float] = {}
    greedy_moves: dict[str, float] = {}
    zero: dict[str, list[tuple]] = {}
    tuned: dict[str, list[tuple]] = {}
    lengths: dict[str, float] = {}
    for path in paths:
        last_tuned: dict[str, dict[str, Any]] = {}
        for record in read_lines(path):
            test = record.get("test")
            if test is None:
                continue
            if "zero_shot" in record:
                _agree(greedy, test, float(record["greedy"][METRIC]), path)
                greedy_moves[test] = float(record["greedy"]["migrations"])
                shot = record["zero_shot"]
                zero.setdefault(test, []).append((shot[METRIC], shot["migrations"]))
            elif "finetune_steps" in record:
                last_tuned[test] = record
        for test, record in last_tuned.items():
            steps = float(record["finetune_steps"])
            _same_length(lengths, f"fine-tuning on {test}", steps, path)
            tuned.setdefault(test, []).append((record[METRIC], record["migrations"]))
    rows = [
        _row(t, "zero-shot", greedy[t], greedy_moves[t], zero[t]) for t in sorted(zero)
    ]
    rows += [
        _row(t, "fine-tuned", greedy[t], greedy_moves[t], tuned[t])
        for t in sorted(tuned)
        if t in greedy
    ]
    return rows


def markdown(rows: Sequence[dict[str, Any]]) -> str:
    """The rows as a Markdown table."""
    head = (
        "cluster",
        "how",
        "greedy % (moves)",
        "global policy % mean [95% CI] (moves)",
        "global - greedy [95% CI]",
        "seeds > greedy",
    )
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        cells = (
            r["cluster"],
            r["how"],
            f"{r['greedy']:.2f} ({r['greedy_moves']:.1f})",
            f"{r['learned']:.2f} [{r['ci_low']:.2f}, {r['ci_high']:.2f}] "
            f"({r['learned_moves']:.1f})",
            f"{r['gain']:+.2f} [{r['gain_low']:+.2f}, {r['gain_high']:+.2f}]",
            f"{r['seeds_above_greedy']} of {r['seeds']}",
        )
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)
