"""Paper figures of an experiment (``scripts.plot_results``): PNG and PDF each.

Sized for one column (3.4 in wide) with 8-9 pt fonts, the Okabe-Ito colour-blind
safe palette, labelled axes with units, and a legend on every multi-series plot.
Each function returns the files it wrote (none when the experiment lacks the data).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from analysis.collect import LEARNED, Collected, final_learned, heuristics
from analysis.pareto import hypervolume_2d, non_dominated

PALETTE = (
    "#0072B2",
    "#E69F00",
    "#009E73",
    "#D55E00",
    "#CC79A7",
    "#56B4E9",
    "#F0E442",
    "#000000",
)
"""Okabe & Ito (2008): distinguishable with every common colour-vision deficiency."""

COLUMN_WIDTH = 3.4
"""Inches: one column of a two-column paper."""

STYLE: Any = {
    "font.size": 8,
    "axes.labelsize": 8,
    "axes.titlesize": 8,
    "legend.fontsize": 7,
    "xtick.labelsize": 7,
    "ytick.labelsize": 7,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "savefig.bbox": "tight",
    "pdf.fonttype": 42,  # embed TrueType: editable text in the PDF
}

METRIC_LABELS = {
    "normalised_score": "normalised score\n(0 = random, 1 = best heuristic)",
    "score": "score",
    "mean_reward": "mean reward per decision",
    "latency_p95_ms": "p95 latency (ms)",
    "slo_violation_rate": "SLO violation rate",
    "carbon_g_per_1k": "carbon (gCO$_2$ per 1k requests)",
    "cost_usd_per_1k": "cost (USD per 1k requests)",
    "latency_reduction_pct": "latency reduction (%)",
}


def colour(i: int) -> str:
    """The ``i``-th palette colour (cycling)."""
    return PALETTE[i % len(PALETTE)]


STRATEGY_ORDER = (
    "fedavg",
    "fedprox",
    "fedmedian",
    "fedtrimmedavg",
    "local",
    "centralized",
)
"""Fixed colour slots: a strategy keeps its colour in every figure of a paper."""

HEURISTIC_GREY = "0.55"


def group_colour(name: str, names: Sequence[str]) -> str:
    """``name``'s colour among ``names``: its strategy slot, else its rank in ``names``.

    Figures of one experiment see different subsets (the probability-of-improvement
    plot has no reference row), so colours by position would change from figure to
    figure; strategy names get fixed slots, other groups (sweep values) their order.
    """
    if all(str(n) in STRATEGY_ORDER for n in names):
        return colour(STRATEGY_ORDER.index(str(name)))
    return colour(list(names).index(name))


def save(fig: Figure, out: Path, name: str) -> list[Path]:
    """Write ``name``.png (200 dpi) and ``name``.pdf into ``out``; close the figure."""
    out.mkdir(parents=True, exist_ok=True)
    paths = [out / f"{name}.png", out / f"{name}.pdf"]
    fig.savefig(paths[0], dpi=200)
    fig.savefig(paths[1])
    plt.close(fig)
    return paths


# ---------------------------------------------------------------- latency CDF


def _mean_quantile_function(frame: pd.DataFrame, columns: list[str]) -> np.ndarray:
    """Average of quantile functions (Vincentization) over the frame's rows."""
    return np.asarray(frame[columns].mean(axis=0), dtype=float)


