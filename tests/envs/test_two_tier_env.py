"""Gymnasium/SB3 conformance, determinism, pickling and masks of the two-tier envs."""

from __future__ import annotations

import copy
import pickle
import warnings
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env as gym_check_env
from gymnasium.utils.env_checker import data_equivalence
from stable_baselines3.common.env_checker import check_env as sb3_check_env

import envs
from envs import (
    TWO_TIER_IDS,
    RewardConfig,
    TwoTierEnvConfig,
    load_scenario,
    make_region_env,
    make_region_vec_env,
)
from envs.scenario import TYPE_CARBON_REF, TYPE_COST_REF
from envs.units import parse_duration

ENV_IDS = sorted(TWO_TIER_IDS.values())


def rollout(env: gym.Env, seed: int, steps: int) -> tuple[np.ndarray, np.ndarray]:
    obs, info = env.reset(seed=seed)
    rng = np.random.default_rng(seed)
    observations, rewards = [obs], []
    for _ in range(steps):
        action = rng.choice(np.flatnonzero(info["action_mask"]))
        obs, reward, terminated, truncated, info = env.step(action)
        observations.append(obs)
        rewards.append(reward)
        if terminated or truncated:
            obs, info = env.reset()
    return np.array(observations), np.array(rewards)


@pytest.mark.parametrize("env_id", ENV_IDS, ids=ENV_IDS)
def test_gymnasium_and_sb3_checkers(env_id: str) -> None:
    for region in ("eu-central", None):  # a federated client's env, and every region
        env = gym.make(env_id, scenario="small", region=region)
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # any checker warning fails the test
            gym_check_env(env.unwrapped, skip_render_check=True)
            sb3_check_env(env.unwrapped, warn=True)


@pytest.mark.parametrize("env_id", ENV_IDS, ids=ENV_IDS)
def test_same_seed_same_rollout(env_id: str) -> None:
    a = gym.make(env_id, scenario="small", region="us-east")
    b = gym.make(env_id, scenario="small", region="us-east")
    obs_a, rew_a = rollout(a, seed=7, steps=300)
    obs_b, rew_b = rollout(b, seed=7, steps=300)
    np.testing.assert_array_equal(obs_a, obs_b)
    np.testing.assert_array_equal(rew_a, rew_b)
    obs_c, _ = rollout(b, seed=8, steps=300)
    assert not np.array_equal(obs_a, obs_c)


@pytest.mark.parametrize("env_id", ENV_IDS, ids=ENV_IDS)
def test_pickle_and_deepcopy_round_trip(env_id: str) -> None:
    """A clone continues exactly as the original it was taken from."""
    for copier in (lambda e: pickle.loads(pickle.dumps(e)), copy.deepcopy):
        env = gym.make(env_id, scenario="small", region="asia-east").unwrapped
        env.reset(seed=3)
        for _ in range(10):
            env.step(int(np.flatnonzero(env.action_masks())[0]))
        clone = copier(env)
        for _ in range(30):
            action = int(np.flatnonzero(env.action_masks())[-1])
            assert data_equivalence(env.step(action), clone.step(action), exact=True)


def test_registered_ids_and_spaces_equal_across_regions() -> None:
    shapes = {
        region: make_region_env("default", region, seed=0).observation_space.shape
        for region in ("us-east", "south-america", "india")
    }
    assert len(set(shapes.values())) == 1
    actions = {
        region: make_region_env("default", region, seed=0).action_space.n
        for region in ("us-east", "south-america")
    }
    assert len(set(actions.values())) == 1
    assert set(ENV_IDS) <= set(gym.registry)


def test_region_envs_are_different_worlds() -> None:
    """A region's env sees its own traffic: origins, RTTs and carbon differ."""
    stats = {}
    for region in ("us-east", "eu-central", "asia-east"):
        env = make_region_env("small", region, seed=1)
        _, info = env.reset(seed=1)
        origins, carbon = set(), []
        for _ in range(400):
            action = int(np.flatnonzero(info["action_mask"])[0])
            _, _, _, _, info = env.step(action)
            if info["placed"]:
                origins.add(info["origin"])
                carbon.append(info["carbon_g"] / max(info["energy_j"], 1e-12))
        stats[region] = (origins, np.mean(carbon))
    for region, (origins, _) in stats.items():
        assert origins == {region}
    assert len({round(c, 9) for _, c in stats.values()}) == 3


