"""Env switches: the move-gain observation, fixed-horizon episodes, reward units.

Gains are checked against the plain-Python model (each valid move applied to a
snapshot and evaluated by :func:`envs.reach.reference.end_to_end_latency`); the
horizon's rewards against the latencies the core reports.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from envs.reach.config import RescheduleConfig
from envs.reach.core import ReachCore
from envs.reach.generator import generate
from envs.reach.reference import end_to_end_latency

EVENTS = RescheduleConfig(
    queueing=True,
    failure_prob=0.3,
    degradation_prob=0.3,
    surge_prob=0.3,
    recovery_prob=0.2,
    slo_penalty=2.0,
)


def _moved_latency(core: ReachCore, index: int, action: int) -> float:
    """Latency after ``action`` by the reference model, on a copy of the snapshot."""
    lay = core.layout
    pod, node = action % lay.max_pods, action // lay.max_pods
    snap, options = core.snapshot(index)
    names = core.config.node_names
    placement = {k: list(v) for k, v in snap.placement.items()}
    slot = 0
    for service in core.config.services:
        if slot <= pod < slot + service.max_replica:
            placement[service.name][pod - slot] = names[node]
        slot += service.max_replica
    moved = dataclasses.replace(snap, placement=placement)
    return end_to_end_latency(core.config.app, moved, options).mean


@pytest.mark.parametrize("settings", [RescheduleConfig(), EVENTS])
def test_move_gains_are_the_reference_latency_drops(settings: RescheduleConfig) -> None:
    config = generate(9, 20, seed=3).to_config("aggregator_sequential")
    core = ReachCore(config, dataclasses.replace(settings, move_gains=True), 3)
    core.reset(seed=5)
    lay = core.layout
    block = lay.max_nodes * lay.max_pods
    qos = config.app.qos
    rng = np.random.default_rng(1)
    for _ in range(4):
        for i in range(core.num_envs):
            gains = core.obs[i, -block:]
            valid = core.mask[i, :-1]
            assert not gains[~valid].any()
            for a in np.flatnonzero(valid):
                expected = (core.latency(i) - _moved_latency(core, i, int(a))) / qos
                assert gains[a] == pytest.approx(np.clip(expected, -10, 10), abs=1e-5)
            assert core.single_observation_space.contains(core.obs[i])
        moves = np.where(core.mask, rng.random(core.mask.shape), -1.0)
        core.step(moves[:, :-1].argmax(axis=1))


def test_move_gains_leave_the_rest_of_the_observation_and_the_dynamics_alone() -> None:
    config = generate(9, 20, seed=3).to_config("chain")
    plain = ReachCore(config, EVENTS, 4)
    gains = ReachCore(config, dataclasses.replace(EVENTS, move_gains=True), 4)
    plain.reset(seed=2)
    gains.reset(seed=2)
    rng = np.random.default_rng(0)
    width = plain.layout.obs_dim
    for _ in range(40):
        np.testing.assert_array_equal(gains.obs[:, :width], plain.obs)
        np.testing.assert_array_equal(gains.mask, plain.mask)
        acts = np.where(plain.mask, rng.random(plain.mask.shape), -1.0).argmax(axis=1)
        a, b = plain.step(acts), gains.step(acts)
        np.testing.assert_array_equal(a.reward, b.reward)


def test_move_gains_need_the_flat_observation() -> None:
    with pytest.raises(ValueError, match=r"move_gains: expected observation='flat'"):
        RescheduleConfig(move_gains=True, observation="reach")


def test_horizon_episodes_wait_on_stop_and_telescope_the_latency() -> None:
    """Stop waits; T steps per episode; the return is the drop minus costs/SLO."""
    config = generate(9, 20, seed=4).to_config("aggregator_parallel")
    horizon = 12
    settings = dataclasses.replace(
        EVENTS, horizon=True, max_moves=horizon, migration_cost=0.5
    )
    core = ReachCore(config, settings, 6, autoreset=False)
    core.reset(seed=9)
    stop = core.layout.n_actions - 1
    start = [core.latency(i) for i in range(core.num_envs)]
    total = np.zeros(core.num_envs)
    charges = np.zeros(core.num_envs)
    rng = np.random.default_rng(3)
    events = 0
    for t in range(horizon):
        moves = np.where(core.mask, rng.random(core.mask.shape), -1.0)
        acts = np.where(rng.random(core.num_envs) < 0.5, stop, moves.argmax(axis=1))
        out = core.step(acts)
        for i in range(core.num_envs):
            info = core.step_info(i)  # float64 components (out.reward is float32)
            assert out.reward[i] == pytest.approx(info["reward"], rel=1e-6)
            total[i] += info["reward"]
            charges[i] += info["migration_cost"] + info["slo_penalty"]
            events += info["failed_node"] >= 0 or info["degraded_node"] >= 0
        assert not out.terminated.any()
        assert (out.truncated == (t == horizon - 1)).all()
    assert events  # the events really were part of the steps
    for i in range(core.num_envs):
        drop = start[i] - core.latency(i)
        assert total[i] == pytest.approx(drop - charges[i], rel=1e-9, abs=1e-9)
        assert core.episode_info(i)["l"] == horizon


def test_average_horizon_reward_returns_the_mean_qos_slack() -> None:
    """``horizon_reward=average``: the return is the mean QoS slack, minus charges.

    So a drop made early is worth more than the same drop made late.
    """
    config = generate(9, 20, seed=4).to_config("aggregator_parallel")
    horizon = 10
    settings = dataclasses.replace(
        EVENTS,
        horizon=True,
        horizon_reward="average",
        max_moves=horizon,
        migration_cost=0.5,
    )
    core = ReachCore(config, settings, 6, autoreset=False)
    core.reset(seed=9)
    stop = core.layout.n_actions - 1
    rng = np.random.default_rng(3)
    total = np.zeros(core.num_envs)
    expected = np.zeros(core.num_envs)
    for _ in range(horizon):
        moves = np.where(core.mask, rng.random(core.mask.shape), -1.0)
        acts = np.where(rng.random(core.num_envs) < 0.5, stop, moves.argmax(axis=1))
        core.step(acts)
        for i in range(core.num_envs):
            info = core.step_info(i)
            total[i] += info["reward"]
            slack = (config.app.qos - core.latency(i)) / horizon
            charges = info["migration_cost"] + info["slo_penalty"]
            expected[i] += slack - charges
    assert config.app.qos > 0
    np.testing.assert_allclose(total, expected, rtol=1e-9, atol=1e-9)


def test_average_horizon_reward_needs_fixed_horizon_episodes() -> None:
    with pytest.raises(ValueError, match=r"horizon_reward: expected 'end' unless"):
        RescheduleConfig(horizon_reward="average")
    with pytest.raises(ValueError, match=r"horizon_reward: expected one of"):
        RescheduleConfig(horizon=True, horizon_reward="mean")


def test_qos_reward_unit_divides_the_reward_and_nothing_else() -> None:
    config = generate(9, 20, seed=5).to_config("chain")
    settings = dataclasses.replace(EVENTS, migration_cost=0.7)
    ms = ReachCore(config, settings, 4)
    qos = ReachCore(config, dataclasses.replace(settings, reward_unit="qos"), 4)
    ms.reset(seed=1)
    qos.reset(seed=1)
    rng = np.random.default_rng(2)
    for _ in range(30):
        acts = np.where(ms.mask, rng.random(ms.mask.shape), -1.0).argmax(axis=1)
        a, b = ms.step(acts), qos.step(acts)
        np.testing.assert_array_equal(a.obs, b.obs)
        for i in range(ms.num_envs):
            expected = ms.step_info(i)["reward"] / config.app.qos
            assert qos.step_info(i)["reward"] == pytest.approx(expected, rel=1e-12)