def latency_cdf(
    collected: Collected,
    out: Path,
    heuristic_names: tuple[str, ...] = ("random", "latency", "least_loaded"),
) -> list[Path]:
    """Latency CDF per policy: pooled requests and each request type with its SLO.

    Each training seed's curve averages the quantile functions of its regions and
    evaluation seeds; the line is the median over training seeds and the band their
    range. Heuristics (same for every seed) are dashed.
    """
    sketches = collected.quantiles
    if sketches.empty:
        return []
    columns = [c for c in sketches.columns if c.startswith("q")]
    levels = np.array([float(c[1:]) for c in columns])
    types = list(dict.fromkeys(sketches["request_type"].astype(str)))
    types = ["all"] + [t for t in types if t != "all"]
    runs = collected.runs.set_index("run")
    last = sketches[sketches["policy"].isin(LEARNED)].groupby("run")["round"].max()
    ncols = min(3, len(types))
    nrows = math.ceil(len(types) / ncols)
    with plt.rc_context(STYLE):
        fig, axes = plt.subplots(
            nrows,
            ncols,
            figsize=(COLUMN_WIDTH * 2, 2.0 * nrows + 0.4),
            squeeze=False,
            sharey=True,
        )
        handles: dict[str, Any] = {}
        for ax, kind in zip(axes.flat, types, strict=False):
            part = sketches[sketches["request_type"].astype(str) == kind]
            learned = part[part["policy"].isin(LEARNED)]
            learned = learned[learned["round"] == learned["run"].map(last)]
            learned = learned.assign(group=learned["run"].map(runs["group"]))
            names = sorted(learned["group"].unique())
            for group, rows in learned.groupby("group"):
                c = group_colour(group, names)
                curves = np.array(
                    [
                        _mean_quantile_function(r, columns)
                        for _, r in rows.groupby("run")
                    ]
                )
                median = np.nanmedian(curves, axis=0)
                (line,) = ax.plot(median, levels, color=c, lw=1.2)
                ax.fill_betweenx(
                    levels,
                    np.nanmin(curves, axis=0),
                    np.nanmax(curves, axis=0),
                    color=c,
                    alpha=0.2,
                    lw=0,
                )
                handles[f"{group} (n={len(curves)})"] = line
            fixed = part[~part["policy"].isin(LEARNED)]
            if not fixed.empty:
                fixed = fixed[fixed["run"] == sorted(fixed["run"].unique())[0]]
            for j, name in enumerate(heuristic_names):
                rows = fixed[fixed["policy"] == name]
                if rows.empty:
                    continue
                curve = _mean_quantile_function(rows, columns)
                (line,) = ax.plot(
                    curve, levels, color="0.35", lw=1.0, ls=("--", ":", "-.")[j % 3]
                )
                handles[name] = line
            slo = part["slo_ms"].dropna() if "slo_ms" in part else pd.Series()
            if kind != "all" and len(slo):
                ax.axvline(float(slo.iloc[0]), color="#D55E00", lw=0.8)
                ax.text(float(slo.iloc[0]), 0.03, " SLO", color="#D55E00", fontsize=7)
            ax.set_xscale("log")
            ax.set_title("all requests" if kind == "all" else kind)
            ax.set_xlabel("latency (ms)")
            ax.grid(alpha=0.3, lw=0.5)
        for ax in axes[:, 0]:
            ax.set_ylabel("fraction of requests")
        spare = list(axes.flat)[len(types) :]
        for ax in spare:
            ax.axis("off")
        if spare:  # the legend in the first empty panel
            spare[0].legend(
                list(handles.values()), list(handles.keys()), loc="center",
                frameon=False,
            )  # fmt: skip
            fig.tight_layout()
        else:
            fig.legend(
                list(handles.values()), list(handles.keys()), loc="lower center",
                ncol=min(4, len(handles)), frameon=False, bbox_to_anchor=(0.5, -0.02),
            )  # fmt: skip
            fig.tight_layout(rect=(0, 0.08, 1, 1))
        return save(fig, out, "latency_cdf")


# ---------------------------------------------------------------- learning curves


