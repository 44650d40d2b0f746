"""The batched core: reference model == core, determinism, reset sampling, SB3 VecEnv."""

from __future__ import annotations

import numpy as np
import pytest

from envs.reach.config import RescheduleConfig
from envs.reach.core import ReachCore
from envs.reach.errors import ReachPlacementError
from envs.reach.formats import config_from_data
from envs.reach.generator import generate
from envs.reach.reference import end_to_end_latency
from envs.vec_env import BatchedVecEnv

EXTENSIONS = RescheduleConfig(
    queueing=True,
    response_transfer=True,
    response_size_ratio=0.5,
    failure_prob=0.2,
    degradation_prob=0.3,
    surge_prob=0.3,
    recovery_prob=0.2,
)


def _random_steps(core: ReachCore, rng: np.random.Generator, steps: int) -> None:
    for _ in range(steps):
        masks = core.action_masks()
        actions = [rng.choice(np.flatnonzero(masks[i])) for i in range(core.num_envs)]
        core.step(np.array(actions))


@pytest.mark.parametrize(
    ("size", "pattern", "settings"),
    [
        ((12, 28), "aggregator_parallel", RescheduleConfig()),
        ((12, 28), "aggregator_sequential", RescheduleConfig(placement="random")),
        ((9, 20), "chain", RescheduleConfig(replicas="max")),
        ((12, 28), "aggregator_parallel", EXTENSIONS),
        ((30, 80), "chain", EXTENSIONS),
    ],
)
def test_reference_model_equals_batched_core(
    size: tuple[int, int], pattern: str, settings: RescheduleConfig
) -> None:
    config = generate(*size, seed=sum(size)).to_config(pattern)
    core = ReachCore(config, settings, num_envs=4)
    core.reset(seed=11)
    rng = np.random.default_rng(0)
    for _ in range(6):
        for i in range(core.num_envs):
            snapshot, options = core.snapshot(i)
            expected = end_to_end_latency(config.app, snapshot, options)
            assert core.latency(i) == pytest.approx(expected.mean, rel=1e-9)
            assert core.endpoint_latencies(i) == pytest.approx(
                list(expected.per_endpoint.values()), rel=1e-9
            )
        _random_steps(core, rng, 7)


def test_extension_events_happen_and_are_reported() -> None:
    config = generate(12, 28, seed=1).to_config("aggregator_parallel")
    core = ReachCore(config, EXTENSIONS, num_envs=8)
    core.reset(seed=0)
    failed = degraded = surges = 0
    rng = np.random.default_rng(0)
    for _ in range(30):
        _random_steps(core, rng, 1)
        for i in range(core.num_envs):
            info = core.step_info(i)
            failed += info["failed_node"] >= 0
            degraded += info["degraded_node"] >= 0
            surges += info["rps_scale"] != 1.0
            # a failed node is never a move target
            sick = ~core.node_healthy(i)
            rows = core.action_masks()[i][:-1].reshape(config.n_nodes, -1)
            assert not rows[sick].any()
    assert failed and degraded and surges


def test_same_seed_same_batch_and_episode_info() -> None:
    config = generate(12, 28, seed=2).to_config("chain")
    runs = []
    for _ in range(2):
        core = ReachCore(config, RescheduleConfig(max_moves=10), num_envs=16)
        obs = [core.reset(seed=5).copy()]
        rng = np.random.default_rng(1)
        episodes = []
        for _ in range(25):
            masks = core.action_masks()
            actions = [rng.choice(np.flatnonzero(masks[i])) for i in range(16)]
            out = core.step(np.array(actions))
            obs.append(out.obs.copy())
            for i in np.flatnonzero(out.terminated | out.truncated):
                episodes.append(core.episode_info(int(i)))
                assert not np.array_equal(out.final_obs[i], out.obs[i])
        runs.append((np.array(obs), episodes))
    assert np.array_equal(runs[0][0], runs[1][0])
    assert runs[0][1] == runs[1][1]
    assert all(e["l"] <= 10 and e["moves"] <= 10 for e in runs[0][1])
    assert any(not e["terminated"] for e in runs[0][1])  # truncations at 10 moves


def test_kubernetes_placement_spreads_replicas() -> None:
    """Least-allocated + spreading never stacks replicas while another node fits."""
    config = generate(12, 28, seed=3).to_config("chain")
    core = ReachCore(config, RescheduleConfig(replicas="max"), num_envs=8)
    core.reset(seed=0)
    for i in range(8):
        nodes = core.pod_nodes(i)
        slot = 0
        for service in config.services:
            hosts = nodes[slot : slot + service.max_replica]
            allowed = sum(
                1 for n in config.nodes.nodes if n.layer in service.allowed_layers()
            )
            assert len(set(hosts)) == min(service.max_replica, allowed), service.name
            slot += service.max_replica


def test_random_placement_respects_layer_pinning_and_capacity() -> None:
    config = generate(12, 28, seed=4).to_config("chain")
    core = ReachCore(config, RescheduleConfig(placement="random"), num_envs=8)
    core.reset(seed=0)
    layers = [n.layer for n in config.nodes.nodes]
    for i in range(8):
        nodes = core.pod_nodes(i)
        slot = 0
        for service in config.services:
            for k in range(service.max_replica):
                if nodes[slot + k] >= 0:
                    assert layers[nodes[slot + k]] in service.allowed_layers()
            slot += service.max_replica
        assert (core.node_resources(i)["cpu_free"] >= -1e-9).all()


def test_placement_failure_raises_a_clear_error() -> None:
    generated = generate(4, 9, seed=0, patterns=("chain",))
    for spec in generated.services.values():
        spec["cpu-requests"] = "1500m"
    for layer in generated.nodes["cluster_setup"].values():
        for spec in layer.values():
            spec["cpu_availability"] = ["2", "2"]
    config = config_from_data(
        generated.nodes, generated.services, generated.call_patterns["chain"],
        folder="4-9", pattern="chain",
    )  # fmt: skip
    core = ReachCore(config, RescheduleConfig(replicas="max"), num_envs=1)
    with pytest.raises(ReachPlacementError, match=r"4-9: could not place every pod"):
        core.reset(seed=0)


def test_sb3_vec_env_adapter_with_masks() -> None:
    """The generic BatchedVecEnv serves the core; masks come via env_method."""
    from sb3_contrib import MaskablePPO
    from sb3_contrib.common.maskable.utils import get_action_masks

    config = generate(12, 28, seed=5).to_config("aggregator_parallel")
    core = ReachCore(config, RescheduleConfig(max_moves=8), num_envs=4)
    vec = BatchedVecEnv(core, seed=0)
    obs = vec.reset()
    assert obs.shape == (4, core.layout.obs_dim)
    model = MaskablePPO("MlpPolicy", vec, n_steps=16, batch_size=32, n_epochs=1, seed=0)
    assert [m.shape for m in vec.env_method("action_masks")] == [(1 + 12 * 28,)] * 4
    finished = 0
    for _ in range(30):
        masks = get_action_masks(vec)  # sb3-contrib calls env_method("action_masks")
        assert masks.shape == (4, core.layout.n_actions) and masks[:, -1].all()
        actions, _ = model.predict(obs, action_masks=masks)
        assert masks[np.arange(4), actions].all()
        obs, _, dones, infos = vec.step(actions)
        for i in np.flatnonzero(dones):
            finished += 1
            assert "terminal_observation" in infos[i] and "r" in infos[i]["episode"]
    assert finished > 0
    model.learn(total_timesteps=64)
