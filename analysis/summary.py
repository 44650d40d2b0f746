"""Scores per run and task, and the statistics of ``summary.csv``.

Runs are training seeds, tasks are regions (x scenarios), as in rliable. A run's
score on a task is its learned policy's headline metric at its last evaluation,
averaged over the evaluation seeds (the same episodes for every policy); the
normalised score puts it on the scale of that run's own round-0 heuristics on that
task: 0 = the random-valid policy, 1 = the best heuristic, > 1 beats it. Fixed
heuristics have no training seed: their rows resample evaluation seeds instead
(``runs_are = eval_seeds``), which the tables say.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from analysis.collect import RANDOM, Collected, final_learned, heuristics
from policies.stats import (
    DEFAULT_REPS,
    Estimate,
    difference_of_means,
    interval_estimates,
    normalised,
    probability_of_improvement,
)

RAW_METRICS = {
    "two_tier": (
        "mean_reward",
        "latency_p50_ms",
        "latency_p95_ms",
        "latency_p99_ms",
        "latency_slo_ratio_p95",
        "slo_violation_rate",
        "cost_usd_per_1k",
        "carbon_g_per_1k",
        "energy_j_per_1k",
        "remote_share",
    ),
    "reschedule": (
        "latency_reduction_pct",
        "latency_after_ms",
        "migrations",
        "invalid_actions",
    ),
}
"""Metrics reported in raw units (mean with CI) per env kind."""

SUMMARY_COLUMNS = (
    "metric",
    "algorithm",
    "estimator",
    "point",
    "ci_low",
    "ci_high",
    "n_runs",
    "n_tasks",
    "reps",
    "ci_level",
    "runs_are",
)


def _task(frame: pd.DataFrame) -> pd.Series:
    scenario = frame["scenario"].astype(str) if "scenario" in frame else ""
    return scenario + "/" + frame["region"].astype(str)


def baseline_scale(collected: Collected) -> pd.DataFrame:
    """Per run and task: the random-valid score and the best heuristic's score."""
    rows = heuristics(collected)
    score = collected.score
    if rows.empty or score not in rows:
        return pd.DataFrame(columns=["run", "region", "random", "best", "best_name"])
    means = rows.groupby(["run", "region", "policy"], as_index=False)[score].mean()
    out = []
    for (run, region), group in means.groupby(["run", "region"]):
        by_name = dict(zip(group["policy"], group[score], strict=True))
        others = {k: v for k, v in by_name.items() if k != RANDOM}
        best_name = max(others, key=lambda k: others[k]) if others else None
        out.append(
            {
                "run": run,
                "region": region,
                "random": by_name.get(RANDOM, math.nan),
                "best": others[best_name] if best_name else math.nan,
                "best_name": best_name,
            }
        )
    return pd.DataFrame(out)


def _with_runs(frame: pd.DataFrame, collected: Collected) -> pd.DataFrame:
    info = collected.runs[["run", "group", "train_seed", "complete", "scenario"]]
    return frame.merge(info, on="run", how="left")


def task_scores(collected: Collected, rows: pd.DataFrame | None = None) -> pd.DataFrame:
    """Per run and task: every metric averaged over evaluation seeds, normalised too.

    ``rows`` defaults to the learned policies' last evaluation; pass other
    server-eval rows (a round of the learning curve) to score those.
    """
    rows = final_learned(collected) if rows is None else rows
    if rows.empty:
        return pd.DataFrame()
    numeric = [
        c
        for c in rows.columns
        if c not in ("round", "train_seed", "eval_seed")
        and pd.api.types.is_numeric_dtype(rows[c])
    ]
    means = rows.groupby(["run", "region", "round"], as_index=False)[numeric].mean()
    means = _with_runs(means, collected)
    means["task"] = _task(means)
    scale = baseline_scale(collected)
    means = means.merge(scale, on=["run", "region"], how="left")
    score = collected.score
    means["score"] = means[score] if score in means else math.nan
    means["normalised_score"] = normalised(
        means["score"].to_numpy(), means["random"].to_numpy(), means["best"].to_numpy()
    )
    return means


