"""Privileged reference dispatchers of the two-tier env: headroom probes, not policies.

A learned policy and ``weighted_greedy`` see the observation only. These rules read
the simulator's whole state (every core's free time, every region's arrival rate)
to measure how much better a dispatcher *could* do, and why, before training budget
is spent on it (issue 15, quality notes §6.1):

* ``joint``: the (region, node) pair with the lowest expected penalty, computed
  with the true queue each node would show on the request's arrival (the
  weighted rule's score without its observation gaps: in the LB phase the region
  block hides node waits, and waits are measured at the decision, not at arrival).
* ``fpi``: ``joint`` plus the request's externality on later requests: the first
  policy iteration on a static split (Hyytiä, Penttinen, Aalto, EJOR 2012), whose
  M/G/1-FCFS relative value of a backlog ``u`` is ``lambda u^2 / (2 (1 - rho))``.
  Adding a job of per-core size ``x`` therefore costs later arrivals
  ``lambda x (2 u + x) / (2 (1 - rho))`` seconds of waiting, counted in reward
  units through their mean ``1 / SLO``. A node of ``c`` cores is treated as one
  server ``c`` times as fast (backlog and job per core), ``lambda`` and ``rho`` of a
  node follow from its region's arrival rate now (its own traffic, offered load
  ``rho`` capped at ``rho_max``), spread over its nodes by capacity.
* ``sita``: ``joint`` with size-interval assignment by hand: types whose mean
  execution is ``heavy_s`` or more avoid the many-core-poor nodes short requests
  need (fewer than ``heavy_cores`` cores and the fastest CPU class), by a penalty
  ``sita_penalty`` (so they still spill there when everything else is worse).

All three choose among the env's valid actions only, so they are compared with the
observation-based heuristics on equal terms of admission control.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numba as nb
import numpy as np

from envs.scenario import (
    NODE_ACCESS_RTT_S,
    NODE_CORE_OFFSET,
    NODE_CORES,
    NODE_PRICE_CORE_S,
    NODE_WATTS_BUSY_CORE,
    PAIR_BW_BPS,
    PAIR_EGRESS_USD_GB,
    PAIR_RTT_S,
    REG_END,
    REG_START,
    TYPE_BYTES,
    TYPE_CARBON_REF,
    TYPE_COST_REF,
    TYPE_IN_GB,
    TYPE_NODE_CAPABLE,
    TYPE_NODE_EXEC_S,
    TYPE_OUT_GB,
    TYPE_SLO_S,
)
from envs.two_tier import kernels as K
from envs.two_tier.core import TwoTierCore
from envs.two_tier.externality import inv_slo_mix, mean_service
from envs.two_tier.heuristics import expected_penalty
from envs.two_tier.layout import PHASE_LB

RULES = ("joint", "fpi", "sita")


@nb.njit(cache=True)
def penalty_array(
    scoring: np.ndarray,
    fixed: np.ndarray,
    wait: np.ndarray,
    service: np.ndarray,
    cost: np.ndarray,
    carbon: np.ndarray,
) -> np.ndarray:
    """:func:`~envs.two_tier.heuristics.expected_penalty` of each element."""
    out = np.empty(fixed.shape[0])
    for i in range(fixed.shape[0]):
        out[i] = expected_penalty(
            scoring, fixed[i], wait[i], service[i], cost[i], carbon[i]
        )
    return out


@dataclass(frozen=True)
class ReferenceOptions:
    """Knobs of the reference rules (probed on tuning seeds only)."""

    fpi_scale: float = 1.0
    """Factor on the FPI externality (1 = the M/G/1 value as derived)."""
    rho_max: float = 0.95
    """Cap of a region's offered load in the FPI term (the M/G/1 value diverges)."""
    heavy_s: float = 0.1
    """SITA: types whose mean execution on the fastest class is this long (s)."""
    heavy_cores: int = 8
    """SITA: heavy requests avoid nodes of fewer cores of the fastest CPU class."""
    sita_penalty: float = 0.2
    """SITA: reward units added to a heavy request's score on an avoided node."""
    load_source: str = "rate"
    """FPI: a region's load from its true arrival rate now (``rate``, privileged) or
    from its observed busy-core fraction (``util``)."""
    backlog_source: str = "cores"
    """FPI: a node's backlog summed over its cores (``cores``, privileged) or its
    earliest core's wait times its cores (``wait``, what the observation shows)."""


