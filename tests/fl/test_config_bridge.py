"""The one Hydra -> Flower bridge: flatten, carry through TOML and Flower, parse back."""

from __future__ import annotations

import dataclasses
import re
import tomllib
from pathlib import Path

import pytest
from flwr.common.config import flatten_dict

from conf.schema import StrategyName
from fl_server.config import (
    PYPROJECT_DEFAULTS,
    compose,
    fingerprint,
    from_run_config,
    pyproject_section,
    regions_of,
    run_config_keys,
    to_run_config,
    to_toml,
)

CONF = Path(__file__).resolve().parents[2] / "conf"
PYPROJECT = Path(__file__).resolve().parents[2] / "pyproject.toml"


def through_flower(flat: dict) -> dict:
    """What an app sees: our TOML, parsed like ``flwr run --run-config``, flattened."""
    return flatten_dict(tomllib.loads(to_toml(flat)))


@pytest.mark.parametrize(
    "overrides",
    [
        (),
        ("strategy=fedprox", "train.region=null", "policy.net_arch=[64,32]"),
        ("scenario=default", "federation=all_regions", "engine=deployment"),
        ("reward=carbon", "two_tier.learn=lb", "engine.tls=true"),
    ],
    ids=["defaults", "fedprox-optional-list", "default-scenario", "enums"],
)
def test_round_trip_gives_back_the_same_typed_config(
    overrides: tuple[str, ...],
) -> None:
    cfg = compose(list(overrides))
    flat = to_run_config(cfg)
    assert through_flower(flat) == flat
    assert from_run_config(through_flower(flat)) == cfg


def test_keys_are_dotted_hyphenated_and_values_toml_scalars() -> None:
    flat = to_run_config(compose([]))
    for key, value in flat.items():
        assert re.fullmatch(r"[a-z0-9-]+(\.[a-z0-9-]+)*", key), key
        assert isinstance(value, bool | int | float | str), key
    assert {"federation.local-steps", "strategy.proximal-mu", "engine.tls"} <= set(flat)
    assert flat["train.region"] == '"eu-central"'  # optional: JSON text, never guessed
    assert "paths" not in {k.split(".")[0] for k in flat}  # stays in Hydra
    assert list(flat) == run_config_keys()


def test_an_unknown_key_is_named() -> None:
    message = (
        "run config: unknown keys ['federation.localsteps']; expected RunConfig fields "
        "such as 'federation.local-steps' (regenerate with `python -m fl_server.config`)"
    )
    with pytest.raises(ValueError, match=re.escape(message)):
        from_run_config({"federation.localsteps": 4})


def test_a_bad_value_names_the_full_key() -> None:
    flat = to_run_config(compose([]))
    with pytest.raises(ValueError, match=r"full_key: federation\.local_steps"):
        from_run_config({**flat, "federation.local-steps": "many"})
    with pytest.raises(ValueError, match=r"strategy\.name"):
        from_run_config({**flat, "strategy.name": "fedsgd"})
    with pytest.raises(
        ValueError, match=re.escape("run config policy.net-arch: expected JSON text")
    ):
        from_run_config({**flat, "policy.net-arch": "[128,"})


def group_options(group: str) -> list[str]:
    return sorted(p.stem for p in (CONF / group).glob("*.yaml"))


@pytest.mark.parametrize("strategy", group_options("strategy"))
def test_every_strategy_group_composes_and_round_trips(strategy: str) -> None:
    cfg = compose([f"strategy={strategy}"])
    assert cfg.strategy.name == StrategyName[strategy]
    assert from_run_config(through_flower(to_run_config(cfg))) == cfg


@pytest.mark.parametrize(
    "override",
    [f"federation={n}" for n in group_options("federation")]
    + [f"engine={n}" for n in group_options("engine")],
)
def test_every_federation_and_engine_group_composes(override: str) -> None:
    cfg = compose([override])
    assert from_run_config(through_flower(to_run_config(cfg))) == cfg
    assert regions_of(cfg)


def test_regions_default_to_the_scenario_and_unknown_ones_are_named() -> None:
    cfg = compose(["federation.regions=[]"])
    assert regions_of(cfg) == ["us-east", "eu-central", "asia-east"]
    bad = compose(["federation.regions=[us-east,mars-1]"])
    with pytest.raises(
        ValueError,
        match=re.escape("federation.regions: ['mars-1'] not in scenario 'small'"),
    ):
        regions_of(bad)


def test_resume_fingerprint_ignores_budget_and_engine_only() -> None:
    cfg = compose([])
    longer = dataclasses.replace(
        cfg,
        federation=dataclasses.replace(cfg.federation, rounds=50, output_dir="/x"),
        engine=dataclasses.replace(cfg.engine, tls=True),
    )
    assert fingerprint(to_run_config(longer)) == fingerprint(to_run_config(cfg))
    other = dataclasses.replace(
        cfg, federation=dataclasses.replace(cfg.federation, local_steps=8)
    )
    assert fingerprint(to_run_config(other)) != fingerprint(to_run_config(cfg))


def test_pyproject_declares_every_run_config_key_and_ships_only_the_apps() -> None:
    """Keys missing from ``[tool.flwr.app.config]`` cannot be overridden.

    And an app bundle with ``envs/`` but without its data files breaks the ServerApp.
    """
    app = tomllib.loads(PYPROJECT.read_text())["tool"]["flwr"]["app"]
    declared = set(flatten_dict(app.get("config", {})))
    missing = sorted(set(run_config_keys()) - declared)
    assert not missing, (
        f"add to [tool.flwr.app.config] (python -m fl_server.config): {missing[:5]}..."
    )
    assert app.get("fab-include") == ["fl_clients/**/*.py", "fl_server/**/*.py"]


def test_pyproject_is_the_generated_section_and_reads_as_flwr_run_default() -> None:
    """``flwr run .`` with no overrides runs ``PYPROJECT_DEFAULTS``, exactly.

    And the section is readable: short scalars, no multi-kilobyte JSON.
    """
    app = tomllib.loads(PYPROJECT.read_text())["tool"]["flwr"]["app"]
    declared = flatten_dict(app["config"])
    generated = tomllib.loads(pyproject_section(compose(PYPROJECT_DEFAULTS)))
    assert declared == flatten_dict(generated["tool"]["flwr"]["app"]["config"]), (
        "pyproject.toml is stale: regenerate with `python -m fl_server.config`"
    )
    assert from_run_config(declared) == compose(PYPROJECT_DEFAULTS)
    assert max(len(str(v)) for v in declared.values()) <= 40
    assert len(regions_of(from_run_config(declared))) == 2  # Flower's default nodes


def test_empty_scenario_keys_take_the_named_scenarios_values() -> None:
    app = tomllib.loads(PYPROJECT.read_text())["tool"]["flwr"]["app"]
    declared = flatten_dict(app["config"])
    renamed = {**declared, "scenario.name": "default", "federation.regions": "[]"}
    expected = compose(
        ["scenario=default", *PYPROJECT_DEFAULTS, "federation.regions=[]"]
    )
    assert from_run_config(renamed) == expected
    one_knob = {**renamed, "scenario.workload.burstiness": 0.25}
    cfg = from_run_config(one_knob)
    assert cfg.scenario.workload.burstiness == 0.25
    assert cfg.scenario.regions == expected.scenario.regions
    with pytest.raises(
        ValueError, match=re.escape("run config scenario: expected one of ")
    ):
        from_run_config({**declared, "scenario.name": "atlantis"})
