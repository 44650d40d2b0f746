"""A two-tier routing policy that scores each region and each node with shared MLPs.

``policy.network=two_tier_scorer``. The flat observation of :mod:`envs.two_tier` is
read as tokens: in the LB phase one per region (its region-block row), in the
scheduler phase one per node of the selected region (its node-block row plus the
selected region's row), each with the request header (phase, type, SLO, size, hour,
origin). One MLP scores every region token and one every node token, and SB3's
masked categorical turns the scores into a distribution over the valid actions:

``logit(entity) = -beta * penalty(entity) + mlp(token, penalty(entity))``

where ``penalty`` is the weighted heuristic's expected penalty of serving the
request there (:func:`envs.two_tier.heuristics.expected_penalty`, recomputed here in
torch from the same observation columns and the run's reward weights). ``beta``
starts large and the MLP's last layer near zero, so the untrained policy is
``weighted_greedy``; training learns what greedy misses (the externality of a long
request on later ones, bursts). ``two_tier_scorer_plain`` is the same network with
no prior (``beta = 0``, the penalty still an input): the ablation.

The critic is SB3's MLP over the flat observation. A flat MLP actor must learn an
argmin over padded node slots; a per-entity scorer contains "score each node" by
construction (Decima, Placeto; quality notes §3).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from gymnasium import spaces
from sb3_contrib.common.maskable.policies import MaskableActorCriticPolicy
from stable_baselines3.common.type_aliases import Schedule
from stable_baselines3.common.vec_env import VecEnv
from torch import nn

from envs.two_tier.externality import TABLE_NAMES, externality_tables
from envs.two_tier.heuristics import (
    N_SCORING,
    S_CAP,
    S_SHAPE,
    S_W_CARBON,
    S_W_COST,
    S_W_LAT,
    S_W_QUEUE,
    S_W_SLO,
)
from envs.two_tier.layout import (
    NF_CARBON,
    NF_COST,
    NF_EXEC,
    NF_UTIL,
    NF_VALID,
    NF_WAIT,
    NODE_FEATURES,
    REGION_FEATURES,
    RF_BEST_COMPLETION,
    RF_CARBON,
    RF_COST,
    RF_IS_SELECTED,
    RF_RTT,
    RF_TRANSFER,
    RF_UTIL,
    RF_VALID,
    ObsLayout,
)
from policies.config import PolicyConfig
from policies.factory import ACTIVATIONS, NETWORKS

MASKED = -1e8
"""Logit of an action slot that names no entity in this phase (masked anyway)."""
TIE = 1e-5
"""Weight of utilisation in the prior: breaks exact ties as ``weighted_greedy`` does."""


def expected_penalty(
    scoring: torch.Tensor,
    fixed: torch.Tensor,
    wait: torch.Tensor,
    service: torch.Tensor,
    cost: torch.Tensor,
    carbon: torch.Tensor,
) -> torch.Tensor:
    """The weighted heuristic's expected penalty, elementwise (no gradient needed).

    Same definition as :func:`envs.two_tier.heuristics.expected_penalty`: latency
    over SLO is ``fixed + service * G`` with ``G`` unit-mean Gamma of shape
    ``scoring[S_SHAPE]``; terms capped at ``scoring[S_CAP]``.
    """
    cap = float(scoring[S_CAP])
    shape = float(scoring[S_SHAPE])
    room = (cap - fixed).clamp(min=0.0)
    slack = 1.0 - fixed
    if shape > 0:
        mean = service.clamp(min=1e-12)
        z = shape * room / mean
        x = shape * slack.clamp(min=0.0) / mean
        if shape == 1.0:  # exponential service: Q(1, z) = e^-z, Q(2, z) = (1 + z) e^-z
            upper = torch.exp(-z)
            upper_next = (1.0 + z) * upper
            tail = torch.exp(-x)
        else:
            upper = torch.special.gammaincc(torch.full_like(z, shape), z)
            upper_next = torch.special.gammaincc(torch.full_like(z, shape + 1.0), z)
            tail = torch.special.gammaincc(torch.full_like(x, shape), x)
        capped = service * (1.0 - upper_next) + room * upper
        tail = torch.where(service > 0, tail, (slack < 0).to(tail.dtype))
        tail = torch.where((slack <= 0) & (service > 0), torch.ones_like(tail), tail)
    else:
        capped = torch.minimum(service, room)
        tail = (service > slack).to(service.dtype)
    latency = torch.where(fixed >= cap, torch.full_like(fixed, cap), fixed + capped)
    return (
        scoring[S_W_LAT] * latency
        + scoring[S_W_QUEUE] * wait.clamp(max=cap)
        + scoring[S_W_SLO] * tail
        + scoring[S_W_COST] * cost.clamp(max=cap)
        + scoring[S_W_CARBON] * carbon.clamp(max=cap)
    )


def fpi_externality(
    scorer: TwoTierScorer,
    obs: torch.Tensor,
    regions: torch.Tensor,
    nodes: torch.Tensor,
    wait: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The FPI externality of serving the request at each region and node, in reward.

    :mod:`envs.two_tier.reference`'s ``fpi`` term with only observed dynamic inputs:
    a job of service ``s`` on a node of ``c`` cores whose region's jobs have mean
    service ``m`` costs later arrivals ``rho s / m (2 u + s / c) / (2 (1 - rho))``
    seconds of waiting, weighted by ``(w_latency + w_queue)`` and the region mix's
    mean ``1 / SLO``. ``rho`` is the region's offered load now when the observation
    has it (``load_input``), else its busy-core fraction, capped at ``rho_max``;
    ``u`` is the node's wait on arrival (``wait``, over the SLO). In the LB phase
    the region block shows no nodes: the job goes to the node of ``lb_*`` with the
    wait and service :func:`lb_view` reads from the region's best completion.
    """
    lay = scorer.layout
    s = scorer.scoring
    kinds = obs[:, lay.type_offset : lay.type_offset + lay.n_types]
    slo = kinds @ scorer.slo  # [B] seconds
    if lay.load_input:
        load = obs[:, lay.load_offset : lay.load_offset + lay.n_regions]
    else:
        load = regions[..., RF_UTIL]
    rho = load.clamp(min=0.0, max=scorer.rho_max)
    weight = (s[S_W_LAT] + s[S_W_QUEUE]) * scorer.inv_slo_mix  # [R] per s of waiting
    factor = weight * slo[:, None] * rho / (2.0 * (1.0 - rho))  # [B, R]
    lb_wait, lb_service = lb_view(scorer, obs, regions)  # over the SLO
    region_ext = (
        factor
        * (lb_service * slo[:, None] * (kinds @ scorer.lb_inv_mean_service))
        * (2.0 * lb_wait + lb_service * (kinds @ scorer.lb_inv_cores))
    )
    selected = regions[..., RF_IS_SELECTED]  # [B, R] one-hot in the scheduler phase
    exec_ = nodes[..., NF_EXEC]
    node_ext = (
        (factor * selected).sum(1, keepdim=True)
        * (exec_ * slo[:, None] * (selected @ scorer.inv_mean_service))
        * (2.0 * wait + exec_ * (selected @ scorer.inv_cores))
    )
    return region_ext, node_ext


