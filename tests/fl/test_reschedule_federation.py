"""Rescheduling across clusters of different sizes: one padded network, one federation."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from sb3_contrib import MaskablePPO

from conf.schema import RunConfig
from envs.reach.formats import packaged_cluster
from envs.reach.generator import generate, write_config
from fl_server.config import with_common_padding
from scripts.federate import run

RESCHEDULE = (
    "env=reschedule",
    "train.eval_episodes=2",
    "train.eval_seeds=[1000]",
    "train.baselines=[keep,greedy]",
    "federation.client_eval=false",
)


@pytest.fixture(scope="module")
def clusters(tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    """The packaged 7-21 example and a generated 12-28 cluster."""
    root = tmp_path_factory.mktemp("reach")
    generated = generate(12, 28, seed=0, patterns=("aggregator_sequential",))
    return [str(packaged_cluster()), str(write_config(generated, root))]


def test_padding_is_the_largest_cluster_and_explicit_values_win(
    tiny_cfg: Callable[..., RunConfig], clusters: list[str]
) -> None:
    listed = f"federation.regions=[{clusters[0]},{clusters[1]}]"
    padded = with_common_padding(tiny_cfg(*RESCHEDULE, listed)).reschedule
    assert padded.max_nodes == 12 and padded.max_pods >= 28

    pinned = with_common_padding(
        tiny_cfg(*RESCHEDULE, listed, "reschedule.max_nodes=20")
    ).reschedule
    assert pinned.max_nodes == 20 and pinned.max_pods == padded.max_pods

    two_tier = tiny_cfg()
    assert with_common_padding(two_tier) is two_tier


def test_clusters_of_different_sizes_train_one_global_policy(
    tiny_cfg: Callable[..., RunConfig], clusters: list[str], tmp_path: Path
) -> None:
    cfg = tiny_cfg(
        *RESCHEDULE,
        f"federation.regions=[{clusters[0]},{clusters[1]}]",
        "engine=simulation",
        "engine.ray_cpus=2",
    )
    folder = run(cfg, tmp_path / "run")

    rows = [
        json.loads(line) for line in (folder / "metrics.jsonl").read_text().splitlines()
    ]
    for server_round in (1, 2):
        trained = {
            r["region"]
            for r in rows
            if r["round"] == server_round and r["phase"] == "train"
        }
        assert trained == set(clusters)
    evaluated = {
        r["region"]
        for r in rows
        if r["phase"] == "server-eval" and r["policy"] == "global"
    }
    assert evaluated == set(clusters)
    model = MaskablePPO.load(folder / "global_policy.zip")
    padded = with_common_padding(cfg).reschedule
    assert model.action_space.n == padded.max_nodes * padded.max_pods + 1


@pytest.mark.slow
def test_a_size_free_network_federates_clusters_without_padding(
    tiny_cfg: Callable[..., RunConfig], clusters: list[str], tmp_path: Path
) -> None:
    cfg = tiny_cfg(
        *RESCHEDULE,
        f"federation.regions=[{clusters[0]},{clusters[1]}]",
        "policy.network=reach_scorer",
        "reschedule.move_gains=true",
        "engine=simulation",
        "engine.ray_cpus=2",
    )
    assert with_common_padding(cfg) is cfg  # each client keeps its cluster's axes
    folder = run(cfg, tmp_path / "run")

    rows = [
        json.loads(line) for line in (folder / "metrics.jsonl").read_text().splitlines()
    ]
    for server_round in (1, 2):  # no client dropped out: every size trained
        trained = {
            r["region"]
            for r in rows
            if r["round"] == server_round and r["phase"] == "train"
        }
        assert trained == set(clusters)
    global_eval = {
        r["region"]: r
        for r in rows
        if r["phase"] == "server-eval" and r["policy"] == "global"
    }
    assert set(global_eval) == set(clusters)
    # The one checkpoint drives both sizes: load its weights on the 12-28 axes.
    from policies.evaluation import RescheduleEvalSpec, evaluate_reschedule
    from policies.factory import build_model
    from policies.params import get_weights, set_weights
    from policies.runs import make_training_env, reschedule_settings

    saved = MaskablePPO.load(folder / "global_policy.zip")
    env = make_training_env(cfg, clusters[1], cfg.policy.n_envs, 0)
    large = build_model(env, cfg.policy, seed=0)
    assert saved.action_space.n != large.action_space.n
    set_weights(large.policy, get_weights(saved.policy))
    spec = RescheduleEvalSpec(reschedule_settings(cfg, clusters[1]), (1000,), 2)
    (metrics,) = evaluate_reschedule(large, spec)
    assert metrics["invalid_actions"] == 0
    assert metrics["latency_after_ms"] < metrics["latency_before_ms"]
