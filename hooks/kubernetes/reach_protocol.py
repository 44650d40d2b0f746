"""REACH's own migration protocol, behind a flag, only to reproduce the paper.

Cordon every schedulable node but the target, scale the Deployment +1, wait for a
new Ready pod on the target, give the old pod the lowest deletion cost (REACH's
``"0"`` is the default and steers nothing), scale back, uncordon. Unlike REACH it
marks the nodes it cordons and uncordons only those, restores replicas and cordons
on failure, and :func:`reconcile` undoes a crashed run from those marks. It still
blocks scheduling for every tenant while it runs: never the default.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable

from hooks.actions import MigratePod
from hooks.errors import HookError
from hooks.kubernetes import markers
from hooks.kubernetes.client import KubeApi
from hooks.kubernetes.migration import MigrationFailed, MigrationResult
from hooks.kubernetes.state import ClusterView

log = logging.getLogger(__name__)


class CordonMigrator:
    """Live executor of :class:`MigratePod` the way REACH's pod-migrator does it."""

    def __init__(
        self,
        api: KubeApi,
        timeout: float = 120.0,
        poll: float = 0.1,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.api = api
        self.timeout = timeout
        self.poll = poll
        self.clock = clock

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
        """Cordon, +1, wait, shed, -1, uncordon (restoring on any failure)."""
        ns, mid = action.namespace, uuid.uuid4().hex[:12]
        view = ClusterView.read(self.api)
        pod = view.pod(ns, action.pod)
        if pod is None or pod.owner_kind != "ReplicaSet":
            raise MigrationFailed(
                f"Pod {ns}/{action.pod}", None, "not a ReplicaSet pod"
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
            new = self._wait_new_pod(ns, pod.labels, known, action.target_node)
            self.api.call(
                f"Pod {ns}/{pod.name}", self.api.core.patch_namespaced_pod, pod.name,
                ns, {"metadata": {"annotations": {
                    markers.DELETION_COST: markers.SHED_COST}}},
            )  # fmt: skip
            self._scale(ns, deployment, replicas, None)
        except HookError:
            self._scale(ns, deployment, replicas, None)
            raise
        finally:
            for node in cordoned:
                self._cordon(node, False, mid)
        return MigrationResult(mid, pod.name, new, action.target_node, "completed")

    def _wait_new_pod(self, ns: str, labels: object, known: set[str], node: str) -> str:
        deadline = self.clock() + self.timeout
        while self.clock() < deadline:
            view = ClusterView.read(self.api)
            for pod in view.pods:
                if pod.namespace == ns and pod.uid not in known and pod.ready:
                    if pod.node != node:
                        raise MigrationFailed(
                            f"Pod {ns}/{pod.name}", None,
                            f"the new pod started on {pod.node}, not {node}",
                        )  # fmt: skip
                    return pod.name
            time.sleep(self.poll)
        raise MigrationFailed(f"Pod {ns}/?", None, f"no new Ready pod on {node}")


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
