"""Configuration of the rescheduling env (one dataclass; Hydra mirrors it in YAML).

Defaults are **REACH mode**: the same files give the same numbers as REACH's CEEnv
(6aa794e). Every extension is a switch that is off by default.
"""

from __future__ import annotations

from dataclasses import dataclass

_CHOICES = {
    "observation": ("flat", "reach"),
    "reach_keys": ("6aa794e", "testbed"),
    "placement": ("kubernetes", "random"),
    "replicas": ("uniform", "max"),
    "migration_cost_growth": ("growing", "constant"),
    "reward_unit": ("ms", "qos"),
    "horizon_reward": ("end", "average"),
}


@dataclass
class RescheduleConfig:
    """Settings of :class:`envs.reach.env.ReachRescheduleEnv` and its batched core."""

    cluster: str = ""
    """Cluster folder ``<nodes>-<pods>`` with nodes.json and services.json; empty
    selects the packaged 7-21 example (``envs/data/reach/7-21``)."""
    pattern: str = "aggregator_sequential"
    """Call pattern: a name (``aggregator_parallel``, ``aggregator_sequential``,
    ``chain``) looked up beside or inside the cluster folder, or a path to a
    ``*_call_patterns.json`` file. REACH's training CLI defaults to
    ``aggregator_sequential``."""
    max_nodes: int = 0
    """Node axis length of observation and action (padding); 0 means the config's N.
    Set it (and ``max_pods``) to share one network across clusters of several sizes."""
    max_pods: int = 0
    """Pod axis length (padding); 0 means the config's P."""
    max_moves: int = 100
    """Moves per episode before truncation (REACH: 100)."""
    observation: str = "flat"
    """``flat``: normalised Box with latency and load features (our default);
    ``reach``: REACH's Dict keys in raw units (spec §5.2)."""
    reach_keys: str = "6aa794e"
    """Key set of the ``reach`` observation: ``6aa794e`` (six keys, as REACH trains) or
    ``testbed`` (the three keys REACH's testbed server builds)."""
    reach_exact_bounds: bool = False
    """Use REACH's nominal Box bounds ([0, 16] resources, [0, 500] ms, [0, 100] steps),
    which values may exceed as in REACH, so that REACH-trained models load; otherwise
    bounds are widened to cover the config and values are clipped to them."""
    placement: str = "kubernetes"
    """Initial placement at reset: ``kubernetes`` (default scheduler: resource fit,
    least-allocated + balanced + spreading scores, random tie-break) or ``random``
    (REACH: a uniformly random fitting node of the allowed layers)."""
    replicas: str = "uniform"
    """Replicas per service at reset: ``uniform`` in [1, max-replica] (REACH) or
    ``max``."""
    migration_cost: float = 0.2
    """REACH's step penalty per move, subtracted on every non-final step (6aa794e
    trains with 0.2 growing; 6672c0a with 1.25 constant)."""
    migration_cost_growth: str = "growing"
    """``growing``: penalty = ``migration_cost`` x moves so far (6aa794e);
    ``constant``: penalty = ``migration_cost`` (6672c0a)."""
    reward_unit: str = "ms"
    """``ms``: the reward in milliseconds, as REACH; ``qos``: the same reward
    divided by the QoS threshold (mean of the endpoints' ``qos``), so its scale is
    the same on every config set (the learner's value loss otherwise dwarfs its
    policy loss under one gradient-norm clip). Latency figures and the migration
    cost's meaning are unchanged."""
    slo_penalty: float = 0.0
    """Extension: penalty per step times the fraction of endpoints over their QoS
    target after the step (0 = off, REACH)."""
    stop_at_qos: bool = False
    """End the episode (terminated) once the mean latency is at most the QoS
    threshold, as REACH's testing mode does."""
    queueing: bool = False
    """Extension: add an M/M/c waiting time per node (Erlang C over its cores) from
    the request rate its pods serve; REACH ignores load."""
    queue_wait_cap_ms: float = 1000.0
    """Waiting time used for an overloaded (unstable) node, ms."""
    response_transfer: bool = False
    """Extension: add the response's way back on every call (reverse layer latency
    plus transfer); REACH models one-way calls only."""
    response_size_ratio: float = 1.0
    """Response size as a fraction of the call's ``data-size`` (with
    ``response_transfer``)."""
    failure_prob: float = 0.0
    """Extension: per-step probability that one healthy edge/cloud node fails (no
    longer a move target; pods on it run ``failure_slowdown`` times slower)."""
    failure_slowdown: float = 10.0
    """Execution-time factor on a failed node, so its pods must be moved off."""
    degradation_prob: float = 0.0
    """Extension: per-step probability that one edge/cloud node slows down by a
    factor uniform in [1, ``degradation_max``]."""
    degradation_max: float = 3.0
    """Largest slow-down factor of a degradation."""
    recovery_prob: float = 0.1
    """Per-step probability that each failed or degraded node recovers."""
    surge_prob: float = 0.0
    """Extension: per-step probability that the request rate toggles between normal
    and a surge uniform in [1, ``surge_max``] x rps."""
    surge_max: float = 3.0
    """Largest request-rate multiplier of a surge."""
    pod_node_onehot: bool = True
    """In the flat observation, one-hot encode each pod's node (N_max entries per
    pod, like REACH's ``Pod_node_id``); off keeps only its layer and position."""
    move_gains: bool = False
    """Flat observation: append, for every action ``a < N_max * P_max`` (node-major
    as the actions), the modelled latency drop of that move divided by the QoS
    threshold (0 where masked; clipped to [-10, 10]). It is what one-step greedy
    compares, so a per-(pod, node) scorer can start from greedy and learn what it
    misses; it costs one model evaluation per valid move per step."""
    horizon: bool = False
    """Fixed-horizon episodes for the dynamic variant: stop means *wait* (no move,
    time and events go on), every episode lasts ``max_moves`` steps (truncated),
    and the reward also counts the latency change of the step's events, so the
    return telescopes to the latency drop over the episode. Off (REACH): stop ends
    the episode and events after a move are not credited to it."""
    horizon_reward: str = "end"
    """Latency term of a fixed-horizon step's reward (needs ``horizon``). ``end``:
    the step's latency change, so the return is the drop from the episode's start
    to its *end* and nothing rewards getting there early; ``average``: (QoS
    threshold - latency after the step) / ``max_moves``, so the return is the QoS
    slack *averaged over the episode's steps*: lowering the average latency (what
    users live with, and what evaluation reports) is the objective, and every term
    is in the observation (the start latency is not)."""

    def __post_init__(self) -> None:
        """Fail fast on a bad value, naming the field and what was expected."""
        for name, choices in _CHOICES.items():
            value = getattr(self, name)
            if value not in choices:
                raise ValueError(
                    f"RescheduleConfig.{name}: expected one of "
                    f"{', '.join(repr(c) for c in choices)}, got {value!r}"
                )
        for name in ("max_nodes", "max_pods"):
            if getattr(self, name) < 0:
                raise ValueError(
                    f"RescheduleConfig.{name}: expected >= 0 (0 = the config's size), "
                    f"got {getattr(self, name)!r}"
                )
        if self.max_moves < 1:
            raise ValueError(
                f"RescheduleConfig.max_moves: expected >= 1, got {self.max_moves!r}"
            )
        for name in ("failure_prob", "degradation_prob", "recovery_prob", "surge_prob"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(
                    f"RescheduleConfig.{name}: expected a probability in [0, 1], "
                    f"got {value!r}"
                )
        for name in ("failure_slowdown", "degradation_max", "surge_max"):
            if getattr(self, name) < 1.0:
                raise ValueError(
                    f"RescheduleConfig.{name}: expected a factor >= 1, "
                    f"got {getattr(self, name)!r}"
                )
        for name in ("migration_cost", "slo_penalty", "response_size_ratio"):
            if getattr(self, name) < 0.0:
                value = getattr(self, name)
                raise ValueError(
                    f"RescheduleConfig.{name}: expected >= 0, got {value!r}"
                )
        if self.move_gains and self.observation != "flat":
            raise ValueError(
                "RescheduleConfig.move_gains: expected observation='flat' (REACH's "
                f"Dict keys have no move gains), got observation={self.observation!r}"
            )
        if self.horizon_reward != "end" and not self.horizon:
            raise ValueError(
                "RescheduleConfig.horizon_reward: expected 'end' unless horizon=True "
                f"(it shapes fixed-horizon episodes), got {self.horizon_reward!r}"
            )
        if self.queue_wait_cap_ms <= 0.0:
            raise ValueError(
                "RescheduleConfig.queue_wait_cap_ms: expected > 0, "
                f"got {self.queue_wait_cap_ms!r}"
            )

    @property
    def events(self) -> bool:
        """Whether any in-episode event (failure, degradation, surge) can happen."""
        return self.failure_prob > 0 or self.degradation_prob > 0 or self.surge_prob > 0
