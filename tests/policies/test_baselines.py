"""Baseline policies decode observations and decide as the brute-force heuristics do.

:class:`TwoTierHeuristicPolicy` is checked on hand-built observations (blocks placed by
the layout's offsets) against :mod:`tests.envs.two_tier_oracle`, and
:class:`TierComposite` by recording exactly what each tier policy receives.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from gymnasium import spaces

from envs.two_tier.layout import NODE_FEATURES, REGION_FEATURES, ObsLayout
from policies.baselines import BASELINES, TierComposite, TwoTierHeuristicPolicy
from tests.envs.two_tier_oracle import (
    grid_block,
    kube_default_set,
    node_oracle,
    region_column,
    region_oracle,
    round_robin_oracle,
)

LAYOUT = ObsLayout(n_regions=4, n_types=2, max_nodes=5, region_id_input=True)


def observations(
    rng: np.random.Generator, n: int
) -> tuple[np.ndarray, list[np.ndarray], list[np.ndarray]]:
    """``n`` observation rows with random phases and blocks, and the blocks."""
    obs = np.zeros((n, LAYOUT.size), dtype=np.float32)
    regions, nodes = [], []
    for i in range(n):
        lb = rng.random() < 0.5
        obs[i, 0:2] = (1.0, 0.0) if lb else (0.0, 1.0)
        region = grid_block(rng, LAYOUT.n_regions, REGION_FEATURES, valid_share=0.8)
        region[:, region_column("is_origin")] = 0.0
        region[int(rng.integers(LAYOUT.n_regions)), region_column("is_origin")] = 1.0
        node = grid_block(rng, LAYOUT.max_nodes, NODE_FEATURES, valid_share=0.8)
        region[0, 0] = node[0, 0] = 1.0  # a valid row, as the env guarantees
        obs[i, LAYOUT.region_offset : LAYOUT.node_offset] = region.ravel()
        obs[i, LAYOUT.node_offset : LAYOUT.size] = node.ravel()
        regions.append(region)
        nodes.append(node)
    return obs, regions, nodes


@pytest.mark.parametrize("name", ["least_loaded", "latency", "cost", "carbon"])
def test_deterministic_baselines_decide_as_the_oracle(name: str) -> None:
    rng = np.random.default_rng(11)
    policy = TwoTierHeuristicPolicy.named(name, LAYOUT)
    lb, scheduler = BASELINES[name]
    for _ in range(20):
        obs, regions, nodes = observations(rng, 16)
        actions, state = policy.predict(obs)
        assert state is None and actions.dtype == np.int64
        expected = [
            region_oracle(lb, regions[i])
            if obs[i, 0] > 0.5
            else node_oracle(scheduler, nodes[i])
            for i in range(16)
        ]
        np.testing.assert_array_equal(actions, expected)


def test_kube_default_keeps_requests_local_and_spreads_over_the_best_nodes() -> None:
    rng = np.random.default_rng(12)
    policy = TwoTierHeuristicPolicy.named("kube_default", LAYOUT, seed=3)
    for _ in range(20):
        obs, regions, nodes = observations(rng, 16)
        actions, _ = policy.predict(obs)
        for i, action in enumerate(actions):
            if obs[i, 0] > 0.5:
                assert action == region_oracle("local", regions[i])
            else:
                assert action in kube_default_set(nodes[i])


def test_random_and_round_robin_baselines_follow_their_rules() -> None:
    rng = np.random.default_rng(13)
    randomised = TwoTierHeuristicPolicy.named("random", LAYOUT, seed=1)
    cycling = TwoTierHeuristicPolicy.named("round_robin", LAYOUT)
    pointers = np.zeros((2, 8), dtype=np.int64)  # per tier, per batch row
    for _ in range(30):
        obs, regions, nodes = observations(rng, 8)
        drawn, _ = randomised.predict(obs)
        cycled, _ = cycling.predict(obs)
        for i in range(8):
            tier, block = (0, regions[i]) if obs[i, 0] > 0.5 else (1, nodes[i])
            assert block[drawn[i], 0] > 0  # a valid row
            expected, pointers[tier, i] = round_robin_oracle(block, pointers[tier, i])
            assert cycled[i] == expected


def test_unknown_baseline_names_are_refused() -> None:
    with pytest.raises(ValueError, match="baseline: expected one of"):
        TwoTierHeuristicPolicy.named("fastest", LAYOUT)
    with pytest.raises(ValueError, match="scheduler: expected one of"):
        TwoTierHeuristicPolicy(LAYOUT, "latency", "local")


class Recorder:
    """A tier policy that records its inputs and answers a function of each row."""

    def __init__(self, width: int | None, offset: int) -> None:
        if width is not None:
            self.action_space = spaces.Discrete(width)
        self.offset = offset
        self.calls: list[tuple[np.ndarray, np.ndarray | None, bool]] = []

    def answer(self, row: np.ndarray) -> int:
        return int(row[-1] * 8) + self.offset

    def predict(
        self,
        observation: np.ndarray,
        state: Any = None,
        episode_start: Any = None,
        deterministic: bool = True,
        action_masks: np.ndarray | None = None,
    ) -> tuple[np.ndarray, Any]:
        masks = None if action_masks is None else action_masks.copy()
        self.calls.append((observation.copy(), masks, deterministic))
        return np.array([self.answer(row) for row in observation]), None


@pytest.mark.parametrize("widths", [(4, 5), (None, None), (4, None)])
def test_tier_composite_routes_rows_by_phase_and_slices_masks(
    widths: tuple[int | None, int | None],
) -> None:
    rng = np.random.default_rng(14)
    obs, _, _ = observations(rng, 12)
    masks = rng.random((12, 7)) < 0.5
    lb, scheduler = Recorder(widths[0], 100), Recorder(widths[1], 200)
    actions, _ = TierComposite(lb, scheduler).predict(
        obs, deterministic=False, action_masks=masks
    )
    lb_rows = [i for i in range(12) if obs[i, 0] > 0.5]
    sched_rows = [i for i in range(12) if obs[i, 0] <= 0.5]
    expected = [
        lb.answer(obs[i]) if i in lb_rows else scheduler.answer(obs[i])
        for i in range(12)
    ]
    np.testing.assert_array_equal(actions, expected)
    for policy, rows, width in (
        (lb, lb_rows, widths[0]),
        (scheduler, sched_rows, widths[1]),
    ):
        (seen_obs, seen_masks, deterministic), *more = policy.calls
        assert not more and deterministic is False
        np.testing.assert_array_equal(seen_obs, obs[rows])
        assert seen_masks is not None
        np.testing.assert_array_equal(seen_masks, masks[rows, : width or 7])


def test_tier_composite_skips_a_tier_without_rows_and_passes_no_masks() -> None:
    obs, _, _ = observations(np.random.default_rng(15), 6)
    obs[:, 0:2] = (0.0, 1.0)  # every row in the scheduler phase
    lb, scheduler = Recorder(4, 0), Recorder(5, 0)
    TierComposite(lb, scheduler).predict(obs)
    assert lb.calls == []
    (_, masks, deterministic), *_ = scheduler.calls
    assert masks is None and deterministic is True
