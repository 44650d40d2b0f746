"""The held-out rescheduling table: learned vs greedy vs the offline reference.

Reads the JSON lines the lab writes (``quality_reschedule train ... > <tag>.jsonl``:
first the greedy baseline of the run's env settings, then one record per training
chunk; ``quality_reschedule headroom`` lines give the reference) and prints one
Markdown row per (config, variant): greedy, the learned policy's mean over training
seeds with a 95% stratified-bootstrap CI (rliable, through :mod:`policies.stats`),
its gain over greedy, how many seeds beat greedy, and the gap to the reference.
Greedy and the reference are deterministic on the shared held-out episodes, so the
gain's interval is the learned mean's interval shifted by greedy's figure.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from policies.stats import interval_estimates

DYNAMIC_KEY = "latency_mean_reduction_pct"
"""Dynamic (fixed-horizon) runs are judged on the latency averaged over the horizon."""


@dataclass
class Group:
    """The runs of one config under one set of overrides."""

    config: str
    overrides: tuple[str, ...]
    greedy: dict[str, float]
    finals: list[dict[str, float]] = field(default_factory=list)

    @property
    def dynamic(self) -> bool:
        """Fixed-horizon runs (their greedy line has the horizon average)."""
        return DYNAMIC_KEY in self.greedy

    @property
    def metric(self) -> str:
        """The figure the group is judged on."""
        return DYNAMIC_KEY if self.dynamic else "latency_reduction_pct"


def read_lines(path: Path) -> list[dict[str, Any]]:
    """The JSON objects of a lab log (other lines, e.g. warnings, are skipped)."""
    records = []
    for line in path.read_text().splitlines():
        if line.startswith("{"):
            records.append(json.loads(line))
    return records


def group_runs(paths: Iterable[Path], min_steps: int = 0) -> list[Group]:
    """Training logs grouped by (config, overrides); a run's last chunk is its result.

    Raises:
        ValueError: a log without its greedy line, or two logs of one group whose
            greedy figures differ (they were not evaluated on the same episodes).
    """
    groups: dict[tuple[str, tuple[str, ...]], Group] = {}
    for path in sorted(paths):
        records = read_lines(path)
        heads = [r for r in records if "config" in r and "steps" not in r]
        chunks = [r for r in records if "steps" in r and "train_s" in r]
        if not chunks:
            continue  # a headroom or unfinished log
        if not heads:
            raise ValueError(f"{path}: expected the greedy line first, found none")
        head, final = heads[0], chunks[-1]
        if final["steps"] < min_steps:
            continue
        key = (str(head["config"]), tuple(head.get("overrides", ())))
        greedy = {k: v for k, v in head.items() if isinstance(v, float | int)}
        group = groups.setdefault(key, Group(key[0], key[1], greedy))
        if group.greedy != greedy:
            raise ValueError(
                f"{path}: greedy figures differ from the group's first log: the runs "
                "were not evaluated on the same held-out episodes"
            )
        group.finals.append(final)
    return list(groups.values())


def references(paths: Iterable[Path]) -> dict[str, dict[str, float]]:
    """The reference search's figures per config, from headroom logs."""
    out: dict[str, dict[str, float]] = {}
    for path in paths:
        for record in read_lines(path):
            if "reference_reduction_pct" in record:
                out[str(record["config"])] = record
    return out


def _fmt(value: float, digits: int = 1, sign: str = "") -> str:
    return "-" if math.isnan(value) else f"{value:{sign}.{digits}f}"


def versus_greedy(values: Sequence[float], greedy: float) -> dict[str, Any]:
    """One learned figure per training seed against greedy's deterministic one.

    The mean with its 95 % stratified-bootstrap CI, the gain (its interval is the
    mean's, shifted), and how many seeds beat greedy.
    """
    scores = np.array([[value] for value in values], dtype=float)
    (estimate,) = interval_estimates({"learned": scores}, estimators=("mean",))
    return {
        "greedy": greedy,
        "learned": estimate.point,
        "ci_low": estimate.ci_low,
        "ci_high": estimate.ci_high,
        "gain": estimate.point - greedy,
        "gain_low": estimate.ci_low - greedy,
        "gain_high": estimate.ci_high - greedy,
        "seeds": len(values),
        "seeds_above_greedy": int((scores[:, 0] > greedy).sum()),
    }


def group_row(group: Group, reference: dict[str, float] | None) -> dict[str, Any]:
    """The figures of one table row."""
    metric = group.metric
    greedy = float(group.greedy[metric])
    row: dict[str, Any] = {
        "config": group.config,
        "variant": "dynamic" if group.dynamic else "static",
        "overrides": list(group.overrides),
        "metric": metric,
        "greedy_moves": float(group.greedy["migrations"]),
        **versus_greedy([f[metric] for f in group.finals], greedy),
        "learned_moves": float(np.mean([f["migrations"] for f in group.finals])),
        "steps": int(np.median([f["steps"] for f in group.finals])),
        "train_s": float(np.median([f["train_s"] for f in group.finals])),
        "reference": math.nan,
        "reference_displaced": math.nan,
    }
    if reference is not None and not group.dynamic:
        row["reference"] = float(reference["reference_reduction_pct"])
        row["reference_displaced"] = float(reference["reference_displaced"])
    return row


HEADER = (
    "config",
    "variant",
    "greedy % (moves)",
    "learned % mean [95% CI] (moves)",
    "learned - greedy [95% CI]",
    "seeds > greedy",
    "reference % (displaced)",
    "learned's gap to reference",
    "train s (median)",
)


def markdown(rows: Sequence[dict[str, Any]], show_overrides: bool = False) -> str:
    """The table as Markdown, one line per row (overrides beside the variant)."""
    lines = ["| " + " | ".join(HEADER) + " |", "|" + "---|" * len(HEADER)]
    for r in rows:
        variant = r["variant"]
        if show_overrides and r["overrides"]:
            variant += ": `" + " ".join(r["overrides"]) + "`"
        cells = (
            r["config"],
            variant,
            f"{_fmt(r['greedy'], 2)} ({_fmt(r['greedy_moves'])})",
            f"{_fmt(r['learned'], 2)} [{_fmt(r['ci_low'], 2)}, "
            f"{_fmt(r['ci_high'], 2)}] ({_fmt(r['learned_moves'])})",
            f"{_fmt(r['gain'], 2, '+')} [{_fmt(r['gain_low'], 2, '+')}, "
            f"{_fmt(r['gain_high'], 2, '+')}]",
            f"{r['seeds_above_greedy']} of {r['seeds']}",
            f"{_fmt(r['reference'], 2)} ({_fmt(r['reference_displaced'])})",
            _fmt(r["reference"] - r["learned"], 2),
            f"{r['train_s']:.0f}",
        )
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def table(
    train_logs: Iterable[Path],
    headroom_logs: Iterable[Path],
    min_steps: int = 0,
    show_overrides: bool = False,
) -> tuple[list[dict[str, Any]], str]:
    """Rows and their Markdown, static configs first, then by config and overrides."""
    refs = references(headroom_logs)
    groups = group_runs(train_logs, min_steps)
    groups.sort(key=lambda g: (g.dynamic, g.config, g.overrides))
    rows = [group_row(g, refs.get(g.config)) for g in groups]
    return rows, markdown(rows, show_overrides)
