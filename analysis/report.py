"""``results.md``: the experiment's tables as ``mean [low, high]``, with commands.

Numbers live in the CSVs; this file only renders them for people, each table under
the command that made it, and lists every run that did not finish.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from analysis.collect import Collected


def interval(point: float, low: float, high: float, digits: int = 3) -> str:
    """``point [low, high]`` (just the point when there is no interval)."""
    if not math.isfinite(point):
        return "-"
    text = f"{point:.{digits}f}"
    if math.isfinite(low) and math.isfinite(high):
        text += f" [{low:.{digits}f}, {high:.{digits}f}]"
    return text


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A GitHub-flavoured Markdown table."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def _digits(metric: str) -> int:
    if metric.endswith("_ms") or metric.endswith("_pct") or metric == "migrations":
        return 1
    if metric.startswith("cost"):
        return 4
    return 3


def _runs(n: int, kind: str) -> str:
    """``3 train seeds`` / ``1 eval seed``: what the interval resampled."""
    plural = "s" if n != 1 else ""
    return f"{n} {'train' if kind == 'train_seeds' else 'eval'} seed{plural}"


def _by_algorithm(summary: pd.DataFrame, metrics: Sequence[str]) -> str:
    rows = summary[summary["metric"].isin(metrics) & (summary["estimator"] == "mean")]
    if rows.empty:
        return "(no data)"
    algorithms = list(dict.fromkeys(rows["algorithm"]))
    body = []
    for algorithm in algorithms:
        mine = rows[rows["algorithm"] == algorithm].set_index("metric")
        kind = str(mine["runs_are"].iloc[0])
        n = int(mine["n_runs"].iloc[0])
        cells = [
            interval(
                mine.at[m, "point"],
                mine.at[m, "ci_low"],
                mine.at[m, "ci_high"],
                _digits(m),
            )
            if m in mine.index
            else "-"
            for m in metrics
        ]
        body.append([algorithm, _runs(n, kind), *cells])
    return markdown_table(["policy", "runs", *metrics], body)


def write_report(
    path: Path,
    collected: Collected,
    summary: pd.DataFrame,
    gains: pd.DataFrame,
    pareto: pd.DataFrame,
    commands: dict[str, str],
    figures: Sequence[Path],
) -> Path:
    """Render the tables into ``path`` (Markdown)."""
    runs = collected.runs
    complete = int(runs["complete"].sum()) if not runs.empty else 0
    levels = summary["ci_level"].dropna().unique() if not summary.empty else []
    reps = summary["reps"].dropna().unique() if not summary.empty else []
    parts = [
        f"# Results: {collected.root.name}",
        "",
        f"{complete} of {len(runs)} runs complete. Intervals: "
        f"{', '.join(f'{100 * x:g}%' for x in levels) or '-'} percentile bootstrap "
        f"({', '.join(str(int(r)) for r in reps) or '-'} resamples), stratified by "
        "task (region); learned policies resample training seeds, fixed heuristics "
        "their evaluation seeds.",
        "",
        "Made by:",
        "",
        "```bash",
        *commands.values(),
        "```",
        "",
    ]
    norm = summary[
        (summary["metric"] == "normalised_score")
        & summary["estimator"].isin(("iqm", "mean"))
    ]
    if not norm.empty:
        body = []
        for algorithm, mine in norm.groupby("algorithm", sort=False):
            by = mine.set_index("estimator")
            body.append(
                [
                    algorithm,
                    _runs(int(by["n_runs"].iloc[0]), str(by["runs_are"].iloc[0])),
                    str(int(by["n_tasks"].iloc[0])),
                    *(
                        interval(
                            by.at[e, "point"], by.at[e, "ci_low"], by.at[e, "ci_high"]
                        )
                        if e in by.index
                        else "-"
                        for e in ("iqm", "mean")
                    ),
                ]
            )
        parts += [
            "## Normalised score (0 = random-valid, 1 = best heuristic per region)",
            "",
            markdown_table(["policy", "runs", "tasks", "IQM", "mean"], body),
            "",
        ]
    poi = summary[summary["estimator"].str.startswith("poi_vs_")]
    if not poi.empty:
        reference = str(poi["estimator"].iloc[0]).removeprefix("poi_vs_")
        parts += [
            f"## Probability of improvement over {reference}",
            "",
            markdown_table(
                ["policy", f"P(policy > {reference})"],
                [
                    [a, interval(p, lo, hi)]
                    for a, p, lo, hi in poi[
                        ["algorithm", "point", "ci_low", "ci_high"]
                    ].itertuples(index=False)
                ],
            ),
            "",
        ]
    raw = [m for m in dict.fromkeys(summary["metric"]) if m != "normalised_score"]
    if raw:
        parts += [
            "## Metrics in their units (mean over regions and evaluation seeds)",
            "",
            _by_algorithm(summary, raw),
            "",
        ]
    if not gains.empty:
        body = [
            [r.region, r.group, r.reference, interval(r.gain, r.ci_low, r.ci_high)]
            for r in gains.itertuples(index=False)
        ]
        parts += [
            "## Per-region gain (normalised score, difference of means over "
            "training seeds)",
            "",
            markdown_table(["region", "policy", "over", "gain"], body),
            "",
        ]
    if not pareto.empty:
        parts += [
            "## Pareto fronts (hypervolume, both objectives minimised)",
            "",
            markdown_table(
                list(pareto.columns),
                [
                    [f"{v:.4g}" if isinstance(v, float) else str(v) for v in row]
                    for row in pareto.itertuples(index=False)
                ],
            ),
            "",
        ]
    incomplete = collected.incomplete
    parts += [
        "## Incomplete runs",
        "",
        "\n".join(f"- `{r}`" for r in incomplete) if incomplete else "(none)",
        "",
    ]
    if figures:
        parts += ["## Figures", ""]
        parts += [f"- `{f.name}`" for f in figures if f.suffix == ".png"]
        parts.append("")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(parts))
    return path
