"""Builders of the environments one federated client trains and evaluates on."""

from __future__ import annotations

from typing import TYPE_CHECKING

import gymnasium as gym

from envs.config import ScenarioConfig
from envs.two_tier.config import RewardConfig, Tier, TwoTierEnvConfig
from envs.two_tier.core import TwoTierCore

if TYPE_CHECKING:
    from envs.vec_env import BatchedVecEnv

TWO_TIER_IDS = {
    Tier.both: "TwoTier-v0",
    Tier.lb: "TwoTierLB-v0",
    Tier.scheduler: "TwoTierScheduler-v0",
}


def make_region_env(
    scenario: str | ScenarioConfig,
    region: str | None,
    seed: int | None = None,
    config: TwoTierEnvConfig | None = None,
    reward: RewardConfig | None = None,
) -> gym.Env:
    """The two-tier env of one region: its own traffic, the others as neighbours.

    The env is seeded (``reset(seed=seed)``) so that later ``reset()`` calls continue
    one reproducible sequence. ``region=None`` controls every region (centralised).
    """
    config = config or TwoTierEnvConfig()
    env = gym.make(
        TWO_TIER_IDS[Tier(config.learn)],
        scenario=scenario,
        region=region,
        config=config,
        reward=reward,
        max_episode_steps=config.episode_length,
    )
    env.reset(seed=seed)
    env.action_space.seed(seed)
    return env


def make_region_vec_env(
    scenario: str | ScenarioConfig,
    region: str | list[str] | None,
    n_envs: int,
    seed: int | None = None,
    config: TwoTierEnvConfig | None = None,
    reward: RewardConfig | None = None,
    step_infos: bool = False,
) -> BatchedVecEnv:
    """``n_envs`` copies of a region's env on one batched core, as an SB3 VecEnv."""
    from envs.vec_env import BatchedVecEnv  # SB3 (and torch) only when asked for

    controlled = (
        None if region is None else ([region] if isinstance(region, str) else region)
    )
    core = TwoTierCore(scenario, n_envs, controlled, config, reward, auto_truncate=True)
    return BatchedVecEnv(core, seed=seed, step_infos=step_infos)
