"""One region's local training round, the unit a federated client runs.

Reads top to bottom: load the global weights, learn for K env steps (with FedProx's
proximal term when ``mu > 0``), export the new weights and the round's metrics. The
learner (and its optimizer state) lives across rounds in :class:`LocalTrainer`, so
what stays local stays local.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import numpy as np
from sb3_contrib import MaskablePPO
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.vec_env import VecEnv

from policies.config import PolicyConfig
from policies.factory import build_model
from policies.fedprox import proximal_penalty, proximal_term
from policies.params import Weights, get_weights, set_weights


@dataclass
class LocalResult:
    """What a local round returns to the federation."""

    weights: Weights
    env_steps: int
    metrics: dict[str, float]


class _RoundMetrics(BaseCallback):
    """Collects episode statistics and, when the core exposes them, per-request ones."""

    def __init__(self) -> None:
        super().__init__()
        self.episodes: list[dict[str, Any]] = []
        self.latencies: list[np.ndarray] = []
        self.violations: list[np.ndarray] = []
        self.costs: list[np.ndarray] = []
        self.carbon: list[np.ndarray] = []

    def _on_step(self) -> bool:
        for info in self.locals["infos"]:
            if "episode" in info:
                self.episodes.append(info["episode"])
        core = getattr(self.training_env, "core", None)
        if core is not None and hasattr(core, "placed_components"):  # per-request terms
            placed = core.placed_components()
            self.latencies.append(placed["latency_s"])
            self.violations.append(placed["slo_violated"])
            self.costs.append(placed["cost_usd"])
            self.carbon.append(placed["carbon_g"])
        return True

    def summary(self) -> dict[str, float]:
        out: dict[str, float] = {"train/episodes": float(len(self.episodes))}
        if self.episodes:
            out["train/episode_return"] = float(
                np.mean([e["r"] for e in self.episodes])
            )
            # reward per decision of this round's episodes (not SB3's rolling buffer,
            # which depends on what else the process trained)
            out["train/mean_reward"] = float(
                sum(e["r"] for e in self.episodes) / sum(e["l"] for e in self.episodes)
            )
            keys = {
                k
                for e in self.episodes
                for k, v in e.items()
                if isinstance(v, int | float)
            }
            for key in sorted(keys - {"r", "l", "t"}):
                values = [e[key] for e in self.episodes if key in e]
                out[f"train/{key}"] = float(np.mean(values))
        if self.latencies:
            latency = np.concatenate(self.latencies)
            if latency.size:
                out["train/latency_p95_ms"] = float(np.percentile(latency, 95) * 1e3)
                out["train/slo_violation_rate"] = float(
                    np.concatenate(self.violations).mean()
                )
                out["train/cost_usd"] = float(np.concatenate(self.costs).sum())
                out["train/carbon_g"] = float(np.concatenate(self.carbon).sum())
                out["train/requests"] = float(latency.size)
        return out


class LocalTrainer:
    """A region's learner on its own env; ``fit`` is one local round.

    Args:
        env: the region's VecEnv (e.g. :func:`envs.make_region_vec_env`).
        config: MaskablePPO hyperparameters.
        seed: seeds the learner (and, through it, the env's first reset).
    """

    def __init__(
        self, env: VecEnv, config: PolicyConfig, seed: int | None = None
    ) -> None:
        self.env = env
        self.config = config
        self.model: MaskablePPO = build_model(env, config, seed=seed)

    def fit(
        self,
        global_weights: Weights | None,
        steps: int,
        proximal_mu: float = 0.0,
        seed: int | None = None,
    ) -> LocalResult:
        """Start from ``global_weights``, learn at least ``steps`` env steps, export.

        With ``seed``, the round depends only on its inputs and the optimizer state:
        the random generators are reseeded and the env restarts from a reset with
        that seed, so neither what else ran in this process nor where the env stood
        leaves a trace (a federation reproduces whatever the client scheduling; it
        carries the optimizer state in the node's state).
        """
        if steps <= 0:
            raise ValueError(f"local steps: expected a positive count, got {steps}")
        if proximal_mu < 0:
            raise ValueError(f"proximal-mu: expected >= 0, got {proximal_mu}")
        if seed is not None:
            self.model.set_random_seed(seed)  # python, numpy, torch, action space, env
            self.model._last_obs = None  # so learn() resets the env with that seed
        # ---- load the global policy
        if global_weights is not None:
            set_weights(self.model.policy, global_weights)
        # ---- learn
        collector = _RoundMetrics()
        before = self.model.num_timesteps
        start = time.perf_counter()
        with proximal_term(self.model.policy, proximal_mu) as anchor:
            self.model.learn(
                total_timesteps=steps,
                reset_num_timesteps=before == 0,
                callback=collector,
                progress_bar=False,
            )
            penalty = proximal_penalty(self.model.policy, anchor, proximal_mu)
        seconds = time.perf_counter() - start
        # ---- export weights and metrics
        env_steps = self.model.num_timesteps - before
        metrics = collector.summary()
        metrics["train/env_steps"] = float(env_steps)
        metrics["train/seconds"] = seconds
        metrics["train/fps"] = env_steps / seconds if seconds > 0 else 0.0
        metrics["train/proximal_term"] = penalty
        for key, value in self.model.logger.name_to_value.items():
            if key.startswith("train/") and key not in metrics:
                metrics[key] = float(value)
        return LocalResult(get_weights(self.model.policy), env_steps, metrics)
