"""Masked inference with a trained policy network, without SB3's ``predict`` overhead.

``MaskablePPO.predict`` converts, reshapes and builds distribution objects per call
(about 1 ms here). :class:`PolicyNetwork` runs only the actor: for the usual plain
MLP on a Box observation, as numpy matrix products on the same float32 weights (a
few microseconds); for anything else, the policy's own torch modules under
``torch.inference_mode`` with the mask applied by the same tensor operations as
sb3-contrib's ``MaskableCategorical``. Either way the deterministic answer is
``predict(obs, action_masks=mask, deterministic=True)``, and the probabilities of
the allowed actions come with it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from gymnasium import spaces
from sb3_contrib import MaskablePPO
from stable_baselines3.common.policies import BasePolicy
from stable_baselines3.common.torch_layers import FlattenExtractor, MlpExtractor
from torch import nn

Observation = np.ndarray | dict[str, np.ndarray]

_MASKED_LOGIT = -1e8  # sb3-contrib's value for a masked logit


@dataclass(frozen=True)
class Choices:
    """Decisions for a batch of observations."""

    actions: np.ndarray
    """``int64[B]``: the chosen action of each row (always allowed by its mask)."""
    probabilities: np.ndarray
    """``float32[B, A]``: the masked policy distribution (0 where masked)."""


def _numpy_actor(policy: Any) -> list[tuple[np.ndarray, np.ndarray, str]] | None:
    """The actor as ``(weight.T, bias, activation)`` layers, if it is a plain MLP.

    The usual checkpoint (Box observation, flatten extractor, Linear + Tanh/ReLU
    layers, linear action head) runs faster in numpy than through torch's per-op
    dispatch (about 1 us against 5-20 us per op on these machines); anything else
    returns None and runs through torch.
    """
    if not isinstance(policy.pi_features_extractor, FlattenExtractor):
        return None
    # exact types: custom heads (greedy_mlp's gain prior, the REACH scorer) subclass
    # or wrap these and add terms a layer list cannot express
    if type(policy.mlp_extractor) is not MlpExtractor:
        return None
    if type(policy.action_net) is not nn.Linear:
        return None
    layers: list[tuple[np.ndarray, np.ndarray, str]] = []
    modules = [*policy.mlp_extractor.policy_net, policy.action_net]
    for module in modules:
        if isinstance(module, nn.Linear):
            weight = module.weight.detach().cpu().numpy().astype(np.float32)
            bias = module.bias.detach().cpu().numpy().astype(np.float32)
            layers.append((np.ascontiguousarray(weight.T), bias, "linear"))
        elif isinstance(module, nn.Tanh | nn.ReLU) and layers:
            w, b, act = layers[-1]
            if act != "linear":
                return None
            layers[-1] = (w, b, "tanh" if isinstance(module, nn.Tanh) else "relu")
        else:
            return None
    return layers if layers and layers[-1][2] == "linear" else None


class PolicyNetwork:
    """The actor of a MaskablePPO checkpoint as a plain batched function.

    Args:
        model: the loaded learner; only its policy modules are used.
        deterministic: take the most probable allowed action; otherwise sample.
        seed: seeds sampling.
        engine: ``auto`` (numpy for plain MLPs on Box observations, else torch),
            ``numpy`` or ``torch``.
    """

    def __init__(
        self,
        model: MaskablePPO,
        deterministic: bool = True,
        seed: int = 0,
        engine: str = "auto",
    ) -> None:
        policy = model.policy
        policy.set_training_mode(False)
        self._policy = policy
        self._device = policy.device
        self.deterministic = deterministic
        self._generator = torch.Generator(device=self._device).manual_seed(seed)
        self.observation_space = model.observation_space
        self.n_actions = int(model.action_space.n)  # type: ignore[attr-defined]
        self._masked_logit = torch.tensor(_MASKED_LOGIT, device=self._device)
        self._zero = torch.tensor(0.0, device=self._device)
        self._rng = np.random.default_rng(seed)
        layers = None
        if engine in ("auto", "numpy") and isinstance(
            self.observation_space, spaces.Box
        ):
            layers = _numpy_actor(policy)
        if engine == "numpy" and layers is None:
            raise ValueError(
                "engine: numpy needs a Box observation and a Linear/Tanh/ReLU actor"
            )
        self._layers = layers
        self.engine = "numpy" if layers is not None else "torch"

    def _tensor(self, obs: Observation) -> torch.Tensor | dict[str, torch.Tensor]:
        if isinstance(obs, dict):
            return {k: torch.as_tensor(v, device=self._device) for k, v in obs.items()}
        return torch.as_tensor(obs, device=self._device)

    def decide(self, obs: Observation, masks: np.ndarray) -> Choices:
        """Choose one action per row of ``obs`` (``[B, ...]``) under ``masks[B, A]``.

        Every row's mask must allow at least one action; callers check this first
        (a row with nothing allowed has no meaningful answer).
        """
        if len(masks) == 0:
            empty = np.zeros((0, self.n_actions), dtype=np.float32)
            return Choices(np.zeros(0, dtype=np.int64), empty)
        if self._layers is not None:
            return self._decide_numpy(np.asarray(obs, dtype=np.float32), masks)
        return self._decide_torch(obs, masks)

    def _decide_numpy(self, obs: np.ndarray, masks: np.ndarray) -> Choices:
        x = obs.reshape(len(obs), -1)
        assert self._layers is not None
        for weight, bias, act in self._layers:
            x = x @ weight
            x += bias
            if act == "tanh":
                np.tanh(x, out=x)
            elif act == "relu":
                np.maximum(x, 0.0, out=x)
        masked = np.where(masks, x, -np.inf)
        # argmax of the masked logits = argmax of MaskableCategorical's probs
        actions = masked.argmax(axis=1)
        shifted = np.exp(masked - masked.max(axis=1, keepdims=True))
        probs = (shifted / shifted.sum(axis=1, keepdims=True)).astype(np.float32)
        if not self.deterministic:
            cdf = probs.astype(np.float64).cumsum(axis=1)
            draws = self._rng.random(len(probs)) * cdf[:, -1]
            actions = (cdf < draws[:, None]).sum(axis=1)
            actions = np.minimum(actions, probs.shape[1] - 1)
        return Choices(actions.astype(np.int64), probs)

    def _decide_torch(self, obs: Observation, masks: np.ndarray) -> Choices:
        policy = self._policy
        with torch.inference_mode():
            tensor: Any = self._tensor(obs)
            features = BasePolicy.extract_features(
                policy, tensor, policy.pi_features_extractor
            )
            latent = policy.mlp_extractor.forward_actor(features)
            logits = policy.action_net(latent)
            # The operations of MaskableCategorical: normalise, mask, normalise.
            logits = logits - logits.logsumexp(dim=-1, keepdim=True)
            mask = torch.as_tensor(masks, dtype=torch.bool, device=self._device)
            masked = torch.where(mask, logits, self._masked_logit)
            masked = masked - masked.logsumexp(dim=-1, keepdim=True)
            probs = torch.softmax(masked, dim=-1)
            actions = torch.argmax(probs, dim=1)
            # A masked entry may keep a denormal mass after the softmax: make it 0.
            probs = torch.where(mask, probs, self._zero)
            if not self.deterministic:
                actions = torch.multinomial(
                    probs, 1, generator=self._generator
                ).squeeze(1)
        return Choices(actions.cpu().numpy(), probs.cpu().numpy())
