"""The API double behaves like the API server for the subset the hooks use.

Driven by the real ``kubernetes`` client (URLs, serialisation, status -> exception),
so the hooks' tests against it mean something. Expected behaviour comes from the
Kubernetes documentation (docs/hooks.md lists the sources), not from the double.
"""

from __future__ import annotations

import json
import time

import pytest
from kubernetes import client, watch
from kubernetes.client.exceptions import ApiException

from tests.hooks.conftest import NS
from tests.hooks.kube_double import KubeDouble


@pytest.fixture
def core(double: KubeDouble) -> client.CoreV1Api:
    cfg = client.Configuration()
    cfg.host = double.url
    return client.CoreV1Api(client.ApiClient(cfg))


@pytest.fixture
def policy_api(double: KubeDouble) -> client.PolicyV1Api:
    cfg = client.Configuration()
    cfg.host = double.url
    return client.PolicyV1Api(client.ApiClient(cfg))


def _names(pod_list: client.V1PodList) -> list[str]:
    return sorted(p.metadata.name for p in pod_list.items)


def test_errors_are_status_bodies(core: client.CoreV1Api) -> None:
    with pytest.raises(ApiException) as caught:
        core.read_namespaced_pod("nope", NS)
    body = json.loads(caught.value.body)
    assert caught.value.status == 404
    assert body["kind"] == "Status" and body["status"] == "Failure"
    assert body["reason"] == "NotFound" and body["code"] == 404


def test_selectors_filter_like_the_api_server(
    double: KubeDouble, core: client.CoreV1Api
) -> None:
    double.add_deployment(NS, "db", 1, cpu="100m", memory="64Mi", labels={"tier": "b"})
    web = [p["metadata"]["name"] for p in double.app_pods(NS, "web")]
    db = [p["metadata"]["name"] for p in double.app_pods(NS, "db")]
    assert _names(core.list_namespaced_pod(NS, label_selector="app=web")) == web
    assert _names(core.list_namespaced_pod(NS, label_selector="app in (db)")) == db
    assert _names(core.list_namespaced_pod(NS, label_selector="app notin (db)")) == web
    assert _names(core.list_namespaced_pod(NS, label_selector="!tier")) == web
    assert _names(core.list_namespaced_pod(NS, label_selector="tier")) == db
    assert _names(core.list_namespaced_pod(NS, label_selector="app!=web")) == db
    node = double.get("Pod", NS, web[0])["spec"]["nodeName"]
    on_node = core.list_pod_for_all_namespaces(field_selector=f"spec.nodeName={node}")
    expected = [
        p["metadata"]["name"] for p in double.pods() if p["spec"]["nodeName"] == node
    ]
    assert _names(on_node) == sorted(expected)
    running = core.list_pod_for_all_namespaces(
        field_selector="status.phase!=Succeeded,status.phase!=Failed"
    )
    assert len(running.items) == len(double.pods())


def test_resource_version_is_a_precondition(
    double: KubeDouble, core: client.CoreV1Api
) -> None:
    name = double.app_pods(NS, "web")[0]["metadata"]["name"]
    pod = core.read_namespaced_pod(name, NS)
    stale = pod.metadata.resource_version
    core.patch_namespaced_pod(name, NS, {"metadata": {"labels": {"x": "1"}}})
    fresh = core.read_namespaced_pod(name, NS).metadata.resource_version
    assert int(fresh) > int(stale)
    with pytest.raises(ApiException) as caught:
        core.patch_namespaced_pod(
            name, NS, {"metadata": {"resourceVersion": stale, "labels": {"x": "2"}}}
        )
    assert caught.value.status == 409
    assert core.read_namespaced_pod(name, NS).metadata.labels["x"] == "1"


def test_watch_streams_changes_after_the_version_and_ends_at_its_timeout(
    double: KubeDouble, core: client.CoreV1Api
) -> None:
    name = double.app_pods(NS, "web")[0]["metadata"]["name"]
    rv = core.list_namespaced_pod(NS).metadata.resource_version
    core.patch_namespaced_pod(name, NS, {"metadata": {"labels": {"seen": "yes"}}})
    started = time.monotonic()
    events = list(
        watch.Watch().stream(
            core.list_namespaced_pod, NS, label_selector="seen=yes",
            resource_version=rv, timeout_seconds=1,
        )
    )  # fmt: skip
    elapsed = time.monotonic() - started
    # the pod newly matches the selector: the API server reports it as ADDED
    assert [(e["type"], e["object"].metadata.name) for e in events] == [("ADDED", name)]
    assert 0.9 <= elapsed < 10.0  # ended by timeoutSeconds, not at once


def test_watch_from_a_compacted_version_is_410(
    double: KubeDouble, core: client.CoreV1Api
) -> None:
    double.knobs.keep_events = 1
    name = double.app_pods(NS, "web")[0]["metadata"]["name"]
    core.patch_namespaced_pod(name, NS, {"metadata": {"labels": {"a": "1"}}})
    core.patch_namespaced_pod(name, NS, {"metadata": {"labels": {"a": "2"}}})
    with pytest.raises(ApiException) as caught:
        list(
            watch.Watch().stream(
                core.list_namespaced_pod, NS, resource_version="1", timeout_seconds=1
            )
        )
    assert caught.value.status == 410


