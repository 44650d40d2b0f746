"""One region's side of a federated round: build once, load strictly, learn, export.

What is federated is the policy's parameters (``policies.params``); what stays here is
the region's env, its telemetry, the learner and its optimizer state. The learner is
built once per process and kept in a module-level cache keyed by run and region. What
must survive a process (Flower's default isolation starts one per message; Ray may
hand a region to another actor) lives in ``context.state``: the optimizer state, the
env-step count, a stamp of the last local round and, for the local-only comparison,
the region's own policy. A cached learner whose stamp differs from the state's is
stale and is brought up to date from the state.
"""

from __future__ import annotations

import io
import json
import logging
import math
import zlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from flwr.app import ArrayRecord, ConfigRecord, RecordDict
from sb3_contrib.common.maskable.policies import MaskableActorCriticPolicy

from conf.schema import RunConfig, StrategyName
from fl_server import wire
from fl_server.config import from_run_config, regions_of
from fl_server.limit_dual import OVER_PREFIX, PRICES_KEY, REQUESTS_PREFIX
from fl_server.wire import LAYOUT_KEY
from policies.limit_prices import price_prior, set_limit_prices, start_counting
from policies.local import LocalTrainer
from policies.params import Weights, get_weights, set_weights
from policies.runs import evaluate, make_training_env

log = logging.getLogger(__name__)

MODES = ("federated", "local", "centralized")
"""``federated``: start from the received global policy; ``local``: from the region's
own policy (no aggregation); ``centralized``: one agent on every region's env."""

TRAIN_METRICS = (
    "train/mean_reward",
    "train/episode_return",
    "train/latency_p95_ms",
    "train/slo_violation_rate",
    "train/cost_usd",
    "train/carbon_g",
    "train/fps",
    "train/seconds",
    "train/episodes",
    "train/proximal_term",
    "train/approx_kl",
    "train/entropy_loss",
    "train/value_loss",
    "train/explained_variance",
)
"""Every train reply carries exactly these keys (NaN when not applicable): Flower
aggregates only replies whose metric keys agree."""

CENTRAL = "*"
"""Cache and state key of the centralized learner (it controls every region)."""


# ---------------------------------------------------------------- config and identity


_SETTINGS: dict[str, RunConfig] = {}


def settings(run_config: Mapping[str, Any]) -> RunConfig:
    """The typed config of a run (parsed once per process and run config)."""
    key = json.dumps(dict(run_config), sort_keys=True, default=str)
    if key not in _SETTINGS:
        _SETTINGS[key] = from_run_config(run_config)
    return _SETTINGS[key]


def resolve_region(node_config: Mapping[str, Any], regions: list[str]) -> str:
    """The client's region: ``node_config["region"]`` or its simulation partition.

    Deployment: ``flower-supernode --node-config "region='eu-central'"``. Simulation:
    partition ``i`` of ``n`` virtual SuperNodes is ``regions[i]`` (one per region).
    """
    if "region" in node_config:
        region = str(node_config["region"])
        if region not in regions:
            raise ValueError(
                f"node config region: expected one of {regions} "
                f"(federation.regions), got {region!r}"
            )
        return region
    if "partition-id" in node_config:
        partition = int(node_config["partition-id"])
        count = int(node_config.get("num-partitions", len(regions)))
        if count != len(regions) or not 0 <= partition < count:
            raise ValueError(
                f"simulation: expected one virtual SuperNode per region "
                f"({len(regions)}: {regions}), got partition {partition} of {count}"
            )
        return regions[partition]
    raise ValueError(
        "node config: expected 'region' (flower-supernode --node-config "
        "\"region='<name>'\") or the simulation's 'partition-id', got "
        f"{sorted(node_config)}"
    )


