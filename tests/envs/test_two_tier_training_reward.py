"""Training rewards: raw by default; scaled or centred for the learner only.

Each transformed stream is checked against the raw rewards of an identical env
driven by the same actions, recomputed here with numpy; the core underneath keeps
the raw reward, which evaluation and metrics read.
"""

from __future__ import annotations

import numpy as np
import pytest

from envs import TwoTierEnvConfig, make_region_vec_env
from envs.errors import ConfigError
from envs.vec_env import BatchedVecEnv


def paired(mode: str, gamma: float = 0.99, steps: int = 400):
    """Rewards of a ``mode`` env and of a raw twin on the same seed and actions."""
    config = TwoTierEnvConfig(train_reward=mode, train_reward_gamma=gamma)
    env = make_region_vec_env("small", "eu-central", 4, seed=3, config=config)
    raw = make_region_vec_env("small", "eu-central", 4, seed=3)
    env.reset()
    raw.reset()
    rng = np.random.default_rng(0)
    got, base, dones = [], [], []
    for _ in range(steps):
        masks = raw.env_method("action_masks")
        actions = np.array([rng.choice(np.flatnonzero(m)) for m in masks])
        env.step_async(actions)
        raw.step_async(actions)
        _, r, d, _ = env.step_wait()
        _, r0, _, _ = raw.step_wait()
        got.append(r)
        base.append(r0)
        dones.append(d)
    return env, np.array(got), np.array(base), np.array(dones)


def test_raw_is_the_plain_vec_env() -> None:
    env = make_region_vec_env("small", "eu-central", 2, seed=0)
    assert isinstance(env, BatchedVecEnv)


def test_differential_reward_is_raw_minus_the_running_mean_then_scaled() -> None:
    gamma = 0.999
    env, got, base, dones = paired("differential", gamma)
    flat = base.astype(np.float64)
    means = np.concatenate(
        [[0.0], np.cumsum(flat.ravel()) / np.arange(1, flat.size + 1)]
    )
    before = means[np.arange(0, flat.size, flat.shape[1])][: flat.shape[0]]
    centred = flat - before[:, None]  # the mean of every reward before this step
    returns = np.zeros(flat.shape[1])
    history = []
    for t in range(flat.shape[0]):
        returns = returns * gamma + centred[t].astype(np.float32)
        history.append(returns.copy())
        var = _prior_variance(np.array(history))
        expected = np.clip(centred[t] / np.sqrt(var + 1e-8), -10, 10)
        np.testing.assert_allclose(got[t], expected, rtol=2e-3, atol=1e-5)
        returns[dones[t]] = 0.0
    assert env.core.reward.dtype == np.float32  # reached through the wrappers
    assert np.abs(got).mean() > 0.05  # the rewards were not all zero


def test_scaled_reward_divides_by_the_spread_of_the_discounted_return() -> None:
    gamma = 0.9
    _, got, base, dones = paired("scaled", gamma)
    returns = np.zeros(base.shape[1])
    history = []
    for t in range(base.shape[0]):
        returns = returns * gamma + base[t]
        history.append(returns.copy())
        var = _prior_variance(np.array(history))
        expected = np.clip(base[t] / np.sqrt(var + 1e-8), -10, 10)
        np.testing.assert_allclose(got[t], expected, rtol=2e-3, atol=1e-5)
        returns[dones[t]] = 0.0


def _prior_variance(history: np.ndarray) -> float:
    """Variance of all returns so far, pooled with SB3's prior (mean 0, var 1, n 1e-4)."""
    values = history.ravel().astype(np.float64)
    prior = 1e-4
    n = values.size + prior
    mean = values.sum() / n
    second = (np.square(values).sum() + prior * 1.0) / n
    return float(second - mean**2)


def test_the_core_keeps_the_raw_reward() -> None:
    env, got, base, _ = paired("differential", 0.99, steps=50)
    core = env.core
    np.testing.assert_array_equal(core.reward, base[-1])  # raw, as the twin's
    assert not np.allclose(got[-1], base[-1])


@pytest.mark.parametrize(
    ("mode", "gamma", "field"),
    [
        ("normalised", 0.99, "env.train_reward"),
        ("scaled", 0.0, "env.train_reward_gamma"),
    ],
)
def test_bad_training_rewards_are_refused(mode: str, gamma: float, field: str) -> None:
    config = TwoTierEnvConfig(train_reward=mode, train_reward_gamma=gamma)
    with pytest.raises(ConfigError, match=field):
        make_region_vec_env("small", "eu-central", 1, seed=0, config=config)
