"""Evaluation harness: any policy, learned or baseline, on fixed seeds and scenarios.

Each seed drives its own environment (its own random stream, warm reset); every request
placed is recorded, and the metrics a systems paper reports are computed from them.
Results are written as one tidy CSV row per policy x scenario x seed, atomically, with
the resolved config beside.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, is_dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from envs import TwoTierCore, TwoTierEnvConfig
from envs.config import ScenarioConfig
from envs.rng import seed_streams
from envs.scenario import TYPE_SLO_S
from envs.two_tier import kernels as K
from envs.two_tier.config import RewardConfig
from policies.baselines import Policy, two_tier_baseline
from policies.identity import with_identity

LATENCY_METRICS = ("latency_p50_ms", "latency_p95_ms", "latency_p99_ms")


@dataclass
class TwoTierEvalSpec:
    """Where and how long to evaluate on the two-tier env."""

    scenario: str | ScenarioConfig = "small"
    region: str | None = None
    """Controlled region (a federated client's view), or None for every region."""
    seeds: Sequence[int] = (1000, 1001, 1002)
    decisions: int = 2000
    """Decisions (env steps) per seed."""
    env: TwoTierEnvConfig = field(default_factory=TwoTierEnvConfig)
    reward: RewardConfig = field(default_factory=RewardConfig)
    deterministic: bool = True
    """Argmax actions, or actions sampled from a generator seeded by ``seeds[0]``."""


QUANTILES: tuple[float, ...] = (
    *(round(0.01 * i, 2) for i in range(1, 100)),
    0.995,
    0.999,
)
"""Levels of the latency quantile sketch: fine enough to draw a CDF, tails included."""

POOLED = "all"
"""Request-type label of metrics and sketches computed on every request together."""


def quantile_column(q: float) -> str:
    """Column name of quantile level ``q`` in ``latency_quantiles.csv`` (``q0.95``)."""
    return f"q{q:g}"


@dataclass(frozen=True)
class RequestTypes:
    """Names and SLOs (seconds) of a scenario's request types, by type index."""

    names: tuple[str, ...]
    slo_s: np.ndarray


@dataclass
class SeedEvaluation:
    """One evaluation seed's result: metrics, latency sketches, rescheduling episodes.

    ``latency_quantiles`` maps a request type (``all`` = pooled) to the latency in ms
    at each level of :data:`QUANTILES` (NaN where the type had no request);
    ``episodes`` holds one record per rescheduling episode (empty for two-tier).
    """

    seed: int
    metrics: dict[str, float]
    latency_quantiles: dict[str, np.ndarray] = field(default_factory=dict)
    slo_ms: dict[str, float] = field(default_factory=dict)
    episodes: list[dict[str, float]] = field(default_factory=list)


def _latency_stats(latency_s: np.ndarray, slo_violated: np.ndarray) -> dict[str, float]:
    """p50/p95/p99 (ms) and SLO violation rate of one set of requests (NaN if none)."""
    if not latency_s.size:
        return {
            "latency_p50_ms": math.nan,
            "latency_p95_ms": math.nan,
            "latency_p99_ms": math.nan,
            "slo_violation_rate": math.nan,
        }
    p50, p95, p99 = np.percentile(latency_s, (50, 95, 99)) * 1e3
    return {
        "latency_p50_ms": float(p50),
        "latency_p95_ms": float(p95),
        "latency_p99_ms": float(p99),
        "slo_violation_rate": float(slo_violated.mean()),
    }


def _metrics(
    placed: dict[str, np.ndarray],
    rewards: np.ndarray,
    invalid: np.ndarray,
    sim_seconds: float,
    types: RequestTypes | None = None,
) -> dict[str, float]:
    """The systems metrics of one seed's requests, pooled and per request type.

    Types differ widely in service time and SLO, so a pooled p95 alone misleads: each
    type's percentiles and violation rate are kept too (``latency_p95_ms:<type>``),
    and ``latency_slo_ratio_p95`` is the p95 of latency / own SLO over all requests.
    """
    latency = placed["latency_s"]
    n = max(latency.size, 1)
    out = {
        "decisions": float(rewards.size),
        "requests": float(latency.size),
        "mean_reward": float(rewards.mean()) if rewards.size else 0.0,
        "latency_mean_ms": float(latency.mean() * 1e3) if latency.size else 0.0,
        "queue_wait_mean_ms": float(placed["queue_wait_s"].mean() * 1e3)
        if latency.size
        else 0.0,
        "slo_violation_rate": float(placed["slo_violated"].mean())
        if latency.size
        else 0.0,
        "cost_usd": float(placed["cost_usd"].sum()),
        "cost_usd_per_1k": float(placed["cost_usd"].sum() / n * 1e3),
        "carbon_g": float(placed["carbon_g"].sum()),
        "carbon_g_per_1k": float(placed["carbon_g"].sum() / n * 1e3),
        "energy_j": float(placed["energy_j"].sum()),
        "energy_j_per_1k": float(placed["energy_j"].sum() / n * 1e3),
        "throughput_rps": float(latency.size / sim_seconds) if sim_seconds > 0 else 0.0,
        "invalid_action_rate": float(invalid.mean()) if invalid.size else 0.0,
        "remote_share": float((placed["region"] != placed["origin"]).mean())
        if latency.size
        else 0.0,
    }
    for name, q in zip(LATENCY_METRICS, (50, 95, 99), strict=True):
        out[name] = float(np.percentile(latency, q) * 1e3) if latency.size else 0.0
    if types is None:
        return out
    kind = placed["request_type"].astype(np.int64)
    slo = types.slo_s[kind] if latency.size else np.empty(0)
    out["latency_slo_ratio_p95"] = (
        float(np.percentile(latency / slo, 95)) if latency.size else math.nan
    )
    for k, name in enumerate(types.names):
        mine = kind == k
        out[f"requests:{name}"] = float(mine.sum())
        stats = _latency_stats(latency[mine], placed["slo_violated"][mine])
        out.update({f"{metric}:{name}": value for metric, value in stats.items()})
    return out


def _sketches(
    placed: dict[str, np.ndarray], types: RequestTypes
) -> dict[str, np.ndarray]:
    """Latency (ms) at :data:`QUANTILES`, pooled and per request type."""
    latency_ms = placed["latency_s"] * 1e3
    kind = placed["request_type"].astype(np.int64)
    levels = np.asarray(QUANTILES)
    out: dict[str, np.ndarray] = {}
    for label, mask in (
        (POOLED, np.ones(latency_ms.size, dtype=bool)),
        *((name, kind == k) for k, name in enumerate(types.names)),
    ):
        values = latency_ms[mask]
        out[label] = (
            np.quantile(values, levels)
            if values.size
            else np.full(levels.size, math.nan)
        )
    return out


def evaluate_two_tier(
    policy: Policy | str, spec: TwoTierEvalSpec
) -> list[dict[str, float]]:
    """Metrics per seed of ``policy`` (or a baseline name) acting for every decision."""
    return [result.metrics for result in evaluate_two_tier_detailed(policy, spec)]


def evaluate_two_tier_detailed(
    policy: Policy | str, spec: TwoTierEvalSpec
) -> list[SeedEvaluation]:
    """Per seed: the metrics and the latency quantile sketches (pooled and per type)."""
    with _sampling_seeded(spec.seeds[0], spec.deterministic):
        return _evaluate_two_tier(policy, spec)


@contextmanager
def _sampling_seeded(seed: int, deterministic: bool) -> Iterator[None]:
    """Sampled evaluation draws from torch's generator: seed it, then restore it.

    The same seeds then give the same metrics, and the caller's training stream is
    left as it was.
    """
    if deterministic:
        yield
        return
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield


def _evaluate_two_tier(
    policy: Policy | str, spec: TwoTierEvalSpec
) -> list[SeedEvaluation]:
    seeds = list(spec.seeds)
    config = TwoTierEnvConfig(
        **{**asdict(spec.env), "episode_length": spec.decisions + 1}
    )
    controlled = None if spec.region is None else [spec.region]
    core = TwoTierCore(spec.scenario, len(seeds), controlled, config, spec.reward)
    types = RequestTypes(
        tuple(core.world.type_names), core.world.type_f[:, TYPE_SLO_S].copy()
    )
    if isinstance(policy, str):
        policy = two_tier_baseline(policy, core, seed=seeds[0])
    core.seed_each(seeds)
    for i in range(core.num_envs):
        core.reset_one(i)
    start_t = core.fs[:, K.FS_T].copy()
    per_seed: list[list[np.ndarray]] = [[] for _ in seeds]
    rewards = np.empty((spec.decisions, len(seeds)))
    invalid = np.empty((spec.decisions, len(seeds)))
    for step in range(spec.decisions):
        actions, _ = policy.predict(
            core.obs, deterministic=spec.deterministic, action_masks=core.action_masks()
        )
        out = core.step(np.asarray(actions))
        rewards[step] = out.reward
        invalid[step] = core.comps[:, K.C_INVALID]
        for row in np.flatnonzero(core.comps[:, K.C_PLACED] > 0):
            per_seed[int(row)].append(core.comps[int(row)].copy())
    sim_seconds = core.fs[:, K.FS_T] - start_t
    slo_ms = {name: float(types.slo_s[k] * 1e3) for k, name in enumerate(types.names)}
    results = []
    for i, seed in enumerate(seeds):
        table = (
            np.stack(per_seed[i])
            if per_seed[i]
            else np.empty((0, len(K.COMPONENT_NAMES)))
        )
        placed = {
            name: table[:, column].astype(float)
            for column, name in enumerate(K.COMPONENT_NAMES)
        }
        results.append(
            SeedEvaluation(
                seed=int(seed),
                metrics=_metrics(
                    placed, rewards[:, i], invalid[:, i], float(sim_seconds[i]), types
                ),
                latency_quantiles=_sketches(placed, types),
                slo_ms=slo_ms,
            )
        )
    return results


@dataclass
class RescheduleEvalSpec:
    """Where and how long to evaluate on the rescheduling env."""

    settings: Any = None
    """An ``envs.reach.config.RescheduleConfig`` (None = REACH defaults, 7-21)."""
    seeds: Sequence[int] = (1000, 1001, 1002)
    episodes: int = 20
    """Episodes per seed (each starts from a freshly sampled cluster and placement)."""
    identity: tuple[int, int] | None = None
    """(index, slots) of the identity input the policy was trained with, if any."""
    deterministic: bool = True
    """Argmax actions, or actions sampled from a generator seeded by ``seeds[0]``."""


def evaluate_reschedule(
    policy: Policy | str, spec: RescheduleEvalSpec
) -> list[dict[str, float]]:
    """Metrics per seed: end-to-end latency before/after, reduction, migrations.

    ``policy`` may be a baseline name of ``envs.reach.baselines`` (``keep``,
    ``random``, ``greedy``, ``rebalance``), built on the evaluation's own core.
    """
    return [result.metrics for result in evaluate_reschedule_detailed(policy, spec)]


def evaluate_reschedule_detailed(
    policy: Policy | str, spec: RescheduleEvalSpec
) -> list[SeedEvaluation]:
    """Per seed: the metrics and one record per episode (reduction, moves, latency)."""
    with _sampling_seeded(spec.seeds[0], spec.deterministic):
        return _evaluate_reschedule(policy, spec)


def _episode_record(number: int, info: dict[str, Any]) -> dict[str, float]:
    start, end = float(info["latency_start"]), float(info["latency_end"])
    record = {
        "episode": float(number),
        "return": float(info["r"]),
        "latency_start_ms": start,
        "latency_end_ms": end,
        "latency_reduction_pct": 100.0 * (1.0 - end / start) if start else math.nan,
        "moves": float(info["moves"]),
        "invalid_actions": float(info["invalid_actions"]),
        "steps": float(info["l"]),
    }
    if "latency_mean" in info:
        record["latency_mean_ms"] = float(info["latency_mean"])
    return record


def _evaluate_reschedule(
    policy: Policy | str, spec: RescheduleEvalSpec
) -> list[SeedEvaluation]:
    from envs.reach.baselines import make_baseline
    from envs.reach.config import RescheduleConfig
    from envs.reach.core import ReachCore

    seeds = list(spec.seeds)
    settings = spec.settings or RescheduleConfig()
    core = ReachCore.from_settings(settings, num_envs=len(seeds), autoreset=True)
    if isinstance(policy, str):
        policy = make_baseline(policy, core, seed=seeds[0])
    for i, seed in enumerate(seeds):
        core.reset_env(i, seed_streams(np.random.default_rng(seed), 1)[0])
    episodes: list[list[dict[str, Any]]] = [[] for _ in seeds]
    # Fixed-horizon (dynamic) episodes end wherever the events left the cluster: the
    # latency averaged over the episode's decision steps is what users live with.
    horizon = bool(settings.horizon)
    latency_sum = np.zeros(len(seeds))
    while min(len(e) for e in episodes) < spec.episodes:
        if horizon:
            latency_sum += [core.latency(i) for i in range(len(seeds))]
        obs = (
            core.obs
            if spec.identity is None
            else with_identity(core.obs, *spec.identity)
        )
        actions, _ = policy.predict(
            obs, deterministic=spec.deterministic, action_masks=core.action_masks()
        )
        out = core.step(np.asarray(actions))
        for done in np.flatnonzero(out.terminated | out.truncated):
            i = int(done)
            if len(episodes[i]) < spec.episodes:
                info = core.episode_info(i)
                if horizon:
                    info["latency_mean"] = latency_sum[i] / max(info["l"], 1)
                episodes[i].append(info)
            latency_sum[i] = 0.0
    results = []
    for seed, eps in zip(seeds, episodes, strict=True):
        before = np.array([e["latency_start"] for e in eps])
        after = np.array([e["latency_end"] for e in eps])
        metrics = {
            "episodes": float(len(eps)),
            "mean_return": float(np.mean([e["r"] for e in eps])),
            "latency_before_ms": float(before.mean()),
            "latency_after_ms": float(after.mean()),
            "latency_reduction_pct": float(
                100.0 * (1.0 - after.mean() / before.mean())
            ),
            "migrations": float(np.mean([e["moves"] for e in eps])),
            "invalid_actions": float(np.mean([e["invalid_actions"] for e in eps])),
        }
        if horizon:
            average = np.array([e["latency_mean"] for e in eps])
            metrics["latency_mean_ms"] = float(average.mean())
            metrics["latency_mean_reduction_pct"] = float(
                100.0 * (1.0 - average.mean() / before.mean())
            )
        results.append(
            SeedEvaluation(
                seed=int(seed),
                metrics=metrics,
                episodes=[_episode_record(n, e) for n, e in enumerate(eps)],
            )
        )
    return results


def atomic_write_text(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` through a temp file and ``os.replace``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_results(
    path: Path, rows: Iterable[dict[str, Any]], config: Any = None
) -> None:
    """One CSV row per policy x scenario x seed, and the resolved config beside it."""
    rows = list(rows)
    columns: list[str] = []
    for row in rows:
        columns.extend(k for k in row if k not in columns)
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns)
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_text(path, buffer.getvalue())
    if config is not None:
        if is_dataclass(config) and not isinstance(config, type):
            config = asdict(config)
        atomic_write_text(
            path.with_suffix(".config.json"), json.dumps(config, indent=2, default=str)
        )
