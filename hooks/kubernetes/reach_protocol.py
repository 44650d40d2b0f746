"""REACH's own migration protocol, behind a flag, only to reproduce the paper.

Cordon every schedulable node but the target, scale the Deployment +1, wait for a
new Ready pod on the target, give the old pod the lowest deletion cost (REACH's
``"0"`` is the default and steers nothing), scale back, wait for the old pod to go,
uncordon. Unlike REACH it
marks the nodes it cordons and uncordons only those, restores replicas and cordons
on failure, and :func:`reconcile` undoes a crashed run from those marks. It still
blocks scheduling for every tenant while it runs: never the default.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from hooks.actions import MigratePod
from hooks.errors import HookError
from hooks.kubernetes import markers
from hooks.kubernetes.client import KubeApi
from hooks.kubernetes.migration import (
    MigrationFailed,
    MigrationResult,
    new_migration_id,
)
from hooks.kubernetes.state import ClusterView, PodInfo

log = logging.getLogger(__name__)


class CordonMigrator:
    """Live executor of :class:`MigratePod` the way REACH's pod-migrator does it."""

    def __init__(
        self,
        api: KubeApi,
        timeout: float = 120.0,
        poll: float = 0.1,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        progress: Callable[[], None] | None = None,
    ) -> None:
        self.api = api
        self.timeout = timeout
        self.poll = poll
        self.clock = clock
        self.sleep = sleep
        self.progress = progress or (lambda: None)
        """Called at every poll of a wait (liveness while a migration runs)."""

    def _cordon(self, node: str, on: bool, mid: str) -> None:
        body = {
            "metadata": {"annotations": {markers.CORDONED_BY: mid if on else None}},
            "spec": {"unschedulable": on},
        }
        self.api.call(f"Node {node}", self.api.core.patch_node, node, body)

    def _scale(self, ns: str, name: str, replicas: int, original: int | None) -> None:
        obj = f"Deployment {ns}/{name}"
        note = {markers.ORIGINAL_REPLICAS: None if original is None else str(original)}
        self.api.call(
            obj, self.api.apps.patch_namespaced_deployment, name, ns,
            {"metadata": {"annotations": note}},
        )  # fmt: skip
        self.api.call(
            obj, self.api.apps.patch_namespaced_deployment_scale, name, ns,
            {"spec": {"replicas": replicas}},
        )  # fmt: skip

    def __call__(self, action: MigratePod) -> MigrationResult:
        """Cordon, +1, wait, shed, -1, wait, uncordon (restoring on any failure)."""
        ns, mid = action.namespace, new_migration_id()
        view = ClusterView.read(self.api)
        pod = view.pod(ns, action.pod)
        if pod is None or pod.owner_kind != "ReplicaSet":
            raise MigrationFailed(
                f"Pod {ns}/{action.pod}", None, "expected a ReplicaSet pod"
            )
        deployment = pod.service
        scale = self.api.call(
            f"Deployment {ns}/{deployment}",
            self.api.apps.read_namespaced_deployment_scale, deployment, ns,
        )  # fmt: skip
        replicas = int(scale.spec.replicas)
        known = {p.uid for p in view.pods}
        cordoned = [
            n.name for n in view.nodes
            if n.name != action.target_node and not n.unschedulable
        ]  # fmt: skip
        try:
            for node in cordoned:
                self._cordon(node, True, mid)
            self._scale(ns, deployment, replicas + 1, replicas)
            new = self._wait_until(
                lambda v: self._new_pod(v, pod, known, action.target_node),
                f"no new Ready pod of {pod.owner_name} on {action.target_node}",
            )
            self.api.call(
                f"Pod {ns}/{pod.name}", self.api.core.patch_namespaced_pod, pod.name,
                ns, {"metadata": {"annotations": {
                    markers.DELETION_COST: markers.SHED_COST}}},
            )  # fmt: skip
            self._scale(ns, deployment, replicas, None)
            self._wait_until(
                lambda v: "" if _gone(v, pod) else None,
                f"the ReplicaSet kept {ns}/{pod.name}",
            )
        except HookError:
            self._scale(ns, deployment, replicas, None)
            raise
        finally:
            for node in cordoned:
                self._cordon(node, False, mid)
        return MigrationResult(mid, pod.name, new, action.target_node, "completed")

    def _new_pod(
        self, view: ClusterView, source: PodInfo, known: set[str], node: str
    ) -> str | None:
        for pod in view.pods:
            if (
                pod.namespace == source.namespace
                and pod.owner_name == source.owner_name
                and pod.uid not in known
                and pod.ready
            ):
                if pod.node != node:
                    raise MigrationFailed(
                        f"Pod {pod.namespace}/{pod.name}", None,
                        f"the new pod started on {pod.node}, not {node}",
                    )  # fmt: skip
                return pod.name
        return None

    def _wait_until(
        self, found: Callable[[ClusterView], str | None], failure: str
    ) -> str:
        deadline = self.clock() + self.timeout
        while self.clock() < deadline:
            self.progress()
            result = found(ClusterView.read(self.api))
            if result is not None:
                return result
            self.sleep(self.poll)
        raise MigrationFailed("cordon protocol", None, failure)


def _gone(view: ClusterView, pod: PodInfo) -> bool:
    current = view.pod(pod.namespace, pod.name)
    return current is None or current.uid != pod.uid or current.terminating


def reconcile(api: KubeApi, namespace: str) -> list[str]:
    """Uncordon nodes and restore replicas a crashed REACH-mode run left."""
    done = []
    nodes = api.to_dict(api.call("NodeList", api.core.list_node))
    for node in nodes.get("items") or []:
        if markers.CORDONED_BY in (node["metadata"].get("annotations") or {}):
            name = node["metadata"]["name"]
            api.call(f"Node {name}", api.core.patch_node, name, {
                "metadata": {"annotations": {markers.CORDONED_BY: None}},
                "spec": {"unschedulable": False}})  # fmt: skip
            done.append(f"uncordoned {name}")
    deployments = api.to_dict(
        api.call(f"DeploymentList {namespace}", api.apps.list_namespaced_deployment,
                 namespace)
    )  # fmt: skip
    for dep in deployments.get("items") or []:
        original = (dep["metadata"].get("annotations") or {}).get(
            markers.ORIGINAL_REPLICAS
        )
        if original is not None:
            name = dep["metadata"]["name"]
            CordonMigrator(api)._scale(namespace, name, int(original), None)
            done.append(f"restored {name} to {original} replicas")
    return done
