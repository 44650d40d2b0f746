"""The reward's per-type latency limits: the kernel charges them, the prior prices them.

``reward.limit_s`` / ``reward.limit_exceeded`` turn per-type tail limits into a
Lagrangian reward (issue 15, goal 2). The kernel's charge is checked against its
definition on the core's own per-step components; the learner's prior against the
limit-aware ``fpi_greedy`` rule, which it must start as.
"""

from __future__ import annotations

import dataclasses
from dataclasses import replace

import numpy as np
import pytest
import torch
from sb3_contrib import MaskablePPO

from envs import RewardConfig, TwoTierCore, TwoTierEnvConfig, make_region_vec_env
from envs.errors import ConfigError
from envs.scenario import TYPE_NODE_EXEC_S, TYPE_SLO_S, load_scenario
from envs.two_tier import kernels as K
from policies.config import PolicyConfig
from policies.factory import build_model
from policies.networks.two_tier import FpiGreedyPolicy

TYPES = ("web", "inference", "analytics", "personal-data")
LIMIT_FACTORS = np.array([0.6, 0.5, 0.4, 0.7])  # of each type's SLO: limits bite
PRICES = np.array([1.0, 2.0, 3.0, 4.0])


def carbon_reward(
    world_slo: np.ndarray | None = None, carbon: float = 1.0
) -> RewardConfig:
    """``reward=carbon``'s weights; with the SLOs, limits below them, priced."""
    limits = (
        {}
        if world_slo is None
        else dict(zip(TYPES, LIMIT_FACTORS * world_slo, strict=True))
    )
    prices = {} if world_slo is None else dict(zip(TYPES, PRICES, strict=True))
    return RewardConfig(
        1.0, 0.0, 1.0, 0.1, carbon, limit_s=limits, limit_exceeded=prices
    )


def slo_of(scenario: str = "small") -> np.ndarray:
    core = TwoTierCore(scenario, 1, ["eu-central"], TwoTierEnvConfig())
    assert core.world.type_names == TYPES
    return core.world.type_f[:, TYPE_SLO_S].copy()


def test_the_reward_charges_each_exceeded_limit_its_types_price() -> None:
    """Same world, same (random) decisions: rewards differ by the priced exceedances.

    Request by request, from the core's float64 components.
    """
    slo = slo_of()
    cfg = TwoTierEnvConfig(load_input=True)
    plain = TwoTierCore("small", 8, ["asia-east"], cfg, carbon_reward())
    priced = TwoTierCore("small", 8, ["asia-east"], cfg, carbon_reward(slo))
    plain.reset(seed=4)
    priced.reset(seed=4)
    rng = np.random.default_rng(0)
    charged = np.zeros(len(TYPES))
    for _ in range(300):
        np.testing.assert_array_equal(plain.obs, priced.obs)
        actions = np.array([rng.choice(np.flatnonzero(m)) for m in plain.mask])
        plain.step(actions)
        priced.step(actions)
        want, got = plain.comps[:, K.C_REWARD], priced.comps[:, K.C_REWARD]
        for b in range(plain.num_envs):
            row = plain.comps[b]
            if row[K.C_PLACED] <= 0:
                assert got[b] == want[b]
                continue
            k = int(row[K.C_TYPE])
            over = row[K.C_LATENCY] > LIMIT_FACTORS[k] * slo[k]
            assert got[b] == pytest.approx(want[b] - PRICES[k] * over, abs=1e-12)
            charged[k] += over
    assert np.all(charged > 0), charged  # every type's limit was exceeded and charged


def test_the_expected_signal_charges_the_chance_over_the_service_draw() -> None:
    """``limit_signal: expected`` charges the chance of exceeding over the service draw.

    Each placed request pays its type's price times P(latency > limit), the rest of
    its latency as drawn; scipy's Gamma law from the node's mean service, request by
    request. Everything else of the step is unchanged.
    """
    from scipy import stats

    slo = slo_of()
    cfg = TwoTierEnvConfig(load_input=True)
    drawn = TwoTierCore("small", 8, ["asia-east"], cfg, carbon_reward(slo))
    reward = replace(carbon_reward(slo), limit_signal="expected")
    smooth = TwoTierCore("small", 8, ["asia-east"], cfg, reward)
    plain = TwoTierCore("small", 8, ["asia-east"], cfg, carbon_reward())
    for core in (drawn, smooth, plain):
        core.reset(seed=4)
    world = plain.world
    shape = world.service_shape
    rng = np.random.default_rng(0)
    between = 0
    for _ in range(200):
        actions = np.array([rng.choice(np.flatnonzero(m)) for m in plain.mask])
        for core in (drawn, smooth, plain):
            core.step(actions)
        for b in range(plain.num_envs):
            row = plain.comps[b]
            if row[K.C_PLACED] <= 0:
                continue
            k, n = int(row[K.C_TYPE]), int(row[K.C_NODE])
            mean = world.type_node[k, n, TYPE_NODE_EXEC_S]
            slack = LIMIT_FACTORS[k] * slo[k] - (row[K.C_LATENCY] - row[K.C_SERVICE])
            chance = (
                float(stats.gamma(a=shape, scale=mean / shape).sf(slack))
                if slack > 0
                else 1.0
            )
            want = plain.comps[b, K.C_REWARD] - PRICES[k] * chance
            assert smooth.comps[b, K.C_REWARD] == pytest.approx(want, abs=1e-9)
            between += 0.01 < chance < 0.99
            np.testing.assert_array_equal(
                smooth.comps[b, : K.C_REWARD], row[: K.C_REWARD]
            )
    assert between >= 50, between  # the chance was neither 0 nor 1 on many requests


