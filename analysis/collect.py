"""Gather an experiment's run folders into tidy tables (``scripts.collect``).

A *run* is one job folder of a sweep (``multirun/<experiment>/<overrides>``) or a
single run folder. Its *group* is what the sweep varied apart from the training
seed: the folder name without its ``seed=<k>`` item (``strategy=fedavg`` reads
``fedavg``). Incomplete runs (no ``state.json``, or one that is not complete) are
listed in ``runs.csv`` with ``complete = 0``; their rows stay in ``evals.csv`` but
never enter the statistics.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

MARKERS = ("state.json", "metrics.csv", "job.json", "config.json", ".hydra")
"""Any of these makes a folder a run folder."""

LEARNED = ("global", "local")
"""Policy labels of the learned policy in server-side evaluation rows."""

SCORE = {"two_tier": "mean_reward", "reschedule": "latency_reduction_pct"}
"""Headline metric per env kind (higher is better)."""

RANDOM = "random"
"""The random-valid baseline: score 0 of the normalised scale."""

CONFIG_COLUMNS = {
    "strategy.name": "strategy",
    "env": "env",
    "scenario.name": "scenario",
    "scenario.heterogeneity": "heterogeneity",
    "reward.latency": "reward_latency",
    "reward.cost": "reward_cost",
    "reward.carbon": "reward_carbon",
    "strategy.proximal-mu": "proximal_mu",
    "federation.rounds": "rounds",
    "federation.local-steps": "local_steps",
    "federation.eval-every": "eval_every",
    "two-tier.region-id-input": "region_id_input",
    "policy.identity-slots": "identity_slots",
    "train.eval-decisions": "eval_decisions",
    "train.eval-episodes": "eval_episodes",
}
"""Flat config keys copied into ``runs.csv`` (column names on the right)."""


@dataclass
class Collected:
    """The tidy tables of one experiment folder."""

    root: Path
    runs: pd.DataFrame
    evals: pd.DataFrame
    quantiles: pd.DataFrame
    episodes: pd.DataFrame = field(default_factory=pd.DataFrame)

    @property
    def incomplete(self) -> list[str]:
        """Runs that did not finish (listed, never dropped silently)."""
        if self.runs.empty:
            return []
        return sorted(self.runs.loc[self.runs["complete"] == 0, "run"])

    @property
    def env(self) -> str:
        """The env kind of the experiment's runs (two_tier if unknown)."""
        kinds = self.runs["env"].dropna().unique() if "env" in self.runs else []
        return str(kinds[0]) if len(kinds) else "two_tier"

    @property
    def score(self) -> str:
        """Headline metric of the experiment's env kind."""
        return SCORE.get(self.env, "mean_reward")


def is_run(folder: Path) -> bool:
    """Whether ``folder`` holds a run (any of :data:`MARKERS`)."""
    return any((folder / marker).exists() for marker in MARKERS)


def run_folders(root: Path) -> list[Path]:
    """``root`` itself if it is a run, else its run subfolders, sorted."""
    if not root.is_dir():
        raise FileNotFoundError(f"experiment folder: no folder at {root}")
    if is_run(root) and not any(is_run(p) for p in root.iterdir() if p.is_dir()):
        return [root]
    return sorted(p for p in root.iterdir() if p.is_dir() and is_run(p))


def group_of(name: str) -> str:
    """The sweep cell of a job folder name: its overrides without ``seed``."""
    items = [i for i in name.split(",") if i and not i.startswith("seed=")]
    if len(items) == 1 and "=" in items[0]:
        return items[0].split("=", 1)[1]
    return ",".join(items) or "default"


def _json(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text()) if path.exists() else {}


def _number(value: Any) -> Any:
    """Flat-config value as a number where it is one (JSON text decoded)."""
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError:
            return value
    if isinstance(value, bool):
        return int(value)
    return value


