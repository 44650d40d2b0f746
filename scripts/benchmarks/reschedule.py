"""Steps per second of the REACH rescheduling env (single env, batched core, large).

``python -m scripts.bench reschedule --json`` prints ``steps_per_s`` (one Gymnasium
env made from its registered id, generated 12-28 cluster, masks computed every step),
``batched_steps_per_s`` (the batched core, B = 512, 12-28) and ``large_steps_per_s``
(one Gymnasium env, generated 100-300 cluster). Actions are uniformly random valid
ones drawn from the masks; each figure is the best of ``--repeats`` timed runs
after a warm-up (which also compiles the kernels on a cold cache).
"""

from __future__ import annotations

import argparse
import time
from typing import Any

import gymnasium as gym
import numba as nb
import numpy as np

from envs.reach import register_envs
from envs.reach.config import RescheduleConfig
from envs.reach.core import ReachCore
from envs.reach.generator import generate
from envs.reach.model import ReachConfig
from envs.rng import randint, seed_streams


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Budget of each measurement."""
    parser.add_argument("--steps", type=int, default=50_000, help="single-env steps")
    parser.add_argument("--batched-steps", type=int, default=200, help="B=512 steps")
    parser.add_argument("--large-steps", type=int, default=10_000, help="100-300 steps")
    parser.add_argument("--repeats", type=int, default=3, help="keep the best run")
    parser.add_argument("--pattern", default="aggregator_parallel", help="call pattern")


@nb.njit(cache=True)
def _random_valid(masks: np.ndarray, rng: np.ndarray, out: np.ndarray) -> None:
    """A uniformly random valid action per row (rejection sampling on the mask)."""
    n_actions = masks.shape[1]
    for b in range(masks.shape[0]):
        action = randint(rng, b, n_actions)
        while not masks[b, action]:
            action = randint(rng, b, n_actions)
        out[b] = action


def _single_env(config: ReachConfig, steps: int, repeats: int) -> float:
    register_envs()
    env = gym.make("ReachReschedule-v0", reach_config=config)
    rng = seed_streams(np.random.default_rng(0), 1)
    action = np.zeros(1, dtype=np.int64)
    best = 0.0
    for run in range(repeats + 1):
        _, info = env.reset(seed=run)
        count = steps if run else min(steps, 1000)  # run 0 warms up
        start = time.perf_counter()
        for _ in range(count):
            _random_valid(info["action_mask"][None, :], rng, action)
            _, _, terminated, truncated, info = env.step(int(action[0]))
            if terminated or truncated:
                _, info = env.reset()
        if run:
            best = max(best, count / (time.perf_counter() - start))
    return best


def _batched(config: ReachConfig, num_envs: int, steps: int, repeats: int) -> float:
    core = ReachCore(config, RescheduleConfig(), num_envs)
    rng = seed_streams(np.random.default_rng(0), num_envs)
    actions = np.zeros(num_envs, dtype=np.int64)
    best = 0.0
    for run in range(repeats + 1):
        core.reset(seed=run)
        count = steps if run else min(steps, 10)
        start = time.perf_counter()
        for _ in range(count):
            _random_valid(core.action_masks(), rng, actions)
            core.step(actions)
        if run:
            best = max(best, count * num_envs / (time.perf_counter() - start))
    return best


def run(args: Any) -> dict[str, float]:
    """Measure the three figures."""
    small = generate(12, 28, seed=0, patterns=(args.pattern,)).to_config(args.pattern)
    large = generate(100, 300, seed=0, patterns=(args.pattern,)).to_config(args.pattern)
    return {
        "steps_per_s": round(_single_env(small, args.steps, args.repeats)),
        "batched_steps_per_s": round(
            _batched(small, 512, args.batched_steps, args.repeats)
        ),
        "large_steps_per_s": round(_single_env(large, args.large_steps, args.repeats)),
    }
