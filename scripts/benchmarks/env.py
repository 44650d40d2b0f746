"""Two-tier simulator speed and memory (single env, B=1024 default, B=256 large).

The headline keys use the registered env with its default arguments
(``TwoTier-v0``: every region's requests are decisions); the ``region_*`` keys use a
federated client's env (one region decides, the others are simulated traffic, about
five background requests per decision in ``default``).
"""

from __future__ import annotations

import argparse
import resource
import time
from typing import Any

import numpy as np

from envs import TwoTierCore, TwoTierEnvConfig, make_region_env

REGION = "eu-central"  # a federated client's env: its traffic decided, others simulated


def _single_env_steps_per_s(seconds: float, region: str | None) -> float:
    env = make_region_env("default", region, seed=0)
    _, info = env.reset(seed=0)
    mask = info["action_mask"]
    for _ in range(2000):  # load the compiled kernels, warm caches
        _, _, _, truncated, info = env.step(int(mask.argmax()))
        mask = info["action_mask"]
    steps = 0
    start = time.perf_counter()
    deadline = start + seconds
    while True:
        for _ in range(1000):
            _, _, terminated, truncated, info = env.step(int(mask.argmax()))
            mask = info["action_mask"]
            if terminated or truncated:
                _, info = env.reset()
                mask = info["action_mask"]
        steps += 1000
        if time.perf_counter() > deadline:
            return steps / (time.perf_counter() - start)


def _batched_steps_per_s(
    scenario: str, num_envs: int, seconds: float, controlled: list[str] | None
) -> float:
    core = TwoTierCore(
        scenario, num_envs, controlled=controlled, config=TwoTierEnvConfig()
    )
    core.reset(seed=0)
    for _ in range(3):  # warm caches
        core.step(core.mask.argmax(axis=1))
    steps = 0
    start = time.perf_counter()
    while time.perf_counter() - start < seconds:
        core.step(core.mask.argmax(axis=1))
        steps += num_envs
    return steps / (time.perf_counter() - start)


def _rss_mb() -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Measurement length."""
    parser.add_argument("--seconds", type=float, default=5.0, help="per measurement")


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Measure; every figure comes from this run."""
    seconds = args.seconds
    single = _single_env_steps_per_s(seconds, None)
    batched = _batched_steps_per_s("default", 1024, seconds, None)
    rss = _rss_mb()
    large = _batched_steps_per_s("large", 256, seconds, None)
    region_single = _single_env_steps_per_s(seconds, REGION)
    region_batched = _batched_steps_per_s("default", 1024, seconds, [REGION])
    default_nodes, large_nodes = 100, 520
    per_node_default = 1e9 / batched / default_nodes
    per_node_large = 1e9 / large / large_nodes
    return {
        "env_steps_per_s": round(single),
        "batched_env_steps_per_s": round(batched),
        "large_batched_env_steps_per_s": round(large),
        "rss_mb": round(rss, 1),
        "region_env_steps_per_s": round(region_single),
        "region_batched_env_steps_per_s": round(region_batched),
        "ns_per_step_per_node_default": round(per_node_default, 2),
        "ns_per_step_per_node_large": round(per_node_large, 2),
        "large_vs_default_cost_per_node": round(per_node_large / per_node_default, 3),
        "region": REGION,
        "numpy": np.__version__,
    }
