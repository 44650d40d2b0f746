"""Builders that turn the typed run config into environments, learners and evaluations.

One place maps ``cfg.env`` (``two_tier`` or ``reschedule``) to the right env, so the
training script, the Flower client and the server all build the same things.
"""

from __future__ import annotations

from typing import Any

from stable_baselines3.common.vec_env import VecEnv

from envs import make_region_vec_env
from envs.two_tier_core import TwoTierCore
from policies.baselines import TwoTierHeuristicPolicy
from policies.evaluation import TwoTierEvalSpec, evaluate_two_tier

ENV_KINDS = ("two_tier", "reschedule")


def check_env_kind(kind: str) -> None:
    """Reject an unknown ``env``, naming the choices."""
    if kind not in ENV_KINDS:
        raise ValueError(f"env: expected one of {ENV_KINDS}, got {kind!r}")


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
    raise NotImplementedError("reschedule training env: see envs.reach")


def evaluate(
    policy: Any, cfg: Any, region: str | None, seeds: list[int]
) -> list[dict[str, float]]:
    """Metrics per seed of ``policy`` on held-out episodes of ``region``'s env."""
    check_env_kind(cfg.env)
    if cfg.env == "two_tier":
        spec = TwoTierEvalSpec(
            scenario=cfg.scenario,
            region=region,
            seeds=seeds,
            decisions=cfg.train.eval_decisions,
            env=cfg.two_tier,
            reward=cfg.reward,
        )
        return evaluate_two_tier(policy, spec)
    raise NotImplementedError("reschedule evaluation: see envs.reach")


def baseline(name: str, cfg: Any, seed: int = 0) -> Any:
    """A named baseline policy for ``cfg.env``."""
    check_env_kind(cfg.env)
    if cfg.env == "two_tier":
        layout = TwoTierCore(cfg.scenario, 1, config=cfg.two_tier).layout
        return TwoTierHeuristicPolicy.named(name, layout, seed=seed)
    raise NotImplementedError("reschedule baselines: see envs.reach.baselines")
