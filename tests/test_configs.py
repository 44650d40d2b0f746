"""The Hydra config is tested like code: every group composes into the typed schema."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from hydra import compose, initialize_config_dir
from hydra.errors import ConfigCompositionException
from omegaconf import OmegaConf
from omegaconf.errors import ValidationError

import conf.schema  # noqa: F401  (registers the schema)
from conf.schema import RunConfig
from envs import TwoTierCore, compile_scenario, load_scenario
from envs.two_tier import kernels as K

CONF = Path(__file__).resolve().parents[1] / "conf"


def group_options(group: str) -> list[str]:
    return sorted(p.stem for p in (CONF / group).glob("*.yaml"))


def compose_run(*overrides: str) -> RunConfig:
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose(config_name="config", overrides=list(overrides))
    cfg = OmegaConf.masked_copy(cfg, [k for k in cfg if k != "paths"])
    run = OmegaConf.to_object(OmegaConf.merge(OmegaConf.structured(RunConfig), cfg))
    assert isinstance(run, RunConfig)
    return run


@pytest.mark.parametrize("scenario", group_options("scenario"))
def test_every_scenario_composes_and_compiles(scenario: str) -> None:
    run = compose_run(f"scenario={scenario}")
    world = compile_scenario(load_scenario(run.scenario))
    assert world.name == scenario


@pytest.mark.parametrize("scenario", group_options("scenario"))
def test_scenario_group_selects_the_simulators_own_file(scenario: str) -> None:
    """conf/ only names a world; its data is the simulator's (envs/data/scenarios)."""
    entry = yaml.safe_load((CONF / "scenario" / f"{scenario}.yaml").read_text())
    assert entry == {"defaults": [f"/scenarios/{scenario}@_here_", "_self_"]}
    assert compose_run(f"scenario={scenario}").scenario == load_scenario(scenario)
    run = compose_run(f"scenario={scenario}", "scenario.start_hour=5")
    assert run.scenario.start_hour == 5  # keys of the world still override


@pytest.mark.parametrize("reward", group_options("reward"))
def test_every_reward_preset_reaches_the_kernel(reward: str) -> None:
    """The weights the kernel multiplies are the preset file's, term by term."""
    preset = yaml.safe_load((CONF / "reward" / f"{reward}.yaml").read_text())
    run = compose_run(f"reward={reward}")
    core = TwoTierCore(run.scenario, 1, config=run.two_tier, reward=run.reward)
    core.reset(seed=0)
    params = core._world[9]
    kernel = {
        "latency": params[K.P_W_LAT],
        "queueing": params[K.P_W_QUEUE],
        "slo_violation": params[K.P_W_SLO],
        "cost": params[K.P_W_COST],
        "carbon": params[K.P_W_CARBON],
        "term_cap": params[K.P_TERM_CAP],
    }
    assert kernel == preset


def test_overrides_reach_the_typed_config() -> None:
    run = compose_run("two_tier.learn=lb", "reward.carbon=2.0", "scenario=default")
    assert run.two_tier.learn.value == "lb" and run.reward.carbon == 2.0
    assert run.scenario.name == "default"


def test_reschedule_env_group_sets_its_env_and_learner() -> None:
    run = compose_run("env=reschedule", "reschedule.max_moves=50")
    assert run.env == "reschedule"
    assert run.reschedule.max_moves == 50
    assert run.policy.gamma == 0.99 and run.policy.ent_coef == 0.0
    assert compose_run().policy.gamma == 0.9  # the two-tier default is untouched


def test_fpi_two_tier_group_is_the_notebooks_learner_on_the_two_tier_env() -> None:
    """``env=two_tier_fpi``: the settings of the two-tier notebook's §7 learner."""
    run = compose_run("env=two_tier_fpi")
    plain = compose_run()
    assert run.env == "two_tier"
    assert run.policy.network == "two_tier_scorer_fpi"
    assert (run.policy.gamma, run.policy.gae_lambda) == (0.999, 0.95)
    assert run.two_tier.load_input and run.two_tier.train_reward == "differential"
    assert run.two_tier.train_reward_gamma == 0.999  # follows the learner's gamma
    changed = {"load_input", "train_reward", "train_reward_gamma"}
    for key in vars(plain.two_tier).keys() - changed:
        assert getattr(run.two_tier, key) == getattr(plain.two_tier, key), key
    overridden = compose_run("env=two_tier_fpi", "policy.gamma=0.99")
    assert overridden.policy.gamma == 0.99


def test_dynamic_reschedule_group_is_the_dynamic_env_on_a_horizon() -> None:
    """``env=reschedule_dynamic``: ReachRescheduleDynamic-v0's events, a fixed horizon.

    Every event setting is compared with the registered id's, so the two cannot drift
    apart; the learner is env=reschedule's.
    """
    from envs.reach import ENV_IDS

    run = compose_run("env=reschedule_dynamic")
    static = compose_run("env=reschedule")
    assert run.env == "reschedule" and run.policy == static.policy
    for key, value in ENV_IDS["ReachRescheduleDynamic-v0"].items():
        assert getattr(run.reschedule, key) == value, key
    assert run.reschedule.horizon and run.reschedule.horizon_reward == "average"
    assert run.reschedule.migration_cost_growth == "constant"
    assert run.reschedule.move_gains == static.reschedule.move_gains


def test_a_bad_override_names_the_key() -> None:
    with pytest.raises(
        (ConfigCompositionException, ValidationError), match=r"two_tier\.episode_length"
    ):
        compose_run("two_tier.episode_length=many")
    with pytest.raises(ConfigCompositionException, match=r"two_tier\.bogus"):
        compose_run("two_tier.bogus=1")  # a typo of an existing key


def test_sweep_sets_multirun() -> None:
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose(
            config_name="config",
            overrides=["experiment=pareto"],
            return_hydra_config=True,
        )
    assert str(cfg.hydra.mode) == "RunMode.MULTIRUN"
    assert "reward.carbon" in cfg.hydra.sweeper.params
