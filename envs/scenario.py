"""Scenario loading, validation and compilation into the arrays the simulator runs on.

``load_scenario`` reads ``envs/data/scenarios/<name>.yaml`` (or a path, a dict or a
:class:`~envs.config.ScenarioConfig`) against the typed schema; ``compile_scenario``
checks what the schema cannot (units, ranges, data coverage, topology) and joins the
config with the shipped data into a :class:`World`: flat numpy arrays, one row per node,
region, request type or region pair, ready to be passed to numba kernels.

Modelling choices (documented in ``docs/simulator.md``):

* **Network.** RTT between regions is lognormal per request with the published P50 as
  median and the P95 as 95th percentile (``rtt_tail: none`` keeps the P50). Inside a
  region the RTT is the layer's access RTT. Bandwidth: Persico et al. throughput between
  macro-regions, ``intra_macro_bandwidth_gbps`` within one, ``intra_region_...`` inside
  a region.
* **Prices.** Compute: the instance's published hourly price divided by its vCPUs, per
  busy core-second. Egress: same region free; same provider the inter-region price
  (the provider's internet price where the table has no row); across providers the
  sender's internet egress price.
* **Load.** Region ``r`` receives ``rate_r(t) = base_r * diurnal(local hour) *
  burst_r(second)``, a non-homogeneous Poisson process; ``base_r`` makes the mean CPU
  utilisation of the region's own nodes equal ``target_utilization`` for its mix.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from omegaconf import DictConfig, OmegaConf

from envs import datasets
from envs.config import (
    InstanceSize,
    Layer,
    PoolSpec,
    Pricing,
    RequestTypeSpec,
    ScenarioConfig,
)
from envs.errors import ConfigError
from envs.structured import to_dataclass
from envs.units import parse_duration, parse_size

SCENARIO_DIR = Path(__file__).resolve().parent / "data" / "scenarios"
MAX_CORES = 16
_Z95 = 1.6448536269514722
_SIZE_INDEX = {InstanceSize.small: 0, InstanceSize.medium: 1, InstanceSize.large: 2}

# Column indices of the packed arrays (kept here so kernels and tests agree).
NODE_CORES, NODE_PRICE_CORE_S, NODE_WATTS_BUSY_CORE, NODE_IS_EDGE = 0, 1, 2, 3
NODE_ACCESS_RTT_S, NODE_MEM_PER_CORE, NODE_SPEED, NODE_WATTS_IDLE = 4, 5, 6, 7
NODE_CORE_OFFSET = 8  # first index of the node's cores in a flat per-core array
NODE_F_COLS = 9
REG_START, REG_END, REG_CONTINENT, REG_BURST_LEN, REG_CONTROLLED = 0, 1, 2, 3, 4
REG_I_COLS = 5
PAIR_RTT_S, PAIR_RTT_SIGMA, PAIR_BW_BPS, PAIR_EGRESS_USD_GB = 0, 1, 2, 3
PAIR_COLS = 4
TYPE_SLO_S, TYPE_IN_GB, TYPE_OUT_GB, TYPE_SAME_CONTINENT = 0, 1, 2, 3
TYPE_BYTES, TYPE_COST_REF, TYPE_CARBON_REF = 4, 5, 6
TYPE_COLS = 7
TYPE_NODE_EXEC_S, TYPE_NODE_CAPABLE, TYPE_NODE_COST_USD, TYPE_NODE_ENERGY_J = 0, 1, 2, 3
TYPE_NODE_COLS = 4
HOUR_RATE, HOUR_CARBON, HOUR_LOCAL = 0, 1, 2
HOUR_COLS = 3


@dataclass(frozen=True)
class World:
    """A compiled scenario: static arrays shared by every environment of a batch."""

    name: str
    region_ids: tuple[str, ...]
    node_names: tuple[str, ...]
    type_names: tuple[str, ...]
    node_f: np.ndarray
    """``float64[N, NODE_F_COLS]``."""
    node_region: np.ndarray
    """``int64[N]``: region index of each node (nodes are contiguous per region)."""
    node_cores: np.ndarray
    """``int64[N]``."""
    region_i: np.ndarray
    """``int64[R, REG_I_COLS]``: node range, continent id, burst length, and a
    ``controlled`` column that each env core sets in its own copy."""
    pair_f: np.ndarray
    """``float64[R, R, PAIR_COLS]``: from origin (row) to serving region (column)."""
    type_f: np.ndarray
    """``float64[K, TYPE_COLS]``."""
    type_node: np.ndarray
    """``float64[K, N, TYPE_NODE_COLS]``: expected execution, capability, cost and
    energy (columns ``TYPE_NODE_*``)."""
    region_capable: np.ndarray
    """``bool[K, R]``: the region has a node able to serve the type."""
    mix_cum: np.ndarray
    """``float64[R, K]``: cumulative request-type probabilities per origin region."""
    hourly: np.ndarray
    """``float64[R, 8760, HOUR_COLS]``: arrival rate, carbon (g/kWh), local hour."""
    burst: np.ndarray
    """``float64[R, S]``: per-second burst factor (mean 1), padded past each length."""
    service_shape: float
    """Gamma shape of service-time factors (1/cv^2; 0 = deterministic)."""
    start_hour: int
    """Fixed start hour of 2023, or -1 for random."""
    capacity_rps: np.ndarray
    """``float64[R]``: requests/s each region can serve at full utilisation."""

    @property
    def n_regions(self) -> int:
        """R."""
        return len(self.region_ids)

    @property
    def n_nodes(self) -> int:
        """N (all regions)."""
        return len(self.node_names)

    @property
    def n_types(self) -> int:
        """K."""
        return len(self.type_names)

    @property
    def max_region_nodes(self) -> int:
        """Largest node count of a region: the padded width of node observations."""
        return int((self.region_i[:, REG_END] - self.region_i[:, REG_START]).max())

    def region_index(self, region_id: str) -> int:
        """Index of a region id, with a clear error for an unknown one."""
        if region_id not in self.region_ids:
            raise ConfigError(
                "region", f"one of {', '.join(self.region_ids)}, got {region_id!r}"
            )
        return self.region_ids.index(region_id)


# ------------------------------------------------------------------------ loading
def load_scenario(
    source: str | Path | dict[str, Any] | DictConfig | ScenarioConfig,
) -> ScenarioConfig:
    """Read a scenario against the typed schema.

    Args:
        source: a shipped scenario name (``small``, ``default``, ``large``), a YAML
            path, a mapping, a DictConfig (e.g. Hydra's ``cfg.scenario``) or a config.

    Raises:
        ConfigError: unknown key, wrong type or missing value, naming the full key.
    """
    if isinstance(source, ScenarioConfig):
        return source
    data: Any = source
    if isinstance(source, str | Path):
        path = Path(source)
        if path.suffix not in (".yaml", ".yml"):
            path = SCENARIO_DIR / f"{source}.yaml"
        if not path.exists():
            shipped = sorted(p.stem for p in SCENARIO_DIR.glob("*.yaml"))
            raise ConfigError(
                "scenario", f"one of {shipped} or a YAML file, got {str(source)!r}"
            )
        data = OmegaConf.to_container(OmegaConf.load(path))
    return to_dataclass(ScenarioConfig, data, "scenario")


# --------------------------------------------------------------------- validation
def _positive(value: float, field: str, strict: bool = True) -> float:
    bad = value <= 0 if strict else value < 0
    if bad or not math.isfinite(value):
        raise ConfigError(
            field, f"a {'positive' if strict else 'non-negative'} number, got {value!r}"
        )
    return value


@dataclass(frozen=True)
class _Node:
    region: int
    name: str
    cores: int
    price_core_s: float
    watts_busy_core: float
    watts_idle: float
    is_edge: bool
    access_rtt_s: float
    mem_per_core: float
    speed: float
    cpu_type: int


def _pool_nodes(
    cfg: ScenarioConfig, region_index: int, provider: str, pool: PoolSpec, field: str
) -> list[_Node]:
    region_id = cfg.regions[region_index].id
    prices = datasets.vm_prices().get((provider, region_id))
    if not prices:
        raise ConfigError(
            f"{field}",
            f"a provider with VM prices in {region_id}, {provider!r} has none",
        )
    if pool.count < 1:
        raise ConfigError(f"{field}.count", f"at least 1 node, got {pool.count}")
    instance = prices[min(_SIZE_INDEX[pool.size], len(prices) - 1)]
    cores = pool.vcpus if pool.vcpus is not None else instance.vcpus
    if not 1 <= cores <= MAX_CORES:
        raise ConfigError(f"{field}.vcpus", f"1..{MAX_CORES} cores, got {cores}")
    memory = pool.memory_gib if pool.memory_gib is not None else instance.memory_gib
    _positive(memory, f"{field}.memory_gib")
    _positive(pool.speed, f"{field}.speed")
    _positive(pool.price_multiplier, f"{field}.price_multiplier")
    if pool.cpu_type < 0:
        raise ConfigError(
            f"{field}.cpu_type", f"a CPU class id >= 0, got {pool.cpu_type}"
        )
    hourly = (
        instance.spot_usd_per_h
        if pool.pricing is Pricing.spot
        else instance.ondemand_usd_per_h
    )
    # Price per vCPU of the published instance, applied to this pool's cores.
    price_core_s = hourly / instance.vcpus * pool.price_multiplier / 3600.0
    power = datasets.provider_power()[provider]
    idle = (
        pool.watts_idle_per_vcpu
        if pool.watts_idle_per_vcpu is not None
        else power.watts_idle_per_vcpu
    )
    peak = (
        pool.watts_max_per_vcpu
        if pool.watts_max_per_vcpu is not None
        else power.watts_max_per_vcpu
    )
    _positive(idle, f"{field}.watts_idle_per_vcpu", strict=False)
    _positive(peak, f"{field}.watts_max_per_vcpu")
    if peak < idle:
        raise ConfigError(
            f"{field}.watts_max_per_vcpu",
            f">= watts_idle_per_vcpu ({idle}), got {peak}",
        )
    is_edge = pool.layer is Layer.edge
    layer = cfg.layers.edge if is_edge else cfg.layers.cloud
    pue = pool.pue if pool.pue is not None else (layer.pue if is_edge else power.pue)
    if pue < 1.0:
        raise ConfigError(f"{field}.pue", f"a PUE >= 1, got {pue}")
    access = parse_duration(layer.access_rtt, f"layers.{pool.layer.value}.access_rtt")
    return [
        _Node(
            region=region_index,
            name=f"{region_id}/{pool.name}-{i + 1}",
            cores=cores,
            price_core_s=price_core_s,
            watts_busy_core=peak * pue,
            watts_idle=idle * cores * pue,
            is_edge=is_edge,
            access_rtt_s=access,
            mem_per_core=memory / cores,
            speed=pool.speed,
            cpu_type=pool.cpu_type,
        )
        for i in range(pool.count)
    ]


def _exec_times(rt: RequestTypeSpec, field: str) -> dict[int, float]:
    if not rt.execution_time:
        raise ConfigError(
            f"{field}.execution_time", "at least one CPU class with a time"
        )
    out: dict[int, float] = {}
    for key, text in rt.execution_time.items():
        if not str(key).isdigit():
            raise ConfigError(
                f"{field}.execution_time", f"CPU class ids like '0', got {key!r}"
            )
        out[int(key)] = _positive(
            parse_duration(text, f"{field}.execution_time.{key}"),
            f"{field}.execution_time.{key}",
        )
    return out


def _bandwidth_bps(cfg: ScenarioConfig, src: str, dst: str, provider: str) -> float:
    info = datasets.regions()
    if src == dst:
        return cfg.network.intra_region_bandwidth_gbps * 1e9 / 8
    a, b = info[src].macro_region, info[dst].macro_region
    if a == b:
        return cfg.network.intra_macro_bandwidth_gbps * 1e9 / 8
    table = datasets.macro_throughput_mbps()
    measured = [table[(p, a, b)] for p in (provider,) if (p, a, b) in table]
    if not measured:  # GCP was not measured: mean of the providers that were
        measured = [v for (p, x, y), v in table.items() if (x, y) == (a, b)]
    return float(np.mean(measured)) * 1e6 / 8


def _egress(src: str, dst: str, src_provider: str, dst_provider: str) -> float:
    if src == dst:
        return 0.0
    table = datasets.egress_usd_per_gb()
    internet = table[(src_provider, "*", "internet")]
    if src_provider != dst_provider:
        return internet
    return table.get((src_provider, src, dst), internet)


def _check_scalars(cfg: ScenarioConfig) -> None:
    if not cfg.regions:
        raise ConfigError("scenario.regions", "at least one region")
    if not cfg.request_types:
        raise ConfigError("scenario.request_types", "at least one request type")
    profile = cfg.workload.diurnal_profile
    if len(profile) != 24 or min(profile) < 0 or sum(profile) <= 0:
        raise ConfigError(
            "scenario.workload.diurnal_profile",
            "24 non-negative hourly values with a positive sum",
        )
    _positive(cfg.workload.burstiness, "scenario.workload.burstiness", strict=False)
    _positive(
        cfg.workload.service_time_cv, "scenario.workload.service_time_cv", strict=False
    )
    if cfg.network.rtt_tail not in ("lognormal", "none"):
        raise ConfigError(
            "scenario.network.rtt_tail",
            f"'lognormal' or 'none', got {cfg.network.rtt_tail!r}",
        )
    _positive(
        cfg.network.intra_region_bandwidth_gbps,
        "scenario.network.intra_region_bandwidth_gbps",
    )
    _positive(
        cfg.network.intra_macro_bandwidth_gbps,
        "scenario.network.intra_macro_bandwidth_gbps",
    )
    if not -1 <= cfg.start_hour < datasets.HOURS_PER_YEAR:
        raise ConfigError(
            "scenario.start_hour", f"-1 (random) or 0..8759, got {cfg.start_hour}"
        )
    if not 0 <= cfg.heterogeneity <= 10:
        raise ConfigError(
            "scenario.heterogeneity", f"a value in [0, 10], got {cfg.heterogeneity}"
        )
    if cfg.carbon_basis not in ("direct", "lca"):
        raise ConfigError(
            "scenario.carbon_basis", f"'direct' or 'lca', got {cfg.carbon_basis!r}"
        )


def _utilization(cfg: ScenarioConfig, index: int) -> float:
    """Region ``index``'s target utilization, its spread scaled by heterogeneity."""
    loads = [r.target_utilization for r in cfg.regions]
    mean = sum(loads) / len(loads)
    return mean + cfg.heterogeneity * (loads[index] - mean)


# -------------------------------------------------------------------- compilation
def compile_scenario(cfg: ScenarioConfig) -> World:  # noqa: C901
    """Validate ``cfg`` against itself and the shipped data; build its :class:`World`.

    Raises:
        ConfigError: naming the field and what was expected.
    """
    _check_scalars(cfg)
    info = datasets.regions()
    rtt = datasets.rtt_ms()
    ids = [r.id for r in cfg.regions]
    providers: list[str] = []
    nodes: list[_Node] = []
    starts: list[int] = []
    for i, region in enumerate(cfg.regions):
        field = f"scenario.regions[{i}]"
        if region.id not in info:
            raise ConfigError(
                f"{field}.id",
                f"a region of regions.csv ({', '.join(info)}), got {region.id!r}",
            )
        if region.id in ids[:i]:
            raise ConfigError(
                f"{field}.id", f"unique region ids, {region.id!r} repeats"
            )
        provider = region.provider or info[region.id].provider
        if provider not in datasets.PROVIDERS:
            raise ConfigError(
                f"{field}.provider", f"one of {datasets.PROVIDERS}, got {provider!r}"
            )
        providers.append(provider)
        util = _utilization(cfg, i)
        if not 0 < util <= 2:
            raise ConfigError(
                f"{field}.target_utilization", f"a value in (0, 2], got {util}"
            )
        if not region.pools:
            raise ConfigError(
                f"{field}.pools", "at least one node pool (a region with no node)"
            )
        starts.append(len(nodes))
        for j, pool in enumerate(region.pools):
            nodes.extend(_pool_nodes(cfg, i, provider, pool, f"{field}.pools[{j}]"))
        for other in ids[:i]:
            for pair in ((region.id, other), (other, region.id)):
                if pair not in rtt:
                    raise ConfigError(
                        f"{field}.id", f"RTT data for {pair[0]} -> {pair[1]}"
                    )
    starts.append(len(nodes))
    n_regions, n_nodes, n_types = len(ids), len(nodes), len(cfg.request_types)

    # ---- request types
    type_names = [t.name for t in cfg.request_types]
    exec_by_type = []
    shares = np.zeros(n_types)
    type_f = np.zeros((n_types, TYPE_COLS))
    for k, rt in enumerate(cfg.request_types):
        field = f"scenario.request_types[{k}]"
        if rt.name in type_names[:k]:
            raise ConfigError(
                f"{field}.name", f"unique type names, {rt.name!r} repeats"
            )
        shares[k] = _positive(rt.share, f"{field}.share", strict=False)
        exec_by_type.append(_exec_times(rt, field))
        slo = _positive(parse_duration(rt.slo, f"{field}.slo"), f"{field}.slo")
        size_in = parse_size(rt.request_size, f"{field}.request_size")
        size_out = parse_size(rt.response_size, f"{field}.response_size")
        _positive(rt.memory_gib, f"{field}.memory_gib", strict=False)
        type_f[k, TYPE_SLO_S] = slo
        type_f[k, TYPE_IN_GB] = size_in / 1e9
        type_f[k, TYPE_OUT_GB] = size_out / 1e9
        type_f[k, TYPE_BYTES] = size_in + size_out
        type_f[k, TYPE_SAME_CONTINENT] = float(rt.same_continent)
    if shares.sum() <= 0:
        raise ConfigError(
            "scenario.request_types", "at least one type with a positive share"
        )
    probs = shares / shares.sum()

    # ---- nodes and type x node tables
    node_f = np.zeros((n_nodes, NODE_F_COLS))
    node_region = np.array([n.region for n in nodes], dtype=np.int64)
    node_cores = np.array([n.cores for n in nodes], dtype=np.int64)
    for i, n in enumerate(nodes):
        node_f[i] = (
            n.cores, n.price_core_s, n.watts_busy_core, float(n.is_edge),
            n.access_rtt_s, n.mem_per_core, n.speed, n.watts_idle, 0.0,
        )  # fmt: skip
    node_f[:, NODE_CORE_OFFSET] = np.concatenate(([0], np.cumsum(node_cores)[:-1]))
    type_node = np.zeros((n_types, n_nodes, TYPE_NODE_COLS))
    for k, rt in enumerate(cfg.request_types):
        for i, n in enumerate(nodes):
            exec_s = exec_by_type[k].get(n.cpu_type)
            if exec_s is None or rt.memory_gib > n.mem_per_core:
                continue
            service = exec_s / n.speed
            type_node[k, i] = (
                service,
                1.0,
                service * n.price_core_s,
                service * n.watts_busy_core,
            )
    region_capable = np.zeros((n_types, n_regions), dtype=bool)
    for r in range(n_regions):
        region_capable[:, r] = (
            type_node[:, starts[r] : starts[r + 1], TYPE_NODE_CAPABLE].max(axis=1) > 0
        )
        for bad in np.flatnonzero((probs > 0) & ~region_capable[:, r]):
            k = int(bad)
            classes = sorted({n.cpu_type for n in nodes[starts[r] : starts[r + 1]]})
            raise ConfigError(
                f"scenario.request_types[{k}].execution_time",
                f"a time for a CPU class of region {ids[r]} (classes there: {classes}) "
                f"and memory_gib <= a node's memory per core, so every region serves "
                f"{type_names[k]!r}",
            )

    # ---- carbon, load, time of day
    hourly = np.zeros((n_regions, datasets.HOURS_PER_YEAR, HOUR_COLS))
    profile = np.asarray(cfg.workload.diurnal_profile, dtype=np.float64)
    profile = profile / profile.mean()
    capacity = np.zeros(n_regions)
    for r, region in enumerate(cfg.regions):
        lo, hi = starts[r], starts[r + 1]
        per_node = 0.0
        for i in range(lo, hi):
            capable = type_node[:, i, TYPE_NODE_CAPABLE] > 0
            if capable.any():
                w = probs[capable] / probs[capable].sum()
                per_node += node_cores[i] / float(
                    (w * type_node[capable, i, TYPE_NODE_EXEC_S]).sum()
                )
        capacity[r] = per_node
        base = _utilization(cfg, r) * per_node
        local = datasets.local_hours(info[region.id].timezone)
        hourly[r, :, HOUR_RATE] = base * np.interp(
            local, np.arange(25), np.append(profile, profile[0])
        )
        hourly[r, :, HOUR_CARBON] = datasets.carbon_intensity(
            info[region.id].carbon_zone, cfg.carbon_basis
        )
        hourly[r, :, HOUR_LOCAL] = local

    # ---- bursts
    series = []
    for i, region in enumerate(cfg.regions):
        if region.trace == "poisson":
            s = np.ones(1)
        else:
            try:
                raw = datasets.arrival_trace(
                    region.trace, cfg.workload.burst_resolution
                )
            except ConfigError as exc:
                raise ConfigError(
                    f"scenario.regions[{i}].trace", exc.expected
                ) from None
            s = np.maximum(0.0, 1.0 + cfg.workload.burstiness * (raw - 1.0))
            s = s / s.mean()
        series.append(s)
    burst = np.zeros((n_regions, max(len(s) for s in series)))
    for r, s in enumerate(series):
        burst[r, : len(s)] = s

    # ---- region pairs
    pair_f = np.zeros((n_regions, n_regions, PAIR_COLS))
    for a, src in enumerate(ids):
        for b, dst in enumerate(ids):
            if a != b:
                p50, p95 = rtt[(src, dst)]
                pair_f[a, b, PAIR_RTT_S] = p50 / 1e3
                if cfg.network.rtt_tail == "lognormal" and p95 > p50:
                    pair_f[a, b, PAIR_RTT_SIGMA] = math.log(p95 / p50) / _Z95
            pair_f[a, b, PAIR_BW_BPS] = _bandwidth_bps(cfg, src, dst, providers[a])
            pair_f[a, b, PAIR_EGRESS_USD_GB] = _egress(
                src, dst, providers[a], providers[b]
            )

    # ---- reward normalisers: what serving the type typically costs in this scenario
    mean_carbon = float(hourly[:, :, HOUR_CARBON].mean())
    remote = ~np.eye(n_regions, dtype=bool)
    for k in range(n_types):
        capable = type_node[k, :, TYPE_NODE_CAPABLE] > 0
        egress = (
            type_f[k, TYPE_IN_GB] * pair_f[:, :, PAIR_EGRESS_USD_GB]
            + type_f[k, TYPE_OUT_GB] * pair_f[:, :, PAIR_EGRESS_USD_GB].T
        )
        mean_egress = float(egress[remote].mean()) if n_regions > 1 else 0.0
        type_f[k, TYPE_COST_REF] = (
            type_node[k, capable, TYPE_NODE_COST_USD].mean() + mean_egress
        )
        type_f[k, TYPE_CARBON_REF] = (
            type_node[k, capable, TYPE_NODE_ENERGY_J].mean() / 3.6e6 * mean_carbon
        )

    continents = sorted({info[i].continent for i in ids})
    region_i = np.zeros((n_regions, REG_I_COLS), dtype=np.int64)
    for r, rid in enumerate(ids):
        region_i[r] = (
            starts[r],
            starts[r + 1],
            continents.index(info[rid].continent),
            len(series[r]),
            0,
        )

    cv = cfg.workload.service_time_cv
    return World(
        name=cfg.name,
        region_ids=tuple(ids),
        node_names=tuple(n.name for n in nodes),
        type_names=tuple(type_names),
        node_f=node_f,
        node_region=node_region,
        node_cores=node_cores,
        region_i=region_i,
        pair_f=pair_f,
        type_f=type_f,
        type_node=type_node,
        region_capable=region_capable,
        mix_cum=np.tile(np.cumsum(probs), (n_regions, 1)),
        hourly=hourly,
        burst=burst,
        service_shape=0.0 if cv == 0 else 1.0 / (cv * cv),
        start_hour=cfg.start_hour,
        capacity_rps=capacity,
    )
