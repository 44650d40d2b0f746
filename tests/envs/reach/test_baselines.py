"""Baselines: same predict interface as SB3 policies, and each does what it says."""

from __future__ import annotations

import copy

import gymnasium as gym
import numpy as np
import pytest

from envs.reach.baselines import (
    Greedy,
    KeepPlacement,
    RandomValid,
    Rebalancer,
    make_baseline,
)
from envs.reach.config import RescheduleConfig
from envs.reach.core import ReachCore
from envs.reach.env import ReachRescheduleEnv
from envs.reach.generator import generate


def test_keep_placement_always_stops_single_and_batched() -> None:
    policy = KeepPlacement(n_actions=148)
    action, state = policy.predict(np.zeros(10, dtype=np.float32))
    assert action.shape == () and int(action) == 147 and state is None
    actions, _ = policy.predict(np.zeros((5, 10), dtype=np.float32))
    assert actions.tolist() == [147] * 5


def test_random_valid_only_picks_valid_actions() -> None:
    policy = RandomValid(seed=0)
    masks = np.zeros((64, 20), dtype=bool)
    masks[:, -1] = True
    masks[::2, 3] = True
    actions, _ = policy.predict(np.zeros((64, 4)), action_masks=masks)
    assert masks[np.arange(64), actions].all()
    assert set(actions.tolist()) == {3, 19}
    with pytest.raises(ValueError, match="expected action_masks"):
        policy.predict(np.zeros(4))


def test_greedy_takes_the_best_single_move() -> None:
    """Brute force over copies of the env: greedy's drop is the largest drop."""
    env = ReachRescheduleEnv(pattern="aggregator_parallel")
    obs, info = env.reset(seed=4)
    greedy = Greedy(env.core)
    for _ in range(3):
        action, _ = greedy.predict(obs, action_masks=info["action_mask"])
        drops = {}
        for candidate in np.flatnonzero(info["action_mask"][:-1]):
            trial = copy.deepcopy(env)
            drops[int(candidate)] = trial.step(int(candidate))[4]["latency_drop"]
        best = max(drops.values())
        if best <= 1e-6:
            assert int(action) == env.action_space.n - 1
            break
        assert drops[int(action)] == pytest.approx(best)
        obs, _, _, _, info = env.step(int(action))


def test_greedy_and_rebalancer_work_on_a_batch() -> None:
    config = generate(12, 28, seed=0).to_config("chain")
    core = ReachCore(config, RescheduleConfig(), num_envs=6)
    obs = core.reset(seed=0)
    for name in ("greedy", "rebalance", "keep", "random"):
        policy = make_baseline(name, core, seed=0)
        actions, _ = policy.predict(obs, action_masks=core.action_masks())
        assert actions.shape == (6,)
        assert core.action_masks()[np.arange(6), actions].all()


def test_rebalancer_narrows_the_utilisation_spread() -> None:
    env = ReachRescheduleEnv(placement="random", replicas="max")
    obs, info = env.reset(seed=1)
    policy = Rebalancer(env.core, tolerance=0.05)

    def spread() -> float:
        res = env.core.node_resources(0)
        util = 1 - res["cpu_free"][:-1] / res["cpu_capacity"][:-1]
        return float(util.max() - util.min())

    start = spread()
    moves = 0
    for _ in range(50):
        action, _ = policy.predict(obs, action_masks=info["action_mask"])
        obs, _, terminated, _, info = env.step(int(action))
        if terminated:
            break
        moves += 1
    assert moves > 0 and spread() < start


def test_greedy_beats_keep_and_random_on_the_example() -> None:
    """Mean return over 5 seeds: keep earns 0 by definition; greedy must do better."""
    returns = {}
    for name in ("keep", "random", "greedy"):
        env = gym.make("ReachReschedule-v0")
        policy = make_baseline(name, env.unwrapped.core, seed=0)  # type: ignore[attr-defined]
        total = 0.0
        for seed in range(5):
            obs, info = env.reset(seed=seed)
            done = False
            while not done:
                action, _ = policy.predict(obs, action_masks=info["action_mask"])
                obs, reward, terminated, truncated, info = env.step(int(action))
                total += float(reward)
                done = terminated or truncated
        returns[name] = total / 5
    assert returns["keep"] == 0.0
    assert returns["greedy"] > max(returns["keep"], returns["random"]) + 10.0
