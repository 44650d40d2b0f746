"""Whether one policy's carbon front dominates the others' points (issue 15, goal 2).

Reads the JSON reports of ``python -m scripts.benchmarks.carbon_bound`` (one per
carbon weight, measured on one protocol) and asks, for each point of every other
policy (latency-greedy included, at 0 % reduction), which points of the candidate
policy dominate it: a carbon reduction at least as large and no more of each
latency objective, better in one. Which latency objectives is the caller's choice
(pooled p95, SLO misses, each type's p95), because the goal names none and the
answer depends on it: the report gives each set asked for.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from analysis.carbon_bound import check_protocol
from analysis.pareto import non_dominated

OBJECTIVES = ("p95_all", "slo", "p95_types")
"""Latency objectives besides carbon: the pooled p95, the SLO-miss rate, and every
request type's p95 (one objective per type)."""


def _values(policy: dict[str, Any], objectives: Sequence[str]) -> list[float]:
    """The point's objectives, all minimised (carbon as minus the reduction)."""
    values = [-float(policy["reduction_pct"])]
    for objective in objectives:
        if objective == "p95_all":
            values.append(float(policy["p95_all_ms"]))
        elif objective == "slo":
            values.append(float(policy["slo_miss_pct"]))
        elif objective == "p95_types":
            for request_type in sorted(policy["p95_ms"]):
                p95 = policy["p95_ms"][request_type]
                if p95 is None:
                    raise ValueError(
                        f"p95_types: {policy['policy']} has no p95 for "
                        f"{request_type} (no such request): judge on p95_all"
                    )
                values.append(float(p95))
        else:
            raise ValueError(
                f"objectives: expected some of {OBJECTIVES}, got {objective!r}"
            )
    return values


def front_points(reports: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Every policy of every report as a labelled point, latency-greedy once.

    A label is ``<policy> (<carbon weight>)``; one already taken (the same policy
    and weight measured again, e.g. at other limits) names its report too.

    Raises:
        ValueError: no report, or a report measured on another protocol than the
            first (naming the key), or a report without its ``carbon_weight``.
    """
    if not reports:
        raise ValueError("reports: expected at least one carbon_bound report, got none")
    first = reports[0]
    reference = first["latency_greedy"]
    out = [
        reference
        | {"label": "latency_greedy", "policy": "latency_greedy", "reduction_pct": 0.0}
    ]
    check_protocol(first, reports, "the first report's")
    for i, report in enumerate(reports):
        weight = report.get("carbon_weight")
        if weight is None:
            raise ValueError(
                f"reports[{i}].carbon_weight: expected the weight it was measured "
                "at (a front sweeps it), got none"
            )
        for policy in report["policies"]:
            label = f"{policy['policy']} ({weight:g})"
            if any(p["label"] == label for p in out):  # another setting, same names
                label = f"{label} [reports[{i}]]"
            out.append(policy | {"label": label, "carbon_weight": weight})
    return out


def dominance(
    points: Sequence[dict[str, Any]],
    candidate: str | Sequence[str],
    objectives: Sequence[str],
) -> dict[str, Any]:
    """Which of ``candidate``'s points dominate each other point, on ``objectives``.

    ``candidate``: one policy, or several judged as one front (a rule at several
    settings).

    Raises:
        ValueError: a candidate has no point, or an unknown objective.
    """
    names = [candidate] if isinstance(candidate, str) else list(candidate)
    known = sorted({p["policy"] for p in points})
    missing = [name for name in names if name not in known]
    if not names or missing:
        raise ValueError(
            f"candidate: expected some of {known}, got {missing or names!r}"
        )
    mine = [p for p in points if p["policy"] in names]
    others = [p for p in points if p["policy"] not in names]
    mine_values = np.array([_values(p, objectives) for p in mine])
    rows = []
    for other in others:
        target = np.array(_values(other, objectives))
        no_worse = np.all(mine_values <= target, axis=1)
        better = np.any(mine_values < target, axis=1)
        rows.append(
            {
                "point": other["label"],
                "dominated_by": [
                    m["label"]
                    for m, d in zip(mine, no_worse & better, strict=True)
                    if d
                ],
            }
        )
    every = np.array([_values(p, objectives) for p in [*mine, *others]])
    front = non_dominated(every)
    return {
        "objectives": ["carbon", *objectives],
        "candidate": names,
        "dominated": sum(bool(r["dominated_by"]) for r in rows),
        "others": len(rows),
        "dominates_all": all(r["dominated_by"] for r in rows),
        "points": rows,
        "front": [
            p["label"] for p, keep in zip([*mine, *others], front, strict=True) if keep
        ],
    }
