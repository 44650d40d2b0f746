"""Run one experiment sweep: ``python -m scripts.run_experiment experiment=<name>``.

An experiment is a ``conf/experiment/<name>.yaml`` overlay: a Hydra multirun (basic
launcher: one job after another, each federation using both cores through Ray) into
the fixed folder ``multirun/<name>/<overrides>`` (``hydra.sweep.dir=<dir>`` moves
it). Each job is one federated run (:func:`scripts.federate.run`, Simulation Engine
by default, ``engine=deployment`` works too) or, with ``federation.rounds=0``, an
evaluation of every heuristic on held-out seeds. A rerun skips jobs whose
``state.json`` says complete and resumes interrupted ones after their last complete
round. Every job folder gets ``job.json``: wall time per attempt, git commit,
machine. ``python -m scripts.collect multirun/<name>`` then gathers the results.

Examples::

    python -m scripts.run_experiment experiment=smoke
    python -m scripts.run_experiment experiment=strategies engine=deployment
    python -m scripts.run_experiment experiment=pareto hydra.sweep.dir=/data/pareto
"""

from __future__ import annotations

import json
import logging
import os
import platform
import re
import subprocess
import time
from pathlib import Path
from typing import Any

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

import conf.schema  # noqa: F401  (registers the typed schema)
from conf.schema import RunConfig
from fl_server.config import regions_of, to_run_config
from fl_server.session import STATE_FILE
from policies.evaluation import atomic_write_text
from policies.records import (
    IDENTITY,
    episode_rows,
    seed_rows,
    sketch_rows,
    write_tidy_csv,
)
from policies.runs import baseline_names, evaluate_detailed

log = logging.getLogger("experiment")

JOB_FILE = "job.json"
CLUSTER_NAME = re.compile(r"^(\d+)-(\d+)$")


# ---------------------------------------------------------------- job state


def job_state(folder: Path) -> dict[str, Any] | None:
    """The job's ``state.json`` (None if it never committed a round)."""
    path = folder / STATE_FILE
    return json.loads(path.read_text()) if path.exists() else None


def is_complete(state: dict[str, Any] | None, rounds: int) -> bool:
    """Whether a job's state has every one of ``rounds`` rounds done.

    Compared with the current config's rounds, not the state's: raising
    ``federation.rounds`` of an experiment resumes its finished jobs.
    """
    if state is None:
        return False
    if state.get("kind") == "heuristics":
        return bool(state.get("complete", False))
    return int(state["last_round"]) >= rounds


def count_jobs(sweep_dir: Path) -> int | None:
    """Jobs of the sweep, from Hydra's ``multirun.yaml`` (None if unreadable)."""
    try:
        from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
        from hydra.core.override_parser.overrides_parser import OverridesParser

        saved = OmegaConf.load(sweep_dir / "multirun.yaml")
        params = saved.hydra.sweeper.get("params") or {}
        # as Hydra's BasicSweeper: the config's params, then the command line's
        # overrides, which win for a key both give (``seed=1,2`` over ``seed: 0``)
        overrides = [f"{key}={value}" for key, value in params.items()]
        overrides += list(saved.hydra.overrides.task)
        parsed = OverridesParser.create().parse_overrides(overrides)
        return sum(len(batch) for batch in BasicSweeper.split_arguments(parsed, None))
    except Exception:  # progress display only: never fail a job over it
        return None


