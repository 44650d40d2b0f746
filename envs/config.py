"""Typed configuration of scenarios: the multi-cloud world every env runs on.

These dataclasses are the schema under the YAML in ``conf/`` (registered with Hydra's
ConfigStore by ``conf/schema.py``). OmegaConf rejects unknown keys and wrong types at
load time, naming the full key; :mod:`envs.scenario` then checks what types cannot
express (units, ranges, topology) and names the field in the same way.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum

from omegaconf import MISSING


class Layer(Enum):
    """Where a node sits in the continuum (requests originate in the client layer)."""

    edge = "edge"
    cloud = "cloud"


class Pricing(Enum):
    """Which published price applies to a pool's VMs."""

    ondemand = "ondemand"
    spot = "spot"


class InstanceSize(Enum):
    """Size class: the provider's 1st/2nd/3rd instance type in ``vm_prices.csv``.

    AWS m6i.{large,xlarge,2xlarge}, Azure D{2,4,8}s_v5, GCP n2-standard-{2,4,16}.
    """

    small = "small"
    medium = "medium"
    large = "large"


@dataclass
class PoolSpec:
    """A group of identical nodes in one region."""

    name: str = MISSING
    """Pool name; node names are ``<region>/<pool>-<i>``."""
    layer: Layer = Layer.cloud
    """``edge`` (near users, small, slower CPUs) or ``cloud`` (the datacenter)."""
    size: InstanceSize = InstanceSize.medium
    """Instance size class whose price and vCPUs are read from ``vm_prices.csv``."""
    count: int = 1
    """Number of nodes (>= 1)."""
    pricing: Pricing = Pricing.ondemand
    """On-demand or spot price of the instance."""
    price_multiplier: float = 1.0
    """Factor on the published price (e.g. an edge-site premium); > 0."""
    cpu_type: int = 0
    """CPU class id; request types give an execution time per class (REACH style)."""
    speed: float = 1.0
    """Relative speed: service time = execution time / speed; > 0."""
    vcpus: int | None = None
    """Override of the instance's vCPUs (cores), 1..16; None = the price table's."""
    memory_gib: float | None = None
    """Override of the instance's memory; None = the price table's."""
    watts_idle_per_vcpu: float | None = None
    """Idle power per vCPU (W); None = the provider's (``providers.csv``)."""
    watts_max_per_vcpu: float | None = None
    """Full-load power per vCPU (W); None = the provider's coefficient."""
    pue: float | None = None
    """Power usage effectiveness; None = the provider's (cloud), the layer's (edge)."""


@dataclass
class RegionSpec:
    """One region of the scenario: where it is, what it runs, how loaded it is."""

    id: str = MISSING
    """Region id of ``envs/data/regions.csv`` (e.g. ``eu-central``)."""
    provider: str | None = None
    """``aws``, ``azure`` or ``gcp``; None = the region's default provider."""
    pools: list[PoolSpec] = field(default_factory=list)
    """The region's node pools (YAML anchors let regions share a list)."""
    target_utilization: float = 0.6
    """Mean CPU utilisation the region's own traffic would cause if served locally."""
    trace: str = "conv"
    """Burstiness: ``conv`` or ``code`` (Azure LLM 2023 traces) or ``poisson``."""


@dataclass
class RequestTypeSpec:
    """A class of requests: its work, payload, memory, deadline and mix share."""

    name: str = MISSING
    """Type name."""
    share: float = 1.0
    """Relative frequency among arrivals (normalised over types); >= 0."""
    execution_time: dict[str, str] = field(default_factory=dict)
    """Mean execution time per CPU class, REACH style: ``{"0": "12ms", "2": "30ms"}``.
    A CPU class missing here cannot serve this type (masked)."""
    request_size: str = "32KB"
    """Payload sent to the serving node (B, KB, MB, GB; decimal)."""
    response_size: str = "32KB"
    """Payload returned to the origin."""
    memory_gib: float = 0.25
    """Memory a request needs on one core's share of a node."""
    slo: str = "200ms"
    """End-to-end latency objective."""
    same_continent: bool = False
    """Data residency: must be served on the origin's continent."""


@dataclass
class LayerSpec:
    """Properties shared by all nodes of a layer."""

    access_rtt: str = "2ms"
    """Round trip between the region's ingress and a node of this layer."""
    pue: float = 1.5
    """PUE used for pools of this layer that do not set one (edge sites)."""


@dataclass
class LayersSpec:
    """The two compute layers (requests come from the client layer)."""

    edge: LayerSpec = field(default_factory=lambda: LayerSpec("1ms", 1.5))
    cloud: LayerSpec = field(default_factory=lambda: LayerSpec("6ms", 1.2))


@dataclass
class NetworkSpec:
    """Inter-region network model."""

    rtt_tail: str = "lognormal"
    """``lognormal``: per-request RTT with the published P50 as median and P95 as 95th
    percentile; ``none``: always the P50."""
    intra_region_bandwidth_gbps: float = 10.0
    """Bandwidth inside a region (assumption; datacenter networks are >= 10 Gbit/s)."""
    intra_macro_bandwidth_gbps: float = 1.0
    """Bandwidth between regions of one macro-region (green-dcc's assumption)."""


@dataclass
class WorkloadSpec:
    """How request arrivals vary over time."""

    diurnal_profile: list[float] = field(
        default_factory=lambda: [
            0.62, 0.52, 0.46, 0.43, 0.43, 0.48, 0.60, 0.78, 0.96, 1.10, 1.20, 1.27,
            1.31, 1.34, 1.36, 1.36, 1.35, 1.33, 1.30, 1.25, 1.15, 1.02, 0.88, 0.74,
        ]
    )  # fmt: skip
    """24 relative rates by local hour (normalised to mean 1; interpolated linearly)."""
    burstiness: float = 1.0
    """0 = smooth Poisson, 1 = the trace's shape as measured."""
    burst_resolution: str = "minute"
    """Shape of the trace used: per ``minute`` (default; see
    :func:`envs.datasets.arrival_trace` for why) or per ``second``."""
    service_time_cv: float = 1.0
    """Coefficient of variation of service times (1 exponential, 0 deterministic)."""


@dataclass
class ScenarioConfig:
    """A multi-cloud continuum: regions, their nodes, the request mix, the network."""

    name: str = MISSING
    """Scenario name (``small``, ``default`` and ``large`` ship in
    ``envs/data/scenarios``; ``conf/scenario`` selects one)."""
    regions: list[RegionSpec] = field(default_factory=list)
    """The regions, in the order of the observation and action axes."""
    request_types: list[RequestTypeSpec] = field(default_factory=list)
    """The request classes."""
    layers: LayersSpec = field(default_factory=LayersSpec)
    network: NetworkSpec = field(default_factory=NetworkSpec)
    workload: WorkloadSpec = field(default_factory=WorkloadSpec)
    carbon_basis: str = "direct"
    """``direct`` (operational, Scope 2) or ``lca`` (life-cycle) carbon intensity."""
    start_hour: int = -1
    """Hour of 2023 (0..8759, UTC) at which episodes start; -1 = uniformly random."""
    heterogeneity: float = 1.0
    """How unlike the regions' loads are: each region's target utilization becomes
    mean + heterogeneity x (own - mean), the mean taken over the scenario's regions
    (1 = as configured, 0 = every region at the mean load, 2 = twice the spread)."""
