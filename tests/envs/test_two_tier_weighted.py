"""The weighted (expected-reward) heuristic against brute force, in and out of the simulator.

The rule scores each row by the expected reward of serving the request there; the
oracle recomputes that expectation independently (scipy's Gamma law, the latency
term by numerical integration of the survival function) and picks by brute force.
In the simulator, a weighted tier must decide as the oracle does on the observation
the agent sees, and the baseline policy as the oracle does on decoded observations.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy import special

from envs import RewardConfig, TwoTierCore, TwoTierEnvConfig
from envs.rng import seed_streams
from envs.two_tier import kernels as K
from envs.two_tier.heuristics import (
    LATENCY,
    LB_HEURISTICS,
    SCHEDULER_HEURISTICS,
    WEIGHTED,
    choose_node,
    choose_region,
    gamma_q,
    scoring_params,
    service_capped_mean,
    service_tail,
)
from envs.two_tier.layout import NODE_FEATURES, REGION_FEATURES
from policies.baselines import TwoTierHeuristicPolicy
from tests.envs.two_tier_oracle import (
    expected_penalty_oracle,
    grid_block,
    node_column,
    region_column,
    weighted_choices,
    weighted_node_scores,
    weighted_region_scores,
)

WEIGHT_NAMES = ("latency", "queueing", "slo_violation", "cost", "carbon")


def streams(n: int = 2) -> tuple[np.ndarray, np.ndarray]:
    return seed_streams(np.random.default_rng(0), n), np.zeros(n, dtype=np.int64)


def random_reward(rng: np.random.Generator) -> RewardConfig:
    """Weights on a coarse grid, some zero, and a cap that sometimes binds."""
    values = rng.choice([0.0, 0.25, 0.5, 1.0, 2.0], size=5)
    return RewardConfig(*values, term_cap=float(rng.choice([0.75, 1.5, 10.0])))


def weights_of(reward: RewardConfig) -> dict[str, float]:
    return {name: getattr(reward, name) for name in WEIGHT_NAMES}


# ------------------------------------------------------------------- the maths
@pytest.mark.parametrize("a", [0.25, 0.5, 1.0, 2.0, 3.0, 4.0, 11.1, 25.0, 100.0])
def test_gamma_q_equals_scipy(a: float) -> None:
    for x in np.concatenate([[0.0, 1e-8], np.geomspace(1e-4, 400.0, 120)]):
        assert gamma_q(a, x) == pytest.approx(special.gammaincc(a, x), abs=1e-12)


@pytest.mark.parametrize("shape", [0.0, 0.5, 1.0, 4.0])
def test_tail_and_capped_mean_equal_integration(shape: float) -> None:
    rng = np.random.default_rng(3)
    weights = dict.fromkeys(WEIGHT_NAMES, 0.0)
    for _ in range(60):
        mean, level = rng.uniform(0.01, 2.0), rng.uniform(0.01, 3.0)
        weights |= {"latency": 1.0, "slo_violation": 0.0}
        capped = expected_penalty_oracle(weights, level, shape, 0.0, 0, mean, 0, 0)
        assert service_capped_mean(mean, level, shape) == pytest.approx(
            capped, abs=1e-9
        )
        weights |= {"latency": 0.0, "slo_violation": 1.0}
        tail = expected_penalty_oracle(weights, 10.0, shape, 1.0 - level, 0, mean, 0, 0)
        assert service_tail(mean, level, shape) == pytest.approx(tail, abs=1e-12)


# ------------------------------------------------------------- on hand-built blocks
@pytest.mark.parametrize("shape", [0.0, 0.5, 1.0, 4.0])
def test_weighted_rules_pick_the_brute_force_rows(shape: float) -> None:
    rng = np.random.default_rng(int(shape * 10) + 1)
    rng_state, counter = streams()
    ties = none_valid = 0
    for _ in range(150):
        reward = random_reward(rng)
        scoring = scoring_params(reward, shape)
        weights, cap = weights_of(reward), reward.term_cap
        regions = grid_block(rng, int(rng.integers(1, 7)), REGION_FEATURES)
        scores = weighted_region_scores(regions, weights, cap, shape)
        allowed = weighted_choices(scores, regions[:, region_column("utilization")])
        got = choose_region(WEIGHTED, regions, rng_state, counter, 1, scoring)
        assert got in allowed, (regions, reward)
        nodes = grid_block(rng, int(rng.integers(1, 9)), NODE_FEATURES)
        rtt, transfer = (float(v) for v in rng.integers(0, 5, size=2) / 8)
        scores = weighted_node_scores(nodes, weights, cap, shape, rtt, transfer)
        allowed = weighted_choices(scores, nodes[:, node_column("utilization")])
        got = choose_node(
            WEIGHTED, nodes, rng_state, counter, 1, scoring, rtt, transfer
        )
        assert got in allowed, (nodes, reward, rtt, transfer)
        none_valid += allowed == {-1}
        ties += len(scores) > len(set(scores.values()))
    assert ties > 5 and none_valid > 2  # the tie-breaks and the empty case were run


def test_latency_greedy_is_the_special_case_of_latency_weights_only() -> None:
    """Weights (1, 0, 0, 0, 0), no cap: weighted = latency rule (in the origin region)."""
    rng = np.random.default_rng(9)
    rng_state, counter = streams()
    scoring = scoring_params(RewardConfig(1.0, 0, 0, 0, 0, term_cap=1e9), 1.0)
    for _ in range(400):
        nodes = grid_block(rng, int(rng.integers(1, 9)), NODE_FEATURES)
        assert choose_node(
            WEIGHTED, nodes, rng_state, counter, 0, scoring, 0.0, 0.0
        ) == choose_node(LATENCY, nodes, rng_state, counter, 0, scoring, 0.0, 0.0)
        regions = grid_block(rng, int(rng.integers(1, 7)), REGION_FEATURES)
        assert choose_region(
            WEIGHTED, regions, rng_state, counter, 0, scoring
        ) == choose_region(LATENCY, regions, rng_state, counter, 0, scoring)


def test_weighted_slo_term_avoids_the_node_likely_to_miss() -> None:
    """Equal means, but one node's wait leaves little slack: the tail decides."""
    nodes = np.zeros((2, NODE_FEATURES), dtype=np.float32)
    nodes[:, node_column("valid")] = 1.0
    nodes[0, [node_column("wait"), node_column("exec")]] = (0.5, 0.25)  # slack 0.5
    nodes[1, [node_column("wait"), node_column("exec")]] = (0.25, 0.5)  # same mean
    rng_state, counter = streams()
    mean_only = scoring_params(RewardConfig(1.0, 0, 0, 0, 0), 1.0)
    with_slo = scoring_params(RewardConfig(1.0, 0, 1.0, 0, 0), 1.0)
    # P(exec G > slack): node 0 exp(-0.5/0.25) = 0.135, node 1 exp(-0.75/0.5) = 0.223
    assert choose_node(WEIGHTED, nodes, rng_state, counter, 0, with_slo, 0, 0) == 0
    nodes[0, node_column("utilization")] = 0.5  # tie on the mean: utilisation decides
    assert choose_node(WEIGHTED, nodes, rng_state, counter, 0, mean_only, 0, 0) == 1


