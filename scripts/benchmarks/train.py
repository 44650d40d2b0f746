"""Local training speed: the learner vs a null env, and REACH 12-28 time-to-greedy."""

from __future__ import annotations

import argparse
import dataclasses
import tempfile
import time
from typing import Any

import numpy as np
from gymnasium import spaces

from envs import TwoTierEnvConfig
from envs.batched import BatchStep
from envs.reach.core import ReachCore
from envs.reach.generator import generate, write_config
from envs.vec_env import BatchedVecEnv
from fl_server.config import compose
from policies.config import PolicyConfig
from policies.evaluation import RescheduleEvalSpec, evaluate_reschedule
from policies.local import LocalTrainer
from policies.runs import make_training_env

REGION = "eu-central"


class NullCore:
    """A trivial env with the same spaces: what the learner costs without an env.

    Precomputed observations, half the actions valid, zero reward, fixed-length
    episodes.
    """

    def __init__(
        self,
        observation: spaces.Box,
        action: spaces.Discrete,
        num_envs: int,
        episode: int = 512,
    ) -> None:
        self.num_envs = num_envs
        self.single_observation_space = observation
        self.single_action_space = action
        self.render_mode: str | None = None
        rng = np.random.default_rng(0)
        self._obs: np.ndarray = rng.uniform(
            0, 1, (64, num_envs, observation.shape[0])
        ).astype(np.float32)
        self._masks = rng.random((64, num_envs, int(action.n))) < 0.5
        self._masks[..., 0] = True
        self._t = 0
        self._steps = np.zeros(num_envs, dtype=np.int64)
        self._episode = episode
        self._zeros = np.zeros(num_envs, dtype=np.float32)
        self._false = np.zeros(num_envs, dtype=bool)

    def reset(self, seed: int | None = None) -> np.ndarray:
        """Start over (all envs)."""
        self._t = 0
        return np.asarray(self._obs[0])

    def step(self, actions: np.ndarray) -> BatchStep:
        """The next precomputed observation; truncate at the episode length."""
        self._t = (self._t + 1) % 64
        self._steps += 1
        truncated = self._steps >= self._episode
        self._steps[truncated] = 0
        obs = self._obs[self._t]
        return BatchStep(obs, self._zeros, self._false, truncated, obs)

    def action_masks(self) -> np.ndarray:
        """Half the actions valid (action 0 always)."""
        return np.asarray(self._masks[self._t])

    def step_info(self, index: int) -> dict[str, Any]:
        """No components."""
        return {}

    def episode_info(self, index: int) -> dict[str, Any]:
        """Zero return, fixed length."""
        return {"r": 0.0, "l": self._episode}


class _TimedCore:
    """Wraps a core to measure the time spent in its ``step`` (the env's share)."""

    def __init__(self, core: Any) -> None:
        self.core = core
        self.seconds = 0.0

    def __getattr__(self, name: str) -> Any:
        return getattr(self.core, name)

    def step(self, actions: np.ndarray) -> BatchStep:
        start = time.perf_counter()
        out: BatchStep = self.core.step(actions)
        self.seconds += time.perf_counter() - start
        return out


def _train_rate(
    env: BatchedVecEnv, cfg: PolicyConfig, steps: int
) -> tuple[float, float]:
    """(env steps per second, fraction of the time inside the env) of ``steps``."""
    timed = _TimedCore(env.core)
    env.core = timed
    trainer = LocalTrainer(env, cfg, seed=0)
    trainer.model.learn(total_timesteps=cfg.n_envs * cfg.n_steps)  # warm-up rollout
    timed.seconds = 0.0
    start = time.perf_counter()
    trainer.model.learn(total_timesteps=steps, reset_num_timesteps=False)
    wall = time.perf_counter() - start
    return steps / wall, timed.seconds / wall


def _reach_time_to_greedy(budget_s: float, chunk: int) -> dict[str, Any]:
    """Train on a generated 12-28 cluster until the greedy baseline's reduction."""
    with tempfile.TemporaryDirectory() as root:
        folder = write_config(
            generate(12, 28, seed=0, patterns=("aggregator_sequential",)), root
        )
        shipped = compose(["env=reschedule"])  # the env group's own learner and env
        settings = dataclasses.replace(
            shipped.reschedule, cluster=str(folder), pattern="aggregator_sequential"
        )
        held_out = RescheduleEvalSpec(
            settings, seeds=(5000, 5001, 5002, 5003), episodes=10
        )
        greedy = float(
            np.mean(
                [
                    r["latency_reduction_pct"]
                    for r in evaluate_reschedule("greedy", held_out)
                ]
            )
        )
        cfg = shipped.policy
        trainer = LocalTrainer(
            BatchedVecEnv(ReachCore.from_settings(settings, cfg.n_envs), seed=0),
            cfg,
            seed=0,
        )
        start = time.perf_counter()
        train_s = 0.0
        learned = float("-inf")
        steps = 0
        while learned < greedy and time.perf_counter() - start < budget_s:
            tick = time.perf_counter()
            trainer.model.learn(total_timesteps=chunk, reset_num_timesteps=steps == 0)
            train_s += time.perf_counter() - tick
            steps += chunk
            results = evaluate_reschedule(trainer.model, held_out)
            learned = float(np.mean([r["latency_reduction_pct"] for r in results]))
        return {
            "policy": dataclasses.asdict(cfg),
            "seconds": time.perf_counter() - start,
            "train_seconds": train_s,
            "steps": steps,
            "reached": learned >= greedy,
            "learned": learned,
            "greedy": greedy,
        }


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Budgets."""
    parser.add_argument(
        "--steps", type=int, default=65_536, help="steps per rate measurement"
    )
    parser.add_argument(
        "--reach-budget",
        type=float,
        default=900.0,
        help="seconds cap of time-to-greedy",
    )
    parser.add_argument(
        "--reach-chunk", type=int, default=16_384, help="steps between evaluations"
    )


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Every figure from this run; the null env has exactly the default env's spaces."""
    from types import SimpleNamespace

    from envs.scenario import load_scenario
    from envs.two_tier.config import RewardConfig

    cfg = PolicyConfig()
    run_cfg = SimpleNamespace(
        env="two_tier",
        scenario=load_scenario("default"),
        two_tier=TwoTierEnvConfig(),
        reward=RewardConfig(),
    )
    env = make_training_env(run_cfg, REGION, cfg.n_envs, seed=0)
    assert isinstance(env, BatchedVecEnv)
    null = BatchedVecEnv(
        NullCore(
            env.core.single_observation_space, env.core.single_action_space, cfg.n_envs
        ),
        seed=0,
    )
    train_rate, env_share = _train_rate(env, cfg, args.steps)
    null_rate, _ = _train_rate(null, dataclasses.replace(cfg), args.steps)
    reach = _reach_time_to_greedy(args.reach_budget, args.reach_chunk)
    return {
        "train_steps_per_s": round(train_rate, 1),
        "null_env_train_steps_per_s": round(null_rate, 1),
        "train_vs_null_ratio": round(train_rate / null_rate, 3),
        "env_share": round(env_share, 4),
        "reach_12_28_train_s": round(reach["seconds"], 1),
        "reach_12_28_latency_reduction_pct": {
            "learned": round(reach["learned"], 2),
            "greedy": round(reach["greedy"], 2),
        },
        "reach_12_28_reached_greedy": reach["reached"],
        "reach_12_28_train_only_s": round(reach["train_seconds"], 1),
        "reach_12_28_steps": reach["steps"],
        "reach_12_28_policy": reach["policy"],
        "scenario": "default",
        "region": REGION,
        "policy": dataclasses.asdict(cfg),
    }
