"""Builders of the environments one federated client trains and evaluates on."""

from __future__ import annotations

from typing import TYPE_CHECKING

import gymnasium as gym

from envs.config import ScenarioConfig
from envs.two_tier.config import RewardConfig, Tier, TwoTierEnvConfig
from envs.two_tier.core import TwoTierCore

if TYPE_CHECKING:
    from stable_baselines3.common.vec_env import VecEnv

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
) -> VecEnv:
    """``n_envs`` copies of a region's env on one batched core, as an SB3 VecEnv.

    The learner is paid ``config.train_reward`` (:mod:`envs.two_tier.training`); the
    core underneath (``.core``, reached through any wrapper) keeps the raw reward.
    """
    from envs.two_tier.training import training_reward  # SB3 only when asked for
    from envs.vec_env import BatchedVecEnv

    config = config or TwoTierEnvConfig()
    controlled = (
        None if region is None else ([region] if isinstance(region, str) else region)
    )
    core = TwoTierCore(scenario, n_envs, controlled, config, reward, auto_truncate=True)
    venv = BatchedVecEnv(core, seed=seed, step_infos=step_infos)
    return training_reward(venv, config.train_reward, config.train_reward_gamma)
