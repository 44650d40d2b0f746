"""REACH's /get_action contract: payload -> state -> observation -> action -> decision."""

from __future__ import annotations

import copy
import re
from typing import Any

import gymnasium as gym
import numpy as np
import pytest

from envs.reach.baselines import Greedy, RandomValid
from envs.reach.env import ReachRescheduleEnv
from envs.reach.errors import ReachPayloadError
from envs.reach.payload import Decision

# Spec §6.5, verbatim: 7-21 node names; auth, catalog, cache, storage have no pods.
EXAMPLE: dict[str, Any] = {
    "cluster_state": {
        "nodes": {
            name: {"node_name": name, "cpu_availability": cpu, "memory_availability": mem}
            for name, cpu, mem in [
                ("ex-cloud-xl-1", 7400, 21.5), ("ex-cloud-xl-2", 9100, 26.0),
                ("ex-edge-md-1", 2600, 7.2), ("ex-edge-md-2", 3900, 9.9),
                ("ex-edge-sm-1", 1800, 3.1), ("ex-edge-sm-2", 2100, 4.4),
                ("ex-client-sm-1", 1700, 3.7),
            ]
        },
        "services": {
            "client": {"service_name": "client", "pods": [
                {"node_name": "ex-client-sm-1", "pod_name": "client-6d9f-x2k4p"}]},
            "gateway": {"service_name": "gateway", "pods": [
                {"node_name": "ex-cloud-xl-1", "pod_name": "gateway-7c4b-9qv2m"}]},
            "inference": {"service_name": "inference", "pods": [
                {"node_name": "ex-cloud-xl-2", "pod_name": "inference-55f8-tt7rz"},
                {"node_name": "ex-edge-md-2", "pod_name": "inference-55f8-h8c1d"}]},
        },
    },
    "pod_deployable": {
        "client-6d9f-x2k4p": ["ex-client-sm-1"],
        "gateway-7c4b-9qv2m": ["ex-cloud-xl-1", "ex-cloud-xl-2", "ex-edge-md-1",
                               "ex-edge-md-2", "ex-edge-sm-2"],
        "inference-55f8-tt7rz": ["ex-cloud-xl-1", "ex-cloud-xl-2", "ex-edge-md-1",
                                 "ex-edge-md-2"],
        "inference-55f8-h8c1d": ["ex-cloud-xl-1", "ex-cloud-xl-2", "ex-edge-md-1",
                                 "ex-edge-md-2"],
    },
}  # fmt: skip


def test_example_payload_builds_the_state() -> None:
    env = ReachRescheduleEnv(observation="reach")
    obs, info = env.reset(options=EXAMPLE)
    assert isinstance(obs, dict)
    assert obs["Node_cpu_availability"][0] == pytest.approx(7.4)  # millicores / 1000
    assert obs["Node_memory_availability"][1] == pytest.approx(26.0)
    # slots: client 1 | gateway 3 | auth 2 | catalog 4 | inference 4 | cache 3 | storage 4
    expected = [7, 1, 0, 0, 0, 0, 0, 0, 0, 0, 4, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0]
    assert list(obs["Pod_node_id"]) == expected  # inference pods sorted by name
    names = env.core.pod_names(0)
    assert names[10:12] == ("inference-55f8-h8c1d", "inference-55f8-tt7rz")
    assert names[2] == "gateway_dummy"
    mask = info["action_mask"][:-1].reshape(7, 21)
    # gateway (slot 1) may go where pod_deployable allows, except its own node
    assert np.flatnonzero(mask[:, 1]).tolist() == [1, 2, 3, 5]
    assert not mask[:, 0].any()  # the client pod never moves
    assert mask.sum() == 4 + 3 + 3


def test_round_trip_state_observation_action_decision() -> None:
    """Decisions name a pod of the payload and a node from its pod_deployable list."""
    env = ReachRescheduleEnv()
    source = ReachRescheduleEnv()
    policies = [RandomValid(seed=0), Greedy(env.core)]
    for seed in range(5):
        source.reset(seed=seed)
        body = _payload_from(source)
        obs, info = env.reset(options=body)
        for policy in policies:
            action, _ = policy.predict(obs, action_masks=info["action_mask"])
            decision = env.decision(int(action))
            if decision.is_stop:
                assert decision == Decision("", "", True)
                continue
            pods = {
                pod["pod_name"]: pod["node_name"]
                for svc in body["cluster_state"]["services"].values()
                for pod in svc["pods"]
            }
            assert decision.pod_name in pods
            assert decision.target_node in body["pod_deployable"][decision.pod_name]
            assert decision.target_node != pods[decision.pod_name]
            assert env.codec.encode(
                decision.pod_name, decision.target_node, env.core.pod_names(0)
            ) == int(action)


