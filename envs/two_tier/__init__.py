"""Two-tier request scheduling: a load balancer picks the region, a scheduler the node.

| module | what |
|---|---|
| ``config`` | which tier learns, the heuristics around it, reward weights |
| ``layout`` | the observation's blocks and columns |
| ``heuristics`` | load balancers and schedulers, scored on observation blocks |
| ``kernels`` | the numba event loop of B environments |
| ``core`` | :class:`TwoTierCore`, the batched core over the kernels |
| ``env`` | :class:`TwoTierSchedulingEnv`, the Gymnasium (B = 1) view |
| ``live`` | the observable state of a live system, for serving decisions |
| ``factory`` | a region's env and VecEnv, as a federated client trains on |

The world these decisions act on (regions, nodes, prices, carbon, traffic) is
:mod:`envs.scenario`; the REACH rescheduling problem is its sibling :mod:`envs.reach`.
"""

from __future__ import annotations

from envs.two_tier.config import RewardConfig, Tier, TwoTierEnvConfig
from envs.two_tier.core import TwoTierCore
from envs.two_tier.env import TwoTierSchedulingEnv
from envs.two_tier.factory import TWO_TIER_IDS, make_region_env, make_region_vec_env
from envs.two_tier.live import NodeLoad, ObservableState

__all__ = [
    "TWO_TIER_IDS",
    "NodeLoad",
    "ObservableState",
    "RewardConfig",
    "Tier",
    "TwoTierCore",
    "TwoTierEnvConfig",
    "TwoTierSchedulingEnv",
    "make_region_env",
    "make_region_vec_env",
]
