"""The carbon bound's figure: what no policy can beat, and where the policies are.

Reads the JSON reports of ``python -m scripts.benchmarks.carbon_bound``: one with
the bound's frontier (largest carbon reduction any policy can reach at each p95
allowance, SLO misses within the report's allowance) and any number with policies
measured on the same protocol. A policy is drawn at the allowance it uses (its
largest per-type p95 over latency-greedy's, or its pooled p95 over latency-greedy's,
as the frontier reads p95) and its carbon reduction; hollow when its SLO misses
exceed the frontier's allowance (the frontier does not bound it then). The line holds
each computed allowance's bound to its left, back to the previous one: a policy
using an allowance between two computed ones is bounded by the next one up.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt

from analysis.figures import COLUMN_WIDTH, STYLE, colour, save


def latency_factor(
    policy: dict[str, Any], reference: dict[str, Any], pooled: bool
) -> float:
    """The p95 allowance a policy uses, in multiples of latency-greedy's p95."""
    if pooled:
        return float(policy["p95_all_ms"]) / float(reference["p95_all_ms"])
    return max(  # a type no request had (null) has no allowance to use
        float(policy["p95_ms"][t]) / float(reference["p95_ms"][t])
        for t in reference["p95_ms"]
        if policy["p95_ms"][t] is not None and reference["p95_ms"][t] is not None
    )


PROTOCOL_KEYS = ("scenario", "regions", "seeds", "decisions", "latency_greedy")
"""What two reports must share for their policies to be compared."""


def check_protocol(
    reference: dict[str, Any], reports: Sequence[dict[str, Any]], whose: str
) -> None:
    """Every report measured on ``reference``'s protocol.

    Raises:
        ValueError: naming the first report and key that differ.
    """
    for i, report in enumerate(reports):
        for key in PROTOCOL_KEYS:
            if report.get(key) != reference.get(key):
                raise ValueError(
                    f"reports[{i}].{key}: expected {whose} {reference.get(key)!r} "
                    f"(one protocol), got {report.get(key)!r}"
                )


def points(
    bound: dict[str, Any], reports: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    """Every policy of ``reports`` as a point of the figure (checked comparable).

    Raises:
        ValueError: a report measured on another protocol than the bound's (its
            scenario, seeds, decisions or latency-greedy figures differ).
    """
    pooled = bound["goal"]["p95"] == "pooled"
    miss_limit = bound["latency_greedy"]["slo_miss_pct"] + bound["goal"]["slo_points"]
    check_protocol(bound, reports, "the bound's")
    out = []
    for report in reports:
        weight = report.get("carbon_weight")
        for policy in report["policies"]:
            label = policy["policy"] + ("" if weight is None else f" ({weight:g})")
            out.append(
                {
                    "label": label,
                    "policy": policy["policy"],
                    "factor": latency_factor(policy, bound["latency_greedy"], pooled),
                    "reduction_pct": float(policy["reduction_pct"]),
                    "within_slo": float(policy["slo_miss_pct"]) <= miss_limit,
                }
            )
    return out


def carbon_bound_plot(
    bound: dict[str, Any], reports: list[dict[str, Any]], out: Path, name: str
) -> list[Path]:
    """Reduction vs p95 allowance: the bound as a line, policies as markers."""
    frontier = [row for row in bound["frontier"] if row["carbon_g_per_1k"] is not None]
    marks = points(bound, reports)
    finite = [r["p95_factor"] for r in frontier if r["p95_factor"] is not None]
    right = max([*finite, *(p["factor"] for p in marks), 1.0]) * 1.05
    xs = [r["p95_factor"] if r["p95_factor"] is not None else right for r in frontier]
    ys = [r["reduction_pct"] for r in frontier]
    with plt.rc_context(STYLE):
        fig, ax = plt.subplots(figsize=(COLUMN_WIDTH, 2.6))
        ax.fill_between(xs, ys, 100, color="0.9", step="pre", zorder=1)
        ax.step(xs, ys, where="pre", color="black", lw=1.2, zorder=2,
                label="least carbon any policy can emit")  # fmt: skip
        goal = bound["goal"]
        ax.plot([goal["p95_factor"]], [goal["target_reduction_pct"]], marker="*",
                color=colour(3), ms=9, ls="", zorder=4, label="goal 2")  # fmt: skip
        names = sorted({p["policy"] for p in marks})
        for j, name_ in enumerate(names):
            mine = [p for p in marks if p["policy"] == name_]
            for hollow in (False, True):
                group = [p for p in mine if p["within_slo"] != hollow]
                if not group:
                    continue
                ax.scatter(
                    [p["factor"] for p in group],
                    [p["reduction_pct"] for p in group],
                    s=18,
                    marker="os^D"[j % 4],
                    facecolors="none" if hollow else colour(j),
                    edgecolors=colour(j),
                    zorder=3,
                    label=name_ if not hollow else f"{name_} (SLO beyond allowance)",
                )
        reading = "pooled p95" if goal["p95"] == "pooled" else "largest per-type p95"
        ax.set_xlabel(f"{reading} / latency-greedy's")
        ax.set_ylabel("carbon reduction vs\nlatency-greedy (%)")
        ax.set_xlim(0.9, right)
        top = max(
            [*ys, *(p["reduction_pct"] for p in marks), goal["target_reduction_pct"]]
        )
        ax.set_ylim(
            min(0.0, *(p["reduction_pct"] for p in marks)), math.ceil(top / 10) * 10 + 5
        )
        ax.legend(
            loc="upper center", bbox_to_anchor=(0.5, -0.22), ncol=2, frameon=False
        )
        return save(fig, out, name)
