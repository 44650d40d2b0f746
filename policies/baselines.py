"""Baseline policies of the two-tier env, with a learned policy's ``predict`` interface.

A baseline decodes the observation (layout: :mod:`envs.two_tier.layout`) and applies
the same heuristic functions the simulator uses (:mod:`envs.two_tier.heuristics`), so
"least-loaded" means one thing everywhere. :class:`TierComposite` lets each tier be a
baseline or a learned policy independently. Rescheduling baselines live with their env
in :mod:`envs.reach.baselines`.
"""

from __future__ import annotations

from typing import Any, Protocol

import numpy as np

from envs.rng import seed_streams
from envs.two_tier.heuristics import (
    LB_HEURISTICS,
    N_SCORING,
    SCHEDULER_HEURISTICS,
    WEIGHTED,
    choose_node,
    choose_region,
)
from envs.two_tier.layout import (
    NODE_FEATURES,
    REGION_FEATURES,
    RF_IS_SELECTED,
    RF_RTT,
    RF_TRANSFER,
    ObsLayout,
)

BASELINES: dict[str, tuple[str, str]] = {
    "random": ("random", "random"),
    "round_robin": ("round_robin", "round_robin"),
    "least_loaded": ("least_loaded", "least_loaded"),
    "latency": ("latency", "latency"),
    "cost": ("cost", "cost"),
    "carbon": ("carbon", "carbon"),
    "kube_default": ("local", "kube_default"),
    "weighted_greedy": ("weighted", "weighted"),
}
"""Named two-tier baselines: (load balancer, scheduler). ``kube_default`` keeps every
request in its region (Kubernetes has no cross-region balancer) and scores nodes like
the default scheduler (LeastAllocated, random among the best). ``weighted_greedy``
picks, in each tier, the row with the lowest expected penalty under the run's reward
weights (the best myopic rule; it needs the run's ``scoring``)."""

TABLE_BASELINES = ("fpi_greedy", "fpi_wait_greedy")
"""Two-tier baselines that need the scenario's static tables besides the observation:
``fpi_greedy`` adds to weighted-greedy's penalty the request's externality on later
requests (:class:`policies.networks.two_tier.FpiGreedyPolicy`); ``fpi_wait_greedy``
is the same rule with the LB phase reading each region's wait from its best
completion (:func:`policies.networks.two_tier.lb_view`; issue 15, stop 29)."""


def two_tier_baseline(name: str, core: Any, seed: int = 0) -> Policy:
    """A named two-tier baseline acting on ``core``'s observations.

    Raises:
        ValueError: ``name`` is in neither :data:`BASELINES` nor
            :data:`TABLE_BASELINES`.
    """
    if name in TABLE_BASELINES:
        from policies.networks.two_tier import FpiGreedyPolicy

        return FpiGreedyPolicy(core, lb_wait=name == "fpi_wait_greedy")
    if name not in BASELINES:
        raise ValueError(
            f"baseline: expected one of {list(BASELINES) + list(TABLE_BASELINES)}, "
            f"got {name!r}"
        )
    return TwoTierHeuristicPolicy.named(name, core.layout, seed, core.scoring)


class Policy(Protocol):
    """What the evaluation harness and the server call (SB3's ``predict``)."""

    def predict(
        self,
        observation: np.ndarray,
        state: Any = None,
        episode_start: Any = None,
        deterministic: bool = True,
        action_masks: np.ndarray | None = None,
    ) -> tuple[np.ndarray, Any]:
        """Actions for a batch of observations."""
        ...


