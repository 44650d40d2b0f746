"""How little carbon *any* two-tier policy can emit under latency limits: a bound.

Goal 2 of issue 15 asks for a policy that cuts carbon by a share at a given p95 and
SLO rate. When no policy gets there, the question is whether one could. This module
answers with a linear program that every policy meeting the limits satisfies.

The relaxation: a request of type ``k`` from origin ``o`` served on node ``n`` has a
latency of at least its *floor*, ``access RTT + inter-region RTT + transfer +
service`` (the simulator's latency with no queueing; :func:`envs.two_tier.kernels`
``_serve``). A policy is a choice, per request, of a node; averaged over the requests
it meets, it is a fraction ``x[c, k, n]`` of the type-``k`` requests of each cell
``c`` (an origin region at an hour) sent to each node. Since the service factor is
drawn after the decision and the RTT after the region is chosen, the share of
requests whose latency is at most ``T`` is at most ``sum_n x F(o, k, n, T)``, with
``F`` the floor's distribution function, and the expected carbon is exactly
``sum_n x energy(k, n) intensity(region(n), hour)``. A policy whose per-type p95 is at
most ``T_k`` and whose SLO-miss share is at most ``m`` is therefore a feasible point
of

    minimise   expected carbon
    subject to sum_n x[c, k, n] = 1                          (every request placed)
               sum_c,n count[c, k] x F(o_c, k, n, T_k) >= 0.95 count[k]  (p95 of k)
               sum_c,k,n count[c, k] x F(o_c, k, n, SLO_k) >= (1 - m) count  (SLO)

(and, for a limit ``T`` on the p95 of all requests together, the same row summed
over types), so the program's optimum is a lower bound on its carbon. (With
``LatencyLimits.within_share`` above 0.95 the p95 rows ask for that share instead:
the bound for a policy that keeps a margin below its tail allowance.) The dual
values of those rows are the limits' prices (:class:`LimitPrices`). Queues,
capacity and the information a policy lacks only raise what a real policy emits:
the bound is loose in their direction, never the other. ``F`` is estimated from
common Monte Carlo draws (``samples`` of them, seeded), the one approximation: its
error is about ``1 / sqrt(samples)`` on each probability. The carbon is expected
carbon: a measured run, whose service times are draws, scatters around it (with
exponential service and ~1,000 analytics requests, by about 3 %).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.optimize import linprog

from envs.errors import ConfigError
from envs.scenario import (
    HOUR_CARBON,
    NODE_ACCESS_RTT_S,
    PAIR_BW_BPS,
    PAIR_RTT_S,
    PAIR_RTT_SIGMA,
    REG_CONTINENT,
    TYPE_BYTES,
    TYPE_NODE_CAPABLE,
    TYPE_NODE_ENERGY_J,
    TYPE_NODE_EXEC_S,
    TYPE_SAME_CONTINENT,
    TYPE_SLO_S,
    World,
)

P95 = 0.95
J_PER_KWH = 3.6e6


@dataclass(frozen=True)
class Cell:
    """Requests of one controlled origin region in one hour, counted by type."""

    origin: int
    hour: int
    """Hour of the year (``World.hourly``'s index)."""
    counts: np.ndarray
    """``[K]`` requests of each type."""


@dataclass(frozen=True)
class LatencyLimits:
    """What the policy must keep: per-type p95 and the share of SLO misses."""

    p95_s: np.ndarray
    """``[K]`` seconds; ``inf`` = no limit on that type."""
    slo_miss_share: float
    """At most this share of all requests may finish after their SLO (1 = none)."""
    pooled_p95_s: float = np.inf
    """p95 of every request together, seconds (``inf`` = no limit)."""
    within_share: float = P95
    """Share of requests that must be within each p95 limit: 0.95 is the p95 itself;
    more asks what is left when a policy keeps a margin below its tail allowance
    (a measured quantile is a draw: a policy spending the whole 5 % keeps its p95
    on about half the runs)."""


@dataclass(frozen=True)
class LimitPrices:
    """The program's dual values: what each limit costs the optimum.

    In grams of CO2 per request per unit of chance within the limit: what serving
    one more request within it would add to the least carbon.
    """

    p95: np.ndarray
    """``[K]`` per unit chance of a type-``k`` request within its p95 limit."""
    slo: float
    """Per unit chance of any request within its SLO."""
    pooled: float = 0.0
    """Per unit chance of any request within the pooled p95 limit."""


@dataclass(frozen=True)
class CarbonBound:
    """The optimum of the program and the plan that reaches it."""

    carbon_g_per_1k: float
    """Least expected gCO2 per 1,000 requests of any policy within the limits."""
    remote_share: np.ndarray
    """``[K]`` share of each type's requests the plan serves outside their origin."""
    region_share: np.ndarray
    """``[K, R]`` share of each type's requests the plan serves in each region."""
    prices: LimitPrices
    """The limits' prices at the optimum (0 for a limit that does not bind)."""


def allowed_nodes(world: World, origin: int) -> np.ndarray:
    """``bool[K, N]``: where a request of each type from ``origin`` may be served.

    Capable nodes, on the origin's continent for a ``same_continent`` type (the load
    balancer's mask).
    """
    capable = world.type_node[:, :, TYPE_NODE_CAPABLE] > 0
    continent = world.region_i[:, REG_CONTINENT]
    near = continent[world.node_region] == continent[origin]
    same = world.type_f[:, TYPE_SAME_CONTINENT] > 0
    allowed: np.ndarray = capable & (near[None, :] | ~same[:, None])
    return allowed


def floor_cdf(
    world: World,
    origin: int,
    thresholds_s: np.ndarray,
    samples: int = 200_000,
    seed: int = 0,
) -> np.ndarray:
    """``[K, N]``: chance that a type-``k`` latency floor is within ``thresholds_s[k]``.

    For a request from ``origin`` served on node ``n`` (0 where not allowed).

    The floor follows the simulator's draws: a lognormal inter-region RTT around the
    pair's median (none at home), the node's access RTT, the transfer at the pair's
    bandwidth and the expected service times a unit-mean Gamma factor.
    """
    rng = np.random.default_rng(seed)
    shape = world.service_shape
    factor = rng.gamma(shape, 1.0 / shape, samples) if shape > 0 else np.ones(samples)
    normal = rng.standard_normal(samples)
    allowed = allowed_nodes(world, origin)
    out = np.zeros((world.n_types, world.n_nodes))
    for n in range(world.n_nodes):
        q = int(world.node_region[n])
        pair = world.pair_f[origin, q]
        rtt = world.node_f[n, NODE_ACCESS_RTT_S] + (
            pair[PAIR_RTT_S] * np.exp(pair[PAIR_RTT_SIGMA] * normal)
            if q != origin
            else 0.0
        )
        for k in range(world.n_types):
            if not allowed[k, n]:
                continue
            fixed = rtt + world.type_f[k, TYPE_BYTES] / pair[PAIR_BW_BPS]
            service = world.type_node[k, n, TYPE_NODE_EXEC_S] * factor
            out[k, n] = float(np.mean(fixed + service <= thresholds_s[k]))
    return out


def _checked(world: World, cells: list[Cell], limits: LatencyLimits) -> np.ndarray:
    """The per-type p95 limits as an array, once every input has its shape."""
    k_types = world.n_types
    p95 = np.asarray(limits.p95_s, dtype=float)
    if p95.shape != (k_types,) or np.any(p95 <= 0):
        raise ConfigError("limits.p95_s", f"{k_types} positive seconds, got {p95}")
    if not limits.pooled_p95_s > 0:
        raise ConfigError(
            "limits.pooled_p95_s", f"positive seconds, got {limits.pooled_p95_s}"
        )
    if not 0.0 < limits.within_share <= 1.0:
        raise ConfigError(
            "limits.within_share", f"a share in (0, 1], got {limits.within_share}"
        )
    if not 0.0 <= limits.slo_miss_share <= 1.0:
        raise ConfigError(
            "limits.slo_miss_share", f"a share in [0, 1], got {limits.slo_miss_share}"
        )
    if not cells:
        raise ConfigError("cells", "at least one cell")
    for i, cell in enumerate(cells):
        if not 0 <= cell.origin < world.n_regions:
            raise ConfigError(
                f"cells[{i}].origin", f"a region index below {world.n_regions}"
            )
        if not 0 <= cell.hour < world.hourly.shape[1]:
            raise ConfigError(
                f"cells[{i}].hour", f"an hour of the year below {world.hourly.shape[1]}"
            )
        if np.shape(cell.counts) != (k_types,) or np.any(np.asarray(cell.counts) < 0):
            raise ConfigError(
                f"cells[{i}].counts", f"{k_types} non-negative request counts"
            )
    return p95


def _shares(
    world: World, cells: list[Cell], x: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Per type, the plan's share of requests served remotely and in each region."""
    k_types = world.n_types
    by_region = np.zeros((k_types, world.n_regions))
    remote = np.zeros(k_types)
    for c, cell in enumerate(cells):
        for q in range(world.n_regions):
            share = x[c][:, world.node_region == q].sum(axis=1) * cell.counts
            by_region[:, q] += share
            if q != cell.origin:
                remote += share
    counts = np.sum([cell.counts for cell in cells], axis=0).astype(float)
    denominator = np.where(counts > 0, counts, 1.0)
    return remote / denominator, by_region / denominator[:, None]


@dataclass(frozen=True)
class Program:
    """The linear program in ``scipy.optimize.linprog``'s form.

    Over ``x[c, k, n]`` flattened in that order: minimise ``cost @ x`` with
    ``a_ub @ x <= b_ub``, ``a_eq @ x = b_eq`` and ``0 <= x <= upper``.
    """

    cost: np.ndarray
    """gCO2 per 1,000 requests of each unit of ``x``."""
    a_ub: np.ndarray
    b_ub: np.ndarray
    a_eq: np.ndarray
    b_eq: np.ndarray
    upper: np.ndarray
    """0 where the node may not serve the type, else ``inf``."""
    p95_types: np.ndarray
    """The types with a p95 row, in the order of ``a_ub``'s first rows (then the
    SLO row, then the pooled one if limited)."""
    requests: float


def build_program(
    world: World,
    cells: list[Cell],
    limits: LatencyLimits,
    samples: int = 200_000,
    seed: int = 0,
) -> Program:
    """The module's program for ``cells`` under ``limits`` (inputs checked)."""
    p95 = _checked(world, cells, limits)
    k_types, n_nodes = world.n_types, world.n_nodes
    slo = world.type_f[:, TYPE_SLO_S]
    size = len(cells) * k_types * n_nodes
    cost = np.zeros(size)
    a_eq = np.zeros((len(cells) * k_types, size))
    p95_rows = np.zeros((k_types, size))
    slo_row = np.zeros(size)
    pooled_row = np.zeros(size)
    pooled_limit = np.full(k_types, float(limits.pooled_p95_s))
    upper = np.zeros(size)
    cdfs: dict[int, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}
    for c, cell in enumerate(cells):
        if cell.origin not in cdfs:
            cdfs[cell.origin] = (
                floor_cdf(world, cell.origin, p95, samples, seed),
                floor_cdf(world, cell.origin, slo, samples, seed),
                floor_cdf(world, cell.origin, pooled_limit, samples, seed)
                if np.isfinite(limits.pooled_p95_s)
                else np.zeros((k_types, n_nodes)),  # no pooled row: not needed
            )
        within_p95, within_slo, within_pooled = cdfs[cell.origin]
        intensity = world.hourly[world.node_region, cell.hour, HOUR_CARBON]  # [N]
        allowed = allowed_nodes(world, cell.origin)
        for k in range(k_types):
            span = slice((c * k_types + k) * n_nodes, (c * k_types + k + 1) * n_nodes)
            count = float(cell.counts[k])
            energy = world.type_node[k, :, TYPE_NODE_ENERGY_J]
            cost[span] = count * energy * intensity / J_PER_KWH
            a_eq[c * k_types + k, span] = 1.0
            upper[span] = np.where(allowed[k], np.inf, 0.0)
            p95_rows[k, span] = -count * within_p95[k]
            slo_row[span] = -count * within_slo[k]
            pooled_row[span] = -count * within_pooled[k]
    counts = np.sum([cell.counts for cell in cells], axis=0).astype(float)
    total = float(counts.sum())
    if total <= 0:
        raise ConfigError("cells", "at least one request")
    limited = np.flatnonzero(np.isfinite(p95) & (counts > 0))
    share = float(limits.within_share)
    rows, bounds = [p95_rows[limited]], [-share * counts[limited]]
    rows.append(slo_row[None, :])
    bounds.append(np.array([-(1.0 - limits.slo_miss_share) * total]))
    if np.isfinite(limits.pooled_p95_s):
        rows.append(pooled_row[None, :])
        bounds.append(np.array([-share * total]))
    return Program(
        cost=cost / total * 1e3,
        a_ub=np.vstack(rows),
        b_ub=np.concatenate(bounds),
        a_eq=a_eq,
        b_eq=np.ones(a_eq.shape[0]),
        upper=upper,
        p95_types=limited,
        requests=total,
    )


def carbon_lower_bound(
    world: World,
    cells: list[Cell],
    limits: LatencyLimits,
    samples: int = 200_000,
    seed: int = 0,
) -> CarbonBound:
    """Solve the module's program for ``cells`` under ``limits``.

    Raises:
        ConfigError: the limits admit no placement even with no queueing (naming the
            limit), or a cell or limit has the wrong shape.
    """
    program = build_program(world, cells, limits, samples, seed)
    solution = linprog(
        program.cost,
        A_ub=program.a_ub,
        b_ub=program.b_ub,
        A_eq=program.a_eq,
        b_eq=program.b_eq,
        bounds=np.column_stack([np.zeros(program.cost.size), program.upper]),
        method="highs",
    )
    if solution.status == 2:
        raise ConfigError(
            "limits",
            "p95 and SLO limits that some placement meets with no queueing; "
            f"p95_s={np.asarray(limits.p95_s).tolist()}, "
            f"pooled_p95_s={limits.pooled_p95_s}, "
            f"slo_miss_share={limits.slo_miss_share}, "
            f"within_share={limits.within_share} admit none",
        )
    if solution.status != 0:
        raise RuntimeError(f"carbon bound: the solver failed ({solution.message})")
    x = solution.x.reshape(len(cells), world.n_types, world.n_nodes)
    remote, by_region = _shares(world, cells, x)
    # The objective is g per 1,000 requests; a dual is per unit of a row's
    # right-hand side (requests within): x requests / 1e3 gives g per request.
    duals = -np.asarray(solution.ineqlin.marginals) * program.requests / 1e3
    limited = program.p95_types.size
    p95 = np.zeros(world.n_types)
    p95[program.p95_types] = duals[:limited]
    pooled = float(duals[limited + 1]) if duals.size > limited + 1 else 0.0
    prices = LimitPrices(np.maximum(p95, 0.0), max(float(duals[limited]), 0.0),
                         max(pooled, 0.0))  # fmt: skip
    return CarbonBound(float(solution.fun), remote, by_region, prices)