WEIGHTS = RewardConfig(
    latency=1.3, queueing=0.7, slo_violation=2.1, cost=0.4, carbon=0.9, term_cap=3.0
)  # distinct, so a term with the wrong weight shows


def expected_reward(env: gym.Env, info: dict[str, Any], penalty: float) -> float:
    """The documented reward, from the step's raw components and the weights.

    SLOs come from the scenario's spec; ``C_ref`` and ``G_ref`` are the compiled
    normalisers of the request type (their definition is in ``RewardConfig``).
    """
    invalid = penalty if info["invalid_action"] else 0.0
    if not info["placed"]:
        return -invalid
    core = env.unwrapped.core
    spec = {t.name: t for t in load_scenario(core.scenario).request_types}
    slo = parse_duration(spec[info["request_type"]].slo, "slo")
    k = core.world.type_names.index(info["request_type"])
    cost_ref = core.world.type_f[k, TYPE_COST_REF]
    carbon_ref = core.world.type_f[k, TYPE_CARBON_REF]
    w, cap = core.reward_config, core.reward_config.term_cap
    assert info["slo_violated"] == (info["latency_s"] > slo)
    return -(
        w.latency * min(info["latency_s"] / slo, cap)
        + w.queueing * min(info["queue_wait_s"] / slo, cap)
        + w.slo_violation * float(info["latency_s"] > slo)
        + w.cost * min(info["cost_usd"] / cost_ref, cap)
        + w.carbon * min(info["carbon_g"] / carbon_ref, cap)
        + invalid
    )


def test_masked_action_falls_back_to_heuristic_with_penalty() -> None:
    config = TwoTierEnvConfig(invalid_action_penalty=1.5)
    env = make_region_env("default", "south-america", 0, config, WEIGHTS).unwrapped
    with pytest.raises(ValueError, match="outside the action space"):
        env.step(env.action_space.n)
    # LB phase: send the request to South America, whose 12 nodes leave 8 padded slots.
    _, reward, _, _, info = env.step(env.core.world.region_ids.index("south-america"))
    assert reward == 0.0 and not info["placed"]
    mask = env.action_masks()
    assert not mask[12:].any()
    _, reward, _, _, info = env.step(15)
    assert info["invalid_action"] is True and info["placed"] is True
    assert info["node"].startswith("south-america/")
    assert reward == pytest.approx(expected_reward(env, info, 1.5), rel=1e-6)
    assert reward <= -1.5


def test_reward_is_the_weighted_sum_of_the_raw_components() -> None:
    env = make_region_env("small", "us-east", seed=0, reward=WEIGHTS)
    _, info = env.reset(seed=0)
    keys = set(envs.two_tier.kernels.COMPONENT_NAMES) | {"action_mask", "phase"}
    placed = violated = 0
    rng = np.random.default_rng(0)
    for _ in range(400):
        action = rng.choice(np.flatnonzero(info["action_mask"]))
        _, reward, _, _, info = env.step(action)
        assert keys <= set(info)
        assert reward == pytest.approx(expected_reward(env, info, 1.0), rel=1e-6)
        if info["placed"]:
            placed += 1
            violated += info["slo_violated"]
            assert info["latency_s"] == pytest.approx(
                info["rtt_s"]
                + info["transfer_s"]
                + info["queue_wait_s"]
                + info["service_s"]
            )
    assert placed == 200  # learn=both: an LB step, then a scheduler step that places
    assert violated > 0  # the SLO term was exercised


def test_vec_env_matches_masks_and_reports_episodes() -> None:
    config = TwoTierEnvConfig(episode_length=32)
    venv = make_region_vec_env("small", "eu-central", n_envs=4, seed=5, config=config)
    venv.reset()
    episodes = 0
    for _ in range(64):
        masks = np.stack(venv.env_method("action_masks"))
        assert masks.any(axis=1).all()
        actions = masks.argmax(axis=1)
        _, _, dones, infos = venv.step(actions)
        for done, info in zip(dones, infos, strict=True):
            if done:
                episodes += 1
                assert info["episode"]["l"] == 32
                assert "terminal_observation" in info
    assert episodes == 8
