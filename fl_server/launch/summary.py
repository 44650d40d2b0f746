"""The closing table of a run: the learned policy against every baseline.

Read from the run folder's ``metrics.jsonl``: the last server-side evaluation of the
learned policy and the baselines' round-0 evaluation, on the same held-out episodes of
every region, averaged over regions. A figure that was not measured prints ``-``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

SUMMARY_COLUMNS = {
    "mean_reward": [  # two-tier
        ("mean_reward", "reward", "{:>10.3f}"),
        ("latency_p95_ms", "p95 ms", "{:>10.1f}"),
        ("slo_violation_rate", "SLO viol", "{:>10.3f}"),
        ("cost_usd_per_1k", "USD/1k", "{:>10.4f}"),
        ("carbon_g_per_1k", "gCO2/1k", "{:>10.3f}"),
    ],
    "latency_reduction_pct": [  # rescheduling
        ("latency_reduction_pct", "lat red %", "{:>10.2f}"),
        ("latency_after_ms", "after ms", "{:>10.1f}"),
        ("migrations", "moves", "{:>10.2f}"),
        ("invalid_actions", "invalid", "{:>10.2f}"),
    ],
}
"""Columns of the final table per env kind, keyed (and ranked) by its headline score."""


def summary(folder: Path) -> str:
    """Table of the last evaluated round: learned policy vs baselines, same episodes."""
    metrics = folder / "metrics.jsonl"
    if not metrics.exists():
        return f"(no metrics in {folder})"
    rows = [json.loads(line) for line in metrics.read_text().splitlines() if line]
    evals = [r for r in rows if r["phase"] == "server-eval"]
    if not evals:
        return "(no server-side evaluation: federation.eval_every=0)"
    last = max(r["round"] for r in evals)
    learned = ("global", "local")
    groups: dict[str, list[dict[str, Any]]] = {}
    for row in evals:
        if row["round"] == last and row["policy"] in learned:
            groups.setdefault(f"{row['policy']} (learned)", []).append(row)
        elif row["round"] == 0 and row["policy"] not in learned:
            groups.setdefault(row["policy"], []).append(row)
    score = next((k for k in SUMMARY_COLUMNS if any(k in r for r in evals)), None)
    if score is None:
        return "(no known headline metric in the evaluation rows)"
    columns = SUMMARY_COLUMNS[score]
    regions = list(dict.fromkeys(r["region"] for g in groups.values() for r in g))

    def mean(group: list[dict[str, Any]], key: str) -> float | None:
        values = [r[key] for r in group if r.get(key) is not None]
        return float(np.mean(values)) if values else None

    head = f"{'policy':<18}" + "".join(f"{title:>10}" for _, title, _ in columns)
    lines = [
        f"Held-out evaluation, round {last}, mean over {', '.join(regions)}:",
        head,
        "-" * len(head),
    ]

    def rank(item: tuple[str, list[dict[str, Any]]]) -> float:
        value = mean(item[1], score)
        return -value if value is not None else float("inf")

    for name, group in sorted(groups.items(), key=rank):
        cells = [
            fmt.format(value)
            if (value := mean(group, key)) is not None
            else f"{'-':>10}"
            for key, _, fmt in columns
        ]
        lines.append(f"{name:<18}" + "".join(cells))
    return "\n".join(lines)