def matrices(
    scores: pd.DataFrame, column: str, complete_only: bool = True
) -> dict[str, np.ndarray]:
    """Group -> ``(runs x tasks)`` matrix of ``column`` (runs with every task)."""
    if scores.empty or column not in scores:
        return {}
    frame = scores if not complete_only else scores[scores["complete"] == 1]
    frame = frame.dropna(subset=[column])
    tasks = sorted(frame["task"].unique())
    out: dict[str, np.ndarray] = {}
    for group, part in frame.groupby("group"):
        wide = part.pivot_table(index="run", columns="task", values=column)
        wide = wide.reindex(columns=tasks).dropna()
        if len(wide):
            out[str(group)] = wide.to_numpy()
    return out


def heuristic_matrices(collected: Collected, column: str) -> dict[str, np.ndarray]:
    """Heuristic -> ``(eval seeds x tasks)`` matrix.

    Heuristics are the same in every run of a federated sweep (same episodes), so
    they come from its first complete run; an experiment of heuristics only
    (``federation.rounds=0``) reports each sweep cell: ``<heuristic>@<cell>``.
    """
    rows = heuristics(collected)
    runs = collected.runs[collected.runs["complete"] == 1]
    if rows.empty or runs.empty:
        return {}
    only_heuristics = bool((runs["kind"] == "heuristics").all())
    firsts = runs.sort_values("run").groupby("group")["run"].first()
    chosen = firsts if only_heuristics else firsts.iloc[:0]
    if not only_heuristics:
        chosen = pd.Series({"": sorted(runs["run"])[0]})
    out: dict[str, np.ndarray] = {}
    for cell, run in chosen.items():
        part_rows = rows[rows["run"] == run].copy()
        if column == "normalised_score":
            scale = baseline_scale(collected)
            part_rows = part_rows.merge(scale, on=["run", "region"], how="left")
            part_rows[column] = normalised(
                part_rows[collected.score].to_numpy(),
                part_rows["random"].to_numpy(),
                part_rows["best"].to_numpy(),
            )
        if column not in part_rows:
            continue
        for name, part in part_rows.groupby("policy"):
            wide = part.pivot_table(index="eval_seed", columns="region", values=column)
            wide = wide.dropna()
            if len(wide):
                label = f"{name}@{cell}" if only_heuristics else str(name)
                out[label] = wide.to_numpy()
    return out


def _rows(metric: str, estimates: list[Estimate], runs_are: str) -> list[dict]:
    return [
        {
            "metric": metric,
            "algorithm": e.algorithm,
            "estimator": e.estimator,
            "point": e.point,
            "ci_low": e.ci_low,
            "ci_high": e.ci_high,
            "n_runs": e.n_runs,
            "n_tasks": e.n_tasks,
            "reps": e.reps,
            "ci_level": e.ci_level,
            "runs_are": runs_are,
        }
        for e in estimates
    ]


def default_reference(groups: list[str]) -> str | None:
    """``local`` (does federation help?), else ``fedavg``, else the first group."""
    for name in ("local", "fedavg"):
        if name in groups:
            return name
    return groups[0] if groups else None


def summary_table(
    collected: Collected,
    reference: str | None = None,
    reps: int = DEFAULT_REPS,
    seed: int = 0,
    ci_level: float = 0.95,
) -> pd.DataFrame:
    """Every aggregate of the experiment as tidy rows (``summary.csv``)."""
    scores = task_scores(collected)
    rows: list[dict[str, Any]] = []
    kwargs: dict[str, Any] = {"reps": reps, "seed": seed, "ci_level": ci_level}
    norm = matrices(scores, "normalised_score")
    if norm:
        rows += _rows(
            "normalised_score", interval_estimates(norm, **kwargs), "train_seeds"
        )
    heur_norm = heuristic_matrices(collected, "normalised_score")
    if heur_norm:
        rows += _rows(
            "normalised_score",
            interval_estimates(heur_norm, **kwargs),
            "eval_seeds",
        )
    poi_on = norm or matrices(scores, "score")
    reference = reference or default_reference(sorted(poi_on))
    if reference in poi_on and len(poi_on) > 1:
        poi = probability_of_improvement(poi_on, reference, **kwargs)
        metric = "normalised_score" if norm else collected.score
        rows += _rows(metric, poi, "train_seeds")
    for metric in RAW_METRICS.get(collected.env, ()):
        learned = matrices(scores, metric)
        if learned:
            estimates = interval_estimates(learned, estimators=["mean"], **kwargs)
            rows += _rows(metric, estimates, "train_seeds")
        fixed = heuristic_matrices(collected, metric)
        if fixed:
            estimates = interval_estimates(fixed, estimators=["mean"], **kwargs)
            rows += _rows(metric, estimates, "eval_seeds")
    return pd.DataFrame(rows, columns=list(SUMMARY_COLUMNS))