def learning_curves(curves: pd.DataFrame, out: Path) -> list[Path]:
    """Score vs total env steps per group: line = IQM (or mean), band = 95% CI."""
    if curves.empty:
        return []
    metric = str(curves["metric"].iloc[0])
    estimator = str(curves["estimator"].iloc[0])
    with plt.rc_context(STYLE):
        fig, ax = plt.subplots(figsize=(COLUMN_WIDTH, 2.4))
        names = sorted(curves["group"].unique())
        for group, part in curves.groupby("group"):
            c = group_colour(group, names)
            part = part.sort_values("env_steps")
            n = int(part["n_runs"].min())
            ax.plot(
                part["env_steps"],
                part["point"],
                marker="o",
                ms=2.5,
                color=c,
                label=f"{group} (n={n})",
            )
            ax.fill_between(
                part["env_steps"],
                part["ci_low"],
                part["ci_high"],
                color=c,
                alpha=0.2,
                lw=0,
            )
        if metric == "normalised_score":
            for level in (0.0, 1.0):
                ax.axhline(level, color="0.5", lw=0.6, ls=":")
        ax.set_xlabel("total env steps (all regions)")
        ax.set_ylabel(f"{estimator.upper()} {METRIC_LABELS.get(metric, metric)}")
        ax.legend(frameon=False)
        ax.grid(alpha=0.3, lw=0.5)
        return save(fig, out, "learning_curves")


# ---------------------------------------------------------------- intervals


def _interval_axes(ax: Axes, rows: pd.DataFrame, colour_of: dict[str, str]) -> None:
    rows = rows.reset_index(drop=True)
    for y, row in rows.iterrows():
        c = colour_of.get(str(row["algorithm"]), "0.4")
        low = row["ci_low"] if math.isfinite(row["ci_low"]) else row["point"]
        high = row["ci_high"] if math.isfinite(row["ci_high"]) else row["point"]
        ax.plot([low, high], [y, y], color=c, lw=4, alpha=0.5, solid_capstyle="butt")
        ax.plot([row["point"]], [y], "|", color="black", ms=8)
    ax.set_yticks(range(len(rows)))
    ax.set_yticklabels(
        [
            f"{a} ({'eval seeds' if r == 'eval_seeds' else 'n=' + str(n)})"
            for a, r, n in zip(
                rows["algorithm"], rows["runs_are"], rows["n_runs"], strict=True
            )
        ]
    )
    ax.grid(axis="x", alpha=0.3, lw=0.5)


def interval_plot(summary: pd.DataFrame, out: Path) -> list[Path]:
    """IQM and mean of the normalised score per algorithm, 95% stratified CIs."""
    rows = summary[
        (summary["metric"] == "normalised_score")
        & summary["estimator"].isin(("iqm", "mean"))
    ]
    if rows.empty:
        return []
    means = rows[rows["estimator"] == "mean"].set_index("algorithm")
    learned = means[means["runs_are"] == "train_seeds"]["point"]
    fixed = means[means["runs_are"] != "train_seeds"]["point"]
    algorithms = [
        *learned.sort_values(ascending=False).index,
        *fixed.sort_values(ascending=False).index,
    ]
    learned_names = sorted(learned.index)
    colour_of = {
        a: group_colour(a, learned_names) if a in learned.index else HEURISTIC_GREY
        for a in algorithms
    }
    with plt.rc_context(STYLE):
        fig, axes = plt.subplots(
            1, 2, figsize=(COLUMN_WIDTH * 2, 0.3 * len(algorithms) + 1.0), sharey=True
        )
        for ax, estimator in zip(axes, ("iqm", "mean"), strict=True):
            part = rows[rows["estimator"] == estimator]
            part = part.set_index("algorithm").reindex(algorithms).reset_index()
            _interval_axes(ax, part, colour_of)
            for level in (0.0, 1.0):
                ax.axvline(level, color="0.5", lw=0.6, ls=":")
            ax.set_title(estimator.upper())
        axes[0].invert_yaxis()  # learned policies on top, then heuristics by score
        fig.supxlabel("normalised score (0 = random-valid, 1 = best heuristic)")
        fig.tight_layout()
        return save(fig, out, "interval_estimates")


