"""The 7 load balancers and 7 schedulers against brute force, in and out of the simulator.

Every baseline table compares against these heuristics, so each is checked on small
hand-built blocks against :mod:`tests.envs.two_tier_oracle` (a plain ``min`` over the
rows, or the set a random rule draws from), then inside the simulator: a heuristic
tier must decide as the oracle does on the observation the agent would see, and the
background placement must be the scheduler rule on the block it would write.
"""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from envs import TwoTierCore, TwoTierEnvConfig
from envs.rng import seed_streams
from envs.two_tier import kernels as K
from envs.two_tier.heuristics import (
    LATENCY,
    LB_HEURISTICS,
    LEAST_LOADED,
    N_SCORING,
    SCHEDULER_HEURISTICS,
)
from envs.two_tier.heuristics import choose_node as choose_node_scored
from envs.two_tier.heuristics import choose_region as choose_region_scored
from envs.two_tier.layout import NODE_FEATURES, REGION_FEATURES
from tests.envs.two_tier_oracle import (
    grid_block,
    kube_default_set,
    node_column,
    node_oracle,
    region_column,
    region_oracle,
    round_robin_oracle,
)

DETERMINISTIC_LB = ["local", "least_loaded", "latency", "cost", "carbon"]
DETERMINISTIC_SCHED = ["least_loaded", "latency", "cost", "carbon"]
NO_SCORING = np.zeros(N_SCORING)  # read by the weighted rule only


def choose_region(mode: int, block: np.ndarray, *stream: object) -> int:
    """The chooser with the scoring vector the rules here never read."""
    return int(choose_region_scored(mode, block, *stream, NO_SCORING))


def choose_node(mode: int, block: np.ndarray, *stream: object) -> int:
    """The chooser with the scoring and route the rules here never read."""
    return int(choose_node_scored(mode, block, *stream, NO_SCORING, 0.0, 0.0))


