"""Cluster state from one node list and one pod list, as REACH's payload and more.

REACH's precursor issues a pod list per node and per pod (147 calls at 7 nodes / 21
pods) and checks resources only. Here one ``list_node`` and one
``list_pod_for_all_namespaces`` (finished pods excluded by field selector *and*
client-side) give a :class:`ClusterView`; ``pod_deployable`` lists the nodes where a
pod fits by requests *and* the node is Ready, schedulable, its taints are tolerated
and the pod's node selector / required node affinity match. A pod's own requests are
counted once (REACH counts them twice on its own node).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from kubernetes.utils import parse_quantity

from hooks.kubernetes import markers
from hooks.kubernetes.client import KubeApi
from hooks.kubernetes.selectors import parse_selector

GIB = 1024**3
NOT_FINISHED = "status.phase!=Succeeded,status.phase!=Failed"
_SCHEDULING_EFFECTS = {"NoSchedule", "NoExecute"}


def _quantity(value: object) -> Decimal:
    if value in (None, ""):
        return Decimal(0)
    quantity: Decimal = parse_quantity(value)  # type: ignore[no-untyped-call]
    return quantity


@dataclass(frozen=True)
class NodeInfo:
    """What scheduling needs to know about one node."""

    name: str
    labels: Mapping[str, str]
    cpu: float
    """Allocatable cores."""
    memory: float
    """Allocatable bytes."""
    unschedulable: bool
    ready: bool
    taints: tuple[Mapping[str, str], ...]


@dataclass(frozen=True)
class PodInfo:
    """One unfinished pod."""

    namespace: str
    name: str
    uid: str
    node: str
    """``spec.nodeName`` (``""`` while unscheduled)."""
    phase: str
    ready: bool
    terminating: bool
    labels: Mapping[str, str]
    annotations: Mapping[str, str]
    cpu: float
    """Requested cores (max of the containers' sum and any init container)."""
    memory: float
    """Requested bytes."""
    node_selector: Mapping[str, str]
    affinity_terms: tuple[Any, ...]
    """``requiredDuringScheduling...nodeSelectorTerms`` (ORed)."""
    tolerations: tuple[Mapping[str, Any], ...]
    owner_kind: str
    owner_name: str
    created: str

    @property
    def service(self) -> str:
        """The workload name: the ReplicaSet's name without its template hash.

        Falls back to REACH's rule (the pod name minus its last two ``-`` parts).
        """
        hash_ = self.labels.get(markers.HASH_LABEL, "")
        if self.owner_kind == "ReplicaSet" and hash_:
            suffix = f"-{hash_}"
            if self.owner_name.endswith(suffix):
                return self.owner_name[: -len(suffix)]
        return "-".join(self.name.split("-")[:-2]) or self.name


def _requests(spec: Mapping[str, Any]) -> tuple[float, float]:
    def total(containers: Sequence[Mapping[str, Any]]) -> list[tuple[Decimal, Decimal]]:
        out = []
        for container in containers or []:
            requests = (container.get("resources") or {}).get("requests") or {}
            out.append(
                (_quantity(requests.get("cpu")), _quantity(requests.get("memory")))
            )
        return out

    main = total(spec.get("containers") or [])
    init = total(spec.get("initContainers") or [])
    cpu = max([sum((c for c, _ in main), Decimal(0)), *[c for c, _ in init]])
    memory = max([sum((m for _, m in main), Decimal(0)), *[m for _, m in init]])
    overhead = spec.get("overhead") or {}
    return float(cpu + _quantity(overhead.get("cpu"))), float(
        memory + _quantity(overhead.get("memory"))
    )


def node_from_json(node: Mapping[str, Any]) -> NodeInfo:
    """A node from its API JSON."""
    meta, spec, status = (
        node["metadata"],
        node.get("spec") or {},
        node.get("status") or {},
    )
    allocatable = status.get("allocatable") or {}
    ready = any(
        c.get("type") == "Ready" and c.get("status") == "True"
        for c in status.get("conditions") or []
    )
    return NodeInfo(
        name=meta["name"],
        labels=dict(meta.get("labels") or {}),
        cpu=float(_quantity(allocatable.get("cpu"))),
        memory=float(_quantity(allocatable.get("memory"))),
        unschedulable=bool(spec.get("unschedulable")),
        ready=ready,
        taints=tuple(spec.get("taints") or ()),
    )


def pod_from_json(pod: Mapping[str, Any]) -> PodInfo:
    """A pod from its API JSON."""
    meta, spec, status = pod["metadata"], pod.get("spec") or {}, pod.get("status") or {}
    ready = any(
        c.get("type") == "Ready" and c.get("status") == "True"
        for c in status.get("conditions") or []
    )
    owner: Mapping[str, Any] = next(
        (o for o in meta.get("ownerReferences") or [] if o.get("controller")), {}
    )
    affinity = ((spec.get("affinity") or {}).get("nodeAffinity") or {}).get(
        "requiredDuringSchedulingIgnoredDuringExecution"
    ) or {}
    cpu, memory = _requests(spec)
    return PodInfo(
        namespace=meta.get("namespace", ""),
        name=meta["name"],
        uid=meta.get("uid", ""),
        node=spec.get("nodeName") or "",
        phase=status.get("phase", "Pending"),
        ready=ready,
        terminating=bool(meta.get("deletionTimestamp")),
        labels=dict(meta.get("labels") or {}),
        annotations=dict(meta.get("annotations") or {}),
        cpu=cpu,
        memory=memory,
        node_selector=dict(spec.get("nodeSelector") or {}),
        affinity_terms=tuple(affinity.get("nodeSelectorTerms") or ()),
        tolerations=tuple(spec.get("tolerations") or ()),
        owner_kind=owner.get("kind", ""),
        owner_name=owner.get("name", ""),
        created=str(meta.get("creationTimestamp") or ""),
    )


def tolerates(pod: PodInfo, taint: Mapping[str, str]) -> bool:
    """Whether one of the pod's tolerations matches ``taint`` (Kubernetes' rule)."""
    for tol in pod.tolerations:
        key, op = tol.get("key") or "", tol.get("operator") or "Equal"
        if key and key != taint.get("key"):
            continue
        if not key and op != "Exists":
            continue
        if op == "Equal" and (tol.get("value") or "") != (taint.get("value") or ""):
            continue
        if tol.get("effect") and tol["effect"] != taint.get("effect"):
            continue
        return True
    return False


def _expression(labels: Mapping[str, str], expr: Mapping[str, Any]) -> bool:
    key, op, values = (
        expr.get("key", ""),
        expr.get("operator"),
        expr.get("values") or [],
    )
    if op == "In":
        return labels.get(key) in values
    if op == "NotIn":
        return labels.get(key) not in values
    if op == "Exists":
        return key in labels
    if op == "DoesNotExist":
        return key not in labels
    if op in ("Gt", "Lt") and key in labels:
        try:
            diff = int(labels[key]) - int(values[0])
        except (ValueError, IndexError):
            return False
        return diff > 0 if op == "Gt" else diff < 0
    return False


def node_matches(pod: PodInfo, node: NodeInfo) -> bool:
    """Node selector and required node affinity (our own hostname pin ignored)."""
    ours = markers.MIGRATED_FROM in pod.annotations
    for key, value in pod.node_selector.items():
        if ours and key == markers.HOSTNAME:
            continue
        if node.labels.get(key) != value:
            return False
    if not pod.affinity_terms:
        return True
    fields = {"metadata.name": node.name}
    return any(
        all(_expression(node.labels, e) for e in term.get("matchExpressions") or [])
        and all(_expression(fields, e) for e in term.get("matchFields") or [])
        for term in pod.affinity_terms
    )


@dataclass(frozen=True)
class ClusterView:
    """Nodes and unfinished pods at one ``resourceVersion`` of the pod list."""

    nodes: tuple[NodeInfo, ...]
    pods: tuple[PodInfo, ...]
    resource_version: str = ""

    @classmethod
    def read(cls, api: KubeApi) -> ClusterView:
        """Exactly two requests: one node list, one pod list."""
        nodes = api.call("NodeList", api.core.list_node)
        pods = api.call(
            "PodList", api.core.list_pod_for_all_namespaces, field_selector=NOT_FINISHED
        )
        return cls.from_json(api.to_dict(nodes), api.to_dict(pods))

    @classmethod
    def from_json(
        cls, node_list: Mapping[str, Any], pod_list: Mapping[str, Any]
    ) -> ClusterView:
        """From list JSON; finished pods are dropped even if the server sent them."""
        pods = tuple(
            pod_from_json(p)
            for p in pod_list.get("items") or []
            if (p.get("status") or {}).get("phase") not in ("Succeeded", "Failed")
        )
        nodes = tuple(node_from_json(n) for n in node_list.get("items") or [])
        rv = str((pod_list.get("metadata") or {}).get("resourceVersion") or "")
        return cls(nodes, pods, rv)

    def node(self, name: str) -> NodeInfo | None:
        """The node called ``name``."""
        return next((n for n in self.nodes if n.name == name), None)

    def pod(self, namespace: str, name: str) -> PodInfo | None:
        """The pod ``namespace/name``."""
        return next(
            (p for p in self.pods if p.namespace == namespace and p.name == name), None
        )

    def requested(self, node: str) -> tuple[float, float]:
        """Cores and bytes requested by the unfinished pods on ``node``."""
        on = [p for p in self.pods if p.node == node]
        return sum(p.cpu for p in on), sum(p.memory for p in on)

    def free(self, node: NodeInfo) -> tuple[float, float]:
        """Allocatable minus requested: cores, bytes."""
        cpu, memory = self.requested(node.name)
        return node.cpu - cpu, node.memory - memory

    def app_pods(self, namespace: str, selector: str) -> list[PodInfo]:
        """The application's live pods, sorted by name (terminating ones left out)."""
        match = parse_selector(selector)
        return sorted(
            (
                p
                for p in self.pods
                if p.namespace == namespace and match(p.labels) and not p.terminating
            ),
            key=lambda p: p.name,
        )

    def selected_nodes(self, selector: str) -> list[NodeInfo]:
        """Nodes matching ``selector``, in list order."""
        match = parse_selector(selector)
        return [n for n in self.nodes if match(n.labels)]

    def fits(self, pod: PodInfo, node: NodeInfo) -> bool:
        """Resources, readiness, cordon, taints and node affinity all allow it."""
        if not node.ready or node.unschedulable or not node_matches(pod, node):
            return False
        if any(
            t.get("effect") in _SCHEDULING_EFFECTS and not tolerates(pod, t)
            for t in node.taints
        ):
            return False
        cpu, memory = self.free(node)
        if pod.node == node.name:  # its own requests are already counted there
            cpu, memory = cpu + pod.cpu, memory + pod.memory
        return pod.cpu <= cpu + 1e-9 and pod.memory <= memory + 0.5

    def deployable(self, pod: PodInfo, nodes: Sequence[NodeInfo]) -> list[str]:
        """Names of ``nodes`` the pod could run on (its own node included)."""
        return [n.name for n in nodes if self.fits(pod, n)]

    def with_move(self, namespace: str, pod: str, node: str) -> ClusterView:
        """The view after ``pod`` moved to ``node`` (dry-run's virtual episode)."""
        pods = tuple(
            dataclasses.replace(p, node=node)
            if p.namespace == namespace and p.name == pod
            else p
            for p in self.pods
        )
        return dataclasses.replace(self, pods=pods)


def reach_payload(
    view: ClusterView, namespace: str, selector: str, node_selector: str = ""
) -> dict[str, Any]:
    """The exact body REACH's pod-migrator POSTs to ``/get_action``.

    ``cpu_availability`` is free millicores, ``memory_availability`` free GiB (both
    floored at 0), over the nodes ``node_selector`` picks. Every application pod on
    one of those nodes is listed under its service, and in ``pod_deployable`` with
    the nodes it fits (possibly none: the server then answers a stop). A replacement
    still in flight (not adopted yet) is no replica of its own and is left out.
    """
    nodes = view.selected_nodes(node_selector)
    names = {n.name for n in nodes}
    body_nodes: dict[str, Any] = {}
    for node in nodes:
        cpu, memory = view.free(node)
        body_nodes[node.name] = {
            "node_name": node.name,
            "cpu_availability": round(max(cpu, 0.0) * 1000.0, 3),
            "memory_availability": round(max(memory, 0.0) / GIB, 6),
        }
    services: dict[str, Any] = {}
    deployable: dict[str, list[str]] = {}
    for pod in view.app_pods(namespace, selector):
        if pod.node not in names or pod.labels.get(markers.ROLE) == "replacement":
            continue  # unscheduled, on a node the policy does not know, or in flight
        entry = services.setdefault(
            pod.service, {"service_name": pod.service, "pods": []}
        )
        entry["pods"].append({"node_name": pod.node, "pod_name": pod.name})
        deployable[pod.name] = view.deployable(pod, nodes)
    return {
        "cluster_state": {"nodes": body_nodes, "services": services},
        "pod_deployable": deployable,
    }


def two_tier_nodes(
    view: ClusterView,
    names: Mapping[str, str],
    queue_wait_s: Mapping[str, float] | None = None,
) -> dict[str, dict[str, float | int]]:
    """The ``nodes`` map of a ``/v1/route`` or ``/v1/schedule`` body.

    ``busy_cores`` counts a core busy as soon as any of it is requested (ceil),
    at most the node's whole allocatable cores.

    Args:
        view: the cluster.
        names: Kubernetes node name -> scenario node name (``<region>/<pool>-<i>``).
        queue_wait_s: measured queueing per Kubernetes node (Prometheus), seconds.
    """
    out: dict[str, dict[str, float | int]] = {}
    for node in view.nodes:
        if node.name not in names:
            continue
        cpu, _ = view.requested(node.name)
        out[names[node.name]] = {
            "queue_wait_s": float((queue_wait_s or {}).get(node.name, 0.0)),
            "busy_cores": min(math.ceil(cpu - 1e-9), math.floor(node.cpu)),
        }
    return out