def test_eviction_follows_the_disruption_budget(
    double: KubeDouble, core: client.CoreV1Api
) -> None:
    first = double.app_pods(NS, "web")[0]["metadata"]["name"]
    double.add_pdb(NS, "web-pdb", {"app": "web"}, disruptions_allowed=0)

    def evict(name: str) -> None:
        core.create_namespaced_pod_eviction(
            name, NS, client.V1Eviction(metadata=client.V1ObjectMeta(name=name))
        )

    with pytest.raises(ApiException) as caught:
        evict(first)
    assert caught.value.status == 429
    assert "disruption budget" in json.loads(caught.value.body)["message"]
    double.add_pdb(NS, "second-pdb", {"app": "web"}, disruptions_allowed=1)
    with pytest.raises(ApiException) as caught:
        evict(first)
    assert caught.value.status == 500
    assert "more than one PodDisruptionBudget" in caught.value.body


def test_eviction_without_budget_deletes_gracefully(
    double: KubeDouble, core: client.CoreV1Api
) -> None:
    name = double.app_pods(NS, "web")[0]["metadata"]["name"]
    core.create_namespaced_pod_eviction(
        name, NS, client.V1Eviction(metadata=client.V1ObjectMeta(name=name))
    )
    assert core.read_namespaced_pod(name, NS).metadata.deletion_timestamp is not None
    double.wait_for(lambda: double.get("Pod", NS, name) is None, 5)


def test_scale_subresource_drives_the_replicaset(double: KubeDouble) -> None:
    cfg = client.Configuration()
    cfg.host = double.url
    apps = client.AppsV1Api(client.ApiClient(cfg))
    scale = apps.patch_namespaced_deployment_scale("web", NS, {"spec": {"replicas": 3}})
    assert scale.spec.replicas == 3
    double.wait_for(lambda: double.ready_pods(NS, "web") == 3, 5)
    apps.patch_namespaced_deployment_scale("web", NS, {"spec": {"replicas": 1}})
    double.wait_for(lambda: len(double.app_pods(NS, "web")) == 1, 5)


def test_replicaset_adopts_a_matching_orphan_and_sheds_by_rank(
    double: KubeDouble, core: client.CoreV1Api
) -> None:
    """Adopted at once, then shed first: Pending < Running (ActivePodsWithRanks).

    This is why the naive make-before-break (template copy, then delete) fails.
    """
    pods = double.app_pods(NS, "web")
    template = double.get(
        "ReplicaSet", NS, pods[0]["metadata"]["ownerReferences"][0]["name"]
    )
    assert template is not None
    body = {
        "metadata": {
            "name": "orphan",
            "labels": template["spec"]["template"]["metadata"]["labels"],
        },
        "spec": template["spec"]["template"]["spec"],
    }
    double.knobs.ready_delay = 5.0  # the orphan stays Pending
    created = core.create_namespaced_pod(NS, body)
    assert created.metadata.name == "orphan"
    double.wait_for(lambda: double.get("Pod", NS, "orphan") is None, 5)
    assert sorted(p["metadata"]["name"] for p in double.app_pods(NS, "web")) == sorted(
        p["metadata"]["name"] for p in pods
    )


def test_lowest_deletion_cost_is_shed_among_ready_peers(
    double: KubeDouble, core: client.CoreV1Api
) -> None:
    cfg = client.Configuration()
    cfg.host = double.url
    apps = client.AppsV1Api(client.ApiClient(cfg))
    apps.patch_namespaced_deployment_scale("web", NS, {"spec": {"replicas": 3}})
    double.wait_for(lambda: double.ready_pods(NS, "web") == 3, 5)
    oldest = sorted(
        double.app_pods(NS, "web"), key=lambda p: p["metadata"]["creationTimestamp"]
    )[0]
    name = oldest["metadata"]["name"]
    core.patch_namespaced_pod(
        name, NS,
        {"metadata": {"annotations": {"controller.kubernetes.io/pod-deletion-cost": "-5"}}},
    )  # fmt: skip
    apps.patch_namespaced_deployment_scale("web", NS, {"spec": {"replicas": 2}})
    double.wait_for(lambda: double.get("Pod", NS, name) is None, 5)
    assert len(double.app_pods(NS, "web")) == 2


def test_readiness_transitions_and_node_conditions(
    double: KubeDouble, core: client.CoreV1Api
) -> None:
    double.knobs.never_ready = lambda pod: pod["metadata"]["name"] == "stuck"
    core.create_namespaced_pod(
        NS,
        {
            "metadata": {"name": "stuck"},
            "spec": {"containers": [{"name": "c", "image": "x"}]},
        },
    )
    double.wait_for(
        lambda: (
            (double.get("Pod", NS, "stuck") or {}).get("status", {}).get("phase")
            == "Running"
        ),
        5,
    )
    pod = core.read_namespaced_pod("stuck", NS)
    assert [c.status for c in pod.status.conditions if c.type == "Ready"] == ["False"]
    for node in ("node-a", "node-b", "node-gpu"):
        double.set_node(node, ready=False)
    core.create_namespaced_pod(
        NS,
        {
            "metadata": {"name": "late"},
            "spec": {"containers": [{"name": "c", "image": "x"}]},
        },
    )
    double.wait_for(
        lambda: bool((double.get("Pod", NS, "late") or {})["spec"].get("nodeName")), 5
    )
    assert double.get("Pod", NS, "late")["spec"]["nodeName"] == "node-c"


def test_faults_answer_the_next_calls_then_stop(
    double: KubeDouble, core: client.CoreV1Api
) -> None:
    # (no Retry-After: with one, urllib3 under the client retries 429/503 itself)
    double.fault("GET", r"/api/v1/nodes$", 500, times=2)
    for _ in range(2):
        with pytest.raises(ApiException) as caught:
            core.list_node()
        assert caught.value.status == 500
        assert json.loads(caught.value.body)["reason"] == "InternalError"
    assert len(core.list_node().items) == 4
    assert [str(r) for r in double.requests] == ["GET /api/v1/nodes"] * 3
