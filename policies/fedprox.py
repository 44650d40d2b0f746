"""FedProx's proximal term for MaskablePPO, through gradient hooks.

FedProx adds ``(mu / 2) * ||w - w_global||^2`` to each client's local loss.
``MaskablePPO.train`` has no loss hook, so each federated parameter gets a tensor hook
that adds the term's gradient, ``mu * (w - w_global)``, to the PPO gradient when
``loss.backward()`` runs: the same update as differentiating the summed loss (before
gradient clipping, as the loss term would be). With ``mu == 0`` no hook is installed
and training is exactly plain MaskablePPO.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
from stable_baselines3.common.policies import BasePolicy


def proximal_penalty(
    policy: BasePolicy, anchor: dict[str, torch.Tensor], mu: float
) -> float:
    """The value ``(mu / 2) * sum ||w - w_global||^2`` (for logging)."""
    with torch.no_grad():
        total = sum(
            float(((p - anchor[name]) ** 2).sum())
            for name, p in policy.named_parameters()
        )
    return 0.5 * mu * total


@contextmanager
def proximal_term(policy: BasePolicy, mu: float) -> Iterator[dict[str, torch.Tensor]]:
    """Within the block, every backward pass adds ``mu * (w - w_global)`` to gradients.

    ``w_global`` is the policy's parameters on entry (the global weights just loaded).
    Yields the anchor tensors by name.
    """
    anchor = {name: p.detach().clone() for name, p in policy.named_parameters()}
    handles = []
    if mu > 0.0:
        for name, p in policy.named_parameters():
            ref = anchor[name]

            def hook(
                grad: torch.Tensor, p: torch.Tensor = p, ref: torch.Tensor = ref
            ) -> torch.Tensor:
                return grad + mu * (p.detach() - ref)

            handles.append(p.register_hook(hook))  # type: ignore[no-untyped-call]
    try:
        yield anchor
    finally:
        for handle in handles:
            handle.remove()