# ------------------------------------------------------------- inside the simulator
def _blocks(core: TwoTierCore, b: int) -> tuple[np.ndarray, np.ndarray]:
    lay = core.layout
    row = core.obs[b]
    regions = row[lay.region_offset : lay.node_offset].reshape(-1, REGION_FEATURES)
    nodes = row[lay.node_offset : lay.size].reshape(-1, NODE_FEATURES)
    return regions, nodes


REWARD = RewardConfig(1.0, 0.5, 1.0, 0.25, 1.0)


CARBON_HEAVY = RewardConfig(0.25, 0.0, 1.0, 0.25, 4.0)
"""Weights under which the balancer sends some requests to cleaner regions."""


def _pair(
    learn: str, reward: RewardConfig = REWARD, **heuristic: str
) -> tuple[TwoTierCore, TwoTierCore]:
    cores = []
    for config in (
        TwoTierEnvConfig(episode_length=10**6),
        TwoTierEnvConfig(learn=learn, episode_length=10**6, **heuristic),
    ):
        core = TwoTierCore("small", 3, ["eu-central"], config=config, reward=reward)
        core.reset(seed=31)
        cores.append(core)
    return cores[0], cores[1]


def _oracle_node(core: TwoTierCore, b: int) -> set[int]:
    regions, nodes = _blocks(core, b)
    q = int(np.flatnonzero(regions[:, region_column("is_selected")])[0])
    rtt, transfer = (float(regions[q, region_column(c)]) for c in ("rtt", "transfer"))
    scores = weighted_node_scores(
        nodes, weights_of(REWARD), REWARD.term_cap, 1.0, rtt, transfer
    )
    return weighted_choices(scores, nodes[:, node_column("utilization")])


def test_weighted_scheduler_tier_decides_as_the_oracle_on_its_observation() -> None:
    agent, heuristic = _pair("lb", scheduler_heuristic="weighted")
    rng = np.random.default_rng(8)
    remote = 0
    for _ in range(60):
        np.testing.assert_array_equal(agent.obs, heuristic.obs)
        regions = np.array([rng.choice(np.flatnonzero(m)) for m in heuristic.mask])
        agent.step(regions)
        heuristic.step(regions)
        nodes = np.empty(agent.num_envs, dtype=np.int64)
        for b in range(agent.num_envs):
            allowed = _oracle_node(agent, b)
            assert len(allowed) == 1, allowed  # no near-tie: a single answer
            nodes[b] = allowed.pop()
        remote += int((regions != 1).sum())
        agent.step(nodes)
        np.testing.assert_array_equal(agent.comps, heuristic.comps)
    assert remote > 20  # requests served away from the origin (RTT > 0) were checked


