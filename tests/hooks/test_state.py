"""REACH's ``/get_action`` payload from one node list and one pod list.

The cluster is placed by hand, so every free millicore, free GiB and deployable
list below is worked out in the comments from the numbers given, not by the code.
"""

from __future__ import annotations

from typing import Any

import pytest

from hooks.kubernetes.client import KubeApi
from hooks.kubernetes.state import ClusterView, reach_payload, two_tier_nodes
from tests.hooks.kube_double import KubeDouble

APP = "shop"
GPU_TAINT = {"key": "gpu", "value": "true", "effect": "NoSchedule"}
GPU_TOLERATION = {
    "key": "gpu",
    "operator": "Equal",
    "value": "true",
    "effect": "NoSchedule",
}


@pytest.fixture
def cluster(bare_double: KubeDouble) -> KubeDouble:
    d = bare_double
    d.add_node("node-a", cpu="4", memory="8Gi", labels={"zone": "a"})
    d.add_node("node-b", cpu="4", memory="8Gi", labels={"zone": "b"})
    d.add_node("node-c", cpu="1", memory="2Gi")
    d.add_node("node-gpu", cpu="8", memory="16Gi", taints=[GPU_TAINT])
    d.add_node("node-off", cpu="6", memory="8Gi", unschedulable=True)
    d.add_node("node-down", cpu="4", memory="8Gi", ready=False)
    app = {"app": APP}
    d.add_pod(APP, "gateway-7c4b-aaaaa", "node-a", "1", "1Gi", app,
              spec={"tolerations": [GPU_TOLERATION]})  # fmt: skip
    d.add_pod(APP, "gateway-7c4b-bbbbb", "node-b", "1", "1Gi", app)
    d.add_pod(APP, "cache-55f8-ccccc", "node-a", "500m", "1Gi", app,
              spec={"nodeSelector": {"zone": "a"}})  # fmt: skip
    d.add_pod(APP, "big-1234-ddddd", "node-b", "3", "4Gi", app)
    d.add_pod(APP, "solo-9f9f-eeeee", "node-off", "5", "1Gi", app)
    affinity = {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
        "nodeSelectorTerms": [{
            "matchExpressions": [{"key": "zone", "operator": "NotIn", "values": ["b"]}],
            "matchFields": [{"key": "metadata.name", "operator": "In",
                             "values": ["node-a", "node-b", "node-c"]}],
        }]}}}  # fmt: skip
    d.add_pod(APP, "pinned-2222-fffff", "node-c", "500m", "512Mi", app,
              spec={"affinity": affinity})  # fmt: skip
    # not the app: counts on its node, is not listed
    d.add_pod("kube-system", "dns", "node-c", "500m", "512Mi", {"app": "dns"})
    # finished: neither counted nor listed
    d.add_pod(APP, "gateway-7c4b-zzzzz", "node-c", "1", "1Gi", app, phase="Succeeded")
    # unscheduled (no node fits its selector): counted nowhere, not listed
    d.add_pod(APP, "gateway-7c4b-ppppp", None, "1", "1Gi", app, phase="Pending",
              ready=False, spec={"nodeSelector": {"zone": "nowhere"}})  # fmt: skip
    d.requests.clear()
    return d


EXPECTED_NODES = {
    # node-a: 4 - 1 (gateway-a) - 0.5 (cache) = 2.5 cores; 8 - 1 - 1 = 6 GiB
    "node-a": (2500.0, 6.0),
    # node-b: 4 - 1 (gateway-b) - 3 (big) = 0; 8 - 1 - 4 = 3 GiB
    "node-b": (0.0, 3.0),
    # node-c: 1 - 0.5 (dns, another namespace) - 0.5 (pinned) = 0; 2 - 0.5 - 0.5 = 1
    "node-c": (0.0, 1.0),
    "node-gpu": (8000.0, 16.0),
    # node-off: 6 - 5 (solo) = 1; 8 - 1 = 7 GiB
    "node-off": (1000.0, 7.0),
    "node-down": (4000.0, 8.0),
}
EXPECTED_DEPLOYABLE = {
    # 1 core / 1 GiB, tolerates gpu: own node (2.5 + 1 free), node-gpu; node-b has
    # 0, node-c 0, node-off is cordoned, node-down NotReady
    "gateway-7c4b-aaaaa": ["node-a", "node-gpu"],
    # same without the toleration: node-a (2.5 free) and its own node (0 + 1)
    "gateway-7c4b-bbbbb": ["node-a", "node-b"],
    # zone=a selector: only node-a
    "cache-55f8-ccccc": ["node-a"],
    # 3 cores: only its own node (0 + 3); node-a has 2.5, node-gpu is tainted
    "big-1234-ddddd": ["node-b"],
    # 5 cores: its own node is cordoned, node-gpu tainted, the rest too small
    "solo-9f9f-eeeee": [],
    # affinity: zone NotIn (b) drops node-b, the name list drops node-gpu; node-a
    # has room, node-c is its own (0 + 0.5)
    "pinned-2222-fffff": ["node-a", "node-c"],
}