def poi_plot(summary: pd.DataFrame, out: Path) -> list[Path]:
    """P(algorithm > reference) with 95% CIs; 0.5 = no difference."""
    rows = summary[summary["estimator"].str.startswith("poi_vs_")]
    if rows.empty:
        return []
    reference = str(rows["estimator"].iloc[0]).removeprefix("poi_vs_")
    algorithms = list(dict.fromkeys(rows["algorithm"]))
    everyone = sorted({*algorithms, reference})
    colour_of = {a: group_colour(a, everyone) for a in algorithms}
    with plt.rc_context(STYLE):
        fig, ax = plt.subplots(figsize=(COLUMN_WIDTH, 0.3 * len(algorithms) + 0.9))
        _interval_axes(ax, rows, colour_of)
        ax.axvline(0.5, color="0.5", lw=0.6, ls=":")
        ax.set_xlim(0, 1)
        ax.set_xlabel(f"P(algorithm > {reference})")
        fig.tight_layout()
        return save(fig, out, "probability_of_improvement")


# ---------------------------------------------------------------- Pareto front


def pareto_points(collected: Collected, latency: str) -> pd.DataFrame:
    """Per group: mean over runs of the final policy's metrics (regions, seeds)."""
    rows = final_learned(collected)
    needed = [latency, "carbon_g_per_1k", "cost_usd_per_1k"]
    if rows.empty or any(c not in rows for c in needed):
        return pd.DataFrame()
    complete = collected.runs.loc[collected.runs["complete"] == 1, "run"]
    rows = rows[rows["run"].isin(complete)]
    per_run = rows.groupby("run", as_index=False)[needed].mean()
    info = collected.runs.set_index("run")
    per_run["group"] = per_run["run"].map(info["group"])
    per_run["strategy"] = per_run["run"].map(info["strategy"])
    points = per_run.groupby(["strategy", "group"], as_index=False)[needed].mean()
    points["n_runs"] = per_run.groupby(["strategy", "group"]).size().to_numpy()
    return points