@pytest.mark.parametrize("signal", ["drawn", "expected"])
def test_types_without_a_limit_are_never_charged(signal: str) -> None:
    """One type priced: every other type's reward is the unpriced one (and finite).

    Service CV 0.5 (Gamma shape 4): the expected signal's tail function has no
    closed form there, so an unpriced type's infinite limit would reach it.
    """
    cfg = TwoTierEnvConfig(load_input=True)
    small = load_scenario("small")
    workload = dataclasses.replace(small.workload, service_time_cv=0.5)
    world = dataclasses.replace(small, workload=workload)
    one = replace(
        carbon_reward(),
        limit_s={"analytics": 0.2},
        limit_exceeded={"analytics": 3.0},
        limit_signal=signal,
    )
    priced = TwoTierCore(world, 8, ["asia-east"], cfg, one)
    plain = TwoTierCore(world, 8, ["asia-east"], cfg, carbon_reward())
    assert plain.world.service_shape == pytest.approx(4.0)
    for core in (priced, plain):
        core.reset(seed=6)
    rng = np.random.default_rng(1)
    charged = 0
    for _ in range(150):
        actions = np.array([rng.choice(np.flatnonzero(m)) for m in plain.mask])
        priced.step(actions)
        plain.step(actions)
        got, want = priced.comps[:, K.C_REWARD], plain.comps[:, K.C_REWARD]
        assert np.all(np.isfinite(got))
        placed = plain.comps[:, K.C_PLACED] > 0
        other = placed & (plain.comps[:, K.C_TYPE] != TYPES.index("analytics"))
        np.testing.assert_array_equal(got[other], want[other])
        charged += int(np.sum(got[placed] < want[placed]))
    assert charged > 0  # analytics was charged


@pytest.mark.parametrize(
    ("reward", "field"),
    [
        (RewardConfig(limit_s={"video": 0.1}), "reward.limit_s"),
        (RewardConfig(limit_s={"web": 0.0}), "reward.limit_s.web"),
        (RewardConfig(limit_s={"web": float("inf")}), "reward.limit_s.web"),
        (
            RewardConfig(limit_s={"web": 0.1}, limit_exceeded={"web": -1.0}),
            "reward.limit_exceeded.web",
        ),
        (RewardConfig(limit_exceeded={"analytics": 2.0}), "reward.limit_s.analytics"),
        (RewardConfig(limit_signal="smooth"), "reward.limit_signal"),
    ],
)
def test_bad_limit_terms_are_refused_naming_the_field(
    reward: RewardConfig, field: str
) -> None:
    with pytest.raises(ConfigError) as error:
        TwoTierCore("small", 1, ["eu-central"], TwoTierEnvConfig(), reward)
    assert error.value.field == field


def limit_learner(reward: RewardConfig) -> MaskablePPO:
    env = make_region_vec_env(
        "small",
        "asia-east",
        4,
        seed=2,
        config=TwoTierEnvConfig(load_input=True),
        reward=reward,
    )
    cfg = PolicyConfig(network="two_tier_scorer_fpi_wait", n_steps=64, batch_size=64)
    return build_model(env, cfg)


def test_the_learner_starts_as_the_rule_pricing_its_rewards_limits(tmp_path) -> None:
    """The prior is ``fpi_wait_greedy`` plus the reward's priced exceedance chances.

    Rows of a loaded run where pricing the limits changes the rule's choice; the
    untrained learner (entity heads zeroed) takes the priced rule's choice there,
    and keeps its limits through a checkpoint.
    """
    slo = slo_of()
    learner = limit_learner(carbon_reward(slo, carbon=4.0))  # carbon pulls far
    scorer = learner.policy.action_net
    for mlp in (scorer.region_mlp, scorer.node_mlp):
        torch.nn.init.zeros_(mlp[-1].weight)
        torch.nn.init.zeros_(mlp[-1].bias)
    core = learner.env.core
    priced = FpiGreedyPolicy(core, lb_wait=True)  # reads the core's reward limits
    unpriced = FpiGreedyPolicy(
        core, latency_limits_s=LIMIT_FACTORS * slo, limit_weight=0.0, lb_wait=True
    )
    explicit = FpiGreedyPolicy(
        core, latency_limits_s=LIMIT_FACTORS * slo, limit_weight=PRICES, lb_wait=True
    )
    learner.env.reset()
    differs = 0
    for _ in range(80):
        obs, masks = core.obs.copy(), core.action_masks().copy()
        np.testing.assert_allclose(
            priced.scores(obs, masks)[0], explicit.scores(obs, masks)[0], rtol=1e-6
        )
        want, _ = priced.predict(obs, action_masks=masks)
        plain, _ = unpriced.predict(obs, action_masks=masks)
        got, _ = learner.predict(obs, deterministic=True, action_masks=masks)
        np.testing.assert_array_equal(got, want)
        differs += int(np.sum(want != plain))
        learner.env.step(want)
    assert differs >= 10, differs  # the limits changed decisions the test compared
    learner.save(tmp_path / "policy.zip")
    loaded = MaskablePPO.load(tmp_path / "policy.zip", device="cpu")
    np.testing.assert_allclose(
        loaded.policy.action_net.limits_s.numpy(), LIMIT_FACTORS * slo, rtol=1e-6
    )
    np.testing.assert_array_equal(loaded.policy.action_net.limit_weights, PRICES)


def test_a_reward_without_limits_leaves_the_prior_as_it_was() -> None:
    scorer = limit_learner(carbon_reward()).policy.action_net
    assert scorer.limits_s is None and scorer.limit_weights is None
    assert "limits_s" not in scorer.state_dict()  # old checkpoints load strictly
