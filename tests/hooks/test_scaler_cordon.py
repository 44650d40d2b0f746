"""Pool scaling through the scale subresource, and REACH's cordon protocol (flag)."""

from __future__ import annotations

import logging
import math

import pytest

from hooks.actions import MigratePod, ScaleDeployment
from hooks.kubernetes import markers
from hooks.kubernetes.client import KubeApi
from hooks.kubernetes.reach_protocol import CordonMigrator, reconcile
from hooks.kubernetes.scaler import Scaler, plan_scaling, replicas_for
from hooks.mode import DryRunActuator, LiveActuator
from tests.hooks.conftest import NS
from tests.hooks.helpers import controller, live_pods, replicaset, sequence
from tests.hooks.kube_double import KubeDouble


def test_replicas_follow_the_decisions() -> None:
    for decisions, per in [(0, 10.0), (1, 10.0), (25, 10.0), (30, 10.0), (999, 7.5)]:
        expected = max(1, min(100, math.ceil(decisions / per)))
        assert replicas_for(decisions, per) == expected
    plan = plan_scaling({"edge": 25, "cloud": 0}, {"edge": "edge-pool",
                        "cloud": "cloud-pool", "gpu": "gpu-pool"}, NS, 10.0,
                        maximum=2)  # fmt: skip
    assert plan == [
        ScaleDeployment(NS, "cloud-pool", 1),
        ScaleDeployment(NS, "edge-pool", 2),
        ScaleDeployment(NS, "gpu-pool", 1),
    ]
    with pytest.raises(ValueError, match="per_replica: expected > 0, got 0"):
        replicas_for(3, 0)


def test_scaling_patches_only_the_scale_subresource(
    double: KubeDouble, api: KubeApi
) -> None:
    scaler = Scaler(api)
    assert (
        LiveActuator({ScaleDeployment: scaler}).apply(ScaleDeployment(NS, "web", 3))
        == "scaled"
    )
    writes = [r for r in double.requests if r.method != "GET"]
    assert [(r.method, r.path, r.body) for r in writes] == [
        ("PATCH", f"/apis/apps/v1/namespaces/{NS}/deployments/web/scale",
         {"spec": {"replicas": 3}}),
    ]  # fmt: skip
    double.wait_for(lambda: double.ready_pods(NS, "web") == 3, 5)
    double.requests.clear()
    assert scaler(ScaleDeployment(NS, "web", 3)) == "unchanged"
    assert [r.method for r in double.requests] == ["GET", "GET"]


def test_an_hpa_owned_deployment_is_left_alone_with_a_warning_and_backoff(
    double: KubeDouble, api: KubeApi, caplog: pytest.LogCaptureFixture
) -> None:
    double.add_hpa(NS, "web-hpa", "web")
    now = [0.0]
    scaler = Scaler(api, hpa_backoff=300.0, clock=lambda: now[0])
    assert scaler(ScaleDeployment(NS, "web", 5)) == "hpa"
    assert "scaled by HorizontalPodAutoscaler web-hpa: not scaling it" in caplog.text
    assert [r.method for r in double.requests] == ["GET"]
    now[0] = 299.0
    assert scaler(ScaleDeployment(NS, "web", 5)) == "backoff"
    assert len(double.requests) == 1  # not even looked at
    now[0] = 301.0
    assert scaler(ScaleDeployment(NS, "web", 5)) == "hpa"
    assert all(r.method == "GET" for r in double.requests)
    assert double.get("Deployment", NS, "web")["spec"]["replicas"] == 2


def test_dry_run_scaling_sends_nothing(
    double: KubeDouble, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="hooks")
    DryRunActuator().apply(ScaleDeployment(NS, "web", 4))
    assert f"DRY-RUN would scale Deployment {NS}/web (replicas=4)" in caplog.text
    assert double.requests == []


