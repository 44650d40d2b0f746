"""Prices that follow the learner: the env's reward and the prior move together.

``reward.limit_price_lr > 0`` (PPO-Lagrangian over federated rounds). The env's new
charge is checked against a core built with those prices from the start; the tally
that the server's update reads against the core's own per-step components; the prior
against a learner built at the new prices, saved and loaded.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch
from sb3_contrib import MaskablePPO

from envs import RewardConfig, TwoTierCore, TwoTierEnvConfig
from envs.errors import ConfigError
from envs.two_tier import kernels as K
from policies.limit_prices import set_limit_prices, start_counting

from .test_two_tier_limit_reward import (
    LIMIT_FACTORS,
    TYPES,
    carbon_reward,
    limit_learner,
    slo_of,
)

NEW_PRICES = np.array([7.0, 0.5, 0.0, 12.0])


def random_steps(cores: list[TwoTierCore], steps: int, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    for _ in range(steps):
        actions = np.array([rng.choice(np.flatnonzero(m)) for m in cores[0].mask])
        for core in cores:
            core.step(actions)


def test_new_prices_charge_as_a_core_built_with_them() -> None:
    """After ``set_limit_prices``, rewards equal a core's started at those prices."""
    slo = slo_of()
    cfg = TwoTierEnvConfig(load_input=True)
    moved = TwoTierCore("small", 8, ["asia-east"], cfg, carbon_reward(slo))
    built_prices = dict(zip(TYPES, NEW_PRICES, strict=True))
    built = TwoTierCore(
        "small",
        8,
        ["asia-east"],
        cfg,
        replace(carbon_reward(slo), limit_exceeded=built_prices),
    )
    moved.set_limit_prices(NEW_PRICES)
    for core in (moved, built):
        core.reset(seed=3)
    rng = np.random.default_rng(1)
    placed = 0
    for _ in range(200):
        actions = np.array([rng.choice(np.flatnonzero(m)) for m in moved.mask])
        moved.step(actions)
        built.step(actions)
        np.testing.assert_array_equal(moved.comps, built.comps)
        placed += int(np.sum(moved.comps[:, K.C_PLACED] > 0))
    assert placed > 500
    np.testing.assert_array_equal(moved.limit_weights, NEW_PRICES)


def test_the_tally_counts_each_placed_request_against_its_types_limit() -> None:
    slo = slo_of()
    core = TwoTierCore(
        "small", 8, ["asia-east"], TwoTierEnvConfig(), carbon_reward(slo)
    )
    core.reset(seed=5)
    random_steps([core], 20)  # not counted: before the tally starts
    core.reset_limit_tally()
    want = np.zeros((2, len(TYPES)))
    rng = np.random.default_rng(2)
    for _ in range(300):
        actions = np.array([rng.choice(np.flatnonzero(m)) for m in core.mask])
        core.step(actions)
        for b in range(core.num_envs):
            info = core.step_info(b)
            if info["placed"]:
                k = TYPES.index(info["request_type"])
                want[0, k] += 1
                want[1, k] += info["latency_s"] > LIMIT_FACTORS[k] * slo[k]
    np.testing.assert_array_equal(core.limit_tally, want)
    assert np.all(want[1] > 0) and np.all(want[1] < want[0])  # both outcomes seen
    core.count_limits = False
    random_steps([core], 20)
    np.testing.assert_array_equal(core.limit_tally, want)  # stopped


@pytest.mark.parametrize(
    ("prices", "message"),
    [
        (np.array([1.0, 2.0]), "expected 4 finite prices"),
        (np.array([1.0, -2.0, 0.0, 0.0]), "expected 4 finite prices"),
        (np.array([1.0, np.nan, 0.0, 0.0]), "expected 4 finite prices"),
    ],
)
def test_bad_prices_are_refused(prices: np.ndarray, message: str) -> None:
    core = TwoTierCore(
        "small", 1, ["eu-central"], TwoTierEnvConfig(), carbon_reward(slo_of())
    )
    with pytest.raises(ValueError, match=message):
        core.set_limit_prices(prices)


def test_a_type_without_a_limit_cannot_be_priced() -> None:
    reward = RewardConfig(limit_s={"web": 0.1}, limit_exceeded={"web": 1.0})
    core = TwoTierCore("small", 1, ["eu-central"], TwoTierEnvConfig(), reward)
    with pytest.raises(ValueError, match="without a limit"):
        core.set_limit_prices(np.array([1.0, 1.0, 0.0, 0.0]))


@pytest.mark.parametrize(
    ("reward", "field"),
    [
        (RewardConfig(limit_share=0.0), "reward.limit_share"),
        (RewardConfig(limit_share=1.5), "reward.limit_share"),
        (RewardConfig(limit_price_lr=-1.0), "reward.limit_price_lr"),
        (RewardConfig(limit_price_lr=float("inf")), "reward.limit_price_lr"),
        (RewardConfig(limit_price_lr=1.0), "reward.limit_s"),
        (
            RewardConfig(
                limit_s={"web": 0.1, "analytics": 1.0},
                limit_exceeded={"web": 2.0},
                limit_price_lr=1.0,
            ),
            "reward.limit_exceeded.analytics",
        ),
    ],
)
def test_bad_dual_settings_are_refused_naming_the_field(
    reward: RewardConfig, field: str
) -> None:
    with pytest.raises(ConfigError) as error:
        TwoTierCore("small", 1, ["eu-central"], TwoTierEnvConfig(), reward)
    assert error.value.field == field


def test_the_prior_follows_the_prices_and_a_checkpoint_keeps_them(tmp_path) -> None:
    """Moved to new prices, the prior scores as one built at them, saved or not."""
    slo = slo_of()
    moved = limit_learner(carbon_reward(slo, carbon=4.0))
    old = limit_learner(carbon_reward(slo, carbon=4.0)).policy.action_net
    built_reward = replace(
        carbon_reward(slo, carbon=4.0),
        limit_exceeded=dict(zip(TYPES, NEW_PRICES, strict=True)),
    )
    built = limit_learner(built_reward)
    set_limit_prices(moved, moved.env, NEW_PRICES)
    assert moved.env.core.limit_weights.tolist() == NEW_PRICES.tolist()
    moved.save(tmp_path / "moved.zip")
    loaded = MaskablePPO.load(tmp_path / "moved.zip", device="cpu")
    np.testing.assert_array_equal(loaded.policy.action_net.limit_weights, NEW_PRICES)
    assert loaded.policy_kwargs["limit_weights"] == NEW_PRICES.tolist()
    built.env.reset()
    core = built.env.core
    differs = 0
    for _ in range(60):
        obs = torch.as_tensor(core.obs.copy())
        want = built.policy.action_net.penalties(obs)
        for policy in (moved.policy, loaded.policy):
            got = policy.action_net.penalties(obs)
            torch.testing.assert_close(got, want)
        differs += int(not torch.allclose(old.penalties(obs)[0], want[0]))
        built.env.step(np.array([np.flatnonzero(m)[0] for m in core.mask]))
    assert differs >= 10, differs  # the prices changed the prior's scores


def test_counting_starts_afresh_each_round() -> None:
    learner = limit_learner(carbon_reward(slo_of()))
    core = start_counting(learner.env)
    learner.env.reset()
    learner.env.step(np.array([np.flatnonzero(m)[0] for m in core.mask]))
    learner.env.step(np.array([np.flatnonzero(m)[0] for m in core.mask]))
    assert core.limit_tally[0].sum() > 0
    assert start_counting(learner.env) is core
    assert core.limit_tally.sum() == 0 and core.count_limits