def run_record(folder: Path, root: Path) -> dict[str, Any]:
    """One ``runs.csv`` row: identity, config, completeness, wall time."""
    config = _json(folder / "config.json")
    state = _json(folder / "state.json")
    job = _json(folder / "job.json")
    complete = bool(state.get("complete", False)) or (
        bool(state)
        and "complete" not in state
        and int(state.get("last_round", -1)) >= int(state.get("rounds", math.inf))
    )
    name = folder.name if folder != root else root.name
    record: dict[str, Any] = {
        "run": name,
        "experiment": config.get("task") or root.name,
        "group": group_of(name) if folder != root else str(config.get("strategy.name")),
        "kind": state.get("kind", "federated"),
        "train_seed": _number(config.get("seed")),
        "complete": int(complete),
        "last_round": state.get("last_round"),
        "wall_s": job.get("wall_s"),
        "attempts": len(job.get("attempts", [])),
        "commit": (job.get("attempts") or [{}])[-1].get("commit"),
    }
    for key, column in CONFIG_COLUMNS.items():
        record[column] = _number(config.get(key))
    regions = _number(config.get("federation.regions"))
    record["n_regions"] = len(regions) if isinstance(regions, list) else None
    return record


def _table(folder: Path, name: str, run: str) -> pd.DataFrame:
    path = folder / name
    if not path.exists() or path.stat().st_size == 0:
        return pd.DataFrame()
    frame = pd.read_csv(path)
    frame.insert(0, "run", run)
    return frame


def collect(root: Path) -> Collected:
    """Read every run folder under ``root`` into :class:`Collected` tables."""
    root = Path(root)
    folders = run_folders(root)
    records = [run_record(f, root) for f in folders]
    evals, quantiles, episodes = [], [], []
    for folder, record in zip(folders, records, strict=True):
        metrics = _table(folder, "metrics.csv", record["run"])
        if not metrics.empty:
            evals.append(metrics[metrics["phase"] == "server-eval"])
        quantiles.append(_table(folder, "latency_quantiles.csv", record["run"]))
        episodes.append(_table(folder, "episodes.csv", record["run"]))
    runs = pd.DataFrame.from_records(records)

    def concat(frames: list[pd.DataFrame]) -> pd.DataFrame:
        frames = [f for f in frames if not f.empty]
        return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()

    return Collected(root, runs, concat(evals), concat(quantiles), concat(episodes))


def final_learned(collected: Collected) -> pd.DataFrame:
    """Server-eval rows of each run's learned policy at its last evaluated round."""
    evals = collected.evals
    if evals.empty:
        return evals
    learned = evals[evals["policy"].isin(LEARNED)]
    last = learned.groupby("run")["round"].transform("max")
    return learned[learned["round"] == last]


def heuristics(collected: Collected) -> pd.DataFrame:
    """Round-0 rows of the fixed heuristics (every run evaluates them the same)."""
    evals = collected.evals
    if evals.empty:
        return evals
    return evals[(evals["round"] == 0) & ~evals["policy"].isin(LEARNED)]


def write_tables(collected: Collected, out: Path) -> list[Path]:
    """Write runs.csv, evals.csv, latency_quantiles.csv (and episodes.csv)."""
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for name, frame in (
        ("runs.csv", collected.runs),
        ("evals.csv", collected.evals),
        ("latency_quantiles.csv", collected.quantiles),
        ("episodes.csv", collected.episodes),
    ):
        if frame.empty and name == "episodes.csv":
            continue
        path = out / name
        tmp = path.with_name(f".{name}.tmp")
        frame.to_csv(tmp, index=False, lineterminator="\n")
        tmp.replace(path)
        written.append(path)
    return written


def load_tables(folder: Path) -> Collected:
    """Read tables written by :func:`write_tables` back (``plot_results``)."""
    folder = Path(folder)

    def read(name: str) -> pd.DataFrame:
        path = folder / name
        return pd.read_csv(path) if path.exists() else pd.DataFrame()

    return Collected(
        folder,
        read("runs.csv"),
        read("evals.csv"),
        read("latency_quantiles.csv"),
        read("episodes.csv"),
    )