def _cordons(double: KubeDouble, since: int) -> list[tuple[str, bool]]:
    with double.lock:
        return [
            (e[3]["metadata"]["name"], bool(e[3]["spec"].get("unschedulable")))
            for e in double.events
            if e[0] > since and e[1] == "Node" and e[2] == "MODIFIED"
        ]


def test_reach_cordon_protocol_moves_the_pod_and_restores_the_cluster(
    double: KubeDouble, api: KubeApi
) -> None:
    double.set_node("node-gpu", unschedulable=True)  # someone else's cordon
    since = double.rv
    pod = sorted(live_pods(double, NS, "web"), key=lambda p: p["metadata"]["name"])[0]
    action = MigratePod(NS, pod["metadata"]["name"], "node-c")
    result = CordonMigrator(api, timeout=5.0, poll=0.02)(action)
    assert result.outcome == "completed"
    double.wait_for(lambda: len(double.app_pods(NS, "web")) == 2, 5)
    pods = double.app_pods(NS, "web")
    assert pod["metadata"]["uid"] not in {p["metadata"]["uid"] for p in pods}
    assert [
        p["metadata"]["name"] for p in pods if p["spec"]["nodeName"] == "node-c"
    ] == [result.replacement]
    rs = replicaset(double, NS, "web")["metadata"]["name"]
    assert all(controller(p) == rs for p in pods)
    # every other schedulable node was cordoned, then uncordoned; node-gpu untouched
    changes = _cordons(double, since)
    assert sorted(n for n, on in changes if on) == ["node-a", "node-b"]
    assert sorted(n for n, on in changes if not on) == ["node-a", "node-b"]
    nodes = {
        n: double.get("Node", "", n) for n in ("node-a", "node-b", "node-c", "node-gpu")
    }
    assert [n for n, obj in nodes.items() if obj["spec"]["unschedulable"]] == [
        "node-gpu"
    ]
    dep = double.get("Deployment", NS, "web")
    assert dep["spec"]["replicas"] == 2
    assert markers.ORIGINAL_REPLICAS not in (dep["metadata"].get("annotations") or {})
    scale_patches = [
        r.body
        for r in double.requests
        if r.method == "PATCH" and r.path.endswith("/scale")
    ]
    assert scale_patches == [{"spec": {"replicas": 3}}, {"spec": {"replicas": 2}}]


def test_a_crashed_cordon_run_is_undone_from_its_marks(
    double: KubeDouble, api: KubeApi, monkeypatch: pytest.MonkeyPatch
) -> None:
    class Crash(BaseException):
        pass

    def crash(*args: object) -> str:
        raise Crash

    double.set_node("node-gpu", unschedulable=True)
    migrator = CordonMigrator(api, timeout=5.0, poll=0.02)
    monkeypatch.setattr(migrator, "_wait_until", crash)
    pod = sorted(live_pods(double, NS, "web"), key=lambda p: p["metadata"]["name"])[0]
    with pytest.raises(Crash):
        migrator(MigratePod(NS, pod["metadata"]["name"], "node-c"))
    # the finally clause is skipped by kill -9: put the cordons back as a crash left them
    for node in ("node-a", "node-b"):
        api.core.patch_node(node, {"spec": {"unschedulable": True},
                                   "metadata": {"annotations": {markers.CORDONED_BY: "x"}}})  # fmt: skip
    api.apps.patch_namespaced_deployment(
        "web", NS, {"metadata": {"annotations": {markers.ORIGINAL_REPLICAS: "2"}}}
    )
    api.apps.patch_namespaced_deployment_scale("web", NS, {"spec": {"replicas": 3}})
    done = reconcile(api, NS)
    assert sorted(done) == ["restored web to 2 replicas", "uncordoned node-a",
                            "uncordoned node-b"]  # fmt: skip
    assert double.get("Node", "", "node-gpu")["spec"]["unschedulable"] is True
    assert double.get("Deployment", NS, "web")["spec"]["replicas"] == 2
    double.wait_for(lambda: len(double.app_pods(NS, "web")) == 2, 5)
    assert sequence(double)  # sanity: the reconcile went over HTTP
