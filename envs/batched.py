"""The contract of batched simulator cores, so one VecEnv adapter serves both envs.

A core holds the state of ``num_envs`` independent environments in numpy arrays and
advances all of them with one call. It resets finished environments itself
(auto-reset), returning the observation each one ended on in ``final_obs``. The
single-environment Gymnasium classes are the ``num_envs == 1`` view of a core.
"""

from __future__ import annotations

from typing import Any, NamedTuple, Protocol

import numpy as np
from gymnasium import spaces


class BatchStep(NamedTuple):
    """What one batched step returns (arrays are owned by the core: copy to keep)."""

    obs: np.ndarray
    """``float32[B, D]``: observation after the step (after auto-reset where done)."""
    reward: np.ndarray
    """``float32[B]``."""
    terminated: np.ndarray
    """``bool[B]``."""
    truncated: np.ndarray
    """``bool[B]``."""
    final_obs: np.ndarray
    """``float32[B, D]``: the last observation of an episode; valid where done."""


class BatchedCore(Protocol):
    """A batch of ``num_envs`` environments advanced together."""

    num_envs: int

    @property
    def single_observation_space(self) -> spaces.Box:
        """Observation space of one environment."""
        ...

    @property
    def single_action_space(self) -> spaces.Discrete:
        """Action space of one environment."""
        ...

    def reset(self, seed: int | None = None) -> np.ndarray:
        """Reset every environment; return ``float32[B, D]`` observations."""
        ...

    def step(self, actions: np.ndarray) -> BatchStep:
        """Apply one action per environment and auto-reset the finished ones."""
        ...

    def action_masks(self) -> np.ndarray:
        """``bool[B, A]``: the valid actions of each environment's current state."""
        ...

    def step_info(self, index: int) -> dict[str, Any]:
        """Raw, unweighted components of the last step of environment ``index``."""
        ...

    def episode_info(self, index: int) -> dict[str, Any]:
        """Totals of the episode environment ``index`` just finished."""
        ...
