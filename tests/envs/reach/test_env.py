"""The Gymnasium env: checkers on every id, determinism, pickling, episodes, rewards."""

from __future__ import annotations

import copy
import pickle
import warnings
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env as gymnasium_check_env
from gymnasium.utils.env_checker import data_equivalence
from stable_baselines3.common.env_checker import check_env as sb3_check_env

from envs.reach import ENV_IDS
from envs.reach.env import ReachRescheduleEnv


@pytest.mark.parametrize("env_id", list(ENV_IDS), ids=list(ENV_IDS))
def test_gymnasium_and_sb3_checkers(env_id: str) -> None:
    env = gym.make(env_id)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # any checker warning fails the test
        gymnasium_check_env(env.unwrapped)
        sb3_check_env(env.unwrapped)


def _rollout(env: gym.Env[Any, Any], seed: int, steps: int) -> list[Any]:
    """Random valid actions from a policy seeded like the env; everything recorded."""
    rng = np.random.default_rng(seed)
    obs, info = env.reset(seed=seed)
    trace: list[Any] = [obs, info]
    for _ in range(steps):
        action = int(rng.choice(np.flatnonzero(info["action_mask"])))
        obs, reward, terminated, truncated, info = env.step(action)
        trace += [obs, reward, terminated, truncated, info]
        if terminated or truncated:
            obs, info = env.reset()
            trace += [obs, info]
    return trace


@pytest.mark.parametrize("env_id", list(ENV_IDS), ids=list(ENV_IDS))
def test_same_seed_same_rollout(env_id: str) -> None:
    first = _rollout(gym.make(env_id), seed=7, steps=150)
    second = _rollout(gym.make(env_id), seed=7, steps=150)
    assert data_equivalence(first, second, exact=True)
    other = _rollout(gym.make(env_id), seed=8, steps=150)
    assert not data_equivalence(first, other)


@pytest.mark.parametrize("env_id", list(ENV_IDS), ids=list(ENV_IDS))
def test_pickle_and_deepcopy_round_trip(env_id: str) -> None:
    env = gym.make(env_id)
    env.reset(seed=3)
    for copier in (lambda e: pickle.loads(pickle.dumps(e)), copy.deepcopy):
        clone = copier(env)
        for _ in range(5):
            mask = env.unwrapped.action_masks()  # type: ignore[attr-defined]
            action = int(np.flatnonzero(mask)[0])
            assert data_equivalence(env.step(action), clone.step(action), exact=True)


def test_masks_in_info_match_action_masks_and_stop_is_valid() -> None:
    env = gym.make("ReachReschedule-v0")
    _, info = env.reset(seed=0)
    unwrapped: ReachRescheduleEnv = env.unwrapped  # type: ignore[assignment]
    for _ in range(20):
        mask = unwrapped.action_masks()
        assert np.array_equal(mask, info["action_mask"])
        assert mask[-1] and mask.dtype == np.bool_
        action = int(np.flatnonzero(mask)[0])
        _, _, terminated, truncated, info = env.step(action)
        assert not (terminated or truncated)


def test_stop_terminates_with_zero_reward() -> None:
    env = gym.make("ReachReschedule-v0")
    env.reset(seed=0)
    stop = env.action_space.n - 1  # type: ignore[attr-defined]
    _, reward, terminated, truncated, info = env.step(stop)
    assert (reward, terminated, truncated) == (0.0, True, False)
    assert info["is_stop"] and not info["moved"]


def test_truncation_after_max_moves_and_growing_migration_cost() -> None:
    env = gym.make("ReachReschedule-v0", max_moves=5, migration_cost=0.5)
    _, info = env.reset(seed=1)
    costs = []
    for move in range(1, 6):
        action = int(np.flatnonzero(info["action_mask"][:-1])[0])
        _, reward, terminated, truncated, info = env.step(action)
        costs.append(info["migration_cost"])
        assert reward == pytest.approx(info["latency_drop"] - info["migration_cost"])
        assert info["latency_drop"] == pytest.approx(
            info["latency_before"] - info["latency_after"]
        )
        assert terminated is False
        assert truncated is (move == 5)
    # REACH 6aa794e: penalty x moves so far, none on the final step
    assert costs == pytest.approx([0.5, 1.0, 1.5, 2.0, 0.0])


