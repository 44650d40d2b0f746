"""What is federated: the policy's actor and critic parameters, by name, in order.

Optimizer state and any observation-normalisation statistics stay local. Loading is
strict: a missing or unexpected key, or a shape mismatch, fails naming the key.
"""

from __future__ import annotations

from collections import OrderedDict

import numpy as np
import torch
from stable_baselines3.common.policies import BasePolicy

Weights = OrderedDict[str, np.ndarray]


def federated_names(policy: BasePolicy) -> list[str]:
    """Names of the federated tensors, in the policy's (deterministic) module order."""
    return [name for name, _ in policy.named_parameters()]


def get_weights(policy: BasePolicy) -> Weights:
    """Copies of the federated parameters as numpy arrays (float32), by name."""
    return OrderedDict(
        (name, p.detach().cpu().numpy().copy()) for name, p in policy.named_parameters()
    )


class WeightsMismatchError(ValueError):
    """The received weights do not fit the local policy (keys or shapes)."""


def check_compatible(policy: BasePolicy, weights: dict[str, np.ndarray]) -> None:
    """Raise :class:`WeightsMismatchError` naming each missing, extra, misshapen key."""
    params = dict(policy.named_parameters())
    missing = [k for k in params if k not in weights]
    unexpected = [k for k in weights if k not in params]
    shapes = [
        f"{k}: expected {tuple(p.shape)}, got {tuple(np.shape(weights[k]))}"
        for k, p in params.items()
        if k in weights and tuple(np.shape(weights[k])) != tuple(p.shape)
    ]
    problems = []
    if missing:
        problems.append(f"missing keys {missing}")
    if unexpected:
        problems.append(f"unexpected keys {unexpected}")
    if shapes:
        problems.append("shape mismatch " + "; ".join(shapes))
    if problems:
        raise WeightsMismatchError(
            "weights do not fit the policy: " + ", ".join(problems)
        )


def set_weights(policy: BasePolicy, weights: dict[str, np.ndarray]) -> None:
    """Load federated parameters strictly (see :func:`check_compatible`)."""
    check_compatible(policy, weights)
    with torch.no_grad():
        for name, p in policy.named_parameters():
            p.copy_(
                torch.as_tensor(
                    np.asarray(weights[name]), dtype=p.dtype, device=p.device
                )
            )


def flatten(weights: dict[str, np.ndarray]) -> np.ndarray:
    """All tensors concatenated in order (for distances and tests)."""
    return np.concatenate([np.ravel(v) for v in weights.values()])