def _pods(*pairs: tuple[str, str]) -> list[dict[str, str]]:
    return [{"node_name": node, "pod_name": pod} for pod, node in pairs]


def test_payload_is_reach_exact_from_two_requests(
    cluster: KubeDouble, api: KubeApi
) -> None:
    view = ClusterView.read(api)
    payload = reach_payload(view, APP, f"app={APP}")
    assert [str(r) for r in cluster.requests] == [
        "GET /api/v1/nodes",
        "GET /api/v1/pods?fieldSelector=status.phase!=Succeeded,status.phase!=Failed",
    ]
    expected: dict[str, Any] = {
        "cluster_state": {
            "nodes": {
                name: {
                    "node_name": name,
                    "cpu_availability": cpu,
                    "memory_availability": mem,
                }
                for name, (cpu, mem) in EXPECTED_NODES.items()
            },
            "services": {
                "big": {"service_name": "big", "pods": _pods(("big-1234-ddddd", "node-b"))},
                "cache": {"service_name": "cache",
                          "pods": _pods(("cache-55f8-ccccc", "node-a"))},
                "gateway": {"service_name": "gateway", "pods": _pods(
                    ("gateway-7c4b-aaaaa", "node-a"), ("gateway-7c4b-bbbbb", "node-b"))},
                "solo": {"service_name": "solo",
                         "pods": _pods(("solo-9f9f-eeeee", "node-off"))},
                "pinned": {"service_name": "pinned",
                           "pods": _pods(("pinned-2222-fffff", "node-c"))},
            },
        },
        "pod_deployable": EXPECTED_DEPLOYABLE,
    }  # fmt: skip
    assert payload == expected


def test_node_selector_limits_the_nodes_and_the_targets(
    cluster: KubeDouble, api: KubeApi
) -> None:
    view = ClusterView.read(api)
    payload = reach_payload(view, APP, f"app={APP}", node_selector="zone")
    assert sorted(payload["cluster_state"]["nodes"]) == ["node-a", "node-b"]
    # pods on other nodes are not the policy's to see
    assert payload["pod_deployable"] == {
        "gateway-7c4b-aaaaa": ["node-a"],
        "gateway-7c4b-bbbbb": ["node-a", "node-b"],
        "cache-55f8-ccccc": ["node-a"],
        "big-1234-ddddd": ["node-b"],
    }


def test_finished_pods_are_dropped_even_if_the_server_sends_them() -> None:
    node = {
        "metadata": {"name": "n", "labels": {}},
        "status": {
            "allocatable": {"cpu": "2", "memory": "1Gi"},
            "conditions": [{"type": "Ready", "status": "True"}],
        },
    }

    def pod(name: str, phase: str) -> dict[str, Any]:
        return {
            "metadata": {"name": name, "namespace": "x", "labels": {"app": "a"}},
            "spec": {
                "nodeName": "n",
                "containers": [{"resources": {"requests": {"cpu": "500m"}}}],
            },
            "status": {"phase": phase},
        }

    view = ClusterView.from_json(
        {"items": [node]},
        {"items": [pod("a-1-x", "Running"), pod("a-1-y", "Failed"),
                   pod("a-1-z", "Succeeded")], "metadata": {"resourceVersion": "9"}},
    )  # fmt: skip
    assert [p.name for p in view.pods] == ["a-1-x"]
    assert view.free(view.nodes[0])[0] == pytest.approx(1.5)
    assert view.resource_version == "9"


def test_two_tier_nodes_report_busy_cores(cluster: KubeDouble, api: KubeApi) -> None:
    view = ClusterView.read(api)
    names = {"node-a": "eu/edge-1", "node-b": "eu/edge-2", "node-c": "eu/tiny-1"}
    nodes = two_tier_nodes(view, names, {"node-a": 0.25})
    # requests: node-a 1.5 cores -> 2 busy (a core partly requested is busy);
    # node-b 4 -> 4; node-c 0.5 + 0.5 -> 1
    assert nodes == {
        "eu/edge-1": {"queue_wait_s": 0.25, "busy_cores": 2},
        "eu/edge-2": {"queue_wait_s": 0.0, "busy_cores": 4},
        "eu/tiny-1": {"queue_wait_s": 0.0, "busy_cores": 1},
    }
