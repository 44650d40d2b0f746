"""Cloud-edge continuum simulator and its Gymnasium environments.

Importing ``envs`` registers the env ids; it pulls in neither torch nor SB3.
"""

from __future__ import annotations

import gymnasium as gym

from envs.config import ScenarioConfig
from envs.errors import ConfigError
from envs.reach import register_envs as _register_reach_envs
from envs.scenario import World, compile_scenario, load_scenario
from envs.two_tier.config import RewardConfig, Tier, TwoTierEnvConfig
from envs.two_tier.core import TwoTierCore
from envs.two_tier.env import TwoTierSchedulingEnv
from envs.two_tier.factory import TWO_TIER_IDS, make_region_env, make_region_vec_env

_EPISODE_LENGTH = TwoTierEnvConfig().episode_length

for _tier, _env_id in TWO_TIER_IDS.items():
    if _env_id not in gym.registry:
        gym.register(
            id=_env_id,
            entry_point="envs.two_tier.env:TwoTierSchedulingEnv",
            max_episode_steps=_EPISODE_LENGTH,
            kwargs={"config": TwoTierEnvConfig(learn=_tier)},
        )

_register_reach_envs()

__all__ = [
    "TWO_TIER_IDS",
    "ConfigError",
    "RewardConfig",
    "ScenarioConfig",
    "Tier",
    "TwoTierCore",
    "TwoTierEnvConfig",
    "TwoTierSchedulingEnv",
    "World",
    "compile_scenario",
    "load_scenario",
    "make_region_env",
    "make_region_vec_env",
]