def test_constant_migration_cost_and_slo_penalty() -> None:
    env = gym.make(
        "ReachReschedule-v0",
        migration_cost=1.25,
        migration_cost_growth="constant",
        slo_penalty=10.0,
    )
    _, info = env.reset(seed=2)
    for _ in range(3):
        action = int(np.flatnonzero(info["action_mask"][:-1])[0])
        _, reward, _, _, info = env.step(action)
        assert info["migration_cost"] == 1.25
        assert info["slo_penalty"] == pytest.approx(10.0 * info["slo_violation"])
        expected = info["latency_drop"] - 1.25 - info["slo_penalty"]
        assert reward == pytest.approx(expected)


def test_masked_action_moves_nothing() -> None:
    env = gym.make("ReachReschedule-v0")
    _, info = env.reset(seed=0)
    invalid = int(np.flatnonzero(~info["action_mask"])[0])
    before = env.unwrapped.core.pod_nodes(0)  # type: ignore[attr-defined]
    _, _, _, _, info = env.step(invalid)
    assert info["invalid_action"] and not info["moved"] and info["latency_drop"] == 0
    assert np.array_equal(before, env.unwrapped.core.pod_nodes(0))  # type: ignore[attr-defined]


def test_reach_dict_observation_keys_and_units() -> None:
    env = gym.make("ReachRescheduleDict-v0")
    obs, _ = env.reset(seed=0)
    assert set(obs) == {
        "Node_cpu_availability", "Node_memory_availability", "Pod_node_id",
        "Node_layer", "Layer_latency", "time_step",
    }  # fmt: skip
    core = env.unwrapped.core  # type: ignore[attr-defined]
    assert np.allclose(obs["Node_cpu_availability"], core.node_resources(0)["cpu_free"])
    assert np.array_equal(obs["Pod_node_id"], core.pod_nodes(0) + 1)
    assert list(obs["Node_layer"]) == [0, 0, 1, 1, 1, 1, 2]
    assert obs["time_step"][0] == 0
    layer = core.layer_latency(0)
    assert obs["Layer_latency"][0] == pytest.approx(layer[2, 0])
    assert 40.0 <= obs["Layer_latency"][0] <= 180.0  # client->cloud range of 7-21


def test_reach_exact_bounds_and_testbed_keys() -> None:
    env = ReachRescheduleEnv(
        observation="reach", reach_keys="testbed", reach_exact_bounds=True
    )
    space = env.observation_space
    assert isinstance(space, gym.spaces.Dict)
    assert set(space.spaces) == {
        "Node_cpu_availability", "Node_memory_availability", "Pod_node_id",
    }  # fmt: skip
    assert space["Node_memory_availability"].high.max() == 16.0  # REACH's nominal bound
    assert np.array_equal(space["Pod_node_id"].nvec, np.full(21, 8))


def test_padding_fixes_shapes_across_cluster_sizes() -> None:
    env = ReachRescheduleEnv(max_nodes=12, max_pods=40)
    assert env.action_space.n == 12 * 40 + 1
    _, info = env.reset(seed=0)
    mask = info["action_mask"].reshape(-1)[:-1].reshape(12, 40)
    assert not mask[7:].any() and not mask[:, 21:].any()
    rows = env.core.obs[0]
    assert rows.shape == env.observation_space.shape


def test_invalid_settings_name_the_field() -> None:
    with pytest.raises(
        ValueError, match=r"RescheduleConfig\.placement: expected one of"
    ):
        ReachRescheduleEnv(placement="spread")
    with pytest.raises(ValueError, match=r"max_nodes/max_pods: expected at least"):
        ReachRescheduleEnv(max_nodes=3)
