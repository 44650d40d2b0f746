"""REACH-compatible microservice rescheduling: configs, latency model, batched env.

Importing this package is light (no torch, no SB3, no numba kernels); the env class
and the core are imported by Gymnasium when an id is made.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym

from envs.reach.config import RescheduleConfig
from envs.reach.errors import ReachConfigError, ReachPayloadError, ReachPlacementError

ENV_IDS: dict[str, dict[str, Any]] = {
    "ReachReschedule-v0": {},
    "ReachRescheduleDict-v0": {"observation": "reach"},
    "ReachRescheduleDynamic-v0": {
        "queueing": True,
        "response_transfer": True,
        "failure_prob": 0.02,
        "degradation_prob": 0.05,
        "surge_prob": 0.05,
        "slo_penalty": 1.0,
    },
}
"""Registered ids and their :class:`RescheduleConfig` overrides: REACH mode with the
flat observation, REACH mode with REACH's Dict keys, and every extension on."""


def register_envs() -> None:
    """Register the rescheduling env ids with Gymnasium (idempotent)."""
    for env_id, kwargs in ENV_IDS.items():
        if env_id not in gym.registry:
            gym.register(
                id=env_id,
                entry_point="envs.reach.env:ReachRescheduleEnv",
                max_episode_steps=RescheduleConfig().max_moves,
                kwargs=dict(kwargs),
            )


__all__ = [
    "ENV_IDS",
    "ReachConfigError",
    "ReachPayloadError",
    "ReachPlacementError",
    "RescheduleConfig",
    "register_envs",
]