@dataclass(frozen=True)
class RegionView:
    """One region a pending request may go to, from the simulator's state."""

    q: int
    lo: int
    """The region's first node (its nodes are ``lo .. hi - 1``)."""
    hi: int
    allowed: np.ndarray
    """``bool[hi - lo]``: capable nodes the env's admission rule lets it use."""
    cores: np.ndarray
    """Free-at time of each of the region's cores (s)."""
    free_min: np.ndarray
    """``[hi - lo]``: when each node's earliest core is free (s)."""
    service: np.ndarray
    """``[hi - lo]``: mean execution on each node (s; 0 where not capable)."""
    upload_s: float
    transfer_s: float
    """Upload plus download at the pair's bandwidth (s)."""
    intensity: float
    """The region's carbon intensity now (gCO2/kWh)."""


class ReferenceDispatcher:
    """Decides every pending decision of a :class:`TwoTierCore` from its full state.

    Args:
        core: the core it acts on (read only; :meth:`act` returns the actions).
        rule: one of :data:`RULES`.
        options: the rules' knobs.
    """

    def __init__(
        self, core: TwoTierCore, rule: str, options: ReferenceOptions | None = None
    ) -> None:
        if rule not in RULES:
            raise ValueError(f"rule: expected one of {RULES}, got {rule!r}")
        self.core, self.rule = core, rule
        self.options = options = options or ReferenceOptions()
        world = core.world
        self.tn = world.type_node
        self.slo = world.type_f[:, TYPE_SLO_S]
        self.exec_s = np.where(
            self.tn[:, :, TYPE_NODE_CAPABLE] > 0,
            self.tn[:, :, TYPE_NODE_EXEC_S],
            np.inf,
        )
        cores = world.node_f[:, NODE_CORES]
        self.cores = cores
        self.first = world.node_f[:, NODE_CORE_OFFSET].astype(np.int64)
        self.node_region = world.node_region
        # What later arrivals at a node look like: the mean service of its region's
        # mix on it and the mix's mean 1 / SLO.
        self.mean_service = mean_service(world)
        self.inv_slo_mix = inv_slo_mix(world)  # [R]
        # SITA: heavy types avoid the few-core nodes of their fastest CPU class,
        # which the short types need (they may use many-core or slower nodes).
        fastest = self.exec_s.min(axis=1, keepdims=True)  # [K, 1]
        heavy = fastest[:, 0] >= options.heavy_s
        self.avoid = (
            heavy[:, None]
            & (self.exec_s <= fastest * (1 + 1e-9))
            & (cores < options.heavy_cores)[None, :]
        )  # [K, N]

    # ------------------------------------------------------------------ scoring
    def regions(self, b: int) -> Iterator[RegionView]:
        """Each region env ``b``'s pending request may go to, as the rules see it."""
        core = self.core
        world = core.world
        k = int(core.ist[b, K.IS_TYPE])
        o = int(core.ist[b, K.IS_ORIGIN])
        t = float(core.fs[b, K.FS_T])
        reg_static = core._world[3]
        sat = core._world[9][K.P_SAT_WAIT]
        tf = world.type_f
        for q in range(world.n_regions):
            if reg_static[k, o, q, K.RS_VALID] <= 0:
                continue
            lo, hi = world.region_i[q, REG_START], world.region_i[q, REG_END]
            bw = world.pair_f[o, q, PAIR_BW_BPS]
            first = self.first[lo:hi]
            cores = core.core_free[b, first[0] : first[-1] + int(self.cores[hi - 1])]
            free_min = np.minimum.reduceat(cores, first - first[0])
            service = self.exec_s[k, lo:hi]
            capable = np.isfinite(service)
            room = capable & (free_min - t <= sat)
            yield RegionView(
                q=q,
                lo=int(lo),
                hi=int(hi),
                allowed=room if (sat > 0 and room.any()) else capable,
                cores=cores,
                free_min=free_min,
                service=np.where(capable, service, 0.0),
                upload_s=float(tf[k, TYPE_IN_GB] * 1e9 / bw),
                transfer_s=float(tf[k, TYPE_BYTES] / bw),
                intensity=float(core.reg_dyn[b, K.RD_CARBON, q]),
            )

    def scores(self, b: int) -> np.ndarray:
        """``float64[N]``: the rule's score of every node for env ``b``'s request.

        ``inf`` where the node cannot serve it (not capable, region invalid or
        the node saturated under the env's admission rule).
        """
        core = self.core
        world = core.world
        k = int(core.ist[b, K.IS_TYPE])
        o = int(core.ist[b, K.IS_ORIGIN])
        t = float(core.fs[b, K.FS_T])
        slo = self.slo[k]
        tf = world.type_f
        out = np.full(world.n_nodes, np.inf)
        for view in self.regions(b):
            q, lo, hi, serv = view.q, view.lo, view.hi, view.service
            egress = (
                tf[k, TYPE_IN_GB] * world.pair_f[o, q, PAIR_EGRESS_USD_GB]
                + tf[k, TYPE_OUT_GB] * world.pair_f[q, o, PAIR_EGRESS_USD_GB]
            )
            rtt = (
                world.pair_f[o, q, PAIR_RTT_S] + world.node_f[lo:hi, NODE_ACCESS_RTT_S]
            )
            arrival = t + 0.5 * rtt + view.upload_s
            wait = np.maximum(view.free_min - arrival, 0.0)
            cost = serv * world.node_f[lo:hi, NODE_PRICE_CORE_S] + egress
            carbon = (
                serv
                * world.node_f[lo:hi, NODE_WATTS_BUSY_CORE]
                / 3.6e6
                * view.intensity
            )
            score = penalty_array(
                core.scoring,
                (rtt + view.transfer_s + wait) / slo,
                wait / slo,
                serv / slo,
                cost / tf[k, TYPE_COST_REF],
                carbon / tf[k, TYPE_CARBON_REF],
            )
            if self.rule == "fpi":
                score = score + self._externality(b, q, view.cores, arrival, wait, serv)
            elif self.rule == "sita":
                score = score + self.options.sita_penalty * self.avoid[k, lo:hi]
            out[lo:hi] = np.where(view.allowed, score, np.inf)
        return out

    def _externality(
        self,
        b: int,
        q: int,
        cores: np.ndarray,
        arrival: np.ndarray,
        wait: np.ndarray,
        service: np.ndarray,
    ) -> np.ndarray:
        """Reward-unit cost to later jobs of each node of ``q`` serving the request."""
        core = self.core
        opts = self.options
        lo, hi = core.world.region_i[q, REG_START], core.world.region_i[q, REG_END]
        c = self.cores[lo:hi]
        if opts.backlog_source == "wait":
            backlog = wait
        else:
            per_core = np.repeat(arrival, c.astype(np.int64))
            first = self.first[lo:hi] - self.first[lo]
            excess = np.maximum(cores - per_core, 0.0)
            backlog = np.add.reduceat(excess, first) / c
        x = service / c
        if opts.load_source == "util":
            load = float(core.reg_dyn[b, K.RD_BUSY, q] / c.sum())
        else:
            load = float(core.reg_dyn[b, K.RD_RATE, q] / core.world.capacity_rps[q])
        rho = min(load, opts.rho_max)
        rate = rho * c / self.mean_service[lo:hi]  # each node's share of the jobs
        w = core.scoring
        weight = float(w[0] + w[1]) * float(self.inv_slo_mix[q])  # per s of waiting
        ext: np.ndarray = (
            opts.fpi_scale * weight * rate * x * (2 * backlog + x) / (2 * (1 - rho))
        )
        return ext

    # ------------------------------------------------------------------ acting
    def act(self) -> np.ndarray:
        """One action per environment of the core: a region (LB) or a node."""
        core = self.core
        world = core.world
        actions = np.zeros(core.num_envs, dtype=np.int64)
        for b in range(core.num_envs):
            mask = core.mask[b]
            scores = self.scores(b)
            if core.ist[b, K.IS_PHASE] == PHASE_LB:
                by_region = np.full(world.n_regions, np.inf)
                for q in range(world.n_regions):
                    lo, hi = world.region_i[q, REG_START], world.region_i[q, REG_END]
                    by_region[q] = scores[lo:hi].min()
                by_region[~mask[: world.n_regions]] = np.inf
                actions[b] = int(np.argmin(by_region))
            else:
                q = int(core.ist[b, K.IS_SELECTED])
                lo, hi = world.region_i[q, REG_START], world.region_i[q, REG_END]
                local = scores[lo:hi].copy()
                local[~mask[: hi - lo]] = np.inf
                actions[b] = int(np.argmin(local))
                if not np.isfinite(local[actions[b]]):  # nothing scored: any valid
                    actions[b] = int(np.flatnonzero(mask)[0])
        return actions
