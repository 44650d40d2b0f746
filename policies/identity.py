"""An identity input: the region's (or cluster's) one-hot id appended to observations.

With it, one global policy can specialise per region while still sharing every
weight; the ablations train with and without it (``policy.identity_slots``: 0 = off).
The two-tier env has its own form, the origin region one-hot
(``two_tier.region_id_input``); this wrapper gives the rescheduling env (and any env
whose observation does not name its origin) the same ability.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from gymnasium import spaces
from stable_baselines3.common.vec_env import VecEnv, VecEnvWrapper
from stable_baselines3.common.vec_env.base_vec_env import VecEnvObs, VecEnvStepReturn


def one_hot(identity: int, slots: int) -> np.ndarray:
    """``float32[slots]`` with a 1 at ``identity``."""
    if not 0 <= identity < slots:
        raise ValueError(f"identity: expected an index in [0, {slots}), got {identity}")
    vector = np.zeros(slots, dtype=np.float32)
    vector[identity] = 1.0
    return vector


def with_identity(observation: np.ndarray, identity: int, slots: int) -> np.ndarray:
    """Append the one-hot id to one observation or a batch of them."""
    obs = np.asarray(observation, dtype=np.float32)
    tail = one_hot(identity, slots)
    if obs.ndim == 1:
        return np.concatenate([obs, tail])
    return np.concatenate([obs, np.broadcast_to(tail, (obs.shape[0], slots))], axis=1)


class IdentityVecEnv(VecEnvWrapper):
    """Appends the one-hot identity to every observation of a Box-observation VecEnv."""

    def __init__(self, venv: VecEnv, identity: int, slots: int) -> None:
        space = venv.observation_space
        if not isinstance(space, spaces.Box) or len(space.shape) != 1:
            raise ValueError("identity input: expected a flat Box observation space")
        one_hot(identity, slots)  # validates the index
        low = np.concatenate([space.low, np.zeros(slots, dtype=space.dtype)])
        high = np.concatenate([space.high, np.ones(slots, dtype=space.dtype)])
        super().__init__(
            venv, observation_space=spaces.Box(low, high, dtype=space.dtype)
        )
        self.identity, self.slots = identity, slots

    def reset(self) -> VecEnvObs:
        """Reset and tag."""
        return with_identity(self.venv.reset(), self.identity, self.slots)  # type: ignore[arg-type]

    def step_wait(self) -> VecEnvStepReturn:
        """Step and tag (terminal observations too)."""
        obs, rewards, dones, infos = self.venv.step_wait()
        for info in infos:
            if "terminal_observation" in info:
                info["terminal_observation"] = with_identity(
                    info["terminal_observation"], self.identity, self.slots
                )
        return with_identity(obs, self.identity, self.slots), rewards, dones, infos  # type: ignore[arg-type]

    def env_method(
        self, method_name: str, *args: Any, indices: Any = None, **kwargs: Any
    ) -> list[Any]:
        """Forward (``action_masks`` in particular) to the wrapped VecEnv."""
        return self.venv.env_method(method_name, *args, indices=indices, **kwargs)