class TwoTierHeuristicPolicy:
    """Heuristic LB and scheduler reading the observation.

    Args:
        layout: the env's observation layout (``core.layout`` / ``env.unwrapped.core``).
        lb: a name of ``envs.two_tier.heuristics.LB_HEURISTICS``.
        scheduler: a name of ``envs.two_tier.heuristics.SCHEDULER_HEURISTICS``.
        seed: stream of the random choices (random, round-robin start, kube ties).
        scoring: the run's weights, term cap and service shape
            (``core.scoring``, :func:`envs.two_tier.heuristics.scoring_params`);
            required by the ``weighted`` rule, ignored by the others.
    """

    def __init__(
        self,
        layout: ObsLayout,
        lb: str = "latency",
        scheduler: str = "least_loaded",
        seed: int = 0,
        scoring: np.ndarray | None = None,
    ) -> None:
        if lb not in LB_HEURISTICS:
            raise ValueError(f"lb: expected one of {list(LB_HEURISTICS)}, got {lb!r}")
        if scheduler not in SCHEDULER_HEURISTICS:
            raise ValueError(
                f"scheduler: expected one of {list(SCHEDULER_HEURISTICS)}, "
                f"got {scheduler!r}"
            )
        self.layout = layout
        self.lb, self.scheduler = lb, scheduler
        self._lb_mode = LB_HEURISTICS[lb]
        self._sched_mode = SCHEDULER_HEURISTICS[scheduler]
        if scoring is None:
            if WEIGHTED in (self._lb_mode, self._sched_mode):
                raise ValueError(
                    "scoring: the weighted rule needs the run's reward weights "
                    "(core.scoring), got None"
                )
            scoring = np.zeros(N_SCORING)
        self.scoring = np.asarray(scoring, dtype=np.float64)
        if self.scoring.shape != (N_SCORING,):
            raise ValueError(
                f"scoring: expected {N_SCORING} values, got shape {self.scoring.shape}"
            )
        self._seed = seed
        self._rng = seed_streams(np.random.default_rng(seed), 1)
        self._counters = np.zeros((2, 1), dtype=np.int64)

    @classmethod
    def named(
        cls,
        name: str,
        layout: ObsLayout,
        seed: int = 0,
        scoring: np.ndarray | None = None,
    ) -> TwoTierHeuristicPolicy:
        """One of :data:`BASELINES`."""
        if name not in BASELINES:
            raise ValueError(
                f"baseline: expected one of {list(BASELINES)}, got {name!r}"
            )
        lb, scheduler = BASELINES[name]
        return cls(layout, lb, scheduler, seed, scoring)

    def _resize(self, n: int) -> None:
        if self._rng.shape[0] != n:
            self._rng = seed_streams(np.random.default_rng(self._seed), n)
            self._counters = np.zeros((2, n), dtype=np.int64)

    def predict(
        self,
        observation: np.ndarray,
        state: Any = None,
        episode_start: Any = None,
        deterministic: bool = True,
        action_masks: np.ndarray | None = None,
    ) -> tuple[np.ndarray, Any]:
        """Region choices for LB-phase rows, node choices for scheduler-phase rows."""
        obs = np.atleast_2d(np.asarray(observation, dtype=np.float32))
        n = obs.shape[0]
        self._resize(n)
        lay = self.layout
        regions = obs[:, lay.region_offset : lay.node_offset].reshape(
            n, lay.n_regions, REGION_FEATURES
        )
        nodes = obs[:, lay.node_offset : lay.size].reshape(
            n, lay.max_nodes, NODE_FEATURES
        )
        actions = np.empty(n, dtype=np.int64)
        for i in range(n):
            if obs[i, 0] > 0.5:  # LB phase
                actions[i] = choose_region(
                    self._lb_mode,
                    np.ascontiguousarray(regions[i]),
                    self._rng,
                    self._counters[0],
                    i,
                    self.scoring,
                )
            else:
                selected = np.flatnonzero(regions[i, :, RF_IS_SELECTED] > 0.5)
                route = (  # the serving region's row (float32, as the kernel reads)
                    regions[i, selected[0]]
                    if selected.size
                    else np.zeros(REGION_FEATURES, dtype=np.float32)
                )
                actions[i] = choose_node(
                    self._sched_mode,
                    np.ascontiguousarray(nodes[i]),
                    self._rng,
                    self._counters[1],
                    i,
                    self.scoring,
                    route[RF_RTT],
                    route[RF_TRANSFER],
                )
        return actions, None


class TierComposite:
    """One policy per tier: LB-phase rows go to ``lb``, the others to ``scheduler``.

    A tier policy trained on a single-tier env has a smaller action space (``R`` or
    ``N_max``); it receives the matching slice of the masks.
    """

    def __init__(self, lb: Policy, scheduler: Policy) -> None:
        self.lb, self.scheduler = lb, scheduler

    @staticmethod
    def _width(policy: Policy) -> int | None:
        space = getattr(policy, "action_space", None)
        return int(space.n) if space is not None else None

    def predict(
        self,
        observation: np.ndarray,
        state: Any = None,
        episode_start: Any = None,
        deterministic: bool = True,
        action_masks: np.ndarray | None = None,
    ) -> tuple[np.ndarray, Any]:
        """Dispatch rows by phase and merge the actions."""
        obs = np.atleast_2d(np.asarray(observation, dtype=np.float32))
        masks = None if action_masks is None else np.atleast_2d(action_masks)
        actions = np.zeros(obs.shape[0], dtype=np.int64)
        lb_rows = obs[:, 0] > 0.5
        for rows, policy in ((lb_rows, self.lb), (~lb_rows, self.scheduler)):
            if not rows.any():
                continue
            width = self._width(policy)
            sub_masks = None
            if masks is not None:
                sub_masks = masks[rows] if width is None else masks[rows, :width]
            chosen, _ = policy.predict(
                obs[rows], deterministic=deterministic, action_masks=sub_masks
            )
            actions[rows] = np.asarray(chosen).reshape(-1)
        return actions, None