def _payload_from(env: ReachRescheduleEnv) -> dict[str, Any]:
    """A payload describing ``env``'s simulated state, as pod-migrator would send it."""
    config = env.reach_config
    res = env.core.node_resources(0)
    names = env.core.pod_names(0)
    placed = env.core.pod_nodes(0)
    nodes = {
        n: {
            "node_name": n,
            "cpu_availability": round(float(res["cpu_free"][j]) * 1000),
            "memory_availability": float(res["memory_free"][j]),
        }
        for j, n in enumerate(config.node_names)
    }
    services: dict[str, Any] = {}
    deployable: dict[str, list[str]] = {}
    slot = 0
    mask = env.action_masks()[:-1].reshape(config.n_nodes, config.n_pods)
    for service in config.services:
        pods = []
        for _ in range(service.max_replica):
            if placed[slot] >= 0:
                pod = f"{names[slot]}-abc12-{slot:05d}"
                pods.append(
                    {"pod_name": pod, "node_name": config.node_names[placed[slot]]}
                )
                deployable[pod] = [
                    config.node_names[n] for n in np.flatnonzero(mask[:, slot])
                ]
            slot += 1
        if pods:
            services[service.name] = {"service_name": service.name, "pods": pods}
    return {
        "cluster_state": {"nodes": nodes, "services": services},
        "pod_deployable": deployable,
    }


def test_empty_pod_deployable_only_allows_stop() -> None:
    env = ReachRescheduleEnv()
    body = copy.deepcopy(EXAMPLE)
    body["pod_deployable"] = {}
    _, info = env.reset(options=body)
    assert np.flatnonzero(info["action_mask"]).tolist() == [7 * 21]
    assert env.decision(7 * 21) == Decision("", "", True)


def test_masked_choice_keeps_names_but_stops() -> None:
    """REACH's server answers an invalid action with the names and is_stop=True."""
    env = ReachRescheduleEnv()
    _, info = env.reset(options=EXAMPLE)
    gateway_to_edge_sm_1 = 4 * 21 + 1  # not in its pod_deployable list
    assert not info["action_mask"][gateway_to_edge_sm_1]
    assert env.decision(gateway_to_edge_sm_1) == Decision(
        "gateway-7c4b-9qv2m", "ex-edge-sm-1", True
    )


def test_payload_without_pod_deployable_uses_resource_fit() -> None:
    env = ReachRescheduleEnv()
    body = {"cluster_state": EXAMPLE["cluster_state"]}
    _, info = env.reset(options=body)
    mask = info["action_mask"][:-1].reshape(7, 21)
    # inference asks 1.2 cores: ex-edge-sm-1 has 1.8 free, so it fits there
    assert mask[4, 10] and not mask[6, 10]


def _bad(edit: Any) -> dict[str, Any]:
    body = copy.deepcopy(EXAMPLE)
    edit(body)
    return body


@pytest.mark.parametrize(
    ("edit", "message", "mismatch"),
    [
        (
            lambda b: b["cluster_state"]["services"]["gateway"]["pods"].extend(
                {"node_name": "ex-cloud-xl-1", "pod_name": f"gateway-x-{i}"}
                for i in range(3)
            ),
            "cluster_state.services.gateway.pods: expected at most 3 pods (max-replica "
            "in services.json), got 4",
            True,
        ),
        (
            lambda b: b["cluster_state"]["nodes"].pop("ex-edge-sm-2"),
            "cluster_state.nodes: expected every node of the trained cluster, got "
            "'missing ex-edge-sm-2'",
            True,
        ),
        (
            lambda b: b["cluster_state"]["services"].update({"search": {"pods": []}}),
            "cluster_state.services.search: expected a service of services.json, "
            "got 'search'",
            True,
        ),
        (
            lambda b: b["pod_deployable"].update({"ghost-1": ["ex-cloud-xl-1"]}),
            "pod_deployable.ghost-1: expected a pod listed in cluster_state.services, "
            "got 'ghost-1'",
            True,
        ),
        (
            lambda b: b["cluster_state"]["nodes"]["ex-cloud-xl-1"].update(
                {"cpu_availability": "7400"}
            ),
            "cluster_state.nodes.ex-cloud-xl-1.cpu_availability: expected a number, "
            "got '7400'",
            False,
        ),
        (
            lambda b: (
                b["cluster_state"].update({"pods": {}})
                or b["cluster_state"].pop("services")
            ),
            "cluster_state.pods: expected the current request shape with "
            "cluster_state.services (the legacy cluster_state.pods map is not "
            "supported), got 'legacy request'",
            False,
        ),
    ],
)
def test_bad_payloads_name_the_field(edit: Any, message: str, mismatch: bool) -> None:
    env = ReachRescheduleEnv()
    with pytest.raises(ReachPayloadError, match=re.escape(message)) as caught:
        env.reset(options=_bad(edit))
    assert caught.value.mismatch is mismatch


def test_simulated_reset_after_payload_restores_simulation_names() -> None:
    env = gym.make("ReachReschedule-v0").unwrapped
    env.reset(options=EXAMPLE)
    env.reset(seed=0)
    assert env.core.pod_names(0)[0] == "client-1"