@dataclass(frozen=True)
class RoundPlan:
    """What the server asked for this round (the message's ConfigRecord)."""

    server_round: int
    local_steps: int
    proximal_mu: float
    mode: str
    layout: str | None = None
    """Digest of the server's policy layout (:mod:`fl_server.wire`), if sent."""
    limit_prices: tuple[float, ...] | None = None
    """The round's tail-limit prices, when the server moves them
    (:mod:`fl_server.limit_dual`)."""

    @classmethod
    def from_config(cls, config: Mapping[str, Any], default_steps: int) -> RoundPlan:
        """Read and check the server's keys, naming any bad one."""
        mode = str(config.get("mode", "federated"))
        if mode not in MODES:
            raise ValueError(f"config mode: expected one of {MODES}, got {mode!r}")
        steps = int(config.get("local-steps", default_steps))  # type: ignore[arg-type]
        if steps <= 0:
            raise ValueError(f"config local-steps: expected > 0, got {steps}")
        mu = float(config.get("proximal-mu", 0.0))  # type: ignore[arg-type]
        if mu < 0 or not math.isfinite(mu):
            raise ValueError(f"config proximal-mu: expected a finite mu >= 0, got {mu}")
        server_round = int(config.get("server-round", 0))  # type: ignore[arg-type]
        layout = config.get(LAYOUT_KEY)
        prices = config.get(PRICES_KEY)
        if prices is not None:
            values = [float(v) for v in prices]  # type: ignore[union-attr]
            if not all(math.isfinite(v) and v >= 0 for v in values):
                raise ValueError(
                    f"config {PRICES_KEY}: expected finite prices >= 0, got {values}"
                )
        return cls(
            server_round,
            steps,
            mu,
            mode,
            None if layout is None else str(layout),
            None if prices is None else tuple(values),
        )


def _seed(cfg: RunConfig, key: str, server_round: int) -> int:
    """A seed per (run seed, region, round): a rebuilt env never replays old traffic."""
    salt = zlib.crc32(key.encode())
    state = np.random.SeedSequence([cfg.seed, salt, server_round]).generate_state(1)
    return int(state[0])


# ---------------------------------------------------------------- learner cache


@dataclass
class Learner:
    """A region's env and learner, built once per process."""

    trainer: LocalTrainer
    stamp: int = 0
    """Round of the last local update this learner holds (0: none)."""
    eval_policy: MaskableActorCriticPolicy | None = None

    @property
    def layout(self) -> wire.Layout:
        """Names and shapes of the policy's parameters (how received ones unpack)."""
        return wire.layout_of(get_weights(self.trainer.model.policy))


_LEARNERS: dict[tuple[int, str], Learner] = {}


def learner_for(cfg: RunConfig, run_id: int, key: str, server_round: int) -> Learner:
    """The cached learner of ``(run, region)``, building it on first use."""
    cache_key = (run_id, key)
    if cache_key not in _LEARNERS:
        region = None if key == CENTRAL else key
        seed = _seed(cfg, key, server_round)
        env = make_training_env(cfg, region, cfg.policy.n_envs, seed)
        _LEARNERS[cache_key] = Learner(LocalTrainer(env, cfg.policy, seed=seed))
        log.info("built the learner of %s (run %s, seed %d)", key, run_id, seed)
    return _LEARNERS[cache_key]


def prepare(cfg: RunConfig, run_id: int, region: str) -> None:
    """Build the region's learner ahead of round 1 (a warm process keeps it).

    Skipped for the centralized comparison, whose learner is not the region's.
    """
    if cfg.strategy.name != StrategyName.centralized:
        learner_for(cfg, run_id, region, 1)


def forget(run_id: int | None = None) -> None:
    """Drop cached learners (of one run, or all): tests and long-lived workers."""
    for cache_key in [k for k in _LEARNERS if run_id is None or k[0] == run_id]:
        learner = _LEARNERS.pop(cache_key)
        learner.trainer.env.close()


# ---------------------------------------------------------------- context.state


def _state_names(key: str) -> tuple[str, str]:
    return f"learner.{key}", f"policy.{key}"


def _save_state(
    state: RecordDict, key: str, learner: Learner, local: Weights | None
) -> None:
    """Persist what must outlive this process: optimizer, step count, stamp."""
    model = learner.trainer.model
    buffer = io.BytesIO()
    torch.save(model.policy.optimizer.state_dict(), buffer)
    meta_name, policy_name = _state_names(key)
    state[meta_name] = ConfigRecord(
        {
            "stamp": learner.stamp,
            "num-timesteps": int(model.num_timesteps),
            "optimizer": buffer.getvalue(),
        }
    )
    if local is not None:
        state[policy_name] = wire.pack(local)


def _restore_state(state: RecordDict, key: str, learner: Learner) -> None:
    """Bring a fresh or stale cached learner up to the state's last local round."""
    meta_name, _ = _state_names(key)
    if meta_name not in state.config_records:
        return
    meta = state.config_records[meta_name]
    stamp = int(meta["stamp"])  # type: ignore[arg-type]
    if stamp == learner.stamp:
        return
    model = learner.trainer.model
    optimizer = torch.load(io.BytesIO(bytes(meta["optimizer"])), weights_only=True)  # type: ignore[arg-type]
    model.policy.optimizer.load_state_dict(optimizer)
    model.num_timesteps = int(meta["num-timesteps"])  # type: ignore[arg-type]
    learner.stamp = stamp
    log.info("%s: restored optimizer state of round %d from context.state", key, stamp)