def streams(n: int = 2, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    return seed_streams(np.random.default_rng(seed), n), np.zeros(n, dtype=np.int64)


def region_block(rng: np.random.Generator) -> np.ndarray:
    rows = int(rng.integers(1, 7))
    block = grid_block(rng, rows, REGION_FEATURES)
    block[:, region_column("is_origin")] = 0.0
    block[int(rng.integers(rows)), region_column("is_origin")] = 1.0
    return block


def node_block(rng: np.random.Generator) -> np.ndarray:
    return grid_block(rng, int(rng.integers(1, 9)), NODE_FEATURES)


# ------------------------------------------------------------ on hand-built blocks
@pytest.mark.parametrize("mode", DETERMINISTIC_LB)
def test_deterministic_load_balancers_pick_the_brute_force_region(mode: str) -> None:
    rng = np.random.default_rng(1)
    rng_state, counter = streams()
    ties = none_valid = 0
    for _ in range(600):
        block = region_block(rng)
        expected = region_oracle(mode, block)
        got = choose_region(LB_HEURISTICS[mode], block, rng_state, counter, 1)
        assert got == expected, (mode, block)
        none_valid += expected == -1
        ties += _tied(block, mode, "lb")
    assert ties > 20 and none_valid > 5  # the tie-breaks and the empty case were run


@pytest.mark.parametrize("mode", DETERMINISTIC_SCHED)
def test_deterministic_schedulers_pick_the_brute_force_node(mode: str) -> None:
    rng = np.random.default_rng(2)
    rng_state, counter = streams()
    ties = none_valid = 0
    for _ in range(600):
        block = node_block(rng)
        expected = node_oracle(mode, block)
        got = choose_node(SCHEDULER_HEURISTICS[mode], block, rng_state, counter, 1)
        assert got == expected, (mode, block)
        none_valid += expected == -1
        ties += _tied(block, mode, "scheduler")
    assert ties > 20 and none_valid > 5


def _tied(block: np.ndarray, mode: str, tier: str) -> bool:
    """Whether two valid rows share the primary score (so the tie-break decided)."""
    if tier == "lb":
        primary = {
            "local": "rtt",
            "least_loaded": "utilization",
            "cost": "cost",
            "carbon": "carbon",
        }
        col = region_column(primary.get(mode, "rtt"))
        score = block[:, col].astype(float)
        if mode == "latency":
            score = score + block[:, region_column("transfer")]
            score = score + block[:, region_column("best_completion")]
    else:
        primary = {"least_loaded": "wait", "cost": "cost", "carbon": "carbon"}
        score = block[:, node_column(primary.get(mode, "wait"))].astype(float)
        if mode == "latency":
            score = score + block[:, node_column("exec")]
    valid = score[block[:, 0] > 0]
    return bool(valid.size > 1 and (valid == valid.min()).sum() > 1)


@pytest.mark.parametrize("tier", ["lb", "scheduler"])
def test_random_draws_uniformly_from_the_valid_rows_only(tier: str) -> None:
    width = REGION_FEATURES if tier == "lb" else NODE_FEATURES
    block = np.zeros((6, width), dtype=np.float32)
    block[[0, 2, 3, 5], 0] = 1.0
    choose = choose_region if tier == "lb" else choose_node
    rng_state, counter = streams(3, seed=4)
    draws = 12_000
    counts = Counter(choose(2, block, rng_state, counter, 2) for _ in range(draws))
    assert set(counts) == {0, 2, 3, 5}
    p = 1 / 4
    sigma = (draws * p * (1 - p)) ** 0.5
    for row in (0, 2, 3, 5):
        assert abs(counts[row] - draws * p) < 5 * sigma, counts
    none = np.zeros((3, width), dtype=np.float32)
    assert choose(2, none, rng_state, counter, 0) == -1


@pytest.mark.parametrize("tier", ["lb", "scheduler"])
def test_round_robin_cycles_through_the_valid_rows(tier: str) -> None:
    width = REGION_FEATURES if tier == "lb" else NODE_FEATURES
    choose = choose_region if tier == "lb" else choose_node
    rng = np.random.default_rng(5)
    rng_state, counter = streams(2)
    pointer = 0  # the per-environment counter starts at 0
    for _ in range(300):
        block = grid_block(rng, 5, width, valid_share=0.6)  # validity changes too
        expected, after = round_robin_oracle(block, pointer)
        assert choose(3, block, rng_state, counter, 1) == expected
        pointer = after
        assert counter[0] == 0  # another environment's counter is left alone


def test_kube_default_picks_uniformly_among_the_best_integer_scores() -> None:
    rng = np.random.default_rng(6)
    rng_state, counter = streams(2)
    util = node_column("utilization")
    for _ in range(500):
        block = node_block(rng)
        block[:, util] = rng.integers(0, 65, size=block.shape[0]) / 64  # floor ties
        allowed = kube_default_set(block)
        got = choose_node(
            SCHEDULER_HEURISTICS["kube_default"], block, rng_state, counter, 0
        )
        assert (got in allowed) if allowed else got == -1
    # utilisations 1/8 and 0.13 both score 87: a tie; 0.2 scores 80 and never wins
    block = np.zeros((4, NODE_FEATURES), dtype=np.float32)
    block[:, 0] = 1.0
    block[:, util] = [0.2, 0.125, 0.13, 0.125]
    draws = 9000
    counts = Counter(
        choose_node(SCHEDULER_HEURISTICS["kube_default"], block, rng_state, counter, 1)
        for _ in range(draws)
    )
    assert set(counts) == {1, 2, 3}
    sigma = (draws * (1 / 3) * (2 / 3)) ** 0.5
    assert all(abs(counts[i] - draws / 3) < 5 * sigma for i in (1, 2, 3)), counts


def test_every_named_heuristic_is_covered_here() -> None:
    covered_lb = {*DETERMINISTIC_LB, "random", "round_robin"}
    covered_sched = {*DETERMINISTIC_SCHED, "random", "round_robin", "kube_default"}
    covered_lb.add("weighted")  # in test_two_tier_weighted.py
    covered_sched.add("weighted")
    assert set(LB_HEURISTICS) == covered_lb
    assert set(SCHEDULER_HEURISTICS) == covered_sched


# ------------------------------------------------------------- inside the simulator
def _blocks(core: TwoTierCore, b: int) -> tuple[np.ndarray, np.ndarray]:
    lay = core.layout
    row = core.obs[b]
    regions = row[lay.region_offset : lay.node_offset].reshape(-1, REGION_FEATURES)
    nodes = row[lay.node_offset : lay.size].reshape(-1, NODE_FEATURES)
    return regions, nodes


def _pair(learn: str, **heuristic: str) -> tuple[TwoTierCore, TwoTierCore]:
    """A core where the agent plays both tiers, and one where a heuristic plays one."""
    cores = []
    for config in (
        TwoTierEnvConfig(episode_length=10**6),
        TwoTierEnvConfig(learn=learn, episode_length=10**6, **heuristic),
    ):
        core = TwoTierCore("small", 3, controlled=["eu-central"], config=config)
        core.reset(seed=21)
        cores.append(core)
    return cores[0], cores[1]


@pytest.mark.parametrize("mode", [*DETERMINISTIC_SCHED, "round_robin"])
def test_scheduler_tier_decides_as_the_oracle_on_its_observation(mode: str) -> None:
    """learn=lb with scheduler ``mode`` places where the oracle on the node block does."""
    agent, heuristic = _pair("lb", scheduler_heuristic=mode)
    pointers = [0] * agent.num_envs
    rng = np.random.default_rng(8)
    for _ in range(150):
        np.testing.assert_array_equal(agent.obs, heuristic.obs)
        regions = np.array([rng.choice(np.flatnonzero(m)) for m in heuristic.mask])
        agent.step(regions)
        heuristic.step(regions)  # the heuristic scheduler places here
        nodes = np.empty(agent.num_envs, dtype=np.int64)
        for b in range(agent.num_envs):
            block = _blocks(agent, b)[1]
            if mode == "round_robin":
                nodes[b], pointers[b] = round_robin_oracle(block, pointers[b])
            else:
                nodes[b] = node_oracle(mode, block)
        agent.step(nodes)
        assert not agent.comps[:, K.C_INVALID].any()
        np.testing.assert_array_equal(agent.comps, heuristic.comps)


@pytest.mark.parametrize("mode", [*DETERMINISTIC_LB, "round_robin"])
def test_load_balancer_tier_decides_as_the_oracle_on_its_observation(mode: str) -> None:
    """learn=scheduler with LB ``mode`` selects the region the oracle picks."""
    agent, heuristic = _pair("scheduler", lb_heuristic=mode)
    pointers = [0] * agent.num_envs
    for _ in range(150):
        regions = np.empty(agent.num_envs, dtype=np.int64)
        for b in range(agent.num_envs):
            block = _blocks(agent, b)[0]
            if mode == "round_robin":
                regions[b], pointers[b] = round_robin_oracle(block, pointers[b])
            else:
                regions[b] = region_oracle(mode, block)
        agent.step(regions)
        np.testing.assert_array_equal(agent.obs, heuristic.obs)  # same region chosen
        nodes = heuristic.mask.argmax(axis=1)
        agent.step(nodes)
        heuristic.step(nodes)
        np.testing.assert_array_equal(agent.comps, heuristic.comps)


@pytest.mark.parametrize(
    ("scenario", "clip", "saturation", "overloaded"),
    [
        ("small", 10.0, "1s", False),  # the defaults
        ("small", 1.0, "200ms", True),
        ("default", 0.5, "0s", True),  # no admission control
    ],
)
def test_background_placement_is_the_scheduler_rule_on_its_block(
    scenario: str, clip: float, saturation: str, overloaded: bool
) -> None:
    """``_background_node`` equals ``choose_node`` on the block ``_fill_nodes`` writes.

    Checked on every region and type of running environments, including overloaded
    ones where waits are clipped in the block (where raw waits would decide
    differently).
    """
    config = TwoTierEnvConfig(obs_clip=clip, saturation_wait=saturation)
    core = TwoTierCore(scenario, 4, controlled=["eu-central"], config=config)
    core.reset(seed=3)
    rng = np.random.default_rng(3)
    (node_f, region_i, tn, reg_static, type_f) = core._world[:5]
    params = core._world[9]
    inv_cores, node_tpl = core._world[12], core._world[14]
    rng_state, counter = streams(core.num_envs)
    sat = params[K.P_SAT_WAIT]
    clipped = compared = 0
    for _ in range(60):
        for b in range(core.num_envs):
            t = core.fs[b, K.FS_T]
            for q in range(core.world.n_regions):
                for k in range(core.world.n_types):
                    for mode in (LEAST_LOADED, LATENCY):
                        fast = K._background_node(
                            b, q, k, mode, t, sat, clip, 1.0 / type_f[k, 0],
                            region_i, node_f, tn, inv_cores, core.core_free,
                            core.node_dyn, core.reg_dyn,
                        )  # fmt: skip
                        block = K._heuristic_node(
                            mode, b, q, q, k, t, region_i, node_f, tn, node_tpl,
                            type_f, inv_cores, reg_static, params, core.core_free,
                            core.node_dyn, core.reg_dyn, core.scratch, rng_state,
                            counter,
                        )  # fmt: skip
                        assert fast == block, (b, q, k, mode)
                        compared += 1
                        wait = core.scratch[b, 1::NODE_FEATURES]
                        clipped += bool((wait >= clip).any())
        for _ in range(5):  # the other regions' traffic runs in between
            core.step(np.array([rng.choice(np.flatnonzero(m)) for m in core.mask]))
    assert compared > 1000
    assert clipped > 0 or not overloaded  # the clipped regime was reached
