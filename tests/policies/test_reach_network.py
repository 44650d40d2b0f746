"""The size-independent rescheduling scorer (``policy.network=reach_scorer``).

Shapes and layout inference, masks respected, one set of weights serving clusters of
two sizes, and the greedy prior of the untrained policy checked against the core's
own greedy move (``ReachCore.greedy_actions``).
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from envs.reach.config import RescheduleConfig
from envs.reach.core import ReachCore
from envs.reach.generator import generate
from envs.vec_env import BatchedVecEnv
from policies.config import SIZE_FREE_NETWORKS, PolicyConfig
from policies.factory import NETWORKS, build_model
from policies.networks.reach import infer_layout
from policies.params import get_weights, set_weights

CFG = PolicyConfig(
    network="reach_scorer", net_arch=[32], n_envs=4, n_steps=32, batch_size=64
)


def _core(size: tuple[int, int] | None, **overrides: object) -> ReachCore:
    settings = dataclasses.replace(RescheduleConfig(move_gains=True), **overrides)
    if size is None:
        return ReachCore.from_settings(settings, num_envs=CFG.n_envs)
    config = generate(*size, seed=sum(size)).to_config("aggregator_sequential")
    return ReachCore(config, settings, num_envs=CFG.n_envs)


def _model(core: ReachCore, cfg: PolicyConfig = CFG) -> object:
    return build_model(BatchedVecEnv(core, seed=0), cfg, seed=0)


def test_registered_and_layout_inferred_from_the_spaces() -> None:
    assert "reach_scorer" in NETWORKS
    for size, onehot in (((7, 21), True), ((12, 28), False), ((16, 40), True)):
        core = _core(size, pod_node_onehot=onehot)
        lay = infer_layout(
            core.layout.obs_dim, core.layout.n_actions, onehot=onehot, gains=True
        )
        assert (lay.n_nodes, lay.n_pods) == size
    with pytest.raises(ValueError, match="observation space: expected"):
        infer_layout(100, 148, onehot=True, gains=True)


@pytest.mark.parametrize("size", [None, (12, 28)])
def test_shapes_and_masks(size: tuple[int, int] | None) -> None:
    core = _core(size)
    model = _model(core)
    policy = model.policy  # type: ignore[attr-defined]
    obs = torch.as_tensor(core.reset(seed=1))
    logits, latent = policy.mlp_extractor(obs)
    assert logits.shape == (core.num_envs, core.layout.n_actions)
    assert policy.value_net(latent).shape == (core.num_envs, 1)
    rng_seen = 0
    for _ in range(30):  # sampled actions only ever pick valid entries
        masks = core.action_masks().copy()
        actions, _ = model.predict(  # type: ignore[attr-defined]
            core.obs, action_masks=masks, deterministic=False
        )
        assert masks[np.arange(core.num_envs), actions].all()
        rng_seen += int((actions != core.layout.n_actions - 1).sum())
        core.step(actions)
    assert rng_seen  # the policy did move pods, not only stop


@pytest.mark.parametrize("network", sorted(SIZE_FREE_NETWORKS))
def test_one_set_of_weights_serves_two_cluster_sizes(network: str) -> None:
    small, large = _core(None), _core((12, 28))
    cfg = dataclasses.replace(CFG, network=network)
    a, b = _model(small, cfg), _model(large, cfg)
    wa = get_weights(a.policy)  # type: ignore[attr-defined]
    wb = get_weights(b.policy)  # type: ignore[attr-defined]
    assert {k: v.shape for k, v in wa.items()} == {k: v.shape for k, v in wb.items()}
    set_weights(b.policy, wa)  # type: ignore[attr-defined]
    loaded = get_weights(b.policy)  # type: ignore[attr-defined]
    for name, value in wa.items():
        np.testing.assert_array_equal(loaded[name], value)
    obs = large.reset(seed=3)
    actions, _ = b.predict(obs, action_masks=large.action_masks())  # type: ignore[attr-defined]
    assert large.action_masks()[np.arange(large.num_envs), actions].all()


def test_untrained_policy_follows_the_cores_greedy_move() -> None:
    """Greedy prior: argmax = a move with greedy's gain, stop where greedy stops."""
    core = _core((9, 20))
    model = _model(core)
    lay = core.layout
    block = lay.max_nodes * lay.max_pods
    stop = lay.n_actions - 1
    margin = model.policy.mlp_extractor.stop_margin  # type: ignore[attr-defined]
    core.reset(seed=4)
    checked = 0
    for _ in range(40):
        greedy = core.greedy_actions()
        actions, _ = model.predict(  # type: ignore[attr-defined]
            core.obs, action_masks=core.action_masks(), deterministic=True
        )
        for i in range(core.num_envs):
            gains = core.obs[i, -block:].astype(np.float64)
            best = gains[core.mask[i, :-1]].max(initial=0.0)
            if greedy[i] == stop:
                assert actions[i] == stop
            elif best > 3 * margin:  # clear of the stop margin
                assert actions[i] != stop
                assert gains[actions[i]] == pytest.approx(best, abs=2e-3)
                checked += 1
        core.step(greedy)
    assert checked >= 10


def test_greedy_mlp_starts_as_greedy_and_needs_the_gains() -> None:
    """``greedy_mlp``: SB3's MLPs plus the prior; same greedy check, 7-21."""
    core = _core(None)
    cfg = dataclasses.replace(CFG, network="greedy_mlp", net_arch=[64, 64])
    model = _model(core, cfg)
    block = core.layout.max_nodes * core.layout.max_pods
    stop = core.layout.n_actions - 1
    core.reset(seed=6)
    moved = 0
    for _ in range(20):
        greedy = core.greedy_actions()
        actions, _ = model.predict(  # type: ignore[attr-defined]
            core.obs, action_masks=core.action_masks(), deterministic=True
        )
        for i in range(core.num_envs):
            gains = core.obs[i, -block:]
            if greedy[i] == stop:
                assert actions[i] == stop
            elif gains[greedy[i]] > 0.01:
                assert gains[actions[i]] == pytest.approx(gains[greedy[i]], abs=2e-3)
                moved += 1
        core.step(greedy)
    assert moved >= 5
    plain = _core(None, move_gains=False)
    with pytest.raises(ValueError, match="move_gains=true"):
        _model(plain, cfg)
