"""Scenario loading: the shipped scenarios, and every bad-config case with its message."""

from __future__ import annotations

import copy
import re
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from envs import (
    ConfigError,
    TwoTierCore,
    TwoTierEnvConfig,
    compile_scenario,
    datasets,
    load_scenario,
)
from envs.scenario import SCENARIO_DIR

BASE = yaml.safe_load((SCENARIO_DIR / "small.yaml").read_text())


def edited(edit: Callable[[dict], None]) -> dict:
    spec = copy.deepcopy(BASE)
    for region in spec["regions"]:  # un-share the YAML anchors before editing
        region["pools"] = copy.deepcopy(region["pools"])
    edit(spec)
    return spec


@pytest.mark.parametrize("name", ["small", "default", "large"])
def test_shipped_scenarios_compile(name: str) -> None:
    world = compile_scenario(load_scenario(name))
    carbon = world.hourly[:, :, 1].mean(axis=1)
    prices = world.node_f[:, 1]
    assert len(set(carbon.round(3))) == world.n_regions  # regions differ in carbon ...
    assert (
        len(set(world.capacity_rps.round(1))) > 1 or name == "small"
    )  # ... and in size
    assert len(set(prices.round(12))) > world.n_regions  # ... and prices
    rates = world.hourly[:, :, 0].mean(axis=1) / world.capacity_rps
    assert len(set(rates.round(3))) > 1  # ... and in load


def test_scenario_sizes_match_the_issue() -> None:
    small, default, large = (
        compile_scenario(load_scenario(n)) for n in ("small", "default", "large")
    )
    assert small.n_regions == 3 and 20 <= small.n_nodes <= 30
    continents = {datasets.regions()[r].continent for r in small.region_ids}
    assert len(continents) == 3
    assert default.n_regions == 6 and 90 <= default.n_nodes <= 110
    providers = {datasets.regions()[r].provider for r in default.region_ids}
    assert len(providers) >= 2
    assert large.n_regions >= 8 and large.n_nodes >= 500


CASES: list[tuple[str, Callable[[dict], None], str]] = [
    (
        "unknown key",
        lambda s: s["regions"][0].update(bogus=1),
        "scenario.regions[0].bogus: expected a valid value (a field of RegionSpec",
    ),
    (
        "wrong type",
        lambda s: s["regions"][1]["pools"][2].update(count="many"),
        "scenario.regions[1].pools[2].count: expected a valid value (Value 'many' of type 'str' could not be converted to Integer)",
    ),
    (
        "unknown enum",
        lambda s: s["regions"][0]["pools"][0].update(layer="fog"),
        "scenario.regions[0].pools[0].layer: expected a valid value (Invalid value 'fog', expected one of [edge, cloud])",
    ),
    (
        "wrong unit",
        lambda s: s["request_types"][0].update(slo="120 parsecs"),
        "scenario.request_types[0].slo: expected a duration such as '12ms' or '1.5s' (units us|ms|s|min|h), got '120 parsecs'",
    ),
    (
        "bad size unit",
        lambda s: s["request_types"][1].update(request_size="2 floppies"),
        "scenario.request_types[1].request_size: expected a size such as '32KB' or '2MB' (units B|KB|MB|GB), got '2 floppies'",
    ),
    (
        "exec time unit",
        lambda s: s["request_types"][0]["execution_time"].update({"0": "8 ticks"}),
        "scenario.request_types[0].execution_time.0: expected a duration",
    ),
    (
        "region with no node",
        lambda s: s["regions"][2].update(pools=[]),
        "scenario.regions[2].pools: expected at least one node pool (a region with no node)",
    ),
    (
        "negative capacity",
        lambda s: s["regions"][0]["pools"][1].update(count=-2),
        "scenario.regions[0].pools[1].count: expected at least 1 node, got -2",
    ),
    (
        "zero cores",
        lambda s: s["regions"][0]["pools"][0].update(vcpus=0),
        "scenario.regions[0].pools[0].vcpus: expected 1..16 cores, got 0",
    ),
    (
        "negative speed",
        lambda s: s["regions"][0]["pools"][0].update(speed=-1.0),
        "scenario.regions[0].pools[0].speed: expected a positive number, got -1.0",
    ),
    (
        "unknown region",
        lambda s: s["regions"][0].update(id="mars-north"),
        "scenario.regions[0].id: expected a region of regions.csv",
    ),
    (
        "duplicate region",
        lambda s: s["regions"][1].update(id="us-east"),
        "scenario.regions[1].id: expected unique region ids, 'us-east' repeats",
    ),
    (
        "unknown provider",
        lambda s: s["regions"][0].update(provider="ibm"),
        "scenario.regions[0].provider: expected one of ('aws', 'azure', 'gcp'), got 'ibm'",
    ),
    (
        "utilization range",
        lambda s: s["regions"][0].update(target_utilization=0.0),
        "scenario.regions[0].target_utilization: expected a value in (0, 2], got 0.0",
    ),
    (
        "unknown trace",
        lambda s: s["regions"][0].update(trace="netflix"),
        "scenario.regions[0].trace: expected one of conv, code or 'poisson', got 'netflix'",
    ),
    (
        "unservable type",
        lambda s: s["request_types"][2].update(execution_time={"7": "10ms"}),
        "scenario.request_types[2].execution_time: expected a time for a CPU class of region us-east (classes there: [0, 1, 2])",
    ),
    (
        "diurnal profile",
        lambda s: s.update(workload={"diurnal_profile": [1.0] * 23}),
        "scenario.workload.diurnal_profile: expected 24 non-negative hourly values with a positive sum",
    ),
    (
        "start hour",
        lambda s: s.update(start_hour=9000),
        "scenario.start_hour: expected -1 (random) or 0..8759, got 9000",
    ),
    (
        "no types",
        lambda s: s.update(request_types=[]),
        "scenario.request_types: expected at least one request type",
    ),
    (
        "inverted power",
        lambda s: s["regions"][0]["pools"][0].update(watts_idle_per_vcpu=5.0),
        "scenario.regions[0].pools[0].watts_max_per_vcpu: expected >= watts_idle_per_vcpu (5.0), got 1.6",
    ),
]