def test_weighted_load_balancer_tier_decides_as_the_oracle_on_its_observation() -> None:
    agent, heuristic = _pair("scheduler", CARBON_HEAVY, lb_heuristic="weighted")
    chosen = set()
    for _ in range(150):
        regions = np.empty(agent.num_envs, dtype=np.int64)
        for b in range(agent.num_envs):
            block = _blocks(agent, b)[0]
            scores = weighted_region_scores(
                block, weights_of(CARBON_HEAVY), CARBON_HEAVY.term_cap, 1.0
            )
            allowed = weighted_choices(scores, block[:, region_column("utilization")])
            assert len(allowed) == 1, allowed
            regions[b] = allowed.pop()
        chosen |= set(regions.tolist())
        agent.step(regions)
        np.testing.assert_array_equal(agent.obs, heuristic.obs)  # same region chosen
        nodes = heuristic.mask.argmax(axis=1)
        agent.step(nodes)
        heuristic.step(nodes)
        np.testing.assert_array_equal(agent.comps, heuristic.comps)
    assert len(chosen) > 1  # the weights sent some requests away from the origin


def test_weighted_background_is_the_rule_on_the_block_it_would_write() -> None:
    """Background ``weighted`` placement = the oracle on ``_fill_nodes``'s block."""
    config = TwoTierEnvConfig(background_scheduler="weighted")
    core = TwoTierCore("small", 2, ["eu-central"], config=config, reward=REWARD)
    core.reset(seed=5)
    (node_f, region_i, tn, reg_static, type_f) = core._world[:5]
    params, inv_cores, node_tpl = core._world[9], core._world[12], core._world[14]
    rng_state, counter = streams(core.num_envs)
    rng = np.random.default_rng(4)
    compared = 0
    for _ in range(12):
        for b in range(core.num_envs):
            t = core.fs[b, K.FS_T]
            for q in range(core.world.n_regions):
                for k in range(core.world.n_types):
                    n = K._heuristic_node(
                        WEIGHTED, b, q, q, k, t, region_i, node_f, tn, node_tpl,
                        type_f, inv_cores, reg_static, params, core.core_free,
                        core.node_dyn, core.reg_dyn, core.scratch, rng_state, counter,
                    )  # fmt: skip
                    block = core.scratch[b].reshape(-1, NODE_FEATURES)
                    rtt = float(np.float32(reg_static[k, q, q, K.RS_RTT]))
                    transfer = float(np.float32(reg_static[k, q, q, K.RS_TRANSFER]))
                    scores = weighted_node_scores(
                        block, weights_of(REWARD), REWARD.term_cap, 1.0, rtt, transfer
                    )
                    allowed = weighted_choices(
                        scores, block[:, node_column("utilization")]
                    )
                    assert n - region_i[q, 0] in allowed
                    compared += 1
        for _ in range(5):
            core.step(np.array([rng.choice(np.flatnonzero(m)) for m in core.mask]))
    assert compared > 250


def test_weighted_greedy_baseline_policy_decides_as_the_oracle() -> None:
    """The baseline reads the observation (both phases) and picks the oracle's row."""
    core = TwoTierCore("small", 3, ["eu-central"], reward=REWARD)
    core.reset(seed=12)
    policy = TwoTierHeuristicPolicy.named(
        "weighted_greedy", core.layout, scoring=core.scoring
    )
    phases = set()
    for _ in range(80):
        actions, _ = policy.predict(core.obs)
        for b in range(core.num_envs):
            regions = _blocks(core, b)[0]
            if core.obs[b, 0] > 0.5:
                scores = weighted_region_scores(
                    regions, weights_of(REWARD), REWARD.term_cap, 1.0
                )
                allowed = weighted_choices(
                    scores, regions[:, region_column("utilization")]
                )
                phases.add("lb")
            else:
                allowed = _oracle_node(core, b)
                phases.add("scheduler")
            assert actions[b] in allowed
        core.step(actions)
        assert not core.comps[:, K.C_INVALID].any()
    assert phases == {"lb", "scheduler"}


def test_weighted_needs_the_runs_scoring() -> None:
    core = TwoTierCore("small", 1, ["eu-central"])
    with pytest.raises(ValueError, match="scoring: the weighted rule needs"):
        TwoTierHeuristicPolicy.named("weighted_greedy", core.layout)
    with pytest.raises(ValueError, match="scoring: expected 7 values"):
        TwoTierHeuristicPolicy(core.layout, "weighted", "weighted", scoring=np.ones(3))
    assert "weighted" in LB_HEURISTICS and "weighted" in SCHEDULER_HEURISTICS
    np.testing.assert_array_equal(
        core._world[9][K.P_SCORING : K.N_PARAMS], core.scoring
    )
