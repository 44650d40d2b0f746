"""Readers for the real data shipped in ``envs/data`` (see its README for sources).

Each reader parses its CSV once per process (``functools.cache``) and checks it, so a
truncated or gappy file fails with the file and row named instead of producing a
silently wrong world.
"""

from __future__ import annotations

import csv
import functools
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from importlib import resources
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np

from envs.errors import ConfigError

HOURS_PER_YEAR = 8760
YEAR_START = datetime(2023, 1, 1, tzinfo=UTC)
PROVIDERS = ("aws", "azure", "gcp")


def data_path(*parts: str) -> Path:
    """Path of a shipped data file."""
    return Path(str(resources.files("envs") / "data")).joinpath(*parts)


def _rows(*parts: str) -> list[dict[str, str]]:
    with data_path(*parts).open(newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


@dataclass(frozen=True)
class RegionInfo:
    """Static facts of one region (``regions.csv``)."""

    id: str
    provider: str
    provider_region: str
    provider_regions: dict[str, str]
    carbon_zone: str
    macro_region: str
    continent: str
    timezone: str
    latitude: float
    longitude: float
    metro: str


@functools.cache
def regions() -> dict[str, RegionInfo]:
    """All regions of ``regions.csv`` by id, in file order."""
    out: dict[str, RegionInfo] = {}
    for row in _rows("regions.csv"):
        out[row["region_id"]] = RegionInfo(
            id=row["region_id"],
            provider=row["provider"],
            provider_region=row["provider_region"],
            provider_regions={
                "aws": row["aws_region"],
                "azure": row["azure_region"],
                "gcp": row["gcp_region"],
            },
            carbon_zone=row["carbon_zone"],
            macro_region=row["persico_macro_region"],
            continent=row["continent"],
            timezone=row["timezone"],
            latitude=float(row["latitude"]),
            longitude=float(row["longitude"]),
            metro=row["metro"],
        )
    return out


def _check_hourly(timestamps: list[str], file: str) -> None:
    if len(timestamps) != HOURS_PER_YEAR:
        raise ConfigError(
            file, f"{HOURS_PER_YEAR} hourly rows, found {len(timestamps)}"
        )
    for hour, stamp in enumerate(timestamps):
        expected = (YEAR_START + timedelta(hours=hour)).strftime("%Y-%m-%dT%H:%M:%SZ")
        if stamp != expected:
            raise ConfigError(
                f"{file} row {hour + 2}",
                f"timestamp {expected} (no gap), got {stamp!r}",
            )


@functools.cache
def carbon_intensity(zone: str, basis: str = "direct") -> np.ndarray:
    """Hourly grid carbon intensity of 2023 (gCO2eq/kWh), ``float64[8760]``.

    ``direct``: operational emissions (per-zone files); ``lca``: life-cycle.
    """
    if basis == "direct":
        file = f"carbon/{zone}_2023_hourly.csv"
        if not data_path(file).exists():
            raise ConfigError(
                "carbon_zone", f"a shipped carbon series, none for {zone!r}"
            )
        rows = _rows(file)
        column = "carbon_intensity_gco2_per_kwh"
    elif basis == "lca":
        file = "carbon/lca_all_zones_2023_hourly.csv"
        rows = _rows(file)
        column = zone
        if column not in rows[0]:
            raise ConfigError("carbon_zone", f"a zone of {file}, got {zone!r}")
    else:
        raise ConfigError("carbon_basis", f"'direct' or 'lca', got {basis!r}")
    _check_hourly([r["datetime_utc"] for r in rows], file)
    values = []
    for i, row in enumerate(rows):
        cell = row[column]
        if cell == "":
            raise ConfigError(f"{file} row {i + 2}", "a carbon intensity, found a gap")
        values.append(float(cell))
    series = np.asarray(values, dtype=np.float64)
    if (series < 0).any():
        raise ConfigError(file, "non-negative carbon intensities")
    return series


@functools.cache
def rtt_ms() -> dict[tuple[str, str], tuple[float, float]]:
    """Inter-region round-trip time ``(p50, p95)`` in ms by ``(src, dst)`` region id."""
    return {
        (r["src_region_id"], r["dst_region_id"]): (
            float(r["rtt_p50_ms"]),
            float(r["rtt_p95_ms"]),
        )
        for r in _rows("network", "rtt_ms.csv")
    }


@functools.cache
def egress_usd_per_gb() -> dict[tuple[str, str, str], float]:
    """Price per GB sent by ``(provider, src, dst)``; ``dst == 'internet'``: egress."""
    out: dict[tuple[str, str, str], float] = {}
    for r in _rows("network", "egress_usd_per_gb.csv"):
        if r["dst_region_id"] == "internet":
            out[(r["provider"], "*", "internet")] = float(r["usd_per_gb"])
        else:
            key = (r["provider"], r["src_region_id"], r["dst_region_id"])
            out[key] = float(r["usd_per_gb"])
    return out


@functools.cache
def macro_throughput_mbps() -> dict[tuple[str, str, str], float]:
    """Inter-datacenter TCP throughput (Persico et al. 2016) by (provider, src, dst)."""
    return {
        (r["provider"], r["src_macro_region"], r["dst_macro_region"]): float(
            r["throughput_mbps"]
        )
        for r in _rows("network", "persico2016_macro_region.csv")
    }


@dataclass(frozen=True)
class InstancePrice:
    """One VM type's published prices in one region."""

    instance_type: str
    vcpus: int
    memory_gib: float
    ondemand_usd_per_h: float
    spot_usd_per_h: float


@functools.cache
def vm_prices() -> dict[tuple[str, str], list[InstancePrice]]:
    """Instance prices by ``(provider, region_id)``, ascending in vCPUs."""
    out: dict[tuple[str, str], list[InstancePrice]] = {}
    for r in _rows("prices", "vm_prices.csv"):
        out.setdefault((r["provider"], r["region_id"]), []).append(
            InstancePrice(
                instance_type=r["instance_type"],
                vcpus=round(float(r["vcpus"])),
                memory_gib=float(r["memory_gib"]),
                ondemand_usd_per_h=float(r["ondemand_usd_per_h"]),
                spot_usd_per_h=float(r["spot_usd_per_h"]),
            )
        )
    for prices in out.values():
        prices.sort(key=lambda p: p.vcpus)
    return out


@dataclass(frozen=True)
class ProviderPower:
    """Cloud Carbon Footprint's average power coefficients and PUE of a provider."""

    watts_idle_per_vcpu: float
    watts_max_per_vcpu: float
    pue: float


@functools.cache
def provider_power() -> dict[str, ProviderPower]:
    """Power coefficients by provider (``providers.csv``)."""
    return {
        r["provider"]: ProviderPower(
            float(r["watts_idle_per_vcpu"]),
            float(r["watts_max_per_vcpu"]),
            float(r["pue"]),
        )
        for r in _rows("providers.csv")
    }


TRACES = ("conv", "code")


@functools.cache
def arrival_trace(name: str, resolution: str = "minute") -> np.ndarray:
    """Relative arrival rate per second of an Azure LLM 2023 trace (mean 1).

    ``minute`` (default): the per-minute request counts, held for each second of the
    minute. ``second``: the per-second counts. The traces carry a few requests per
    second, so their per-second counts are mostly Poisson noise; scaling that noise to
    a simulator's thousands of requests per second would exaggerate burstiness, while
    the simulator's own Poisson sampling adds the noise of its actual rate. The first
    and last buckets are partial in the source and are dropped.
    """
    if name not in TRACES:
        raise ConfigError(
            "trace", f"one of {', '.join(TRACES)} or 'poisson', got {name!r}"
        )
    if resolution not in ("minute", "second"):
        raise ConfigError(
            "burst_resolution", f"'minute' or 'second', got {resolution!r}"
        )
    rows = _rows("workload", f"azure_llm_2023_{name}_per_{resolution}.csv")
    counts = np.asarray([float(r["requests"]) for r in rows[1:-1]], dtype=np.float64)
    if resolution == "minute":
        counts = np.repeat(counts, 60)
    normalised: np.ndarray = counts / counts.mean()
    return normalised


@functools.cache
def local_hours(timezone: str) -> np.ndarray:
    """Local clock time (hours, fractional for :30 zones) at each UTC hour of 2023."""
    zone = ZoneInfo(timezone)
    out = np.empty(HOURS_PER_YEAR, dtype=np.float64)
    for hour in range(HOURS_PER_YEAR):
        local = (YEAR_START + timedelta(hours=hour)).astimezone(zone)
        out[hour] = local.hour + local.minute / 60.0
    return out
