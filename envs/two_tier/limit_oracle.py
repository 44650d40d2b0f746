"""A clairvoyant rule that prices latency limits: how far a myopic rule can go.

Goal 2 of issue 15 asks for less carbon within per-type p95 limits. The bound of
:mod:`envs.two_tier.carbon_bound` ignores queues; the rules that see only the
observation keep the limits at a third of it. This reference asks what is left in
between for a rule that decides one request at a time and knows all a scheduler
could: every node's earliest free core (the simulator's state, not the
observation), the laws of the RTT and service draws, and the bound's own prices of
the limits (the program's dual values: grams of CO2 per unit of within-limit chance).
It does not read the request's own service draw, which the simulator holds from its
arrival but no scheduler sees (the bound assumes the same), so its chances average
over it.

For the pending request of type ``k`` it scores every admissible node ``n`` by

    expected carbon(n) - scale * (price_k P(latency <= T_k)
                                  + price_slo P(latency <= SLO_k)
                                  + price_pooled P(latency <= T_pooled))

and takes the lowest: the Lagrangian of the bound's program, request by request,
with the queues the request meets in place of none. The chances are exact given
the state and those laws: the simulator reserves a core at dispatch, so the wait is
``max(free - (t + rtt / 2 + upload), 0)`` for the RTT drawn; the RTT's lognormal is
integrated by Gauss-Hermite quadrature and the unit-mean Gamma service factor by
its distribution function. ``scale`` > 1 buys a margin against the queues the
bound does not see. A headroom probe like :mod:`envs.two_tier.reference`'s rules
(it reads the state no deployed policy has), not a policy.
"""

from __future__ import annotations

import numpy as np
from scipy.special import gammainc

from envs.errors import ConfigError
from envs.scenario import (
    NODE_ACCESS_RTT_S,
    PAIR_RTT_S,
    PAIR_RTT_SIGMA,
    TYPE_NODE_ENERGY_J,
    TYPE_NODE_EXEC_S,
    TYPE_SLO_S,
    World,
)
from envs.two_tier import kernels as K
from envs.two_tier.carbon_bound import J_PER_KWH, LatencyLimits, LimitPrices
from envs.two_tier.core import TwoTierCore
from envs.two_tier.reference import ReferenceDispatcher

QUADRATURE_POINTS = 48
"""Gauss-Hermite points over the RTT's normal exponent (error far below 1e-3)."""
_NORMAL_POINTS, _NORMAL_WEIGHTS = np.polynomial.hermite_e.hermegauss(QUADRATURE_POINTS)
_NORMAL_WEIGHTS = _NORMAL_WEIGHTS / _NORMAL_WEIGHTS.sum()  # E[f(Z)], Z ~ N(0, 1)


def within_chance(
    world: World,
    origin: int,
    k: int,
    nodes: np.ndarray,
    free_in_s: np.ndarray,
    upload_s: float,
    transfer_s: float,
    threshold_s: float,
) -> np.ndarray:
    """``P(latency <= threshold_s)`` of a request on each of ``nodes``.

    Args:
        world: the scenario.
        origin: the request's origin region.
        k: its type.
        nodes: node indices, all in one region.
        free_in_s: per node, when its earliest core is free, seconds after the
            decision (negative or ``-inf``: free already).
        upload_s: the upload at the pair's bandwidth (s).
        transfer_s: upload plus download (s).
        threshold_s: the latency limit (s).
    """
    q = int(world.node_region[nodes[0]])
    access = world.node_f[nodes, NODE_ACCESS_RTT_S][:, None]
    if q == origin:
        rtt, weights = access, np.ones(1)
    else:
        weights = _NORMAL_WEIGHTS
        pair = world.pair_f[origin, q]
        spread = np.exp(pair[PAIR_RTT_SIGMA] * _NORMAL_POINTS)
        rtt = access + pair[PAIR_RTT_S] * spread[None, :]
    wait = np.maximum(free_in_s[:, None] - 0.5 * rtt - upload_s, 0.0)
    room = threshold_s - rtt - transfer_s - wait  # [n, points]: time left to serve
    mean = world.type_node[k, nodes, TYPE_NODE_EXEC_S][:, None]
    mean = np.where(mean > 0, mean, np.inf)  # a node that cannot serve it: never
    shape = world.service_shape
    if shape > 0:
        served = gammainc(shape, np.maximum(room, 0.0) * shape / mean)
        served = np.where(room > 0, served, 0.0)
    else:  # deterministic service
        served = (room >= mean).astype(float)
    chance: np.ndarray = served @ weights
    return chance


class LimitOracle(ReferenceDispatcher):
    """Decides every pending decision of a core by the priced Lagrangian above.

    Args:
        core: the core it acts on (read only; :meth:`act` returns the actions).
        limits: the latency limits priced (``inf`` entries are not).
        prices: the bound's prices of those limits.
        scale: factor on every price (>= 0).
    """

    def __init__(
        self,
        core: TwoTierCore,
        limits: LatencyLimits,
        prices: LimitPrices,
        scale: float = 1.0,
    ) -> None:
        super().__init__(core, "joint")
        world = core.world
        p95 = np.asarray(limits.p95_s, dtype=float)
        price = np.asarray(prices.p95, dtype=float)
        if p95.shape != (world.n_types,) or not np.all(p95 > 0):
            raise ConfigError(
                "limits.p95_s",
                f"{world.n_types} positive seconds (inf: none), got {p95}",
            )
        if price.shape != (world.n_types,):
            raise ConfigError("prices.p95", f"{world.n_types} prices, got {price}")
        if not (np.isfinite(scale) and scale >= 0):
            raise ConfigError("scale", f"a finite factor >= 0, got {scale}")
        every = [*price.tolist(), prices.slo, prices.pooled]
        if not all(np.isfinite(v) and v >= 0 for v in every):
            raise ConfigError("prices", f"finite prices >= 0, got {every}")
        self.limits_s = p95
        self.pooled_s = float(limits.pooled_p95_s)
        self.prices = prices
        self.scale = float(scale)

    def scores(self, b: int) -> np.ndarray:
        """``float64[N]``: carbon minus the priced chances; ``inf`` where barred."""
        core = self.core
        world = core.world
        k = int(core.ist[b, K.IS_TYPE])
        o = int(core.ist[b, K.IS_ORIGIN])
        t = float(core.fs[b, K.FS_T])
        terms = [
            (self.limits_s[k], float(self.prices.p95[k])),
            (float(world.type_f[k, TYPE_SLO_S]), self.prices.slo),
            (self.pooled_s, self.prices.pooled),
        ]
        out = np.full(world.n_nodes, np.inf)
        for view in self.regions(b):
            nodes = np.arange(view.lo, view.hi)
            energy = world.type_node[k, nodes, TYPE_NODE_ENERGY_J]
            score = energy * view.intensity / J_PER_KWH
            for threshold, price in terms:
                if price > 0 and np.isfinite(threshold):
                    chance = within_chance(
                        world, o, k, nodes, view.free_min - t, view.upload_s,
                        view.transfer_s, threshold,
                    )  # fmt: skip
                    score = score - self.scale * price * chance
            out[view.lo : view.hi] = np.where(view.allowed, score, np.inf)
        return out
