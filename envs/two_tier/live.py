"""The observable state of a live system, for deciding outside the simulator.

A load balancer or scheduler that asks the served policy for a decision sends what it
can observe: the request (type, origin), the time, per node the wait until a core
is free and the busy cores, and (for policies that read them) every region's arrival
rate. :meth:`envs.two_tier.core.TwoTierCore.observe` turns it
into exactly the observation and mask the policy was trained on.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime


@dataclass(frozen=True)
class NodeLoad:
    """What a node's exporter reports."""

    queue_wait_s: float = 0.0
    """Seconds until one of its cores is free (0: a core is idle)."""
    busy_cores: int = 0
    """Cores running a request now."""


@dataclass(frozen=True)
class ObservableState:
    """One pending decision and the load it is taken under.

    ``phase`` is ``lb`` (choose a region) or ``scheduler`` (choose a node of
    ``selected_region``). Nodes absent from ``nodes`` are taken as idle.
    """

    request_type: str
    origin: str
    phase: str = "lb"
    selected_region: str | None = None
    time: datetime = field(default_factory=lambda: datetime.now(UTC))
    nodes: dict[str, NodeLoad] = field(default_factory=dict)
    region_rates: dict[str, float] | None = None
    """Requests per second arriving at each region now (e.g. a Prometheus
    ``rate(...[1m])`` summed by origin; regions left out have none); required by a
    policy that observes region loads (``two_tier.load_input``), ignored otherwise."""