def reference_of(group: str, reference: str, groups: set[str]) -> str | None:
    """The group that ``group`` is compared with (None: none).

    ``reference`` itself or, for sweep cells such as
    ``scenario.heterogeneity=2.0,strategy=fedavg``, the same cell with
    ``strategy=<reference>``.
    """
    if reference in groups:
        return reference if group != reference else None
    items = group.split(",")
    swapped = [
        f"strategy={reference}" if item.startswith("strategy=") else item
        for item in items
    ]
    candidate = ",".join(swapped)
    return candidate if candidate != group and candidate in groups else None


def region_gains(
    collected: Collected,
    reference: str = "local",
    column: str = "normalised_score",
    reps: int = DEFAULT_REPS,
    seed: int = 0,
) -> pd.DataFrame:
    """Per task: each group's mean minus its reference's, over training seeds.

    The reference is the ``reference`` group or, in a sweep that crosses strategies
    with another factor, the same cell trained with ``strategy=<reference>``.
    """
    scores = task_scores(collected)
    if scores.empty or column not in scores:
        return pd.DataFrame()
    scores = scores[scores["complete"] == 1].dropna(subset=[column])
    groups = {str(g) for g in scores["group"].unique()}
    rows = []
    for task, part in scores.groupby("task"):
        for group, mine in part.groupby("group"):
            ref_group = reference_of(str(group), reference, groups)
            ref = part.loc[part["group"] == ref_group, column].to_numpy()
            if ref_group is None or not len(ref):
                continue
            point, low, high = difference_of_means(
                mine[column].to_numpy(), ref, reps=reps, seed=seed
            )
            rows.append(
                {
                    "task": task,
                    "region": mine["region"].iloc[0],
                    "group": group,
                    "reference": ref_group,
                    "metric": column,
                    "gain": point,
                    "ci_low": low,
                    "ci_high": high,
                    "n_runs": len(mine),
                    "n_reference": len(ref),
                }
            )
    return pd.DataFrame(rows)


def learning_curves(
    collected: Collected, reps: int = DEFAULT_REPS, seed: int = 0
) -> pd.DataFrame:
    """Per group and evaluated round: IQM normalised score (CI) vs total env steps.

    Falls back to the mean raw score when runs lack the random baseline.
    """
    evals = collected.evals
    if evals.empty:
        return pd.DataFrame()
    learned = evals[evals["policy"].isin(("global", "local"))]
    scores = task_scores(collected, learned)
    if scores.empty:
        return pd.DataFrame()
    column = "normalised_score" if scores["normalised_score"].notna().any() else "score"
    estimator = "iqm" if column == "normalised_score" else "mean"
    rows = []
    for server_round, part in scores.groupby("round"):
        by_group = matrices(part, column)
        if not by_group:
            continue
        steps = part.groupby("group")["env_steps"].mean()
        for e in interval_estimates(
            by_group, estimators=[estimator], reps=reps, seed=seed
        ):
            rows.append(
                {
                    "group": e.algorithm,
                    "round": int(server_round),
                    "env_steps": float(steps.get(e.algorithm, math.nan)),
                    "metric": column,
                    "estimator": estimator,
                    "point": e.point,
                    "ci_low": e.ci_low,
                    "ci_high": e.ci_high,
                    "n_runs": e.n_runs,
                }
            )
    return pd.DataFrame(rows)