def git_commit() -> str:
    """The checkout's commit (``+dirty`` with local changes), or ``unknown``."""
    try:
        head = subprocess.run(
            ["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return head + ("+dirty" if dirty else "")


def record_attempt(folder: Path, started: float, status: str, engine: str) -> float:
    """Append this attempt to ``job.json``; returns the job's total wall time."""
    path = folder / JOB_FILE
    job = json.loads(path.read_text()) if path.exists() else {"attempts": []}
    job["attempts"].append(
        {
            "started": time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(started)),
            "wall_s": round(time.time() - started, 3),
            "status": status,
            "commit": git_commit(),
            "engine": engine,
        }
    )
    job["wall_s"] = round(sum(a["wall_s"] for a in job["attempts"]), 3)
    job["machine"] = {"cpus": os.cpu_count(), "platform": platform.platform()}
    atomic_write_text(path, json.dumps(job, indent=1))
    return float(job["wall_s"])


# ---------------------------------------------------------------- job kinds


def ensure_clusters(cfg: RunConfig) -> None:
    """Generate missing ``<nodes>-<pods>`` rescheduling clusters (seed 0).

    Lets an overlay name clusters of other sizes than the packaged 7-21 by path; the
    same name always gives the same files (``scripts.gen_reach_config``).
    """
    if cfg.env != "reschedule":
        return
    from envs.reach.generator import generate, write_config

    for region in cfg.federation.regions:
        folder = Path(region)
        match = CLUSTER_NAME.match(folder.name)
        if folder.exists() or match is None:
            continue
        nodes, pods = int(match.group(1)), int(match.group(2))
        generated = generate(nodes, pods, seed=0, patterns=(cfg.reschedule.pattern,))
        write_config(generated, folder.parent)
        log.info("generated the %d-%d rescheduling cluster in %s", nodes, pods, folder)


def evaluate_heuristics(cfg: RunConfig, out: Path) -> None:
    """``federation.rounds=0``: every baseline on every region's held-out seeds.

    Writes the same files as a federated run's round 0 (``metrics.csv``, sketches or
    episodes, ``config.json``) and a complete ``state.json``.
    """
    out.mkdir(parents=True, exist_ok=True)
    flat = to_run_config(cfg)
    atomic_write_text(out / "config.json", json.dumps(flat, indent=1))
    names = cfg.train.baselines or list(baseline_names(cfg))
    rows: list[dict[str, Any]] = []
    sketches: list[dict[str, Any]] = []
    episodes: list[dict[str, Any]] = []
    seeds = list(cfg.train.eval_seeds)
    for region in regions_of(cfg):
        for name in names:
            started = time.perf_counter()
            results = evaluate_detailed(name, cfg, region, seeds)
            identity = {
                "round": 0,
                "phase": "server-eval",
                "policy": name,
                "region": region,
                "train_seed": cfg.seed,
                "env_steps": 0,
            }
            rows += seed_rows(results, **identity)
            sketches += sketch_rows(results, **identity)
            episodes += episode_rows(results, **identity)
            log.info(
                "%s on %s: %d seeds in %.1f s",
                name,
                region,
                len(seeds),
                time.perf_counter() - started,
            )
    write_tidy_csv(out / "metrics.csv", rows)
    if sketches:
        write_tidy_csv(
            out / "latency_quantiles.csv", sketches, (*IDENTITY, "request_type")
        )
    if episodes:
        write_tidy_csv(out / "episodes.csv", episodes, (*IDENTITY, "episode"))
    state = {"last_round": 0, "rounds": 0, "complete": True, "kind": "heuristics"}
    atomic_write_text(out / STATE_FILE, json.dumps(state, indent=1))


def run_job(cfg: RunConfig, out: Path, name: str) -> None:
    """Skip, resume or start one job in ``out``."""
    rounds = cfg.federation.rounds
    state = job_state(out)
    if is_complete(state, rounds):
        log.info("%s: complete already (%s), skipped", name, out)
        return
    started = time.time()
    if state is not None:
        log.info("%s: resuming after round %s", name, state["last_round"])
    status = "failed"
    try:
        if cfg.federation.rounds == 0:
            evaluate_heuristics(cfg, out)
        else:
            from scripts.federate import run

            ensure_clusters(cfg)
            run(cfg, out)
        status = "complete" if is_complete(job_state(out), rounds) else "incomplete"
    finally:
        wall = record_attempt(out, started, status, cfg.engine.name.name)
        log.info("%s: %s, %.0f s of wall time so far", name, status, wall)


# ---------------------------------------------------------------- entry point


@hydra.main(config_path="../conf", config_name="config", version_base="1.3")
def main(raw: DictConfig) -> None:
    """Hydra entry point: one job of the sweep."""
    from scripts.federate import configure_logging

    configure_logging()
    log.setLevel(logging.INFO)  # the per-job progress lines
    cfg = OmegaConf.to_object(raw)
    assert isinstance(cfg, RunConfig)
    hc = HydraConfig.get()
    out = Path(hc.runtime.output_dir)
    name = hc.job.override_dirname or out.name
    total = count_jobs(Path(hc.sweep.dir))
    number = f"{hc.job.num + 1}/{total}" if total else f"{hc.job.num + 1}"
    log.info("job %s: %s -> %s", number, name, out)
    run_job(cfg, out, f"job {number} ({name})")


if __name__ == "__main__":
    main()
