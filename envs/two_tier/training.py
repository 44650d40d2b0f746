"""What a two-tier learner is paid in training: the raw reward, scaled, or centred.

With ``policy.gamma`` near 1 (a horizon of about a second of simulated time, which
the externality of a long request needs) the discounted return of a continuing
queue is large and slow-moving, so value targets are badly scaled. Two standard
cures, both applied to training rewards only (``two_tier.train_reward``):

* ``scaled``: divide by the running std of the discounted return (SB3's
  ``VecNormalize`` with ``norm_obs=False``);
* ``differential``: first subtract the running mean reward per decision
  (:class:`CentredReward`; Decima's average-reward baseline), then scale.

Subtracting a constant from every reward of a continuing task changes every
discounted value by the same amount, so advantages, and the policy they select, are
unchanged; scaling by a positive number changes only the step size.
"""

from __future__ import annotations

import numpy as np
from stable_baselines3.common.vec_env import VecEnv, VecEnvWrapper, VecNormalize
from stable_baselines3.common.vec_env.base_vec_env import VecEnvObs, VecEnvStepReturn

from envs.errors import ConfigError

TRAIN_REWARDS = ("raw", "scaled", "differential")


class CentredReward(VecEnvWrapper):
    """Rewards minus their running mean per step (an average-reward baseline).

    The mean is over every step of every environment so far, with at most
    ``window`` steps of memory (an exponential average once that many were seen),
    so it follows a policy that improves.
    """

    def __init__(self, venv: VecEnv, window: int = 100_000) -> None:
        super().__init__(venv)
        if window < 1:
            raise ConfigError("window", f"at least 1 step, got {window}")
        self.window = window
        self.mean = 0.0
        self.count = 0

    def reset(self) -> VecEnvObs:
        """Reset the environments (the running mean is kept)."""
        return self.venv.reset()

    def step_wait(self) -> VecEnvStepReturn:
        """Step, then centre the rewards on the mean before this step."""
        obs, rewards, dones, infos = self.venv.step_wait()
        centred = (rewards - self.mean).astype(np.float32)
        for value in rewards.astype(np.float64):
            self.count += 1
            self.mean += (value - self.mean) / min(self.count, self.window)
        return obs, centred, dones, infos


def training_reward(venv: VecEnv, mode: str, gamma: float) -> VecEnv:
    """``venv`` paying the learner the ``mode`` reward (``raw`` returns it unchanged).

    Raises:
        ConfigError: an unknown mode, or a discount outside (0, 1].
    """
    if mode not in TRAIN_REWARDS:
        raise ConfigError("env.train_reward", f"one of {TRAIN_REWARDS}, got {mode!r}")
    if not 0.0 < gamma <= 1.0:
        raise ConfigError(
            "env.train_reward_gamma", f"a discount in (0, 1], got {gamma}"
        )
    if mode == "raw":
        return venv
    if mode == "differential":
        venv = CentredReward(venv)
    return VecNormalize(venv, norm_obs=False, norm_reward=True, gamma=gamma)
