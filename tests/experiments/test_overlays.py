"""Experiment overlays compose into sweeps with fixed folders; the heterogeneity knob."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

import conf.schema  # noqa: F401  (registers the schema and the floordiv resolver)
from conf.schema import RunConfig
from envs.scenario import HOUR_RATE, compile_scenario, load_scenario

CONF = Path(__file__).resolve().parents[2] / "conf"
EXPERIMENTS = sorted(p.stem for p in (CONF / "experiment").glob("*.yaml"))
REQUIRED = {
    "smoke", "small_demo", "strategies", "ablation_fedprox", "ablation_identity",
    "ablation_local_steps", "heterogeneity", "pareto", "reschedule", "baselines",
}  # fmt: skip


def composed(*overrides: str) -> tuple[RunConfig, dict]:
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        raw = compose("config", overrides=list(overrides), return_hydra_config=True)
    hydra = OmegaConf.to_container(raw.hydra, resolve=False)
    body = OmegaConf.masked_copy(raw, [k for k in raw if k not in ("hydra", "paths")])
    run = OmegaConf.to_object(OmegaConf.merge(OmegaConf.structured(RunConfig), body))
    assert isinstance(run, RunConfig)
    assert isinstance(hydra, dict)
    return run, hydra


def test_every_required_experiment_has_an_overlay() -> None:
    assert REQUIRED <= set(EXPERIMENTS)


@pytest.mark.parametrize("name", EXPERIMENTS)
def test_an_experiment_is_a_multirun_in_its_own_fixed_folder(name: str) -> None:
    run, hydra = composed(f"experiment={name}")
    assert run.task == name
    assert str(hydra["mode"]) == "RunMode.MULTIRUN"
    assert hydra["sweep"]["dir"] == "${paths.root_dir}/multirun/${task}"
    assert hydra["sweep"]["subdir"] == "${hydra.job.override_dirname}"
    assert hydra["sweeper"]["params"], "an experiment sweeps something"
    text = (CONF / "experiment" / f"{name}.yaml").read_text()
    assert text.startswith("# @package _global_")
    assert "Wall time on 2 cores" in text


def test_strategies_cover_every_strategy_and_five_training_seeds() -> None:
    _, hydra = composed("experiment=strategies")
    params = hydra["sweeper"]["params"]
    assert set(params["strategy"].split(",")) == {
        "fedavg", "fedprox", "fedmedian", "fedtrimmedavg", "local", "centralized",
    }  # fmt: skip
    assert params["seed"] == "range(0,5)"


@pytest.mark.parametrize("steps", [4096, 8192, 16384, 32768])
def test_local_steps_ablation_keeps_the_budget_fixed(steps: int) -> None:
    run, _ = composed(
        "experiment=ablation_local_steps", f"federation.local_steps={steps}"
    )
    fed = run.federation
    assert fed.rounds * fed.local_steps == 98_304
    assert fed.eval_every * 3 == fed.rounds


@pytest.mark.parametrize("spread", [0.0, 1.0, 2.0])
def test_heterogeneity_scales_each_regions_load_around_the_mean(spread: float) -> None:
    run, _ = composed(f"scenario.heterogeneity={spread}")
    world = compile_scenario(load_scenario(run.scenario))
    configured = np.array([r.target_utilization for r in run.scenario.regions])
    expected = configured.mean() + spread * (configured - configured.mean())
    # the mean hourly arrival rate over the year is the target load x capacity
    load = world.hourly[:, :, HOUR_RATE].mean(axis=1) / world.capacity_rps
    np.testing.assert_allclose(load, expected, rtol=2e-3)


def test_carbon_limits_prices_every_types_limit_in_the_kernel() -> None:
    """``experiment=carbon_limits_federated`` prices each type's limit in the kernel.

    In the scenario's type order, at the overlay's values.
    """
    from envs import TwoTierCore
    from envs.two_tier import kernels as K

    run, _ = composed("experiment=carbon_limits_federated")
    core = TwoTierCore(run.scenario, 1, config=run.two_tier, reward=run.reward)
    names = core.world.type_names
    assert set(run.reward.limit_s) == set(names) == set(run.reward.limit_exceeded)
    params, n = core._world[9], len(names)
    want_limits = [run.reward.limit_s[name] for name in names]
    want_prices = [run.reward.limit_exceeded[name] for name in names]
    np.testing.assert_array_equal(params[K.P_LIMITS : K.P_LIMITS + n], want_limits)
    np.testing.assert_array_equal(
        params[K.P_LIMITS + n : K.P_LIMITS + 2 * n], want_prices
    )
    assert run.policy.network == "two_tier_scorer_fpi_wait"  # its prior prices them