def _local_policy(state: RecordDict, key: str, learner: Learner) -> Weights | None:
    _, policy_name = _state_names(key)
    if policy_name in state.array_records:
        return wire.unpack(state.array_records[policy_name], learner.layout)
    return None


# ---------------------------------------------------------------- the local round


@dataclass
class TrainOutcome:
    """A local round's reply: new weights, env steps, fixed-key metrics."""

    weights: Weights
    env_steps: int
    metrics: dict[str, float]


def train_round(
    cfg: RunConfig,
    run_id: int,
    region: str,
    plan: RoundPlan,
    received: ArrayRecord,
    state: RecordDict,
) -> TrainOutcome:
    """Seed, build (once), load the start policy strictly, learn, export."""
    key = CENTRAL if plan.mode == "centralized" else region
    # ---- the region's learner, up to date with what this node did last round
    learner = learner_for(cfg, run_id, key, plan.server_round)
    _restore_state(state, key, learner)
    # ---- start policy: the global one, or the region's own (local-only)
    start = wire.unpack(received, learner.layout, plan.layout)
    if plan.mode == "local":
        start = _local_policy(state, key, learner) or start
    # ---- the round's tail-limit prices, and the exceedances they are judged by
    tally = None
    if plan.limit_prices is not None:
        set_limit_prices(learner.trainer.model, learner.trainer.env, plan.limit_prices)
        tally = start_counting(learner.trainer.env)
    # ---- learn (FedProx's proximal term when mu > 0), export
    result = learner.trainer.fit(
        start,
        plan.local_steps,
        proximal_mu=plan.proximal_mu,
        seed=_seed(cfg, key, plan.server_round),
    )
    learner.stamp = plan.server_round
    _save_state(state, key, learner, result.weights if plan.mode == "local" else None)
    metrics = {
        name: float(result.metrics.get(name, math.nan)) for name in TRAIN_METRICS
    }
    if tally is not None:
        tally.count_limits = False
        for k, name in enumerate(tally.world.type_names):
            metrics[REQUESTS_PREFIX + name] = float(tally.limit_tally[0, k])
            metrics[OVER_PREFIX + name] = float(tally.limit_tally[1, k])
    log.info(
        "%s round %d: %d env steps in %.1f s, mean reward %.3f",
        key,
        plan.server_round,
        result.env_steps,
        metrics["train/seconds"],
        metrics["train/mean_reward"],
    )
    return TrainOutcome(result.weights, result.env_steps, metrics)


def _fresh_policy(learner: Learner) -> MaskableActorCriticPolicy:
    """A policy shaped like the learner's (SB3 builds its own the same way)."""
    model = learner.trainer.model
    policy = model.policy_class(
        model.observation_space,
        model.action_space,
        model.lr_schedule,
        **model.policy_kwargs,
    )
    assert isinstance(policy, MaskableActorCriticPolicy)
    return policy.to(model.device)


def evaluate_round(
    cfg: RunConfig,
    run_id: int,
    region: str,
    plan: RoundPlan,
    received: ArrayRecord,
    state: RecordDict,
) -> tuple[dict[str, float], int]:
    """The policy this region would deploy, on its own held-out seeds.

    Federated modes evaluate the received global policy; local-only evaluates the
    region's own. Returns ``eval/<metric>`` means over seeds and the decisions made.
    """
    key = CENTRAL if plan.mode == "centralized" else region
    learner = learner_for(cfg, run_id, key, 0)
    if (
        learner.eval_policy is None
    ):  # its own policy: evaluation never touches the learner
        learner.eval_policy = _fresh_policy(learner)
    weights = wire.unpack(received, learner.layout, plan.layout)
    if plan.mode == "local":
        weights = _local_policy(state, key, learner) or weights
    set_weights(learner.eval_policy, weights)
    if plan.limit_prices is not None:
        price_prior(learner.eval_policy, plan.limit_prices)
    seeds = list(cfg.federation.client_eval_seeds)
    per_seed = evaluate(learner.eval_policy, cfg, region, seeds)
    names = sorted({name for row in per_seed for name in row})
    metrics = {
        f"eval/{name}": float(np.mean([row.get(name, math.nan) for row in per_seed]))
        for name in names
    }
    decisions = int(sum(row.get("decisions", 1.0) for row in per_seed))
    return metrics, max(decisions, 1)


def region_index(cfg: RunConfig, region: str | None) -> int:
    """Position of ``region`` in the federation (-1 for the centralized agent)."""
    regions = regions_of(cfg)
    return regions.index(region) if region in regions else -1
