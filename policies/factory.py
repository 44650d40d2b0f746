"""Builds the MaskablePPO learner of a region from its config."""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

import torch
from gymnasium import spaces
from sb3_contrib import MaskablePPO
from stable_baselines3.common.logger import HumanOutputFormat, KVWriter, Logger
from stable_baselines3.common.vec_env import VecEnv
from torch import nn

from policies.config import PolicyConfig

ACTIVATIONS: dict[str, type[nn.Module]] = {"tanh": nn.Tanh, "relu": nn.ReLU}

NetworkSpec = Callable[[VecEnv, PolicyConfig], tuple[Any, dict[str, Any]]]
"""``(env, cfg) -> (policy class or SB3 name, policy_kwargs)``."""


def _mlp(env: VecEnv, cfg: PolicyConfig) -> tuple[Any, dict[str, Any]]:
    """SB3's separate actor and critic MLPs over the (flat or Dict) observation."""
    policy = (
        "MultiInputPolicy"
        if isinstance(env.observation_space, spaces.Dict)
        else "MlpPolicy"
    )
    return policy, {
        "net_arch": {"pi": list(cfg.net_arch), "vf": list(cfg.net_arch)},
        "activation_fn": ACTIVATIONS[cfg.activation],
    }


NETWORKS: dict[str, NetworkSpec] = {"mlp": _mlp}
"""``policy.network`` -> how to build it; network modules add their entries here."""


def check_config(cfg: PolicyConfig, n_envs: int) -> None:
    """Reject settings MaskablePPO would misuse silently, naming the field."""
    if cfg.network not in NETWORKS:
        raise ValueError(
            f"policy.network: expected one of {sorted(NETWORKS)}, got {cfg.network!r}"
        )
    if cfg.activation not in ACTIVATIONS:
        raise ValueError(
            f"policy.activation: expected one of {sorted(ACTIVATIONS)}, "
            f"got {cfg.activation!r}"
        )
    if not cfg.net_arch or min(cfg.net_arch) < 1:
        raise ValueError(
            f"policy.net_arch: expected positive layer sizes, got {cfg.net_arch}"
        )
    rollout = n_envs * cfg.n_steps
    if not 1 < cfg.batch_size <= rollout:
        raise ValueError(
            f"policy.batch_size: expected 2..n_envs*n_steps ({rollout}), "
            f"got {cfg.batch_size}"
        )
    for name in ("learning_rate", "clip_range", "n_epochs", "n_steps", "torch_threads"):
        if getattr(cfg, name) <= 0:
            raise ValueError(
                f"policy.{name}: expected a positive value, got {getattr(cfg, name)}"
            )
    if not 0 < cfg.gamma <= 1 or not 0 <= cfg.gae_lambda <= 1:
        raise ValueError("policy.gamma / policy.gae_lambda: expected values in (0, 1]")


def build_model(
    env: VecEnv, cfg: PolicyConfig, seed: int | None = None, verbose: int = 0
) -> MaskablePPO:
    """A MaskablePPO with separate actor and critic MLPs on ``env``."""
    check_config(cfg, env.num_envs)
    torch.set_num_threads(cfg.torch_threads)
    policy, policy_kwargs = NETWORKS[cfg.network](env, cfg)
    model = MaskablePPO(
        policy,
        env,
        learning_rate=cfg.learning_rate,
        n_steps=cfg.n_steps,
        batch_size=cfg.batch_size,
        n_epochs=cfg.n_epochs,
        gamma=cfg.gamma,
        gae_lambda=cfg.gae_lambda,
        clip_range=cfg.clip_range,
        ent_coef=cfg.ent_coef,
        vf_coef=cfg.vf_coef,
        max_grad_norm=cfg.max_grad_norm,
        normalize_advantage=cfg.normalize_advantage,
        policy_kwargs=policy_kwargs,
        device=cfg.device,
        seed=seed,
        verbose=verbose,
    )
    # SB3's default logger creates a /tmp/SB3-<date> folder on every learn(); metrics
    # are read from the logger's values instead (no output format, no folder).
    formats: list[KVWriter] = [HumanOutputFormat(sys.stdout)] if verbose else []
    model.set_logger(Logger(folder=None, output_formats=formats))
    return model


import policies.networks.reach  # noqa: E402, F401  (registers policy.network=reach_scorer)
from policies.networks import two_tier as _two_tier  # noqa: E402, F401  (registers two_tier_scorer)