def _heuristic_points(
    collected: Collected, latency: str
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Heuristics as fixed reference points, or as fronts where the weights move them.

    A heuristic that reads the reward weights (weighted-greedy) decides differently in
    every weight cell: averaging its cells would draw a point no run produced, so it
    gets one point per cell (a front of its own, with a hypervolume). The others
    decide alike in every run and are drawn once.
    """
    metrics = [latency, "carbon_g_per_1k", "cost_usd_per_1k"]
    fixed = heuristics(collected)
    empty = pd.DataFrame(columns=["policy", "group", *metrics])
    if fixed.empty or any(c not in fixed for c in metrics):
        return empty, empty
    info = collected.runs.set_index("run")
    fixed = fixed.assign(group=fixed["run"].map(info["group"]))
    # one run per cell: every run of a cell evaluates the heuristics on the same seeds
    first = fixed.groupby("group")["run"].transform("min")
    per_cell = (
        fixed[fixed["run"] == first]
        .groupby(["policy", "group"], as_index=False)[metrics]
        .mean()
    )
    spread = per_cell.groupby("policy")[metrics].agg(lambda v: v.max() - v.min())
    moves = spread.index[
        (spread > 1e-9 * (1 + per_cell[metrics].abs().max())).any(axis=1)
    ]
    fronts = per_cell[per_cell["policy"].isin(moves)]
    still = per_cell[~per_cell["policy"].isin(moves)]
    single = still.groupby("policy", as_index=False)[metrics].first()
    return single, fronts


def pareto_front(
    collected: Collected, out: Path, latency: str = "latency_p95_ms"
) -> tuple[list[Path], pd.DataFrame]:
    """Latency vs carbon per sweep cell, coloured by cost; non-dominated circled.

    Heuristics that read the weights get a front of their own (``_heuristic_points``).
    Hypervolume (both objectives minimised) per strategy, with the reference point
    1.1 x the worst latency and the worst carbon of every point drawn (learned and
    heuristic), so all fronts share one reference. Returns the files and the table.
    """
    points = pareto_points(collected, latency)
    if points.empty:
        return [], pd.DataFrame()
    ref_points, heuristic_fronts = _heuristic_points(collected, latency)
    every = pd.concat(
        [
            points[["carbon_g_per_1k", latency]],
            ref_points[["carbon_g_per_1k", latency]],
            heuristic_fronts[["carbon_g_per_1k", latency]],
        ]
    )
    reference = 1.1 * every.max().to_numpy()
    table = []
    with plt.rc_context(STYLE):
        fig, ax = plt.subplots(figsize=(COLUMN_WIDTH, 2.8))
        scatter = ax.scatter(
            points["carbon_g_per_1k"],
            points[latency],
            c=points["cost_usd_per_1k"],
            cmap="cividis",
            s=22,
            zorder=3,
        )
        markers = ("o", "s", "^", "D")
        strategies = sorted(points["strategy"].unique())
        for i, (strategy, part) in enumerate(points.groupby("strategy")):
            xy = part[["carbon_g_per_1k", latency]].to_numpy()
            front = non_dominated(xy)
            ordered = xy[front][np.argsort(xy[front][:, 0])]
            ax.plot(
                ordered[:, 0],
                ordered[:, 1],
                color=group_colour(strategy, strategies),
                lw=1.0,
                marker=markers[i % 4],
                mfc="none",
                ms=8,
                label=f"{strategy}: non-dominated",
            )
            table.append(
                {
                    "strategy": strategy,
                    "hypervolume": hypervolume_2d(xy, reference),
                    "points": len(xy),
                    "non_dominated": int(front.sum()),
                    "ref_carbon_g_per_1k": reference[0],
                    f"ref_{latency}": reference[1],
                }
            )
        for policy, part in heuristic_fronts.groupby("policy"):
            xy = part[["carbon_g_per_1k", latency]].to_numpy()
            front = non_dominated(xy)
            ordered = xy[front][np.argsort(xy[front][:, 0])]
            ax.scatter(xy[:, 0], xy[:, 1], marker="x", color="0.3", s=14, zorder=2)
            ax.plot(
                ordered[:, 0],
                ordered[:, 1],
                color="0.3",
                lw=0.8,
                ls="--",
                label=f"{policy} (per weight cell): non-dominated",
            )
            table.append(
                {
                    "strategy": policy,
                    "hypervolume": hypervolume_2d(xy, reference),
                    "points": len(xy),
                    "non_dominated": int(front.sum()),
                    "ref_carbon_g_per_1k": reference[0],
                    f"ref_{latency}": reference[1],
                }
            )
        ref_points = ref_points.sort_values("carbon_g_per_1k").reset_index(drop=True)
        for j, row in ref_points.iterrows():
            ax.scatter(
                row["carbon_g_per_1k"],
                row[latency],
                marker="x",
                color="0.3",
                s=18,
                zorder=2,
            )
            ax.annotate(
                str(row["policy"]),
                (row["carbon_g_per_1k"], row[latency]),
                fontsize=6,
                color="0.3",
                # neighbours in carbon alternate above and below their marker
                xytext=(2, 3 if int(str(j)) % 2 == 0 else -8),
                textcoords="offset points",
            )
        ax.set_xlabel(METRIC_LABELS["carbon_g_per_1k"])
        ax.set_ylabel(METRIC_LABELS.get(latency, latency))
        ax.set_yscale("log")  # p95 of the cells spans more than a decade
        fig.colorbar(scatter, ax=ax, label=METRIC_LABELS["cost_usd_per_1k"])
        ax.legend(frameon=False, loc="upper center", bbox_to_anchor=(0.5, -0.22))
        ax.grid(alpha=0.3, lw=0.5)
        return save(fig, out, f"pareto_{latency}"), pd.DataFrame(table)


# ---------------------------------------------------------------- per-region gain


def region_gain_plot(
    gains: pd.DataFrame, out: Path, reference: str = "local"
) -> list[Path]:
    """Per region: each group's mean normalised score minus its reference's."""
    if gains.empty:
        return []
    tasks = list(dict.fromkeys(gains["region"]))
    groups = list(dict.fromkeys(gains["group"]))
    width = 0.8 / max(len(groups), 1)
    with plt.rc_context(STYLE):
        fig, ax = plt.subplots(figsize=(COLUMN_WIDTH, 2.8))
        everyone = sorted({*groups, reference})
        for i, group in enumerate(groups):
            part = gains[gains["group"] == group].set_index("region").reindex(tasks)
            x = np.arange(len(tasks)) + (i - (len(groups) - 1) / 2) * width
            low = (part["gain"] - part["ci_low"]).clip(lower=0).fillna(0)
            high = (part["ci_high"] - part["gain"]).clip(lower=0).fillna(0)
            ax.bar(
                x, part["gain"], width, color=group_colour(group, everyone), label=group
            )
            ax.errorbar(x, part["gain"], yerr=[low, high], fmt="none", ecolor="0.2")
        ax.axhline(0, color="0.3", lw=0.6)
        ax.set_xticks(range(len(tasks)))
        ax.set_xticklabels(tasks)
        ax.set_xlabel("region")
        ax.set_ylabel(f"gain over {reference}\n(normalised score)")
        # above the axes: inside, it covers the bars of the first or last region
        ax.legend(
            frameon=False,
            ncol=min(3, len(groups)),
            loc="lower center",
            bbox_to_anchor=(0.5, 1.0),
        )
        ax.grid(axis="y", alpha=0.3, lw=0.5)
        return save(fig, out, f"region_gain_vs_{reference}")


# ---------------------------------------------------------------- rescheduling


def reschedule_plot(collected: Collected, out: Path) -> list[Path]:
    """Final latency vs moves per episode, one panel per cluster.

    Learned policies: one point per training seed (mean over its episodes);
    heuristics: one grey marker each, on the same episodes.
    """
    episodes = collected.episodes
    if episodes.empty:
        return []
    info = collected.runs.set_index("run")
    learned = episodes[episodes["policy"].isin(LEARNED)]
    last = learned.groupby("run")["round"].transform("max")
    learned = learned[learned["round"] == last]
    fixed = episodes[~episodes["policy"].isin(LEARNED)]
    if len(fixed):
        fixed = fixed[fixed["run"] == sorted(fixed["run"].unique())[0]]
    regions = list(dict.fromkeys(episodes["region"]))
    groups = sorted({str(info.at[r, "group"]) for r in learned["run"].unique()})
    names = sorted(fixed["policy"].unique()) if len(fixed) else []
    markers = ("x", "+", "^", "s", "D", "v")
    with plt.rc_context(STYLE):
        fig, axes = plt.subplots(
            1,
            len(regions),
            figsize=(COLUMN_WIDTH * min(len(regions), 2), 2.6),
            squeeze=False,
        )
        for ax, region in zip(axes[0], regions, strict=True):
            mine = learned[learned["region"] == region]
            per_run = mine.groupby("run")[["moves", "latency_end_ms"]].mean()
            per_run["group"] = [str(info.at[r, "group"]) for r in per_run.index]
            for group in groups:
                rows = per_run[per_run["group"] == group]
                ax.scatter(
                    rows["moves"],
                    rows["latency_end_ms"],
                    color=group_colour(group, sorted(groups)),
                    s=18,
                    label=f"{group} (n={len(rows)})",
                )
            theirs = fixed[fixed["region"] == region]
            means = theirs.groupby("policy")[["moves", "latency_end_ms"]].mean()
            for j, name in enumerate(names):
                if name in means.index:
                    ax.scatter(
                        means.at[name, "moves"],
                        means.at[name, "latency_end_ms"],
                        marker=markers[j % len(markers)],
                        color="0.3",
                        s=24,
                        label=str(name),
                    )
            ax.set_title(f"cluster {Path(str(region)).name}")
            ax.set_xlabel("pod moves per episode")
            ax.grid(alpha=0.3, lw=0.5)
        axes[0][0].set_ylabel("final end-to-end latency (ms)")
        axes[0][-1].legend(frameon=False, fontsize=6)
        fig.tight_layout()
        return save(fig, out, "reschedule_latency_vs_moves")
