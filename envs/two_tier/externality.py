"""What a request's externality on later requests depends on that the observation lacks.

The first-policy-iteration (FPI) rule of :mod:`envs.two_tier.reference` adds to a
node's expected penalty the waiting its job imposes on later arrivals:
``lambda x (2 u + x) / (2 (1 - rho))`` seconds (M/G/1-FCFS relative values, Hyytiä,
Penttinen, Aalto, EJOR 2012), weighted by the later jobs' mean ``1 / SLO``. The
dynamic inputs (a region's load ``rho``, a node's backlog ``u``, the job's service)
are in the observation; the static ones are properties of the infrastructure and
its traffic mix that an operator knows: each node's cores and the mean service time
of the jobs it sees, each region's mean ``1 / SLO``. :func:`externality_tables`
computes them once per scenario, in the observation's node order, so an
observation-only FPI rule (:mod:`policies.networks.two_tier`) can score every row.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from envs.scenario import (
    NODE_CORES,
    REG_END,
    REG_START,
    TYPE_NODE_CAPABLE,
    TYPE_NODE_EXEC_S,
    TYPE_SLO_S,
    World,
)


@dataclass(frozen=True)
class ExternalityTables:
    """Static inputs of the FPI externality, padded to the observation's node slots.

    ``inv_mean_service[q, i]`` and ``inv_cores[q, i]`` describe node slot ``i`` of
    region ``q`` (0 on padding); ``lb_*[k, q]`` the node a type-``k`` request would
    use in region ``q`` when the region block is all the LB phase sees (its fastest
    capable node, the most cores among equals).
    """

    inv_mean_service: np.ndarray
    """``[R, N_max]``: 1 / the mean service (s) of the region's own mix on the node."""
    inv_cores: np.ndarray
    """``[R, N_max]``: 1 / the node's cores."""
    inv_slo_mix: np.ndarray
    """``[R]``: the mean 1 / SLO (1/s) of the region's request mix."""
    slo: np.ndarray
    """``[K]``: each request type's SLO (s)."""
    lb_inv_mean_service: np.ndarray
    """``[K, R]``: ``inv_mean_service`` of the node the LB phase assumes."""
    lb_inv_cores: np.ndarray
    """``[K, R]``: ``inv_cores`` of that node."""
    lb_exec_s: np.ndarray
    """``[K, R]``: the type's mean execution (s) on that node (0: no capable node)."""

    def as_lists(self) -> dict[str, list[float] | list[list[float]]]:
        """Plain lists (a checkpoint's constructor parameters are JSON-like)."""
        return {name: getattr(self, name).tolist() for name in TABLE_NAMES}


TABLE_NAMES = (
    "inv_mean_service",
    "inv_cores",
    "inv_slo_mix",
    "slo",
    "lb_inv_mean_service",
    "lb_inv_cores",
    "lb_exec_s",
)


def mean_service(world: World) -> np.ndarray:
    """``[N]``: the mean service (s) of each node's region mix, capable types only.

    ``inf`` for a node that serves none of them (it sees no jobs: no externality).
    """
    probs = np.diff(world.mix_cum, prepend=0.0, axis=1)  # [R, K] type shares
    capable = world.type_node[:, :, TYPE_NODE_CAPABLE] > 0  # [K, N]
    exec_s = np.where(capable, world.type_node[:, :, TYPE_NODE_EXEC_S], 0.0)
    out = np.empty(world.n_nodes)
    for n in range(world.n_nodes):
        share = probs[world.node_region[n]] * capable[:, n]
        total = share.sum()  # 0: the node serves none of its region's types
        out[n] = float((share * exec_s[:, n]).sum() / total) if total > 0 else np.inf
    return out


def inv_slo_mix(world: World) -> np.ndarray:
    """``[R]``: the mean 1 / SLO of each region's request mix."""
    probs = np.diff(world.mix_cum, prepend=0.0, axis=1)
    result: np.ndarray = (probs / world.type_f[None, :, TYPE_SLO_S]).sum(axis=1)
    return result


def externality_tables(world: World, max_nodes: int) -> ExternalityTables:
    """The tables of ``world`` with node slots padded to ``max_nodes``."""
    n_regions, n_types = world.n_regions, world.n_types
    service = mean_service(world)
    cores = world.node_f[:, NODE_CORES]
    capable = world.type_node[:, :, TYPE_NODE_CAPABLE] > 0
    exec_s = np.where(capable, world.type_node[:, :, TYPE_NODE_EXEC_S], np.inf)
    inv_service = np.zeros((n_regions, max_nodes))
    inv_cores = np.zeros((n_regions, max_nodes))
    lb_service = np.zeros((n_types, n_regions))
    lb_cores = np.zeros((n_types, n_regions))
    lb_exec = np.zeros((n_types, n_regions))
    for q in range(n_regions):
        lo, hi = int(world.region_i[q, REG_START]), int(world.region_i[q, REG_END])
        inv_service[q, : hi - lo] = 1.0 / service[lo:hi]
        inv_cores[q, : hi - lo] = 1.0 / cores[lo:hi]
        for k in range(n_types):
            if not np.isfinite(exec_s[k, lo:hi]).any():
                continue
            order = np.lexsort((-cores[lo:hi], exec_s[k, lo:hi]))  # fastest, then big
            n = lo + int(order[0])
            lb_service[k, q] = 1.0 / service[n]
            lb_cores[k, q] = 1.0 / cores[n]
            lb_exec[k, q] = exec_s[k, n]
    return ExternalityTables(
        inv_mean_service=inv_service,
        inv_cores=inv_cores,
        inv_slo_mix=inv_slo_mix(world),
        slo=world.type_f[:, TYPE_SLO_S].copy(),
        lb_inv_mean_service=lb_service,
        lb_inv_cores=lb_cores,
        lb_exec_s=lb_exec,
    )
