"""Make-before-break pod migration that works *with* the ReplicaSet ("adopt-and-shed").

A replacement copied from the ReplicaSet's template would be adopted at once (its
labels match) and shed while Pending; deleting the old pod afterwards would start a
third, unpinned one. So:

1. **preflight** (reads only): Pod -> ReplicaSet -> Deployment, every RS pod Ready,
   no migration of this RS in flight, PodDisruptionBudgets allow a disruption, the
   target node is Ready, schedulable and fits the pod;
2. **mark-source**: label the old pod with the migration id, record its deletion cost;
3. **create-replacement**: the template with ``pod-template-hash`` altered (not
   adopted yet, but the Service already selects it), pinned by a
   ``kubernetes.io/hostname`` node selector (the scheduler's filters still run);
4. **wait-ready** (watch with timeouts): not Ready in time, or Failed -> roll back
   (delete the replacement; the old pod was never touched);
5. **shed-cost**: old pod's ``pod-deletion-cost`` to the lowest int32;
6. **adopt**: restore the hash; the RS adopts the replacement, is one over and sheds
   the old pod (lowest deletion cost among Ready peers);
7. **wait-handover**: old UID gone or terminating, replacement owned by the RS,
   Ready replicas not fewer than before; otherwise roll back;
8. **cleanup**: drop the in-flight labels (a ``migrated-from`` note stays).

Every mutation is followed by a checkpoint, and everything needed to finish or undo
is in the pods' own labels and annotations: :func:`reconcile` rolls a migration
found after a crash forward (old pod gone, replacement adopted) or back.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from kubernetes import watch
from kubernetes.client import V1DeleteOptions, V1Preconditions

from hooks.actions import MigratePod
from hooks.errors import HookError, PermanentHookError
from hooks.kubernetes import markers
from hooks.kubernetes.client import KubeApi
from hooks.kubernetes.selectors import parse_selector, selector_string
from hooks.kubernetes.state import ClusterView, PodInfo, pod_from_json

log = logging.getLogger(__name__)

STEPS = (
    "mark-source",
    "create-replacement",
    "wait-ready",
    "shed-cost",
    "adopt",
    "wait-handover",
    "cleanup",
)
"""Checkpoints after each step, in order (crash tests stop at each)."""


class GuardRailError(PermanentHookError):
    """A guard rail refused the migration before anything was changed."""

    def __init__(self, obj: str, reason: str) -> None:
        super().__init__(obj, None, reason)

    def __str__(self) -> str:
        return f"{self.obj}: refused: {self.reason}"


class MigrationFailed(HookError):
    """The migration did not complete and was rolled back (old pod untouched)."""


@dataclass(frozen=True)
class MigrationResult:
    """What happened."""

    migration_id: str
    source: str
    replacement: str
    node: str
    outcome: str
    """``completed``, ``rolled-back`` or ``nothing``."""


@dataclass(frozen=True)
class Timeouts:
    """How long each wait may take, seconds."""

    ready: float = 120.0
    handover: float = 60.0
    watch_chunk: float = 10.0
    """``timeoutSeconds`` of one watch request (re-listed and re-watched after)."""


def _obj(namespace: str, name: str, kind: str = "Pod") -> str:
    return f"{kind} {namespace}/{name}"


class PodMigrator:
    """Carries out :class:`~hooks.actions.MigratePod` actions live.

    Args:
        api: the retrying client.
        timeouts: readiness and hand-over deadlines.
        checkpoint: called with each step name after it is done (tests inject
            crashes here).
        clock: monotonic clock.
    """

    def __init__(
        self,
        api: KubeApi,
        timeouts: Timeouts | None = None,
        checkpoint: Callable[[str], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.api = api
        self.timeouts = timeouts or Timeouts()
        self.checkpoint = checkpoint or (lambda step: None)
        self.clock = clock

    # ------------------------------------------------------------ reads
    def _read_pod(self, namespace: str, name: str) -> dict[str, Any] | None:
        try:
            pod = self.api.call(
                _obj(namespace, name),
                self.api.core.read_namespaced_pod,
                name,
                namespace,
            )
        except PermanentHookError as err:
            if err.status == 404:
                return None
            raise
        data: dict[str, Any] = self.api.to_dict(pod)
        return data

    def _list(self, namespace: str, selector: str) -> tuple[list[dict[str, Any]], str]:
        pods = self.api.call(
            f"PodList {namespace}", self.api.core.list_namespaced_pod, namespace,
            label_selector=selector,
        )  # fmt: skip
        data = self.api.to_dict(pods)
        return list(data.get("items") or []), str(data["metadata"]["resourceVersion"])

    # ------------------------------------------------------------ preflight
    def preflight(
        self, action: MigratePod, view: ClusterView | None = None
    ) -> tuple[dict[str, Any], dict[str, Any], int]:
        """Check every guard rail; returns (source pod, ReplicaSet, Ready count).

        Raises:
            GuardRailError: the migration must not start (nothing was changed).
        """
        ns, name, node = action.namespace, action.pod, action.target_node
        obj = _obj(ns, name)
        pod = self._read_pod(ns, name)
        if pod is None:
            raise GuardRailError(obj, "the pod no longer exists")
        info = pod_from_json(pod)
        if info.terminating or not info.ready:
            raise GuardRailError(obj, "the pod is terminating or not Ready")
        if info.node == node:
            raise GuardRailError(obj, f"the pod already runs on {node}")
        if markers.MIGRATION in info.labels:
            raise GuardRailError(obj, "a migration of this pod is in flight")
        if info.owner_kind != "ReplicaSet":
            raise GuardRailError(
                obj,
                "expected a pod owned by a ReplicaSet of a Deployment (StatefulSet, "
                f"DaemonSet and bare pods are never moved), got owner "
                f"{info.owner_kind or 'none'}",
            )
        if markers.HASH_LABEL not in info.labels:
            raise GuardRailError(obj, "expected a pod-template-hash label")
        rs_obj = _obj(ns, info.owner_name, "ReplicaSet")
        rs = self.api.to_dict(
            self.api.call(
                rs_obj, self.api.apps.read_namespaced_replica_set, info.owner_name, ns
            )
        )
        owners = rs["metadata"].get("ownerReferences") or []
        if not any(
            o.get("kind") == "Deployment" and o.get("controller") for o in owners
        ):
            raise GuardRailError(
                obj, "expected its ReplicaSet to belong to a Deployment"
            )
        selector = selector_string(rs["spec"].get("selector"))
        siblings, _ = self._list(ns, selector)
        owned = [
            pod_from_json(p) for p in siblings
            if pod_from_json(p).owner_name == info.owner_name
        ]  # fmt: skip
        unready = [p.name for p in owned if not p.ready or p.terminating]
        if unready:
            raise GuardRailError(
                obj,
                f"every pod of {info.owner_name} must be Ready first (the ReplicaSet "
                f"would shed an unready one instead): {', '.join(unready)}",
            )
        in_flight, _ = self._list(ns, f"{markers.REPLICASET}={info.owner_name}")
        if in_flight:
            raise GuardRailError(
                obj, f"a migration of ReplicaSet {info.owner_name} is in flight"
            )
        self._check_pdbs(ns, info)
        self._check_target(action, info, view)
        return pod, rs, len(owned)

    def _check_pdbs(self, namespace: str, pod: PodInfo) -> None:
        obj = _obj(namespace, pod.name)
        pdbs = self.api.to_dict(
            self.api.call(
                f"PodDisruptionBudgetList {namespace}",
                self.api.policy.list_namespaced_pod_disruption_budget, namespace,
            )
        )  # fmt: skip
        matching = [
            b for b in pdbs.get("items") or []
            if parse_selector(selector_string(b["spec"].get("selector")))(pod.labels)
        ]  # fmt: skip
        if len(matching) > 1:
            names = ", ".join(b["metadata"]["name"] for b in matching)
            raise GuardRailError(obj, f"more than one PodDisruptionBudget: {names}")
        for budget in matching:
            status = budget.get("status") or {}
            name = budget["metadata"]["name"]
            generation = budget["metadata"].get("generation") or 0
            if (status.get("observedGeneration") or 0) < generation:
                raise GuardRailError(
                    obj, f"PodDisruptionBudget {name} is still being processed"
                )
            if (status.get("disruptionsAllowed") or 0) <= 0:
                raise GuardRailError(
                    obj,
                    f"PodDisruptionBudget {name} allows no disruption (currentHealthy "
                    f"{status.get('currentHealthy')}, desiredHealthy "
                    f"{status.get('desiredHealthy')})",
                )

    def _check_target(
        self, action: MigratePod, pod: PodInfo, view: ClusterView | None
    ) -> None:
        view = view or ClusterView.read(self.api)
        node = view.node(action.target_node)
        obj = _obj(action.namespace, action.pod)
        if node is None:
            raise GuardRailError(
                obj, f"target node {action.target_node} does not exist"
            )
        if not view.fits(pod, node):
            raise GuardRailError(
                obj,
                f"target node {node.name} is not Ready, is cordoned, taints or "
                "affinity exclude the pod, or its requests do not fit",
            )

    # ------------------------------------------------------------ protocol
    def migrate(
        self, action: MigratePod, view: ClusterView | None = None
    ) -> MigrationResult:
        """Run the whole protocol for one pod.

        Raises:
            GuardRailError: refused before any change.
            MigrationFailed: started but rolled back (the old pod is untouched).
            HookError: a permanent API error; the migration was rolled back first.
        """
        pod, rs, before = self.preflight(action, view)
        ns, source = action.namespace, action.pod
        mid = uuid.uuid4().hex[:12]
        rs_name = rs["metadata"]["name"]
        try:
            self._mark_source(ns, source, mid, rs_name, pod)
            self.checkpoint("mark-source")
            replacement = self._create_replacement(action, mid, pod, rs)
            self.checkpoint("create-replacement")
            ready, why = self._wait(
                ns, f"{markers.MIGRATION}={mid}",
                lambda pods: _replacement_ready(pods, replacement),
                self.timeouts.ready,
            )  # fmt: skip
            if not ready:
                raise MigrationFailed(
                    _obj(ns, replacement), None,
                    f"replacement not Ready on {action.target_node} within "
                    f"{self.timeouts.ready:g} s ({why}); rolled back",
                )  # fmt: skip
            self.checkpoint("wait-ready")
            self._patch(ns, source, {"metadata": {"annotations": {
                markers.DELETION_COST: markers.SHED_COST}}})  # fmt: skip
            self.checkpoint("shed-cost")
            original = pod["metadata"]["labels"][markers.HASH_LABEL]
            self._patch(ns, replacement, {"metadata": {"labels": {
                markers.HASH_LABEL: original}}})  # fmt: skip
            self.checkpoint("adopt")
            done, why = self._wait_handover(ns, mid, pod, replacement, rs_name, before)
            if not done:
                raise MigrationFailed(
                    _obj(ns, source), None,
                    f"ReplicaSet {rs_name} did not shed the old pod within "
                    f"{self.timeouts.handover:g} s ({why}); rolled back",
                )  # fmt: skip
            self.checkpoint("wait-handover")
            self._cleanup(ns, replacement)
            self.checkpoint("cleanup")
        except MigrationFailed:
            self.rollback(ns, mid)
            raise
        except HookError:
            self.rollback(ns, mid)
            raise
        log.info("migrated %s/%s -> %s on %s (%s)", ns, source, replacement,
                 action.target_node, mid)  # fmt: skip
        return MigrationResult(
            mid, source, replacement, action.target_node, "completed"
        )

    def _patch(self, namespace: str, name: str, body: Mapping[str, Any]) -> Any:
        return self.api.call(
            _obj(namespace, name), self.api.core.patch_namespaced_pod, name,
            namespace, body,
        )  # fmt: skip

    def _mark_source(
        self, ns: str, name: str, mid: str, rs_name: str, pod: Mapping[str, Any]
    ) -> None:
        cost = (pod["metadata"].get("annotations") or {}).get(markers.DELETION_COST, "")
        body = {
            "metadata": {
                "resourceVersion": pod["metadata"]["resourceVersion"],
                "labels": {
                    markers.MIGRATION: mid,
                    markers.ROLE: "source",
                    markers.REPLICASET: rs_name,
                },
                "annotations": {markers.ORIGINAL_COST: cost},
            }
        }
        self._patch(ns, name, body)

    def _create_replacement(
        self,
        action: MigratePod,
        mid: str,
        pod: Mapping[str, Any],
        rs: Mapping[str, Any],
    ) -> str:
        ns = action.namespace
        template = rs["spec"]["template"]
        meta = template.get("metadata") or {}
        original_hash = pod["metadata"]["labels"][markers.HASH_LABEL]
        labels = {
            **(meta.get("labels") or {}),
            markers.HASH_LABEL: original_hash + markers.HASH_SUFFIX,
            markers.MIGRATION: mid,
            markers.ROLE: "replacement",
            markers.REPLICASET: rs["metadata"]["name"],
        }
        annotations = {
            **(meta.get("annotations") or {}),
            markers.ORIGINAL_HASH: original_hash,
            markers.SOURCE_UID: pod["metadata"]["uid"],
            markers.TARGET_NODE: action.target_node,
            markers.MIGRATED_FROM: action.pod,
        }
        spec = dict(template["spec"])
        spec["nodeSelector"] = {
            **(spec.get("nodeSelector") or {}),
            markers.HOSTNAME: self._hostname(action.target_node),
        }
        body = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {
                "generateName": f"{rs['metadata']['name']}-",
                "namespace": ns,
                "labels": labels,
                "annotations": annotations,
            },
            "spec": spec,
        }
        created = self.api.call(
            _obj(ns, f"{rs['metadata']['name']}-<generated>"),
            self.api.core.create_namespaced_pod, ns, body,
        )  # fmt: skip
        name: str = created.metadata.name
        log.info("created replacement %s/%s pinned to %s", ns, name, action.target_node)
        return name

    def _hostname(self, node: str) -> str:
        data = self.api.to_dict(
            self.api.call(f"Node {node}", self.api.core.read_node, node)
        )
        labels = data["metadata"].get("labels") or {}
        return str(labels.get(markers.HOSTNAME, node))

    def _wait(
        self,
        namespace: str,
        selector: str,
        done: Callable[[dict[str, dict[str, Any]]], str | None],
        timeout: float,
    ) -> tuple[bool, str]:
        """List, then watch ``selector`` until ``done(pods)`` says ``ok`` or fails.

        ``done`` returns None (keep waiting), ``"ok"`` or a failure reason.
        """
        deadline = self.clock() + timeout
        reason = "timed out"
        while True:
            items, rv = self._list(namespace, selector)
            pods = {p["metadata"]["name"]: p for p in items}
            verdict = done(pods)
            if verdict is not None:
                return verdict == "ok", verdict
            remaining = deadline - self.clock()
            if remaining <= 0:
                return False, reason
            chunk = max(1, int(min(remaining, self.timeouts.watch_chunk)))
            stream = watch.Watch().stream(  # type: ignore[no-untyped-call]
                self.api.core.list_namespaced_pod, namespace,
                label_selector=selector, resource_version=rv, timeout_seconds=chunk,
                _request_timeout=chunk + 5,
            )  # fmt: skip
            try:
                for event in stream:
                    obj = self.api.to_dict(event["object"])
                    name = obj["metadata"]["name"]
                    if event["type"] == "DELETED":
                        pods.pop(name, None)
                    else:
                        pods[name] = obj
                    verdict = done(pods)
                    if verdict is not None:
                        return verdict == "ok", verdict
                    if self.clock() >= deadline:
                        return False, reason
            except Exception as exc:  # a 410 or a dropped stream: re-list
                log.debug("watch ended (%s); re-listing", exc)
            if self.clock() >= deadline:
                return False, reason

    def _wait_handover(
        self,
        ns: str,
        mid: str,
        source: Mapping[str, Any],
        replacement: str,
        rs_name: str,
        before: int,
    ) -> tuple[bool, str]:
        uid = source["metadata"]["uid"]
        selector = f"{markers.MIGRATION}={mid}"

        def handed_over(pods: dict[str, dict[str, Any]]) -> str | None:
            old = next(
                (p for p in pods.values() if p["metadata"].get("uid") == uid), None
            )
            new = pods.get(replacement)
            if new is None:
                return "the ReplicaSet removed the replacement"
            info = pod_from_json(new)
            if old is not None and not old["metadata"].get("deletionTimestamp"):
                return None
            return "ok" if info.owner_name == rs_name and info.ready else None

        ok, why = self._wait(ns, selector, handed_over, self.timeouts.handover)
        if not ok:
            return ok, why
        rs = self.api.to_dict(
            self.api.call(_obj(ns, rs_name, "ReplicaSet"),
                          self.api.apps.read_namespaced_replica_set, rs_name, ns)
        )  # fmt: skip
        items, _ = self._list(ns, selector_string(rs["spec"].get("selector")))
        ready = [
            p for p in map(pod_from_json, items)
            if p.owner_name == rs_name and p.ready and not p.terminating
        ]  # fmt: skip
        if len(ready) < before:
            return False, f"{len(ready)} Ready replicas, fewer than {before} before"
        return True, "ok"

    def _cleanup(self, ns: str, replacement: str) -> None:
        self._patch(ns, replacement, {"metadata": {"labels": {
            markers.MIGRATION: None, markers.ROLE: None, markers.REPLICASET: None,
        }}})  # fmt: skip

    # ------------------------------------------------------------ undo / redo
    def rollback(self, ns: str, mid: str) -> str:
        """Undo migration ``mid`` unless the old pod is already gone (then finish).

        Returns ``rolled-back``, ``completed`` or ``nothing``.
        """
        items, _ = self._list(ns, f"{markers.MIGRATION}={mid}")
        by_role = {p["metadata"]["labels"].get(markers.ROLE): p for p in items}
        source, replacement = by_role.get("source"), by_role.get("replacement")
        if source is None and replacement is not None:
            info = pod_from_json(replacement)
            if info.owner_kind == "ReplicaSet":
                self._cleanup(ns, info.name)
                log.warning("migration %s: old pod gone, replacement %s kept", mid,
                            info.name)  # fmt: skip
                return "completed"
        if replacement is not None:
            name = replacement["metadata"]["name"]
            try:
                self.api.call(
                    _obj(ns, name), self.api.core.delete_namespaced_pod, name, ns,
                    body=V1DeleteOptions(preconditions=V1Preconditions(
                        uid=replacement["metadata"]["uid"])),
                )  # fmt: skip
            except PermanentHookError as err:
                if err.status != 404:
                    raise
            log.warning("migration %s: replacement %s deleted", mid, name)
        if source is not None:
            annotations = source["metadata"].get("annotations") or {}
            cost = annotations.get(markers.ORIGINAL_COST) or None
            self._patch(ns, source["metadata"]["name"], {"metadata": {
                "labels": {markers.MIGRATION: None, markers.ROLE: None,
                           markers.REPLICASET: None},
                "annotations": {markers.ORIGINAL_COST: None,
                                markers.DELETION_COST: cost},
            }})  # fmt: skip
        return "rolled-back" if (source or replacement) else "nothing"

    def reconcile(self, namespace: str) -> list[MigrationResult]:
        """Finish or undo every migration a crashed run left (one labelled list)."""
        items, _ = self._list(namespace, markers.MIGRATION)
        results = []
        for mid in sorted({p["metadata"]["labels"][markers.MIGRATION] for p in items}):
            pods = [
                p for p in items if p["metadata"]["labels"][markers.MIGRATION] == mid
            ]
            roles = {p["metadata"]["labels"].get(markers.ROLE): p for p in pods}
            source, replacement = roles.get("source"), roles.get("replacement")
            outcome = self._reconcile_one(namespace, mid, source, replacement)
            results.append(
                MigrationResult(
                    mid,
                    source["metadata"]["name"] if source else "",
                    replacement["metadata"]["name"] if replacement else "",
                    pod_from_json(replacement).node if replacement else "",
                    outcome,
                )
            )
            log.warning("reconciled migration %s: %s", mid, outcome)
        return results

    def _reconcile_one(
        self,
        ns: str,
        mid: str,
        source: dict[str, Any] | None,
        replacement: dict[str, Any] | None,
    ) -> str:
        if replacement is not None and source is not None:
            info = pod_from_json(replacement)
            if info.owner_kind == "ReplicaSet" and info.ready:
                # adopted before the crash: the RS sheds the old pod; let it finish
                ok, _ = self._wait(
                    ns, f"{markers.MIGRATION}={mid}",
                    lambda pods: None if any(
                        p["metadata"]["labels"].get(markers.ROLE) == "source"
                        and not p["metadata"].get("deletionTimestamp")
                        for p in pods.values()) else "ok",
                    self.timeouts.handover,
                )  # fmt: skip
                if ok:
                    self._cleanup(ns, info.name)
                    return "completed"
        return self.rollback(ns, mid)


def _replacement_ready(pods: Mapping[str, Mapping[str, Any]], name: str) -> str | None:
    pod = pods.get(name)
    if pod is None:
        return "the replacement was deleted"
    info = pod_from_json(pod)
    if info.phase == "Failed":
        return "the replacement failed"
    return "ok" if info.ready and not info.terminating else None
