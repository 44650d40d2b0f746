"""Bad input gets a 4xx whose body names the field path and the expectation.

REACH's ``/get_action`` keeps its error body (exactly ``status`` and ``message``;
spec §6.4: 400 malformed or mistyped, 422 not the trained topology, 413 too big);
the two-tier endpoints add ``errors`` listing every invalid field.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from typing import Any

import httpx
import numpy as np
import pytest

from envs.reach.env import ReachRescheduleEnv
from tests.serving.conftest import MAX_BATCH
from tests.serving.helpers import Server, reach_body

pytestmark = pytest.mark.e2e

Edit = Callable[[dict[str, Any]], None]


def _set(path: list[Any], value: Any) -> Edit:
    def edit(body: dict[str, Any]) -> None:
        node = body
        for key in path[:-1]:
            node = node[key]
        node[path[-1]] = value

    return edit


def _delete(path: list[Any]) -> Edit:
    def edit(body: dict[str, Any]) -> None:
        node = body
        for key in path[:-1]:
            node = node[key]
        del node[path[-1]]

    return edit


def _extra_pods(body: dict[str, Any]) -> None:
    pods = [{"node_name": "ex-cloud-xl-1", "pod_name": f"auth-{i}"} for i in range(3)]
    body["cluster_state"]["services"]["auth"] = {"service_name": "auth", "pods": pods}


def _extra_node(body: dict[str, Any]) -> None:
    body["cluster_state"]["nodes"]["ex-gpu-1"] = {
        "node_name": "ex-gpu-1",
        "cpu_availability": 4000,
        "memory_availability": 8.0,
    }


@pytest.fixture(scope="module")
def valid_body() -> dict[str, Any]:
    body = reach_body(ReachRescheduleEnv(), 5, np.random.default_rng(5))
    body["cluster_state"]["services"]["gateway"] = {
        "service_name": "gateway",
        "pods": [{"node_name": "ex-cloud-xl-1", "pod_name": "gateway-1"}],
    }
    listed = {
        p["pod_name"]
        for s in body["cluster_state"]["services"].values()
        for p in s["pods"]
    }
    deployable = {k: v for k, v in body["pod_deployable"].items() if k in listed}
    body["pod_deployable"] = {**deployable, "gateway-1": ["ex-edge-md-1"]}
    return body


NODE = ["cluster_state", "nodes", "ex-edge-sm-1"]
GATEWAY = ["cluster_state", "services", "gateway", "pods", 0]


@pytest.mark.parametrize(
    ("edit", "status", "message"),
    [
        (_delete(["cluster_state"]), 400, "cluster_state: expected a required object"),
        (
            _delete(["cluster_state", "nodes"]),
            400,
            "cluster_state.nodes: expected a required object",
        ),
        (
            _set([*NODE, "cpu_availability"], "2000m"),
            400,
            "cluster_state.nodes.ex-edge-sm-1.cpu_availability: expected a number, "
            "got '2000m'",
        ),
        (
            _set([*NODE, "memory_availability"], -1.5),
            400,
            "cluster_state.nodes.ex-edge-sm-1.memory_availability: expected a finite "
            "number >= 0, got -1.5",
        ),
        (
            _set([*NODE, "cpu_availability"], float("nan")),
            400,
            "cluster_state.nodes.ex-edge-sm-1.cpu_availability: expected a finite "
            "number >= 0, got nan",
        ),
        (
            _set([*GATEWAY, "pod_name"], 7),
            400,
            "cluster_state.services.gateway.pods[0].pod_name: expected a non-empty "
            "string, got 7",
        ),
        (
            _set(["pod_deployable", "gateway-1"], "ex-edge-md-1"),
            400,
            "pod_deployable.gateway-1: expected a list of node names",
        ),
        (
            _extra_node,
            422,
            "cluster_state.nodes.ex-gpu-1: expected a node of the trained cluster",
        ),
        (
            _delete([*NODE]),
            422,
            "cluster_state.nodes: expected every node of the trained cluster, got "
            "'missing ex-edge-sm-1'",
        ),
        (
            _extra_pods,
            422,
            "cluster_state.services.auth.pods: expected at most 2 pods (max-replica "
            "in services.json), got 3",
        ),
        (
            _set([*GATEWAY, "node_name"], "ex-gpu-1"),
            422,
            "cluster_state.services.gateway.pods[0].node_name: expected a node of the "
            "trained cluster, got 'ex-gpu-1'",
        ),
        (
            _set(["pod_deployable", "ghost-pod"], ["ex-edge-md-1"]),
            422,
            "pod_deployable.ghost-pod: expected a pod listed in cluster_state.services",
        ),
        (
            _set(["pod_deployable", "gateway-1"], ["ex-gpu-1"]),
            422,
            "pod_deployable.gateway-1[0]: expected a node of the trained cluster",
        ),
    ],
    ids=[
        "missing-cluster-state",
        "missing-nodes",
        "cpu-string",
        "negative-memory",
        "nan-cpu",
        "pod-name-number",
        "deployable-not-list",
        "unknown-node",
        "missing-node",
        "too-many-pods",
        "pod-on-unknown-node",
        "unknown-pod",
        "deployable-unknown-node",
    ],
)
def test_get_action_refuses_bad_bodies_naming_the_field(
    reach_server: Server,
    valid_body: dict[str, Any],
    edit: Edit,
    status: int,
    message: str,
) -> None:
    body = copy.deepcopy(valid_body)
    edit(body)
    raw = json.dumps(body)  # NaN goes out as the NaN literal Python's json accepts
    response = httpx.post(
        reach_server.url + "/get_action",
        content=raw,
        headers={"content-type": "application/json"},
    )
    assert response.status_code == status, response.text
    answer = response.json()
    assert set(answer) == {"status", "message"}
    assert answer["status"] == "error"
    assert answer["message"].startswith(message), answer["message"]


@pytest.mark.parametrize(
    ("raw", "status", "message"),
    [
        (b'{"cluster_state": ', 400, "body: expected valid JSON"),
        (b"\xff\xfe", 400, "body: expected valid JSON"),
        (b"[1, 2]", 400, "body: expected a JSON object"),
        (b"[" * 50_000 + b"]" * 50_000, 400, "body: expected valid JSON"),
        (b" " * (1 << 20) + b"{}", 413, "body: expected at most 1048576 bytes"),
    ],
    ids=["truncated", "not-utf8", "array", "deeply-nested", "too-big"],
)
def test_get_action_refuses_malformed_bodies(
    reach_server: Server, raw: bytes, status: int, message: str
) -> None:
    response = httpx.post(reach_server.url + "/get_action", content=raw)
    assert response.status_code == status, response.text
    assert response.json()["message"].startswith(message)


def test_empty_deployable_map_is_a_stop(
    reach_server: Server, valid_body: dict[str, Any]
) -> None:
    body = {**valid_body, "pod_deployable": {}}
    response = httpx.post(reach_server.url + "/get_action", json=body)
    assert response.json() == {"pod_name": "", "target_node": "", "is_stop": True}


ROUTE = {"request_type": "web", "origin": "us-east"}


@pytest.mark.parametrize(
    ("path", "body", "status", "messages"),
    [
        (
            "/v1/route",
            {"request_type": 5},
            422,
            [
                "request_type: expected a valid string, got 5",
                "origin: expected a value (the field is required)",
            ],
        ),
        (
            "/v1/route",
            {**ROUTE, "origin": "mars"},
            422,
            ["origin: expected one of us-east, eu-central, asia-east, got 'mars'"],
        ),
        (
            "/v1/route",
            {**ROUTE, "nodes": {"us-east/gpu-1": {}}},
            422,
            [
                "nodes.us-east/gpu-1: expected a node of the scenario "
                "(<region>/<pool>-<i>), got 'us-east/gpu-1'"
            ],
        ),
        (
            "/v1/route",
            {**ROUTE, "nodes": {"us-east/cloud-1": {"busy_cores": 99}}},
            422,
            ["nodes.us-east/cloud-1.busy_cores: expected at most 4 cores, got 99"],
        ),
        (
            "/v1/route",
            {**ROUTE, "nodes": {"us-east/cloud-1": {"queue_wait_s": -1}}},
            422,
            [
                "nodes.us-east/cloud-1.queue_wait_s: expected greater than or equal "
                "to 0, got -1"
            ],
        ),
        (
            "/v1/route",
            {**ROUTE, "time": "yesterday"},
            422,
            [
                "time: expected a valid datetime or date, input is too short, "
                "got 'yesterday'"
            ],
        ),
        (
            "/v1/route",
            {**ROUTE, "colour": "blue"},
            422,
            [
                "colour: expected no such field (unknown key; check its spelling), "
                "got 'blue'"
            ],
        ),
        (
            "/v1/schedule",
            ROUTE,
            422,
            ["region: expected a value (the field is required)"],
        ),
        (
            "/v1/route/batch",
            {"requests": [ROUTE, {**ROUTE, "request_type": "video"}]},
            422,
            [
                "requests[1].request_type: expected one of web, inference, "
                "analytics, personal-data, got 'video'"
            ],
        ),
        (
            "/v1/route/batch",
            {"requests": [ROUTE] * (MAX_BATCH + 1)},
            413,
            [f"requests: expected at most {MAX_BATCH} items (--max-batch), got 65"],
        ),
        (
            "/get_action",
            {"cluster_state": {}},
            409,
            [
                "policy: expected a checkpoint that answers /get_action (the loaded "
                "one is a two_tier policy answering /v1/route, /v1/schedule)"
            ],
        ),
    ],
    ids=[
        "wrong-type-and-missing",
        "unknown-region",
        "unknown-node",
        "busy-over-cores",
        "negative-wait",
        "bad-time",
        "unknown-field",
        "schedule-without-region",
        "batch-item-path",
        "batch-too-large",
        "reach-on-two-tier",
    ],
)
def test_two_tier_refuses_bad_requests_naming_the_field(
    two_tier_server: Server,
    path: str,
    body: Any,
    status: int,
    messages: list[str],
) -> None:
    response = httpx.post(two_tier_server.url + path, json=body)
    assert response.status_code == status, response.text
    answer = response.json()
    assert answer["status"] == "error"
    assert answer["message"] == messages[0]
    if path != "/get_action":
        assert [e["message"] for e in answer["errors"]] == messages


def test_two_tier_malformed_json_is_400(two_tier_server: Server) -> None:
    response = httpx.post(two_tier_server.url + "/v1/route", content=b'{"reque')
    assert response.status_code == 400
    assert response.json()["message"].startswith("body: expected valid JSON (EOF")


def test_reschedule_policy_refuses_two_tier_endpoints(reach_server: Server) -> None:
    response = httpx.post(reach_server.url + "/v1/route", json=ROUTE)
    assert response.status_code == 409
    assert response.json()["message"] == (
        "policy: expected a checkpoint that answers /v1/route (the loaded one is a "
        "reschedule policy answering /get_action)"
    )
