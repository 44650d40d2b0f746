"""Gymnasium/SB3 conformance, determinism, pickling and masks of the two-tier envs."""

from __future__ import annotations

import copy
import pickle

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env as gym_check_env

import envs
from envs import TWO_TIER_IDS, TwoTierEnvConfig, make_region_env, make_region_vec_env

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
def test_gymnasium_check_env(env_id: str) -> None:
    env = gym.make(env_id, scenario="small", region="eu-central")
    gym_check_env(env.unwrapped, skip_render_check=True)


@pytest.mark.parametrize("env_id", ENV_IDS, ids=ENV_IDS)
def test_sb3_check_env(env_id: str) -> None:
    from stable_baselines3.common.env_checker import check_env

    check_env(gym.make(env_id, scenario="small").unwrapped, warn=True)


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
    env = gym.make(env_id, scenario="small", region="asia-east").unwrapped
    env.reset(seed=3)
    for action in [int(np.flatnonzero(env.action_masks())[0])] * 10:
        env.step(action)
    for clone in (pickle.loads(pickle.dumps(env)), copy.deepcopy(env)):
        action = int(np.flatnonzero(env.action_masks())[-1])
        expected = env.unwrapped.core.obs.copy(), env.action_masks()
        np.testing.assert_array_equal(clone.core.obs, expected[0])
        np.testing.assert_array_equal(clone.action_masks(), expected[1])
        out_clone = clone.step(action)
        out_env = copy.deepcopy(env).step(action)
        np.testing.assert_array_equal(out_clone[0], out_env[0])
        assert out_clone[1] == out_env[1]


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


def test_masked_action_falls_back_to_heuristic_with_penalty() -> None:
    env = make_region_env("default", "south-america", seed=0).unwrapped
    with pytest.raises(ValueError, match="outside the action space"):
        env.step(env.action_space.n)
    # LB phase: send the request to South America, whose 12 nodes leave 8 padded slots.
    env.step(env.core.world.region_ids.index("south-america"))
    mask = env.action_masks()
    assert not mask[12:].any()
    _, reward, _, _, info = env.step(15)
    assert info["invalid_action"] is True and info["placed"] is True
    assert info["node"].startswith("south-america/")
    assert reward == pytest.approx(info["reward"])
    assert reward <= -1.0  # the default penalty, on top of a non-positive reward


def test_info_carries_every_raw_component() -> None:
    env = make_region_env("small", "us-east", seed=0)
    _, info = env.reset(seed=0)
    keys = set(envs.two_tier.kernels.COMPONENT_NAMES) | {"action_mask", "phase"}
    placed = 0
    for _ in range(50):
        _, reward, _, _, info = env.step(int(np.flatnonzero(info["action_mask"])[0]))
        assert keys <= set(info)
        if info["placed"]:
            placed += 1
            assert reward == pytest.approx(info["reward"])
            assert info["latency_s"] == pytest.approx(
                info["rtt_s"]
                + info["transfer_s"]
                + info["queue_wait_s"]
                + info["service_s"]
            )
    assert placed == 25  # learn=both: an LB step, then a scheduler step that places


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
