"""The per-entity two-tier scorer: greedy at the start, masks kept, weights portable.

Its prior is checked against the brute-force oracle of the weighted rule
(:mod:`tests.envs.two_tier_oracle`: scipy's Gamma law and numerical integration), on
hand-made inputs and on the simulator's own observations.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sb3_contrib import MaskablePPO

from envs import RewardConfig, TwoTierEnvConfig, make_region_vec_env
from envs.two_tier.heuristics import scoring_params
from envs.two_tier.layout import NODE_FEATURES, REGION_FEATURES
from policies.config import PolicyConfig
from policies.factory import build_model
from policies.networks.two_tier import TwoTierScorer, expected_penalty
from policies.params import get_weights, set_weights
from tests.envs.two_tier_oracle import (
    expected_penalty_oracle,
    node_column,
    region_column,
    weighted_choices,
    weighted_node_scores,
    weighted_region_scores,
)

REWARD = RewardConfig(1.0, 0.5, 1.0, 0.25, 1.0)
NAMES = ("latency", "queueing", "slo_violation", "cost", "carbon")


def model(network: str = "two_tier_scorer", region: str = "eu-central") -> MaskablePPO:
    env = make_region_vec_env(
        "small", region, 4, seed=0, config=TwoTierEnvConfig(), reward=REWARD
    )
    return build_model(env, PolicyConfig(network=network, n_steps=64, batch_size=64))


def zero_residual(scorer: TwoTierScorer) -> None:
    for mlp in (scorer.region_mlp, scorer.node_mlp):
        torch.nn.init.zeros_(mlp[-1].weight)
        torch.nn.init.zeros_(mlp[-1].bias)


@pytest.mark.parametrize("shape", [0.0, 0.5, 1.0, 4.0])
def test_torch_penalty_equals_the_oracle(shape: float) -> None:
    rng = np.random.default_rng(int(10 * shape))
    reward = RewardConfig(1.0, 0.5, 2.0, 0.25, 1.0, term_cap=1.5)
    weights = {name: getattr(reward, name) for name in NAMES}
    scoring = torch.tensor(scoring_params(reward, shape), dtype=torch.float64)
    cols = rng.uniform(0.0, 2.0, size=(80, 5))
    cols[::7, 2] = 0.0  # no service time
    got = expected_penalty(scoring, *(torch.tensor(c) for c in cols.T)).numpy()
    for i, (fixed, wait, service, cost, carbon) in enumerate(cols):
        expected = expected_penalty_oracle(
            weights, reward.term_cap, shape, fixed, wait, service, cost, carbon
        )
        assert got[i] == pytest.approx(expected, abs=1e-7), cols[i]


def test_untrained_scorer_decides_as_weighted_greedy() -> None:
    learner = model()
    scorer = learner.policy.action_net
    zero_residual(scorer)
    core = learner.env.core
    lay = core.layout
    weights = {name: getattr(REWARD, name) for name in NAMES}
    rng = np.random.default_rng(5)
    learner.env.reset()
    phases = set()
    for _ in range(40):
        obs = core.obs.copy()
        masks = core.action_masks().copy()
        actions, _ = learner.predict(obs, deterministic=True, action_masks=masks)
        for b in range(core.num_envs):
            regions = obs[b, lay.region_offset : lay.node_offset].reshape(
                -1, REGION_FEATURES
            )
            nodes = obs[b, lay.node_offset :].reshape(-1, NODE_FEATURES)
            if obs[b, 0] > 0.5:
                scores = weighted_region_scores(regions, weights, REWARD.term_cap, 1.0)
                util = regions[:, region_column("utilization")]
                phases.add("lb")
            else:
                q = int(np.flatnonzero(regions[:, region_column("is_selected")])[0])
                rtt, transfer = (
                    float(regions[q, region_column(c)]) for c in ("rtt", "transfer")
                )
                scores = weighted_node_scores(
                    nodes, weights, REWARD.term_cap, 1.0, rtt, transfer
                )
                util = nodes[:, node_column("utilization")]
                phases.add("scheduler")
            assert actions[b] in weighted_choices(scores, util, tol=1e-4), (b, scores)
        sampled = np.array([rng.choice(np.flatnonzero(m)) for m in masks])
        learner.env.step(sampled)
    assert phases == {"lb", "scheduler"}


def test_sampled_actions_respect_the_masks_and_training_runs() -> None:
    learner = model()
    learner.learn(256)
    core = learner.env.core
    for _ in range(50):
        masks = core.action_masks().copy()
        actions, _ = learner.predict(core.obs, deterministic=False, action_masks=masks)
        assert masks[np.arange(core.num_envs), actions].all()
        learner.env.step(actions)
    for name, value in get_weights(learner.policy).items():
        assert np.isfinite(value).all(), name


def test_plain_scorer_has_no_prior() -> None:
    learner = model("two_tier_scorer_plain")
    scorer = learner.policy.action_net
    zero_residual(scorer)
    assert not scorer.log_beta.requires_grad
    obs = torch.as_tensor(learner.env.core.obs)
    logits = scorer(obs)
    valid = logits > -1e7
    assert torch.all(logits[valid] == 0.0)  # no greedy term: every entity alike


def test_weights_move_between_regions_and_through_a_checkpoint(tmp_path) -> None:
    a, b = model(region="eu-central"), model(region="us-east")
    set_weights(b.policy, get_weights(a.policy))  # one global policy for both
    obs = torch.as_tensor(b.env.core.obs)
    np.testing.assert_array_equal(
        a.policy.action_net(obs).detach().numpy(),
        b.policy.action_net(obs).detach().numpy(),
    )
    a.save(tmp_path / "policy.zip")
    loaded = MaskablePPO.load(tmp_path / "policy.zip", device="cpu")
    np.testing.assert_array_equal(
        loaded.policy.action_net(obs).detach().numpy(),
        a.policy.action_net(obs).detach().numpy(),
    )
