"""A native Stable-Baselines3 ``VecEnv`` over a batched simulator core.

MaskablePPO then trains on ``n_envs`` environments in one process with no subprocesses
and no per-env Python objects: one numba call steps them all. Masks are served through
``env_method("action_masks")``, which is how sb3-contrib asks a VecEnv for them.
Episode statistics are reported in ``info["episode"]`` like ``VecMonitor`` does.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import gymnasium as gym
import numpy as np
from stable_baselines3.common.vec_env.base_vec_env import (
    VecEnv,
    VecEnvIndices,
    VecEnvObs,
    VecEnvStepReturn,
)

from envs.batched import BatchedCore


class BatchedVecEnv(VecEnv):
    """SB3 VecEnv adapter for any :class:`envs.batched.BatchedCore`.

    Args:
        core: the batched core; its ``num_envs`` sets the VecEnv size.
        seed: base seed of the first reset (``VecEnv.seed`` overrides it).
        step_infos: also put each step's raw reward components in ``infos``
            (evaluation); off for training, where building dicts would dominate.
    """

    def __init__(
        self, core: BatchedCore, seed: int | None = None, step_infos: bool = False
    ) -> None:
        self.core = core  # before super().__init__, which reads render_mode through it
        super().__init__(
            core.num_envs, core.single_observation_space, core.single_action_space
        )
        self.step_infos = step_infos
        self._base_seed = seed
        self._actions: np.ndarray = np.zeros(core.num_envs, dtype=np.int64)
        self._t0 = time.perf_counter()

    # -- VecEnv API --------------------------------------------------------------------
    def reset(self) -> VecEnvObs:
        """Reset all environments (seeded by ``seed()`` or the constructor seed)."""
        seed = self._seeds[0] if self._seeds[0] is not None else self._base_seed
        obs = self.core.reset(seed=seed)
        self._reset_seeds()
        self._reset_options()
        self.reset_infos = [{} for _ in range(self.num_envs)]
        return obs.copy()

    def step_async(self, actions: np.ndarray) -> None:
        """Keep the actions for ``step_wait`` (as SB3's ``DummyVecEnv`` does).

        They are checked once, by the core's ``step``
        (:func:`envs.checks.check_actions`): casting them here would truncate floats.
        """
        self._actions = actions

    def step_wait(self) -> VecEnvStepReturn:
        """Advance every environment by one decision."""
        out = self.core.step(self._actions)
        dones = out.terminated | out.truncated
        infos: list[dict[str, Any]] = (
            [self.core.step_info(i) for i in range(self.num_envs)]
            if self.step_infos
            else [{} for _ in range(self.num_envs)]
        )
        for i in np.flatnonzero(dones):
            info = infos[i]
            info["terminal_observation"] = out.final_obs[i].copy()
            info["TimeLimit.truncated"] = bool(
                out.truncated[i] and not out.terminated[i]
            )
            episode = self.core.episode_info(int(i))
            episode["t"] = round(time.perf_counter() - self._t0, 6)
            info["episode"] = episode
        return out.obs.copy(), out.reward.copy(), dones, infos

    def close(self) -> None:
        """Nothing to release: the core holds only arrays."""

    def action_masks(self) -> np.ndarray:
        """``bool[B, A]`` masks of all environments."""
        return self.core.action_masks().copy()

    def has_attr(self, attr_name: str) -> bool:
        """True for attributes of the core and for ``action_masks``."""
        return attr_name == "action_masks" or hasattr(self.core, attr_name)

    def get_attr(self, attr_name: str, indices: VecEnvIndices = None) -> list[Any]:
        """The core's attribute, repeated for each requested index."""
        value = getattr(self.core, attr_name)
        return [value for _ in self._get_indices(indices)]

    def set_attr(
        self, attr_name: str, value: Any, indices: VecEnvIndices = None
    ) -> None:
        """Set an attribute on the (shared) core."""
        setattr(self.core, attr_name, value)

    def env_method(
        self,
        method_name: str,
        *method_args: Any,
        indices: VecEnvIndices = None,
        **method_kwargs: Any,
    ) -> list[Any]:
        """``action_masks`` per env (what sb3-contrib calls); others on the core."""
        idx = list(self._get_indices(indices))
        if method_name == "action_masks":
            masks = self.core.action_masks()
            return [masks[i] for i in idx]
        result = getattr(self.core, method_name)(*method_args, **method_kwargs)
        return [result for _ in idx]

    def env_is_wrapped(
        self, wrapper_class: type[gym.Wrapper], indices: VecEnvIndices = None
    ) -> list[bool]:
        """No Gymnasium wrappers exist inside a batched core."""
        return [False for _ in self._get_indices(indices)]

    def get_images(self) -> Sequence[np.ndarray | None]:
        """Rendering is not supported."""
        return [None for _ in range(self.num_envs)]
