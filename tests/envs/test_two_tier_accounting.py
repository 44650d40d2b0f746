"""Latency, cost, energy and carbon of single requests, computed by hand from the data.

The expected values are derived here from the shipped CSV files with the csv module
(not through ``envs.datasets``), following the model in ``docs/simulator.md``.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest

from envs import TwoTierCore, TwoTierEnvConfig, load_scenario

DATA = Path(__file__).resolve().parents[2] / "envs" / "data"
START_HOUR = 12  # 2023-01-01T12:00Z
EXEC_S, REQ_B, RESP_B, SLO_S, ACCESS_S = 0.020, 1e6, 5e5, 0.150, 0.004


def rows(*parts: str) -> list[dict[str, str]]:
    with (DATA.joinpath(*parts)).open(newline="") as handle:
        return list(csv.DictReader(handle))


def toy(region_ids: list[str]) -> dict:
    return {
        "name": "toy",
        "start_hour": START_HOUR,
        "regions": [
            {
                "id": rid,
                "trace": "poisson",
                "target_utilization": 0.05,
                "pools": [
                    {"name": "vm", "layer": "cloud", "size": "large", "vcpus": 1}
                ],
            }
            for rid in region_ids
        ],
        "request_types": [
            {
                "name": "job",
                "execution_time": {"0": "20ms"},
                "request_size": "1MB",
                "response_size": "500KB",
                "memory_gib": 0.1,
                "slo": "150ms",
            }
        ],
        "layers": {"cloud": {"access_rtt": "4ms"}},
        "network": {"rtt_tail": "none"},
        "workload": {"service_time_cv": 0.0},
    }


def first_placement(spec: dict, target: str | None) -> dict:
    """Place the first request of a fresh env (all queues empty) on ``target``."""
    config = TwoTierEnvConfig(learn="both", warmup="0s")
    core = TwoTierCore(load_scenario(spec), num_envs=1, config=config)
    core.reset(seed=11)
    origin = core.world.region_ids[int(core.ist[0, 2])]
    served = target if target is not None else origin
    if served == "other":
        served = next(r for r in core.world.region_ids if r != origin)
    core.step(np.array([core.world.region_ids.index(served)]))
    core.step(np.array([0]))
    info = core.step_info(0)
    assert info["origin"] == origin and info["region"] == served
    return info


def region_row(region_id: str) -> dict[str, str]:
    return next(r for r in rows("regions.csv") if r["region_id"] == region_id)


def compute_price_per_core_s(provider: str, region_id: str) -> float:
    prices = [
        r
        for r in rows("prices", "vm_prices.csv")
        if (r["provider"], r["region_id"]) == (provider, region_id)
    ]
    large = max(prices, key=lambda r: float(r["vcpus"]))
    return float(large["ondemand_usd_per_h"]) / float(large["vcpus"]) / 3600.0


def busy_core_watts(provider: str) -> float:
    row = next(r for r in rows("providers.csv") if r["provider"] == provider)
    return float(row["watts_max_per_vcpu"]) * float(row["pue"])


def carbon_at(region_id: str, hour: int) -> float:
    zone = region_row(region_id)["carbon_zone"]
    return float(
        rows("carbon", f"{zone}_2023_hourly.csv")[hour]["carbon_intensity_gco2_per_kwh"]
    )


def test_remote_request_across_providers() -> None:
    info = first_placement(toy(["us-east", "eu-central"]), target="other")
    o, q = info["origin"], info["region"]
    po, pq = region_row(o)["provider"], region_row(q)["provider"]
    assert {po, pq} == {"azure", "aws"}
    p50 = next(
        float(r["rtt_p50_ms"])
        for r in rows("network", "rtt_ms.csv")
        if (r["src_region_id"], r["dst_region_id"]) == (o, q)
    )
    mo, mq = (
        region_row(o)["persico_macro_region"],
        region_row(q)["persico_macro_region"],
    )
    mbps = next(
        float(r["throughput_mbps"])
        for r in rows("network", "persico2016_macro_region.csv")
        if (r["provider"], r["src_macro_region"], r["dst_macro_region"]) == (po, mo, mq)
    )
    internet = {
        r["provider"]: float(r["usd_per_gb"])
        for r in rows("network", "egress_usd_per_gb.csv")
        if r["dst_region_id"] == "internet"
    }

    rtt = p50 / 1e3 + ACCESS_S
    transfer = (REQ_B + RESP_B) / (mbps * 1e6 / 8)
    latency = rtt + transfer + 0.0 + EXEC_S
    egress = (
        REQ_B / 1e9 * internet[po] + RESP_B / 1e9 * internet[pq]
    )  # different providers
    cost = EXEC_S * compute_price_per_core_s(pq, q) + egress
    energy = EXEC_S * busy_core_watts(pq)
    carbon = energy / 3.6e6 * carbon_at(q, START_HOUR)

    assert info["rtt_s"] == pytest.approx(rtt)
    assert info["transfer_s"] == pytest.approx(transfer)
    assert info["queue_wait_s"] == 0.0
    assert info["service_s"] == pytest.approx(EXEC_S)
    assert info["latency_s"] == pytest.approx(latency)
    assert info["slo_violated"] is (latency > SLO_S)
    assert info["egress_usd"] == pytest.approx(egress)
    assert info["cost_usd"] == pytest.approx(cost)
    assert info["energy_j"] == pytest.approx(energy)
    assert info["carbon_g"] == pytest.approx(carbon)


def test_local_request_has_no_egress_and_fast_transfer() -> None:
    info = first_placement(toy(["india"]), target=None)
    provider = region_row("india")["provider"]
    transfer = (REQ_B + RESP_B) / (10e9 / 8)  # intra-region 10 Gbit/s
    energy = EXEC_S * busy_core_watts(provider)
    assert info["rtt_s"] == pytest.approx(ACCESS_S)
    assert info["transfer_s"] == pytest.approx(transfer)
    assert info["latency_s"] == pytest.approx(ACCESS_S + transfer + EXEC_S)
    assert info["egress_usd"] == 0.0
    assert info["cost_usd"] == pytest.approx(
        EXEC_S * compute_price_per_core_s(provider, "india")
    )
    assert info["carbon_g"] == pytest.approx(
        energy / 3.6e6 * carbon_at("india", START_HOUR)
    )
    assert info["slo_violated"] is False
