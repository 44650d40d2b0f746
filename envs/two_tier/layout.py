"""Layout of the two-tier observation: one flat float32 vector in three blocks.

``[ header | regions (R x REGION_FEATURES) | nodes (N_max x NODE_FEATURES) ]``

* header: phase one-hot (LB, scheduler), request-type one-hot (K), SLO / max SLO,
  log payload size / log max size, sin and cos of the origin's local hour, when
  ``region_id_input`` is on the origin region one-hot (R), and when ``load_input``
  is on every region's offered load now (R): its arrival rate this second (diurnal
  profile x burst) over the rate its cores serve at full utilisation.
* regions: per region, features of serving the pending request there.
* nodes: per node of the *view region* (the selected region in the scheduler phase,
  the origin in the LB phase), padded to the largest region.

Latency-like features are divided by the request's SLO and money / carbon by the
type's reference cost / carbon, so values near 1 mean "about the budget" everywhere
and the same network can read every region. Heuristics score these blocks directly,
so a baseline policy reading an observation decides exactly as the in-simulator one.
"""

from __future__ import annotations

from dataclasses import dataclass

# Region block columns.
RF_VALID, RF_IS_ORIGIN, RF_IS_SELECTED, RF_RTT, RF_TRANSFER = 0, 1, 2, 3, 4
RF_BEST_COMPLETION, RF_UTIL, RF_COST, RF_CARBON = 5, 6, 7, 8
REGION_FEATURES = 9
REGION_FEATURE_NAMES = (
    "valid", "is_origin", "is_selected", "rtt", "transfer",
    "best_completion", "utilization", "cost", "carbon",
)  # fmt: skip

# Node block columns.
NF_VALID, NF_WAIT, NF_EXEC, NF_UTIL, NF_COST, NF_CARBON, NF_IS_EDGE = (
    0,
    1,
    2,
    3,
    4,
    5,
    6,
)
NODE_FEATURES = 7
NODE_FEATURE_NAMES = (
    "valid",
    "wait",
    "exec",
    "utilization",
    "cost",
    "carbon",
    "is_edge",
)

PHASE_LB, PHASE_SCHEDULER = 0, 1


@dataclass(frozen=True)
class ObsLayout:
    """Offsets of the observation blocks for one scenario and env configuration."""

    n_regions: int
    n_types: int
    max_nodes: int
    region_id_input: bool
    load_input: bool = False

    @property
    def type_offset(self) -> int:
        """Start of the request-type one-hot."""
        return 2

    @property
    def scalar_offset(self) -> int:
        """Start of SLO, size, sin(hour), cos(hour)."""
        return 2 + self.n_types

    @property
    def origin_offset(self) -> int:
        """Start of the origin one-hot, or -1 when ``region_id_input`` is off."""
        return self.scalar_offset + 4 if self.region_id_input else -1

    @property
    def load_offset(self) -> int:
        """Start of the regions' offered loads, or -1 when ``load_input`` is off."""
        if not self.load_input:
            return -1
        return self.scalar_offset + 4 + (self.n_regions if self.region_id_input else 0)

    @property
    def region_offset(self) -> int:
        """Start of the region block."""
        extra = (self.n_regions if self.region_id_input else 0) + (
            self.n_regions if self.load_input else 0
        )
        return self.scalar_offset + 4 + extra

    @property
    def node_offset(self) -> int:
        """Start of the node block."""
        return self.region_offset + self.n_regions * REGION_FEATURES

    @property
    def size(self) -> int:
        """Observation length."""
        return self.node_offset + self.max_nodes * NODE_FEATURES