def lb_view(
    scorer: TwoTierScorer, obs: torch.Tensor, regions: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """``[B, R]`` wait on arrival and service (over the SLO) the LB phase assumes.

    The region block shows each region's best completion (the least wait plus
    execution over its nodes), not its nodes. Without ``lb_wait`` the LB prior takes
    all of it as the job's service with no wait (the rule up to stop 28). With it,
    the job runs on the region's ``lb_*`` node (its fastest for the type) for that
    node's execution, and the rest of the best completion, less half the RTT (the
    queue drains while the request travels, as the scheduler phase reads a node's
    wait), is its wait: in a burst the local region's best completion is mostly
    queue, which is what the externality of sending a long job there grows with.
    """
    best = regions[..., RF_BEST_COMPLETION]
    if not scorer.lb_wait:
        return torch.zeros_like(best), best
    lay = scorer.layout
    kinds = obs[:, lay.type_offset : lay.type_offset + lay.n_types]
    service = (kinds @ scorer.lb_exec_s) / (kinds @ scorer.slo)[:, None]
    queued = (best - service).clamp(min=0.0)
    wait = (queued - 0.5 * regions[..., RF_RTT]).clamp(min=0.0)
    return wait, service


def _check_tables(scorer: TwoTierScorer, layout: ObsLayout) -> None:
    """Refuse tables of another scenario (shapes name the mismatch)."""
    r, k, n = layout.n_regions, layout.n_types, layout.max_nodes
    expected = {
        "inv_mean_service": (r, n),
        "inv_cores": (r, n),
        "inv_slo_mix": (r,),
        "slo": (k,),
        "lb_inv_mean_service": (k, r),
        "lb_inv_cores": (k, r),
    }
    if scorer.lb_wait:  # checkpoints from before the table exist without it
        expected["lb_exec_s"] = (k, r)
    for name, shape in expected.items():
        got = tuple(getattr(scorer, name).shape)
        if got != shape:
            raise ValueError(
                f"externality.{name}: expected shape {shape} for this layout, got {got}"
            )


def _mlp(
    width_in: int, hidden: list[int], activation: type[nn.Module]
) -> nn.Sequential:
    layers: list[nn.Module] = []
    for width in hidden:
        layers += [nn.Linear(width_in, width), activation()]
        width_in = width
    last = nn.Linear(width_in, 1)
    nn.init.orthogonal_(last.weight, gain=0.01)  # SB3's action-head init: near zero
    nn.init.zeros_(last.bias)
    return nn.Sequential(*layers, last)


class TwoTierScorer(nn.Module):
    """Logits of a two-tier decision: one shared MLP per entity kind, plus the prior.

    Args:
        layout: the env's observation layout.
        n_actions: the action space size (``R``, ``N_max`` or their maximum).
        scoring: the run's ``scoring`` vector (weights, cap, service shape).
        hidden: hidden widths of each entity MLP.
        activation: hidden activation.
        greedy_scale: initial ``beta`` (learned, through its log); 0 = no prior.
        externality: the scenario's
            :class:`~envs.two_tier.externality.ExternalityTables` (as lists): adds
            the FPI externality to every penalty, so the prior is the
            observation-only FPI rule (:func:`fpi_externality`); ``None``: the
            prior is weighted-greedy.
        rho_max: cap of a region's load in the externality (its value diverges at 1).
        lb_wait: the LB prior reads each region's wait from its best completion
            (:func:`lb_view`); off in checkpoints saved before it existed.
        limit_s: ``[K]`` per-type latency limits the reward prices (seconds; ``inf``
            or ``None``: none), with ``limit_weights`` ``[K]`` reward units per
            exceedance: the prior adds each row's priced chance of exceeding its
            type's limit (:func:`limit_exceedance`), the expected value of the
            reward's ``limit_exceeded`` term.
    """

    inv_mean_service: torch.Tensor
    inv_cores: torch.Tensor
    inv_slo_mix: torch.Tensor
    slo: torch.Tensor
    lb_inv_mean_service: torch.Tensor
    lb_inv_cores: torch.Tensor
    lb_exec_s: torch.Tensor
    limits_s: torch.Tensor | None
    limit_weights: torch.Tensor | None

    def __init__(
        self,
        layout: ObsLayout,
        n_actions: int,
        scoring: list[float],
        hidden: list[int],
        activation: type[nn.Module],
        greedy_scale: float,
        externality: dict[str, Any] | None = None,
        rho_max: float = 0.95,
        lb_wait: bool = False,
        limit_s: list[float] | None = None,
        limit_weights: list[float] | None = None,
    ) -> None:
        super().__init__()
        if len(scoring) != N_SCORING:
            raise ValueError(f"scoring: expected {N_SCORING} values, got {scoring}")
        self.layout = layout
        self.n_actions = n_actions
        self.scoring: torch.Tensor
        self.register_buffer("scoring", torch.tensor(scoring, dtype=torch.float32))
        header = layout.region_offset
        self.region_mlp = _mlp(header + REGION_FEATURES + 1, hidden, activation)
        self.node_mlp = _mlp(
            header + NODE_FEATURES + REGION_FEATURES + 1, hidden, activation
        )
        self.fpi = externality is not None
        self.rho_max = rho_max
        self.lb_wait = lb_wait
        for name in TABLE_NAMES:
            table = (externality or {}).get(name, [])
            self.register_buffer(
                name,
                torch.tensor(table, dtype=torch.float32),
                persistent=name != "lb_exec_s",  # rebuilt from the constructor's tables
            )
        if self.fpi:
            _check_tables(self, layout)
        elif lb_wait:
            raise ValueError(
                "lb_wait: the LB reading needs the externality tables (lb_exec_s), "
                "got none"
            )
        priced = limit_weights is not None and any(w > 0 for w in limit_weights)
        limits = np.minimum(np.asarray(limit_s, dtype=float), NO_LIMIT_S)
        weights = np.asarray(limit_weights, dtype=float)
        if priced and (
            limits.shape != (layout.n_types,) or weights.shape != limits.shape
        ):
            raise ValueError(
                f"limit_s, limit_weights: expected {layout.n_types} values each "
                f"(one per request type), got {limit_s} and {limit_weights}"
            )
        self.register_buffer(
            "limits_s", torch.as_tensor(limits, dtype=torch.float32) if priced else None
        )
        self.register_buffer(
            "limit_weights",
            torch.as_tensor(weights, dtype=torch.float32) if priced else None,
        )
        self.prior = greedy_scale > 0
        self.log_beta = nn.Parameter(
            torch.tensor(math.log(greedy_scale) if self.prior else 0.0),
            requires_grad=self.prior,
        )

    def penalties(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Prior score of every region ``[B, R]`` and node ``[B, N_max]``.

        The weighted heuristic's expected penalty, plus the FPI externality when the
        scorer has its tables, plus the priced chance of exceeding the type's latency
        limit when the reward prices one.
        """
        lay = self.layout
        with torch.no_grad():
            regions = obs[:, lay.region_offset : lay.node_offset].reshape(
                -1, lay.n_regions, REGION_FEATURES
            )
            nodes = obs[:, lay.node_offset : lay.size].reshape(
                -1, lay.max_nodes, NODE_FEATURES
            )
            s = self.scoring
            lb_wait, lb_service = lb_view(self, obs, regions)
            region_pen = expected_penalty(
                s,
                regions[..., RF_RTT] + regions[..., RF_TRANSFER] + lb_wait,
                lb_wait,
                lb_service,
                regions[..., RF_COST],
                regions[..., RF_CARBON],
            )
            selected = (
                regions * regions[..., RF_IS_SELECTED : RF_IS_SELECTED + 1]
            ).sum(1)
            rtt = selected[:, RF_RTT : RF_RTT + 1]
            transfer = selected[:, RF_TRANSFER : RF_TRANSFER + 1]
            wait = (nodes[..., NF_WAIT] - 0.5 * rtt).clamp(min=0.0)
            node_pen = expected_penalty(
                s,
                rtt + transfer + wait,
                wait,
                nodes[..., NF_EXEC],
                nodes[..., NF_COST],
                nodes[..., NF_CARBON],
            )
            if self.fpi:
                region_ext, node_ext = fpi_externality(self, obs, regions, nodes, wait)
                region_pen = region_pen + region_ext
                node_pen = node_pen + node_ext
            if self.limits_s is not None and self.limit_weights is not None:
                region_tail, node_tail = limit_exceedance(self, obs, self.limits_s)
                kinds = obs[:, lay.type_offset : lay.type_offset + lay.n_types]
                weight = (kinds @ self.limit_weights)[:, None]  # the row's type's
                region_pen = region_pen + weight * region_tail
                node_pen = node_pen + weight * node_tail
        return region_pen, node_pen

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        """``[B, n_actions]`` logits (LB rows: regions; scheduler rows: nodes)."""
        lay = self.layout
        batch = obs.shape[0]
        header = obs[:, : lay.region_offset]
        regions = obs[:, lay.region_offset : lay.node_offset].reshape(
            batch, lay.n_regions, REGION_FEATURES
        )
        nodes = obs[:, lay.node_offset : lay.size].reshape(
            batch, lay.max_nodes, NODE_FEATURES
        )
        region_pen, node_pen = self.penalties(obs)
        selected = (regions * regions[..., RF_IS_SELECTED : RF_IS_SELECTED + 1]).sum(1)
        region_tokens = torch.cat(
            [
                regions,
                header[:, None, :].expand(-1, lay.n_regions, -1),
                region_pen[..., None],
            ],
            dim=-1,
        )
        node_tokens = torch.cat(
            [
                nodes,
                selected[:, None, :].expand(-1, lay.max_nodes, -1),
                header[:, None, :].expand(-1, lay.max_nodes, -1),
                node_pen[..., None],
            ],
            dim=-1,
        )
        region_logits = self.region_mlp(region_tokens).squeeze(-1)
        node_logits = self.node_mlp(node_tokens).squeeze(-1)
        if self.prior:  # ties go to the less utilised entity, as weighted_greedy's
            beta = self.log_beta.exp()
            region_util = regions[..., RF_UTIL]
            node_util = nodes[..., NF_UTIL]
            region_logits = region_logits - beta * (region_pen + TIE * region_util)
            node_logits = node_logits - beta * (node_pen + TIE * node_util)
        out = obs.new_full((batch, self.n_actions), MASKED)
        lb = obs[:, 0:1] > 0.5
        r = min(lay.n_regions, self.n_actions)
        n = min(lay.max_nodes, self.n_actions)
        lb_rows = torch.cat([region_logits[:, :r], out[:, r:]], dim=1)
        sched_rows = torch.cat([node_logits[:, :n], out[:, n:]], dim=1)
        logits: torch.Tensor = torch.where(lb, lb_rows, sched_rows)
        return logits


class TwoTierScorerPolicy(MaskableActorCriticPolicy):
    """MaskablePPO's actor-critic with :class:`TwoTierScorer` as the actor.

    The actor reads the observation itself (SB3's policy MLP is empty, so the actor
    latent is the observation); the critic is SB3's MLP (``net_arch``).
    """

    def __init__(
        self,
        observation_space: spaces.Space[Any],
        action_space: spaces.Space[Any],
        lr_schedule: Schedule,
        *,
        n_regions: int,
        n_types: int,
        max_nodes: int,
        region_id_input: bool,
        scoring: list[float],
        load_input: bool = False,
        scorer_arch: list[int],
        greedy_scale: float = 50.0,
        externality: dict[str, Any] | None = None,
        rho_max: float = 0.95,
        lb_wait: bool = False,
        limit_s: list[float] | None = None,
        limit_weights: list[float] | None = None,
        net_arch: Any = None,
        **kwargs: Any,
    ) -> None:
        if not isinstance(observation_space, spaces.Box) or not isinstance(
            action_space, spaces.Discrete
        ):
            raise ValueError(
                "two_tier_scorer: expected a flat Box observation and a Discrete "
                f"action space, got {observation_space} and {action_space}"
            )
        self.obs_layout = ObsLayout(
            n_regions, n_types, max_nodes, region_id_input, load_input
        )
        if self.obs_layout.size != int(observation_space.shape[0]):
            raise ValueError(
                f"two_tier_scorer: the layout gives {self.obs_layout.size} features, "
                f"the observation has {observation_space.shape[0]}"
            )
        self.scorer_kwargs: dict[str, Any] = {
            "n_regions": n_regions,
            "n_types": n_types,
            "max_nodes": max_nodes,
            "region_id_input": region_id_input,
            "load_input": load_input,
            "scoring": [float(v) for v in scoring],
            "scorer_arch": [int(v) for v in scorer_arch],
            "greedy_scale": float(greedy_scale),
            "externality": externality,
            "rho_max": float(rho_max),
            "lb_wait": bool(lb_wait),
            "limit_s": None if limit_s is None else [float(v) for v in limit_s],
            "limit_weights": (
                None if limit_weights is None else [float(v) for v in limit_weights]
            ),
        }
        critic = list(net_arch["vf"]) if isinstance(net_arch, dict) else [64, 64]
        super().__init__(
            observation_space,
            action_space,
            lr_schedule,
            net_arch={"pi": [], "vf": critic},
            **kwargs,
        )

    def _build(self, lr_schedule: Schedule) -> None:
        super()._build(lr_schedule)  # SB3's critic MLP, value head, inits, optimizer
        kw = self.scorer_kwargs
        self.action_net = TwoTierScorer(
            self.obs_layout,
            int(self.action_space.n),  # type: ignore[attr-defined]
            list(kw["scoring"]),
            list(kw["scorer_arch"]),
            self.activation_fn,
            float(kw["greedy_scale"]),
            kw["externality"],
            float(kw["rho_max"]),
            bool(kw["lb_wait"]),
            kw.get("limit_s"),
            kw.get("limit_weights"),
        )
        self.optimizer = self.optimizer_class(  # again: the actor was replaced
            self.parameters(),
            lr=lr_schedule(1),  # type: ignore[call-arg]
            **self.optimizer_kwargs,
        )

    def _get_constructor_parameters(self) -> dict[str, Any]:
        data = super()._get_constructor_parameters()
        data.update(self.scorer_kwargs)
        return data

    def set_limit_prices(self, prices: Sequence[float]) -> None:
        """Price the prior's tail limits at ``prices`` ``[K]`` (the reward's new ones).

        The federation's dual update moves the reward's prices between rounds; the
        prior, the rule pricing the same limits, follows, and a saved checkpoint
        carries the prices it was trained at.
        """
        scorer = self.action_net
        assert isinstance(scorer, TwoTierScorer)
        if scorer.limit_weights is None:
            raise ValueError(
                "limit prices: this policy's prior prices no latency limit (built "
                "with reward.limit_exceeded all 0); start from a price > 0"
            )
        values = torch.as_tensor(np.asarray(prices, dtype=float), dtype=torch.float32)
        if values.shape != scorer.limit_weights.shape:
            raise ValueError(
                f"limit prices: expected {scorer.limit_weights.numel()} values "
                f"(one per request type), got {list(prices)}"
            )
        scorer.limit_weights.copy_(values.to(scorer.limit_weights.device))
        self.scorer_kwargs["limit_weights"] = [float(v) for v in prices]


def _core(env: VecEnv) -> Any:
    """The two-tier core behind ``env`` (through wrappers)."""
    venv: Any = env
    while venv is not None:
        core = getattr(venv, "core", None)
        if core is not None and hasattr(core, "scoring"):
            return core
        venv = getattr(venv, "venv", None)
    raise ValueError(
        "policy.network=two_tier_scorer: expected a two-tier env (env=two_tier), "
        f"got {type(env).__name__}"
    )


def _spec(
    env: VecEnv,
    cfg: PolicyConfig,
    greedy_scale: float,
    fpi: bool = False,
    lb_wait: bool = False,
) -> dict[str, Any]:
    core = _core(env)
    lay = core.layout
    tables = externality_tables(core.world, lay.max_nodes).as_lists() if fpi else None
    return {
        "n_regions": lay.n_regions,
        "n_types": lay.n_types,
        "max_nodes": lay.max_nodes,
        "region_id_input": lay.region_id_input,
        "load_input": lay.load_input,
        "scoring": [float(v) for v in core.scoring],
        "scorer_arch": [32, 32],  # per entity (Decima: 32-16-8): runs once per token
        "greedy_scale": greedy_scale,
        "externality": tables,
        "lb_wait": lb_wait,
        "limit_s": [float(min(v, NO_LIMIT_S)) for v in core.limit_s],
        "limit_weights": [float(v) for v in core.limit_weights],
        "net_arch": {"pi": [], "vf": list(cfg.net_arch)},
        "activation_fn": ACTIVATIONS[cfg.activation],
    }


def two_tier_scorer(env: VecEnv, cfg: PolicyConfig) -> tuple[Any, dict[str, Any]]:
    """``policy.network=two_tier_scorer``: per-entity scorer starting as greedy."""
    return TwoTierScorerPolicy, _spec(env, cfg, greedy_scale=50.0)


def two_tier_scorer_plain(env: VecEnv, cfg: PolicyConfig) -> tuple[Any, dict[str, Any]]:
    """``policy.network=two_tier_scorer_plain``: the same scorer without the prior."""
    return TwoTierScorerPolicy, _spec(env, cfg, greedy_scale=0.0)


def two_tier_scorer_fpi(env: VecEnv, cfg: PolicyConfig) -> tuple[Any, dict[str, Any]]:
    """``policy.network=two_tier_scorer_fpi``: the scorer starting as ``fpi_greedy``."""
    return TwoTierScorerPolicy, _spec(env, cfg, greedy_scale=50.0, fpi=True)


def two_tier_scorer_fpi_wait(
    env: VecEnv, cfg: PolicyConfig
) -> tuple[Any, dict[str, Any]]:
    """``policy.network=two_tier_scorer_fpi_wait``: the scorer as ``fpi_wait_greedy``.

    The FPI prior whose LB phase reads each region's wait (:func:`lb_view`).
    """
    return TwoTierScorerPolicy, _spec(
        env, cfg, greedy_scale=50.0, fpi=True, lb_wait=True
    )


NO_LIMIT_S = 1e9
"""A type's latency limit when it has none: nothing exceeds it (finite, not inf)."""


def limit_exceedance(
    scorer: TwoTierScorer, obs: torch.Tensor, limits_s: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Probability that the request's latency exceeds its type's limit, per row.

    The SLO term of :func:`expected_penalty` with the type's limit in place of its
    SLO: latency over SLO is ``fixed + service * G``, so it exceeds ``L / SLO`` with
    the probability the SLO term gives for ``fixed + 1 - L / SLO``. Regions ``[B, R]``
    as the LB prior reads them (best completion as the random part), nodes
    ``[B, N_max]`` as the scheduler's (wait on arrival fixed, execution random).
    """
    lay = scorer.layout
    kinds = obs[:, lay.type_offset : lay.type_offset + lay.n_types]
    shift = (1.0 - kinds @ (limits_s / scorer.slo))[:, None]  # [B, 1]
    tail_only = torch.zeros_like(scorer.scoring)
    tail_only[S_W_SLO] = 1.0
    tail_only[S_CAP] = scorer.scoring[S_CAP]
    tail_only[S_SHAPE] = scorer.scoring[S_SHAPE]
    regions = obs[:, lay.region_offset : lay.node_offset].reshape(
        -1, lay.n_regions, REGION_FEATURES
    )
    nodes = obs[:, lay.node_offset : lay.size].reshape(-1, lay.max_nodes, NODE_FEATURES)
    none = torch.zeros_like(regions[..., RF_RTT])
    lb_wait, lb_service = lb_view(scorer, obs, regions)
    region_tail = expected_penalty(
        tail_only,
        regions[..., RF_RTT] + regions[..., RF_TRANSFER] + lb_wait + shift,
        none,
        lb_service,
        none,
        none,
    )
    selected = (regions * regions[..., RF_IS_SELECTED : RF_IS_SELECTED + 1]).sum(1)
    rtt = selected[:, RF_RTT : RF_RTT + 1]
    transfer = selected[:, RF_TRANSFER : RF_TRANSFER + 1]
    wait = (nodes[..., NF_WAIT] - 0.5 * rtt).clamp(min=0.0)
    zero = torch.zeros_like(wait)
    node_tail = expected_penalty(
        tail_only, rtt + transfer + wait + shift, zero, nodes[..., NF_EXEC], zero, zero
    )
    return region_tail, node_tail


class FpiGreedyPolicy:
    """``fpi_greedy``: per request, the valid row with the lowest penalty + externality.

    The observation-only FPI rule: weighted-greedy's expected penalty plus
    :func:`fpi_externality`, from the observation and the scenario's static tables
    (what :func:`two_tier_scorer_fpi` starts from). A baseline, no training.

    With ``latency_limits_s`` it also prices ``limit_weight`` reward units on the
    probability of exceeding each type's limit (:func:`limit_exceedance`): the
    Lagrangian of per-type p95 limits, a probe of what a myopic rule that knows the
    limits can save within them (issue 15, goal 2), not a tier of its own. Without
    them it prices the core's own reward limits (``reward.limit_s``,
    ``limit_exceeded``), as it reads the core's other weights: the rule a learner of
    that reward starts from.

    ``lb_wait`` gives ``fpi_wait_greedy``: the LB phase reads each region's wait from
    its best completion (:func:`lb_view`) instead of taking it all as service.

    Args:
        core: a two-tier core of the scenario (its layout, reward weights, world).
        rho_max: cap of a region's load in the externality.
        latency_limits_s: ``[K]`` per-type latency limits (seconds; ``inf``: that
            type has none), or ``None``.
        limit_weight: reward units per unit probability of exceeding a limit: one
            for every type, or ``[K]``, one multiplier per type's limit (the
            Lagrangian of K constraints has K multipliers; one shared weight makes
            the loosest limit as expensive as the binding one).
        lb_wait: the LB phase's wait (``fpi_wait_greedy``); off: ``fpi_greedy``.
    """

    def __init__(
        self,
        core: Any,
        rho_max: float = 0.95,
        latency_limits_s: Any = None,
        limit_weight: float | Sequence[float] | np.ndarray = 0.0,
        lb_wait: bool = False,
    ) -> None:
        lay = core.layout
        limits = np.asarray(core.limit_s, dtype=float)
        weights = np.asarray(core.limit_weights, dtype=float)
        if latency_limits_s is not None:
            limits = np.asarray(latency_limits_s, dtype=float)
            if limits.shape != (lay.n_types,) or not np.all(limits > 0):
                raise ValueError(
                    f"latency_limits_s: expected {lay.n_types} positive seconds "
                    f"(one per request type, inf for none), got {limits.tolist()}"
                )
            weights = np.asarray(limit_weight, dtype=float)
            if weights.ndim == 0:
                weights = np.full(lay.n_types, float(weights))
            if weights.shape != (lay.n_types,) or not (
                np.all(np.isfinite(weights)) and np.all(weights >= 0)
            ):
                raise ValueError(
                    "limit_weight: expected a finite weight >= 0 or "
                    f"{lay.n_types} of them (one per request type), got {limit_weight}"
                )
        self.scorer = TwoTierScorer(
            lay,
            max(lay.n_regions, lay.max_nodes),
            [float(v) for v in core.scoring],
            [],
            nn.Identity,
            1.0,
            externality_tables(core.world, lay.max_nodes).as_lists(),
            rho_max,
            lb_wait,
            [float(v) for v in limits],
            [float(v) for v in weights],
        )

    def scores(
        self, observation: np.ndarray, action_masks: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """``[B, R]`` region and ``[B, N_max]`` node scores; ``inf`` where invalid."""
        obs = torch.as_tensor(np.atleast_2d(observation), dtype=torch.float32)
        lay = self.scorer.layout
        with torch.no_grad():
            region_pen, node_pen = self.scorer.penalties(obs)
        regions = obs[:, lay.region_offset : lay.node_offset].reshape(
            -1, lay.n_regions, REGION_FEATURES
        )
        nodes = obs[:, lay.node_offset : lay.size].reshape(
            -1, lay.max_nodes, NODE_FEATURES
        )
        region_score = (region_pen + TIE * regions[..., RF_UTIL]).double().numpy()
        node_score = (node_pen + TIE * nodes[..., NF_UTIL]).double().numpy()
        region_score[regions[..., RF_VALID].numpy() <= 0] = np.inf
        node_score[nodes[..., NF_VALID].numpy() <= 0] = np.inf
        if action_masks is not None:
            masks = np.atleast_2d(np.asarray(action_masks, dtype=bool))
            region_score[~masks[:, : lay.n_regions]] = np.inf
            node_score[~masks[:, : lay.max_nodes]] = np.inf
        return region_score, node_score

    def predict(
        self,
        observation: np.ndarray,
        state: Any = None,
        episode_start: Any = None,
        deterministic: bool = True,
        action_masks: np.ndarray | None = None,
    ) -> tuple[np.ndarray, Any]:
        """The lowest-scored valid region (LB rows) or node (scheduler rows)."""
        region_score, node_score = self.scores(observation, action_masks)
        lb = np.atleast_2d(observation)[:, 0] > 0.5
        actions = np.where(lb, region_score.argmin(1), node_score.argmin(1))
        return actions.astype(np.int64), None


NETWORKS["two_tier_scorer"] = two_tier_scorer
NETWORKS["two_tier_scorer_fpi"] = two_tier_scorer_fpi
NETWORKS["two_tier_scorer_fpi_wait"] = two_tier_scorer_fpi_wait
NETWORKS["two_tier_scorer_plain"] = two_tier_scorer_plain
