"""Builders that turn the typed run config into environments, learners and evaluations.

One place maps ``cfg.env`` (``two_tier`` or ``reschedule``) to the right env, so the
training script, the Flower client and the server all build the same things. For
``two_tier`` a *region* is one of the scenario's regions (None: all); for
``reschedule`` it is a cluster folder overriding ``cfg.reschedule.cluster`` (None: the
configured one), so federated clients can bring clusters of different sizes.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from stable_baselines3.common.vec_env import VecEnv

from envs import make_region_vec_env
from envs.vec_env import BatchedVecEnv
from policies.baselines import BASELINES as TWO_TIER_BASELINES
from policies.baselines import TABLE_BASELINES, Policy
from policies.evaluation import (
    RescheduleEvalSpec,
    SeedEvaluation,
    TwoTierEvalSpec,
    evaluate_reschedule_detailed,
    evaluate_two_tier_detailed,
)
from policies.identity import IdentityVecEnv

ENV_KINDS = ("two_tier", "reschedule")


def check_env_kind(kind: str) -> None:
    """Reject an unknown ``env``, naming the choices."""
    if kind not in ENV_KINDS:
        raise ValueError(f"env: expected one of {ENV_KINDS}, got {kind!r}")


def reschedule_settings(cfg: Any, cluster: str | None) -> Any:
    """``cfg.reschedule`` with the cluster folder replaced when one is given."""
    if cluster is None:
        return cfg.reschedule
    return dataclasses.replace(cfg.reschedule, cluster=cluster)


def identity_of(cfg: Any, region: str | None) -> int:
    """A region's identity index: its position in the federation's region list."""
    regions = list(getattr(getattr(cfg, "federation", None), "regions", None) or [])
    return regions.index(region) if region in regions else 0


def make_training_env(cfg: Any, region: str | None, n_envs: int, seed: int) -> VecEnv:
    """The VecEnv a learner trains on, from a ``conf.schema.RunConfig``-like cfg."""
    check_env_kind(cfg.env)
    if cfg.env == "two_tier":
        return make_region_vec_env(
            cfg.scenario,
            region,
            n_envs=n_envs,
            seed=seed,
            config=cfg.two_tier,
            reward=cfg.reward,
        )
    from envs.reach.core import ReachCore

    core = ReachCore.from_settings(reschedule_settings(cfg, region), num_envs=n_envs)
    env: VecEnv = BatchedVecEnv(core, seed=seed)
    slots = getattr(getattr(cfg, "policy", None), "identity_slots", 0)
    if slots > 0:
        env = IdentityVecEnv(env, identity_of(cfg, region), slots)
    return env


def baseline_names(cfg: Any) -> tuple[str, ...]:
    """The named baselines of ``cfg.env``."""
    check_env_kind(cfg.env)
    if cfg.env == "two_tier":
        return (*TWO_TIER_BASELINES, *TABLE_BASELINES)
    from envs.reach.baselines import BASELINES

    return tuple(BASELINES)


def evaluate(
    policy: Policy | str, cfg: Any, region: str | None, seeds: list[int]
) -> list[dict[str, float]]:
    """Metrics per seed of ``policy`` (or a baseline name) on held-out episodes."""
    return [result.metrics for result in evaluate_detailed(policy, cfg, region, seeds)]


def evaluate_detailed(
    policy: Policy | str, cfg: Any, region: str | None, seeds: list[int]
) -> list[SeedEvaluation]:
    """Per seed: metrics, latency sketches (two-tier) or episodes (rescheduling)."""
    check_env_kind(cfg.env)
    if cfg.env == "two_tier":
        spec = TwoTierEvalSpec(
            scenario=cfg.scenario,
            region=region,
            seeds=seeds,
            decisions=cfg.train.eval_decisions,
            env=cfg.two_tier,
            reward=cfg.reward,
            deterministic=cfg.train.eval_deterministic,
        )
        return evaluate_two_tier_detailed(policy, spec)
    slots = getattr(getattr(cfg, "policy", None), "identity_slots", 0)
    reschedule_spec = RescheduleEvalSpec(
        reschedule_settings(cfg, region),
        seeds,
        cfg.train.eval_episodes,
        identity=(identity_of(cfg, region), slots) if slots > 0 else None,
        deterministic=cfg.train.eval_deterministic,
    )
    return evaluate_reschedule_detailed(policy, reschedule_spec)


SCORE = {"two_tier": "mean_reward", "reschedule": "latency_reduction_pct"}
"""The headline metric of each env kind (higher is better)."""
