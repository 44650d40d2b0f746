"""Typed configuration of the two-tier env: which tier learns, and its reward.

Registered with Hydra's ConfigStore by ``conf/schema.py`` (``two_tier``, ``reward``);
the world they act on is :class:`envs.config.ScenarioConfig`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum


class Tier(Enum):
    """Which decisions the agent takes; the other tier is a heuristic."""

    both = "both"
    lb = "lb"
    scheduler = "scheduler"


@dataclass
class RewardConfig:
    """Weights of the normalised reward terms (all >= 0).

    reward = -(latency * L/SLO + queueing * W/SLO + slo_violation * [L > SLO]
               + cost * C/C_ref + carbon * G/G_ref
               + limit_exceeded[k] * [L > limit_s[k]])

    with L the end-to-end latency, W the queueing wait, C the cost (compute + egress)
    and G the carbon of the request. ``C_ref`` is the type's mean compute cost over all
    capable nodes plus its mean egress cost over all pairs of distinct regions;
    ``G_ref`` its mean energy times the scenario's mean carbon intensity; ``k`` the
    request's type.
    """

    latency: float = 1.0
    queueing: float = 0.0
    slo_violation: float = 1.0
    cost: float = 0.25
    carbon: float = 0.25
    term_cap: float = 10.0
    """Each normalised term is capped here (a request 50x over its SLO is not 50x
    worse for learning; ``info`` keeps the raw values)."""
    limit_s: dict[str, float] = field(default_factory=dict)
    """Per request type (by name), a latency limit in seconds besides its SLO, e.g.
    a p95 target. With ``limit_exceeded`` it prices the chance of exceeding it: the
    Lagrangian of per-type tail limits (issue 15, goal 2), where ``limit_exceeded``
    holds the multipliers. Types left out have none."""
    limit_exceeded: dict[str, float] = field(default_factory=dict)
    """Per request type (by name), reward units a request pays when its latency
    exceeds its type's ``limit_s``; every named type needs a limit."""
    limit_signal: str = "drawn"
    """What ``[L > limit_s[k]]`` is charged as: ``drawn``, the realised latency's
    indicator; ``expected``, its expectation over the request's service draw given
    everything else (RTT, transfer, wait, node): the same expected reward with less
    variance for the learner (the draw is independent of the decision)."""
    limit_share: float = 0.05
    """The tail limits as constraints: at most this share of a type's requests over
    its ``limit_s`` (0.05: its p95 within the limit). What the federation's dual
    update of the prices aims at (``limit_price_lr``); a share below 0.05 is a
    margin."""
    limit_price_lr: float = 0.0
    """Dual ascent on ``limit_exceeded`` between federated rounds: after each round
    the server moves each limited type's price by ``lr x (share / limit_share - 1)``
    (not below 0), ``share`` being the type's measured share over its limit in that
    round's training, pooled over regions (PPO-Lagrangian). 0: fixed prices."""


@dataclass
class TwoTierEnvConfig:
    """The two-tier scheduling env: which tier learns, and the heuristics around it."""

    learn: Tier = Tier.both
    """``lb``: learn the region choice; ``scheduler``: learn the node choice;
    ``both``: one policy takes both decisions in turn (a phase flag tells which)."""
    lb_heuristic: str = "latency"
    """Region choice when the LB is not learned (``heuristics.LB_HEURISTICS``)."""
    scheduler_heuristic: str = "least_loaded"
    """Node choice when the scheduler is not learned (``SCHEDULER_HEURISTICS``)."""
    background_scheduler: str = "least_loaded"
    """How regions not controlled by the agent place their own traffic (locally)."""
    episode_length: int = 512
    """Agent decisions per episode (the registered ``max_episode_steps``)."""
    warmup: str = "250ms"
    """Simulated time before the first decision, so queues start in a loaded state."""
    saturation_wait: str = "1s"
    """A node whose queue wait exceeds this is masked, unless every capable node of the
    region is; ``0s`` disables admission control."""
    region_id_input: bool = True
    """Put the origin region's one-hot id in the observation (specialisation input)."""
    load_input: bool = False
    """Put every region's offered load now (arrival rate this second over its
    full-utilisation rate) in the observation: the burst state a dispatcher needs to
    spill before queues form. Simulator training only: a live observation
    (:class:`~envs.two_tier.live.ObservableState`) carries no rates."""
    obs_clip: float = 10.0
    """Upper clip of the normalised observation features."""
    auto_reset: str = "continue"
    """How a batched core starts the next episode after truncation: ``continue`` on
    the running world (queues kept; new hour and burst offsets; no warm-up cost) or
    ``warm`` (empty queues, then ``warmup``). An explicit ``reset()`` is always warm."""
    invalid_action_penalty: float = 1.0
    """Reward subtracted when a masked-out action is taken (the tier's heuristic then
    decides); masked policies never pay it, unmasked baselines do."""
    train_reward: str = "raw"
    """What the learner is paid in training (evaluation, episode returns and metrics
    always read the raw reward): ``raw``; ``scaled``: divided by the running standard
    deviation of its discounted return (SB3's ``VecNormalize``), so value targets stay
    of order 1 when ``policy.gamma`` is near 1; ``differential``: the running mean
    reward per decision subtracted first (an average-reward baseline, as Decima's),
    then scaled. Applied by :func:`envs.two_tier.factory.make_region_vec_env`."""
    train_reward_gamma: float = 0.99
    """Discount of the return whose spread scales the reward (``conf/env/two_tier.yaml``
    sets it to ``${policy.gamma}``)."""
