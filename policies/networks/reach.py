"""A rescheduling policy whose weights do not depend on the cluster's size.

``policy.network=reach_scorer``. The flat observation of :mod:`envs.reach` is read as
tokens: one per node (13 features), one per pod slot (8 features, plus its host from
the one-hot), the global block, and, with ``reschedule.move_gains``, the modelled
latency drop of every (node, pod) move. Shared MLPs embed nodes and pods, one
attention layer lets every token see the others (absent nodes and empty slots are
masked out; ``heads=0``, the default, replaces it by a pooled DeepSets context, about
half the learner's time), and one shared pair MLP scores every move:

``logit(pod p -> node n) = beta * gain(p, n) + pair_mlp(pod_p, node_n, host_p, gain)``

with a stop logit from the pooled tokens and the best gain, and the critic from the
same pooled summary. Every weight acts per token or per pair, so the same parameters
serve a 7-node and a 16-node cluster with no padding; SB3's masked categorical over
the node-major ``N * P + 1`` logits keeps the env's masks as they are.

``policy.network=greedy_mlp`` is the same greedy prior on SB3's own actor and critic
MLPs (:class:`GreedyPriorMlpPolicy`): size-dependent, but able to memorise a config.

``beta`` starts large and the residual heads start near zero, so the untrained policy
is greedy on the model's move gains (stop when no move gains more than
``stop_margin`` QoS): the learner starts from greedy and learns what greedy misses
(multi-move plans, the migration cost). ``greedy_scale=0`` switches the prior off.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
from gymnasium import spaces
from sb3_contrib.common.maskable.policies import MaskableActorCriticPolicy
from stable_baselines3.common.torch_layers import MlpExtractor
from stable_baselines3.common.type_aliases import Schedule
from stable_baselines3.common.vec_env import VecEnv
from torch import nn

from envs.reach.layout import GLOBAL_FEATURES, NODE_FEATURES, POD_FEATURES
from policies.config import PolicyConfig
from policies.factory import ACTIVATIONS, NETWORKS

NF_PRESENT = 0
"""Node feature 0: the node exists (padding rows are all zero)."""
PF_OCCUPIED = 0
"""Pod feature 0: the slot holds a running pod."""


@dataclass(frozen=True)
class TokenLayout:
    """Where the tokens sit in one flat observation."""

    n_nodes: int
    n_pods: int
    onehot: bool
    gains: bool
    extra: int
    """Trailing global inputs (an identity one-hot)."""

    @property
    def node_start(self) -> int:
        """First node feature."""
        return GLOBAL_FEATURES

    @property
    def pod_start(self) -> int:
        """First pod feature."""
        return GLOBAL_FEATURES + self.n_nodes * NODE_FEATURES

    @property
    def pod_width(self) -> int:
        """Features per pod slot."""
        return POD_FEATURES + (self.n_nodes if self.onehot else 0)

    @property
    def gain_start(self) -> int:
        """First move gain (node-major)."""
        return self.pod_start + self.n_pods * self.pod_width

    @property
    def obs_dim(self) -> int:
        """Length of the observation."""
        gains = self.n_nodes * self.n_pods if self.gains else 0
        return self.gain_start + gains + self.extra


def infer_layout(
    obs_dim: int, n_actions: int, *, onehot: bool, gains: bool, extra: int = 0
) -> TokenLayout:
    """The (nodes, pods) sizes that give this observation length and action count.

    Raises:
        ValueError: no size, or more than one, fits (naming the spaces).
    """
    moves = n_actions - 1
    fits = []
    for n in range(1, moves + 1):
        if moves % n == 0:
            layout = TokenLayout(n, moves // n, onehot, gains, extra)
            if layout.obs_dim == obs_dim:
                fits.append(layout)
    if len(fits) != 1:
        raise ValueError(
            "observation space: expected a flat rescheduling observation with "
            f"pod_node_onehot={onehot}, move_gains={gains} and {extra} identity inputs "
            f"matching Discrete({n_actions}), got length {obs_dim} "
            f"({len(fits)} cluster sizes fit)"
        )
    return fits[0]


def _mean(tokens: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """Mean of the tokens whose weight is 1 (absent nodes, empty slots are 0)."""
    return (tokens * weights).sum(1) / weights.sum(1).clamp(min=1.0)


def _mlp(width_in: int, hidden: int, width_out: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Linear(width_in, hidden), nn.ReLU(), nn.Linear(hidden, width_out)
    )


class ReachScorer(nn.Module):
    """Token encoder, pair scorer, stop head and critic summary (SB3's mlp_extractor).

    ``forward`` returns ``(logits [B, N*P + 1], critic latent [B, hidden])``.
    """

    def __init__(
        self,
        layout: TokenLayout,
        hidden: int = 64,
        heads: int = 0,
        greedy_scale: float = 50.0,
        stop_margin: float = 0.002,
    ) -> None:
        super().__init__()
        self.layout = layout
        self.latent_dim_pi = layout.n_nodes * layout.n_pods + 1
        self.latent_dim_vf = hidden
        glob = GLOBAL_FEATURES + layout.extra
        self.node_in = _mlp(NODE_FEATURES + glob, hidden, hidden)
        self.pod_in = _mlp(POD_FEATURES + glob, hidden, hidden)
        if heads > 0 and hidden % heads:
            raise ValueError(
                f"reach_scorer heads: expected a divisor of hidden={hidden}, "
                f"got {heads}"
            )
        self.mix: nn.Module = (
            nn.TransformerEncoderLayer(
                hidden, heads, 2 * hidden, dropout=0.0, batch_first=True
            )
            if heads > 0
            else nn.Linear(2 * hidden, hidden)
        )
        self.heads = heads
        self.pair_pod = nn.Linear(2 * hidden, hidden)
        self.pair_node = nn.Linear(hidden, hidden, bias=False)
        self.pair_gain = nn.Linear(1, hidden, bias=False)
        self.pair_out = nn.Linear(hidden, 1)
        summary = 2 * hidden + glob + 1
        self.stop_head = _mlp(summary, hidden, 1)
        self.critic = nn.Sequential(nn.Linear(summary, hidden), nn.ReLU())
        use_prior = greedy_scale > 0
        self.log_beta = nn.Parameter(
            torch.tensor(math.log(greedy_scale) if use_prior else 0.0),
            requires_grad=use_prior,
        )
        self.use_prior = use_prior
        self.stop_margin = stop_margin
        for head in (self.pair_out, self.stop_head[-1]):  # residuals start near zero
            assert isinstance(head, nn.Linear)
            nn.init.orthogonal_(head.weight, gain=0.01)
            nn.init.zeros_(head.bias)

    def _tokens(self, obs: torch.Tensor) -> dict[str, torch.Tensor]:
        lay = self.layout
        batch = obs.shape[0]
        glob = torch.cat(
            [obs[:, :GLOBAL_FEATURES], obs[:, obs.shape[1] - lay.extra :]], dim=1
        )
        nodes = obs[:, lay.node_start : lay.pod_start].reshape(
            batch, lay.n_nodes, NODE_FEATURES
        )
        pods = obs[:, lay.pod_start : lay.gain_start].reshape(
            batch, lay.n_pods, lay.pod_width
        )
        if lay.gains:
            end = lay.gain_start + lay.n_nodes * lay.n_pods
            gains = obs[:, lay.gain_start : end].reshape(batch, lay.n_nodes, lay.n_pods)
        else:
            gains = obs.new_zeros(batch, lay.n_nodes, lay.n_pods)
        return {"glob": glob, "nodes": nodes, "pods": pods, "gains": gains}

    def _encode(
        self, obs: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, dict[str, torch.Tensor]]:
        """Node and pod embeddings after one attention round, and their summary."""
        lay = self.layout
        t = self._tokens(obs)
        glob = t["glob"]
        node_x = torch.cat(
            [t["nodes"], glob[:, None].expand(-1, lay.n_nodes, -1)], dim=2
        )
        pod_x = torch.cat(
            [t["pods"][..., :POD_FEATURES], glob[:, None].expand(-1, lay.n_pods, -1)],
            dim=2,
        )
        node_h = self.node_in(node_x)
        pod_h = self.pod_in(pod_x)
        node_on = t["nodes"][..., NF_PRESENT] > 0.5
        pod_on = t["pods"][..., PF_OCCUPIED] > 0.5
        node_w = node_on.float()[..., None]
        pod_w = pod_on.float()[..., None]
        if self.heads > 0:  # one attention round over all present tokens
            keep = torch.cat([node_on, pod_on], dim=1)
            tokens = torch.cat([node_h, pod_h], dim=1)
            mixed = self.mix(tokens, src_key_padding_mask=~keep)
            node_h, pod_h = mixed[:, : lay.n_nodes], mixed[:, lay.n_nodes :]
        else:  # DeepSets: every token gets the pooled context of all of them
            context = self.mix(
                torch.cat([_mean(node_h, node_w), _mean(pod_h, pod_w)], dim=1)
            )
            node_h = torch.relu(node_h + context[:, None])
            pod_h = torch.relu(pod_h + context[:, None])
        node_mean = _mean(node_h, node_w)
        pod_mean = _mean(pod_h, pod_w)
        # masked moves read 0, so the best gain is >= 0 with or without padding
        best = t["gains"].flatten(1).max(dim=1).values[:, None]
        summary = torch.cat([node_mean, pod_mean, glob, best], dim=1)
        return node_h, pod_h, summary, t

    def _logits(
        self,
        node_h: torch.Tensor,
        pod_h: torch.Tensor,
        summary: torch.Tensor,
        t: dict[str, torch.Tensor],
    ) -> torch.Tensor:
        lay = self.layout
        if lay.onehot:  # each pod's host embedding, from its one-hot
            host = t["pods"][..., POD_FEATURES:] @ node_h
        else:
            host = torch.zeros_like(pod_h)
        gains = t["gains"]  # [B, N, P], node-major like the actions
        pod_part = self.pair_pod(torch.cat([pod_h, host], dim=2))  # [B, P, H]
        node_part = self.pair_node(node_h)  # [B, N, H]
        pair = torch.relu(
            node_part[:, :, None] + pod_part[:, None] + self.pair_gain(gains[..., None])
        )
        moves = self.pair_out(pair).squeeze(-1)  # [B, N, P]
        stop = self.stop_head(summary)  # [B, 1]
        if self.use_prior:
            beta = self.log_beta.exp()
            moves = moves + beta * gains
            stop = stop + beta * self.stop_margin
        return torch.cat([moves.flatten(1), stop], dim=1)

    def forward(self, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(move and stop logits, critic latent)."""
        node_h, pod_h, summary, t = self._encode(features)
        return self._logits(node_h, pod_h, summary, t), self.critic(summary)

    def forward_actor(self, features: torch.Tensor) -> torch.Tensor:
        """Logits only."""
        node_h, pod_h, summary, t = self._encode(features)
        return self._logits(node_h, pod_h, summary, t)

    def forward_critic(self, features: torch.Tensor) -> torch.Tensor:
        """Critic latent only."""
        latent: torch.Tensor = self.critic(self._encode(features)[2])
        return latent


class _CriticWarmup(MaskableActorCriticPolicy):
    """Freeze the actor for the first ``critic_warmup`` learner updates.

    A policy that starts as greedy is only as good as the advantages that move it;
    with an untrained critic they are noise, and the first updates pull the policy
    off greedy (a dip in latency reduction before it climbs back). During warm-up
    the log-probabilities and entropy are detached, so PPO's minibatch steps train
    the value function alone.
    """

    critic_warmup = 0

    def evaluate_actions(
        self,
        obs: torch.Tensor,
        actions: torch.Tensor,
        action_masks: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """SB3's, with the actor's outputs detached while warming up."""
        values, log_prob, entropy = super().evaluate_actions(
            obs,
            actions,
            action_masks,  # type: ignore[arg-type]
        )
        if self.training and self.critic_warmup > 0:
            self.critic_warmup -= 1
            detached = entropy.detach() if entropy is not None else None
            return values, log_prob.detach(), detached
        return values, log_prob, entropy


class ReachScorerPolicy(_CriticWarmup):
    """MaskablePPO's actor-critic with :class:`ReachScorer` in place of the MLPs.

    The logits come straight from the scorer (``action_net`` is the identity), so no
    parameter's shape depends on the node or pod count.
    """

    def __init__(
        self,
        observation_space: spaces.Space[Any],
        action_space: spaces.Space[Any],
        lr_schedule: Schedule,
        *,
        pod_node_onehot: bool = True,
        move_gains: bool = True,
        identity_slots: int = 0,
        hidden: int = 64,
        heads: int = 0,
        greedy_scale: float = 50.0,
        stop_margin: float = 0.002,
        critic_warmup: int = 0,
        **kwargs: Any,
    ) -> None:
        if not isinstance(observation_space, spaces.Box) or not isinstance(
            action_space, spaces.Discrete
        ):
            raise ValueError(
                "reach_scorer: expected a flat Box observation and a Discrete action "
                f"space, got {observation_space} and {action_space}"
            )
        self.token_layout = infer_layout(
            int(observation_space.shape[0]),
            int(action_space.n),
            onehot=pod_node_onehot,
            gains=move_gains,
            extra=identity_slots,
        )
        self.scorer_kwargs = {
            "pod_node_onehot": pod_node_onehot,
            "move_gains": move_gains,
            "identity_slots": identity_slots,
            "hidden": hidden,
            "heads": heads,
            "greedy_scale": greedy_scale,
            "stop_margin": stop_margin,
            "critic_warmup": critic_warmup,
        }
        self.critic_warmup = critic_warmup
        kwargs.pop("net_arch", None)
        super().__init__(
            observation_space, action_space, lr_schedule, net_arch=[], **kwargs
        )

    def _build_mlp_extractor(self) -> None:
        kw = self.scorer_kwargs
        self.mlp_extractor = ReachScorer(  # type: ignore[assignment]
            self.token_layout,
            hidden=int(kw["hidden"]),
            heads=int(kw["heads"]),
            greedy_scale=float(kw["greedy_scale"]),
            stop_margin=float(kw["stop_margin"]),
        )

    def _build(self, lr_schedule: Schedule) -> None:
        self._build_mlp_extractor()
        self.action_net = nn.Identity()
        self.value_net = nn.Linear(self.mlp_extractor.latent_dim_vf, 1)
        nn.init.orthogonal_(self.value_net.weight, gain=1.0)
        nn.init.zeros_(self.value_net.bias)
        self.optimizer = self.optimizer_class(
            self.parameters(),
            lr=lr_schedule(1),  # type: ignore[call-arg]
            **self.optimizer_kwargs,
        )

    def _get_constructor_parameters(self) -> dict[str, Any]:
        data = super()._get_constructor_parameters()
        data.pop("net_arch", None)
        data.update(self.scorer_kwargs)
        return data


class _WithGains(nn.Module):
    """SB3's MLP extractor whose actor latent also carries the observation's gains."""

    def __init__(self, mlp: MlpExtractor, gains: slice) -> None:
        super().__init__()
        self.mlp = mlp
        self.gains = gains
        self.latent_dim_pi = mlp.latent_dim_pi + (gains.stop - gains.start)
        self.latent_dim_vf = mlp.latent_dim_vf

    def forward(self, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(actor latent + gains, critic latent)."""
        return self.forward_actor(features), self.forward_critic(features)

    def forward_actor(self, features: torch.Tensor) -> torch.Tensor:
        """The actor MLP's output followed by the raw move gains."""
        return torch.cat([self.mlp.forward_actor(features), features[:, self.gains]], 1)

    def forward_critic(self, features: torch.Tensor) -> torch.Tensor:
        """The critic MLP's output."""
        latent: torch.Tensor = self.mlp.forward_critic(features)
        return latent


class _GreedyPriorHead(nn.Module):
    """Action head: SB3's linear logits plus ``beta * gain`` (stop: beta * margin)."""

    def __init__(
        self, hidden: int, n_actions: int, greedy_scale: float, stop_margin: float
    ) -> None:
        super().__init__()
        self.hidden = hidden
        self.linear = nn.Linear(hidden, n_actions)
        nn.init.orthogonal_(self.linear.weight, gain=0.01)  # SB3's action_net init
        nn.init.zeros_(self.linear.bias)
        self.log_beta = nn.Parameter(torch.tensor(math.log(greedy_scale)))
        self.stop_margin = stop_margin

    def forward(self, latent: torch.Tensor) -> torch.Tensor:
        """Logits of the node-major moves and stop."""
        gains = latent[:, self.hidden :]
        stop = gains.new_full((gains.shape[0], 1), self.stop_margin)
        prior = torch.cat([gains, stop], dim=1) * self.log_beta.exp()
        logits: torch.Tensor = self.linear(latent[:, : self.hidden]) + prior
        return logits


class GreedyPriorMlpPolicy(_CriticWarmup):
    """SB3's separate actor and critic MLPs, with logits that start as greedy's.

    ``policy.network=greedy_mlp`` needs ``reschedule.move_gains``: the logits are the
    MLP's (initialised near zero, as SB3 does) plus ``beta * gain`` of every move, so
    the untrained policy is greedy and the MLP learns the config-specific plans greedy
    misses. Unlike :class:`ReachScorerPolicy` its shapes depend on the cluster.
    """

    def __init__(
        self,
        observation_space: spaces.Space[Any],
        action_space: spaces.Space[Any],
        lr_schedule: Schedule,
        *,
        identity_slots: int = 0,
        greedy_scale: float = 50.0,
        stop_margin: float = 0.002,
        critic_warmup: int = 0,
        **kwargs: Any,
    ) -> None:
        if not isinstance(observation_space, spaces.Box) or not isinstance(
            action_space, spaces.Discrete
        ):
            raise ValueError(
                "greedy_mlp: expected a flat Box observation and a Discrete action "
                f"space, got {observation_space} and {action_space}"
            )
        moves = int(action_space.n) - 1
        end = int(observation_space.shape[0]) - identity_slots
        self.gain_slice = slice(end - moves, end)
        self.prior_kwargs = {
            "identity_slots": identity_slots,
            "greedy_scale": greedy_scale,
            "stop_margin": stop_margin,
            "critic_warmup": critic_warmup,
        }
        self.critic_warmup = critic_warmup
        super().__init__(observation_space, action_space, lr_schedule, **kwargs)

    def _build_mlp_extractor(self) -> None:
        super()._build_mlp_extractor()
        self.mlp_extractor = _WithGains(self.mlp_extractor, self.gain_slice)  # type: ignore[assignment]

    def _build(self, lr_schedule: Schedule) -> None:
        super()._build(lr_schedule)  # SB3's MLPs, inits and optimizer
        hidden = self.mlp_extractor.latent_dim_pi - (
            self.gain_slice.stop - self.gain_slice.start
        )
        self.action_net = _GreedyPriorHead(
            hidden,
            int(self.action_space.n),  # type: ignore[attr-defined]
            float(self.prior_kwargs["greedy_scale"]),
            float(self.prior_kwargs["stop_margin"]),
        )
        self.optimizer = self.optimizer_class(  # again: the head was replaced
            self.parameters(),
            lr=lr_schedule(1),  # type: ignore[call-arg]
            **self.optimizer_kwargs,
        )

    def _get_constructor_parameters(self) -> dict[str, Any]:
        data = super()._get_constructor_parameters()
        data.update(self.prior_kwargs)
        return data


def greedy_mlp(env: VecEnv, cfg: PolicyConfig) -> tuple[Any, dict[str, Any]]:
    """``policy.network=greedy_mlp``: SB3's MLPs plus the greedy prior."""
    settings = _reach_settings(env)
    if not settings.move_gains:
        raise ValueError(
            "policy.network=greedy_mlp: expected reschedule.move_gains=true (the "
            "prior reads the move gains), got false"
        )
    return GreedyPriorMlpPolicy, {
        "net_arch": {"pi": list(cfg.net_arch), "vf": list(cfg.net_arch)},
        "activation_fn": ACTIVATIONS[cfg.activation],
        "identity_slots": int(cfg.identity_slots),
    }


def _reach_settings(env: VecEnv) -> Any:
    """The rescheduling settings behind ``env`` (through wrappers)."""
    venv: Any = env
    while venv is not None:
        core = getattr(venv, "core", None)
        settings = getattr(core, "settings", None)
        if settings is not None and hasattr(settings, "move_gains"):
            return settings
        venv = getattr(venv, "venv", None)
    raise ValueError(
        "policy.network=reach_scorer: expected a rescheduling env (env=reschedule) "
        f"with a flat observation, got {type(env).__name__}"
    )


def reach_scorer(env: VecEnv, cfg: PolicyConfig) -> tuple[Any, dict[str, Any]]:
    """``policy.network=reach_scorer``: the size-independent per-move scorer."""
    settings = _reach_settings(env)
    if settings.observation != "flat":
        raise ValueError(
            "policy.network=reach_scorer: expected reschedule.observation=flat, got "
            f"{settings.observation!r}"
        )
    return ReachScorerPolicy, {
        "pod_node_onehot": bool(settings.pod_node_onehot),
        "move_gains": bool(settings.move_gains),
        "identity_slots": int(cfg.identity_slots),
        "hidden": int(cfg.net_arch[0]),
    }


NETWORKS["reach_scorer"] = reach_scorer
NETWORKS["greedy_mlp"] = greedy_mlp