@pytest.mark.parametrize(("case", "edit", "message"), CASES, ids=[c[0] for c in CASES])
def test_bad_scenario_is_refused_with_its_message(
    case: str, edit: Callable[[dict], None], message: str
) -> None:
    with pytest.raises(ConfigError, match=re.escape(message)):
        compile_scenario(load_scenario(edited(edit)))


def test_unknown_scenario_name() -> None:
    with pytest.raises(
        ConfigError,
        match=re.escape(
            "scenario: expected one of ['bursty', 'default', 'high_load', 'large', "
            "'size_mixed', 'small'] or a YAML file, got 'tiny'"
        ),
    ):
        load_scenario("tiny")


@pytest.mark.parametrize(
    ("config", "message"),
    [
        (
            TwoTierEnvConfig(lb_heuristic="psychic", learn="scheduler"),
            "env.lb_heuristic: expected one of local, random",
        ),
        (
            TwoTierEnvConfig(background_scheduler="fifo"),
            "env.background_scheduler: expected one of random, round_robin",
        ),
        (
            TwoTierEnvConfig(learn="everything"),
            "env.learn: expected one of ['both', 'lb', 'scheduler'], got 'everything'",
        ),
        (
            TwoTierEnvConfig(episode_length=0),
            "env.episode_length: expected at least 1, got 0",
        ),
        (
            TwoTierEnvConfig(warmup="soon"),
            "env.warmup: expected a duration such as '12ms'",
        ),
    ],
)
def test_bad_env_config_is_refused(config: TwoTierEnvConfig, message: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(message)):
        TwoTierCore("small", 1, config=config)


def test_region_not_in_scenario() -> None:
    with pytest.raises(
        ConfigError,
        match=re.escape(
            "region: expected one of us-east, eu-central, asia-east, got 'india'"
        ),
    ):
        TwoTierCore("small", 1, controlled=["india"])


def test_carbon_series_with_a_gap_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    shutil.copytree(datasets.data_path(), tmp_path / "data")
    file = tmp_path / "data" / "carbon" / "GB_2023_hourly.csv"
    lines = file.read_text().splitlines()
    del lines[100]  # drop the hour 2023-01-05T03:00Z
    file.write_text("\n".join(lines) + "\n")
    monkeypatch.setattr(
        datasets, "data_path", lambda *parts: (tmp_path / "data").joinpath(*parts)
    )
    datasets.carbon_intensity.cache_clear()
    try:
        with pytest.raises(
            ConfigError,
            match=re.escape(
                "carbon/GB_2023_hourly.csv: expected 8760 hourly rows, found 8759"
            ),
        ):
            datasets.carbon_intensity("GB")
        lines.insert(
            100, "2023-01-05T04:00:00Z,100.0"
        )  # right count, but a gap + a repeat
        file.write_text("\n".join(lines) + "\n")
        datasets.carbon_intensity.cache_clear()
        with pytest.raises(
            ConfigError,
            match=re.escape(
                "carbon/GB_2023_hourly.csv row 101: expected timestamp 2023-01-05T03:00:00Z (no gap), got '2023-01-05T04:00:00Z'"
            ),
        ):
            datasets.carbon_intensity("GB")
    finally:
        datasets.carbon_intensity.cache_clear()
