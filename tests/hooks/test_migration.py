"""Adopt-and-shed against the stateful API double, through the real client.

Each test checks the end state in the double (which pods exist, who owns them, where
they run, which markers are left) and the requests the migrator sent.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from hooks.actions import MigratePod
from hooks.errors import PermanentHookError
from hooks.kubernetes.client import KubeApi
from hooks.kubernetes.migration import (
    STEPS,
    GuardRailError,
    MigrationFailed,
    PodMigrator,
    Preflight,
    Timeouts,
)
from tests.hooks.conftest import NS, fast_api
from tests.hooks.helpers import (
    controller,
    in_flight_markers,
    live_pods,
    min_ready_since,
    pods_added_since,
    replicaset,
    sequence,
)
from tests.hooks.kube_double import KubeDouble

FAST = Timeouts(ready=3.0, handover=3.0, watch_chunk=1.0)
COST = "controller.kubernetes.io/pod-deletion-cost"


class Crash(BaseException):
    """Stands for kill -9: nothing in the migrator catches it."""


def _move(double: KubeDouble) -> MigratePod:
    """Move the first web pod to the free worker node (node-c)."""
    pod = sorted(live_pods(double, NS, "web"), key=lambda p: p["metadata"]["name"])[0]
    return MigratePod(NS, pod["metadata"]["name"], "node-c", pod["spec"]["nodeName"])


def _assert_migrated(double: KubeDouble, action: MigratePod, source_uid: str) -> None:
    rs = replicaset(double, NS, "web")
    double.wait_for(lambda: len(double.app_pods(NS, "web")) == 2, 5)  # grace over
    pods = double.app_pods(NS, "web")
    assert source_uid not in {p["metadata"]["uid"] for p in pods}
    on_target = [p for p in pods if p["spec"]["nodeName"] == action.target_node]
    assert len(on_target) == 1
    new = on_target[0]
    assert controller(new) == rs["metadata"]["name"]
    assert new["metadata"]["labels"] == rs["spec"]["template"]["metadata"]["labels"]
    assert all(controller(p) == rs["metadata"]["name"] for p in pods)
    assert in_flight_markers(double, NS) == {}


def _assert_untouched(double: KubeDouble, action: MigratePod, source_uid: str) -> None:
    rs = replicaset(double, NS, "web")
    double.wait_for(lambda: len(double.app_pods(NS, "web")) == 2, 5)
    pods = {p["metadata"]["name"]: p for p in double.app_pods(NS, "web")}
    old = pods[action.pod]
    assert old["metadata"]["uid"] == source_uid
    assert old["spec"]["nodeName"] == action.current_node
    assert COST not in (old["metadata"].get("annotations") or {})
    assert all(controller(p) == rs["metadata"]["name"] for p in pods.values())
    assert not any(p["spec"]["nodeName"] == action.target_node for p in pods.values())
    assert in_flight_markers(double, NS) == {}


def test_adopt_and_shed_moves_the_pod_and_the_replicaset_keeps_it(
    double: KubeDouble, api: KubeApi
) -> None:
    action = _move(double)
    source = double.get("Pod", NS, action.pod)
    assert source is not None
    rs_name = replicaset(double, NS, "web")["metadata"]["name"]
    since = double.rv
    result = PodMigrator(api, FAST).migrate(action)
    assert result.outcome == "completed"
    assert result.node == "node-c" and result.source == action.pod
    _assert_migrated(double, action, source["metadata"]["uid"])
    # make-before-break: never fewer than 2 Ready replicas, and one pod created
    assert min_ready_since(double, rs_name, since) == 2
    assert pods_added_since(double, since) == [result.replacement]
    mutating = [s for s in sequence(double) if not s.startswith("GET ")]
    src, new = f"/api/v1/namespaces/{NS}/pods/{action.pod}", result.replacement
    assert mutating == [
        f"PATCH {src}",  # mark-source (under its resourceVersion)
        f"POST /api/v1/namespaces/{NS}/pods",  # create-replacement (pinned)
        f"PATCH {src}",  # shed-cost
        f"PATCH /api/v1/namespaces/{NS}/pods/{new}",  # adopt (hash restored)
        f"PATCH {src}",  # cleanup: source first
        f"PATCH /api/v1/namespaces/{NS}/pods/{new}",  # cleanup: replacement
    ]
    first_write = next(i for i, r in enumerate(double.requests) if r.method != "GET")
    preflight = sequence(double)[:first_write]
    rs_path = f"/apis/apps/v1/namespaces/{NS}/replicasets/{rs_name}"
    for read in (
        f"GET {src}",
        f"GET {rs_path}",
        f"GET /apis/policy/v1/namespaces/{NS}/poddisruptionbudgets",
        "GET /api/v1/nodes",
        "GET /api/v1/pods",
    ):
        assert read in preflight
    created = next(r for r in double.requests if r.method == "POST")
    assert created.body["spec"]["nodeSelector"] == {"kubernetes.io/hostname": "node-c"}
    assert created.body["metadata"]["labels"]["pod-template-hash"].endswith("-mbb")


def test_never_ready_replacement_is_rolled_back_and_the_old_pod_keeps_running(
    double: KubeDouble, api: KubeApi
) -> None:
    double.knobs.never_ready = lambda pod: pod["spec"].get("nodeName") == "node-c"
    action = _move(double)
    uid = double.get("Pod", NS, action.pod)["metadata"]["uid"]
    timeouts = Timeouts(ready=1.0, handover=1.0, watch_chunk=1.0)
    with pytest.raises(MigrationFailed, match=r"not Ready on node-c within 1 s") as e:
        PodMigrator(api, timeouts).migrate(action)
    assert "settled: rolled-back" in str(e.value)
    _assert_untouched(double, action, uid)
    deletes = [s for s in sequence(double) if s.startswith("DELETE ")]
    assert len(deletes) == 1 and action.pod not in deletes[0]


def test_failed_replacement_is_rolled_back_at_once(
    double: KubeDouble, api: KubeApi
) -> None:
    double.knobs.fail = lambda pod: pod["spec"].get("nodeName") == "node-c"
    action = _move(double)
    uid = double.get("Pod", NS, action.pod)["metadata"]["uid"]
    with pytest.raises(MigrationFailed, match="the replacement failed"):
        PodMigrator(api, Timeouts(ready=30.0, handover=30.0)).migrate(action)
    _assert_untouched(double, action, uid)


def test_replicaset_shedding_the_replacement_leaves_the_old_pod(
    double: KubeDouble, api: KubeApi
) -> None:
    """Without deletion cost the ReplicaSet sheds the newest Ready pod.

    REACH's migrator reports success then; here it is detected, the old pod kept.
    """
    double.knobs.honour_deletion_cost = False
    action = _move(double)
    uid = double.get("Pod", NS, action.pod)["metadata"]["uid"]
    with pytest.raises(MigrationFailed, match="removed the replacement"):
        PodMigrator(api, FAST).migrate(action)
    _assert_untouched(double, action, uid)


def test_a_conflict_is_retried_after_reading_again(
    double: KubeDouble, api: KubeApi
) -> None:
    action = _move(double)
    src = f"/api/v1/namespaces/{NS}/pods/{action.pod}"
    double.fault("PATCH", re.escape(src) + "$", 409, times=1)
    double.fault("POST", rf"/namespaces/{NS}/pods$", 409, times=1, reason="Conflict")
    uid = double.get("Pod", NS, action.pod)["metadata"]["uid"]
    result = PodMigrator(api, FAST).migrate(action)
    assert result.outcome == "completed"
    _assert_migrated(double, action, uid)
    seq = sequence(double)
    first = seq.index(f"PATCH {src}")
    second = seq.index(f"PATCH {src}", first + 1)
    # between the two tries, every guard rail is read again: the pod, PDBs, target
    again = seq[first + 1 : second]
    assert again[0] == f"GET {src}"
    assert f"GET /apis/policy/v1/namespaces/{NS}/poddisruptionbudgets" in again
    assert "GET /api/v1/nodes" in again
    assert all(s.startswith("GET ") for s in again)
    post = seq.index(f"POST /api/v1/namespaces/{NS}/pods")
    new = f"/api/v1/namespaces/{NS}/pods/{result.replacement}"
    # the create answered 409: is the pod ours (a lost answer)? not there: create
    assert seq[post : post + 3] == [
        f"POST /api/v1/namespaces/{NS}/pods",
        f"GET {new}",
        f"POST /api/v1/namespaces/{NS}/pods",
    ]


@pytest.mark.parametrize("change", ["pdb", "cordon"])
def test_a_conflict_checks_every_guard_rail_again(
    double: KubeDouble, api: KubeApi, change: str
) -> None:
    """The pod changes between the guard rails and the mark, and so does the rest.

    The 409 of the mark is real (someone labelled the pod); meanwhile a
    PodDisruptionBudget allowing no disruption appears, or the target is cordoned.
    The second try must see it and refuse, before anything is created.
    """
    action = _move(double)
    uid = double.get("Pod", NS, action.pod)["metadata"]["uid"]

    class Racing(PodMigrator):
        raced = False

        def preflight(self, action: MigratePod, view: object = None) -> Preflight:
            pre = super().preflight(action, view)  # type: ignore[arg-type]
            if not self.raced:  # after the first reads: someone else acts
                self.raced = True
                api.core.patch_namespaced_pod(
                    action.pod, NS, {"metadata": {"labels": {"touched": "yes"}}}
                )
                if change == "pdb":
                    double.add_pdb(NS, "web-pdb", {"app": "web"}, 0)
                else:
                    double.set_node("node-c", unschedulable=True)
            return pre

    double.requests.clear()
    reason = "allows no disruption" if change == "pdb" else "is cordoned"
    with pytest.raises(GuardRailError, match=reason):
        Racing(api, FAST).migrate(action)
    src = f"/api/v1/namespaces/{NS}/pods/{action.pod}"
    writes = [f"{r.method} {r.path}" for r in double.mutating()]
    assert writes == [f"PATCH {src}", f"PATCH {src}"]  # the change, the refused mark
    _assert_untouched(double, action, uid)


def test_throttling_is_retried_with_backoff(double: KubeDouble, api: KubeApi) -> None:
    action = _move(double)
    double.fault("GET", r"/replicasets/", 429, times=2)
    double.fault("GET", r"/poddisruptionbudgets$", 503, times=1)
    assert PodMigrator(api, FAST).migrate(action).outcome == "completed"
    assert sum("replicasets" in s for s in sequence(double)) >= 3


def test_forbidden_stops_with_a_clear_message_and_undoes_the_mark(
    double: KubeDouble, api: KubeApi
) -> None:
    message = (
        'pods is forbidden: User "system:serviceaccount:hooks:migrator" cannot '
        'create resource "pods" in API group "" in the namespace "shop"'
    )
    double.fault("POST", rf"/namespaces/{NS}/pods$", 403, times=5, message=message)
    action = _move(double)
    uid = double.get("Pod", NS, action.pod)["metadata"]["uid"]
    with pytest.raises(PermanentHookError) as caught:
        PodMigrator(api, FAST).migrate(action)
    assert caught.value.status == 403
    assert str(caught.value).startswith(f"Pod {NS}/web-")
    assert f"HTTP 403: Forbidden: {message}" in str(caught.value)
    assert sum(s.startswith("POST ") for s in sequence(double)) == 1  # not retried
    _assert_untouched(double, action, uid)


# ---------------------------------------------------------------- guard rails


def _refused(double: KubeDouble, api: KubeApi, action: MigratePod, why: str) -> None:
    with pytest.raises(GuardRailError, match=why):
        PodMigrator(api, FAST).migrate(action)
    assert [r for r in double.requests if r.method != "GET"] == []


def test_pdb_without_disruptions_refuses(double: KubeDouble, api: KubeApi) -> None:
    double.add_pdb(NS, "web-pdb", {"app": "web"}, disruptions_allowed=0)
    _refused(double, api, _move(double), "PodDisruptionBudget web-pdb allows no")


def test_pdb_still_processing_refuses(double: KubeDouble, api: KubeApi) -> None:
    double.add_pdb(NS, "web-pdb", {"app": "web"}, 1, generation_lag=True)
    _refused(double, api, _move(double), "web-pdb is still being processed")


def test_two_pdbs_refuse(double: KubeDouble, api: KubeApi) -> None:
    double.add_pdb(NS, "a", {"app": "web"}, 1)
    double.add_pdb(NS, "b", {"app": "web"}, 1)
    _refused(
        double,
        api,
        _move(double),
        r"more than one PodDisruptionBudget selects the pod .a, b.",
    )


def test_pdb_with_room_allows(double: KubeDouble, api: KubeApi) -> None:
    double.add_pdb(NS, "web-pdb", {"app": "web"}, disruptions_allowed=1)
    assert PodMigrator(api, FAST).migrate(_move(double)).outcome == "completed"


@pytest.mark.parametrize(
    ("target", "setup"),
    [
        ("node-gpu", None),  # tainted, no toleration
        ("node-c", "cordon"),
        ("node-c", "not-ready"),
        ("node-x", None),  # does not exist
    ],
)
def test_unfit_target_refuses(
    double: KubeDouble, api: KubeApi, target: str, setup: str | None
) -> None:
    if setup == "cordon":
        double.set_node("node-c", unschedulable=True)
    elif setup == "not-ready":
        double.set_node("node-c", ready=False)
    double.requests.clear()
    action = _move(double)
    action = MigratePod(NS, action.pod, target, action.current_node)
    _refused(double, api, action, rf"target node {target} (is not Ready|does not)")


def test_target_too_small_refuses(double: KubeDouble, api: KubeApi) -> None:
    double.add_deployment(NS, "hog", 1, cpu="800m", memory="64Mi",
                          node_selector={"kubernetes.io/hostname": "node-c"})  # fmt: skip
    double.requests.clear()
    _refused(double, api, _move(double), "its requests do not fit")


def test_one_migration_per_workload(double: KubeDouble, api: KubeApi) -> None:
    first, second = sorted(p["metadata"]["name"] for p in double.app_pods(NS, "web"))
    rs_name = replicaset(double, NS, "web")["metadata"]["name"]
    with double.lock:  # another migrator is moving the other pod
        pod = double.store["Pod"][(NS, second)]
        pod["metadata"]["labels"]["hooks.frl.dev/replicaset"] = rs_name
    action = _move(double)
    assert action.pod == first
    _refused(double, api, action, f"a migration of ReplicaSet {rs_name} is in flight")


def test_young_pod_and_bare_pod_and_unready_siblings_refuse(
    double: KubeDouble, api: KubeApi
) -> None:
    action = _move(double)
    with pytest.raises(GuardRailError, match="younger than min_pod_age 3600 s"):
        PodMigrator(api, FAST, min_pod_age=3600).migrate(action)
    double.add_pod(NS, "bare", "node-a", labels={"app": "bare"})
    with pytest.raises(GuardRailError, match=r"never moved.*got owner none"):
        PodMigrator(api, FAST).migrate(MigratePod(NS, "bare", "node-c"))
    other = [
        p for p in double.app_pods(NS, "web") if p["metadata"]["name"] != action.pod
    ]
    with double.lock:
        double.store["Pod"][(NS, other[0]["metadata"]["name"])]["status"][
            "conditions"
        ] = [{"type": "Ready", "status": "False"}]
    with pytest.raises(GuardRailError, match="must be Ready first"):
        PodMigrator(api, FAST).migrate(action)
    assert [r for r in double.requests if r.method != "GET"] == []


def test_replicaset_scaling_refuses(double: KubeDouble, api: KubeApi) -> None:
    with double.lock:
        double.store["Deployment"][(NS, "web")]["spec"]["replicas"] = 3
        double.knobs.ready_delay = 60.0  # the third pod stays Pending
    double.wait_for(lambda: len(double.app_pods(NS, "web")) == 3, 5)
    ready = sorted(
        p["metadata"]["name"]
        for p in double.app_pods(NS, "web")
        if p["status"]["phase"] == "Running"
    )
    with pytest.raises(GuardRailError, match="must be Ready first"):
        PodMigrator(api, FAST).migrate(MigratePod(NS, ready[0], "node-c"))


# ---------------------------------------------------------------- crashes


EXPECTED_AFTER_CRASH = {
    "mark-source": "rolled-back",
    "create-replacement": "rolled-back",
    "wait-ready": "rolled-back",
    "shed-cost": "rolled-back",
    "adopt": "completed",
    "wait-handover": "completed",
    "cleanup": None,  # nothing left to settle: the migration had finished
}


@pytest.mark.parametrize("step", STEPS)
def test_a_crash_at_each_step_is_settled_by_the_next_start(
    double: KubeDouble, kubeconfig: Path, step: str
) -> None:
    assert set(EXPECTED_AFTER_CRASH) == set(STEPS)

    def crash_at(done: str) -> None:
        if done == step:
            raise Crash(done)

    action = _move(double)
    uid = double.get("Pod", NS, action.pod)["metadata"]["uid"]
    with pytest.raises(Crash):
        PodMigrator(fast_api(kubeconfig), FAST, checkpoint=crash_at).migrate(action)
    # a fresh process: new client, new migrator, only the objects' markers
    results = PodMigrator(fast_api(kubeconfig), FAST).reconcile(NS)
    expected = EXPECTED_AFTER_CRASH[step]
    assert [r.outcome for r in results] == ([expected] if expected else [])
    if expected == "rolled-back":
        _assert_untouched(double, action, uid)
    else:
        _assert_migrated(double, action, uid)
    assert PodMigrator(fast_api(kubeconfig), FAST).reconcile(NS) == []
