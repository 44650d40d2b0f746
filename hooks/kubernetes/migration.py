"""Make-before-break pod migration that works *with* the ReplicaSet ("adopt-and-shed").

A replacement copied from the ReplicaSet's template would be adopted at once (its
labels match) and shed while Pending; deleting the old pod afterwards would start a
third, unpinned one. So:

1. **preflight** (reads only): Pod -> ReplicaSet -> Deployment, the ReplicaSet
   steady and every pod of it Ready, no migration of this ReplicaSet in flight,
   PodDisruptionBudgets allow a disruption, the target node Ready, schedulable,
   untainted for the pod and with room;
2. **mark-source**: label the old pod with the migration id and record its deletion
   cost (a ``resourceVersion`` precondition: a conflict means re-read, re-check);
3. **create-replacement**: the template with ``pod-template-hash`` altered (so the
   ReplicaSet does not adopt it yet; the Service already selects it), pinned by a
   ``kubernetes.io/hostname`` node selector (the scheduler's filters still run), under
   a name derived from the migration id (a resent create finds its own pod);
4. **wait-ready** (list + watch with timeouts): not Ready in time, or Failed -> roll
   back (delete the replacement; the old pod was never touched);
5. **shed-cost**: old pod's ``pod-deletion-cost`` to the lowest int32;
6. **adopt**: restore the hash; the ReplicaSet adopts the replacement, is one over
   and sheds the old pod (lowest deletion cost among Ready peers). This is the point
   of no return: from here a failure is settled forward (deleting an adopted pod
   would make the ReplicaSet start a third, unpinned one);
7. **wait-handover**: old UID gone or terminating, replacement owned by the
   ReplicaSet and Ready, Ready replicas not fewer than before;
8. **cleanup**: drop the in-flight markers, source first (a ``migrated-from`` note
   stays on the replacement).

Every mutation is followed by a checkpoint, and everything needed to finish or undo
is in the pods' own labels and annotations: :meth:`PodMigrator.reconcile` settles a
migration found after a crash from one labelled list.
"""

from __future__ import annotations

import logging
import secrets
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from kubernetes import watch
from kubernetes.client import V1DeleteOptions, V1Preconditions

from hooks.actions import MigratePod
from hooks.errors import (
    HookError,
    PermanentHookError,
    RefusedError,
    TransientHookError,
)
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

_ID_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"
Pods = dict[str, dict[str, Any]]


class GuardRailError(RefusedError):
    """A guard rail refused the migration before anything was changed."""


class MigrationFailed(HookError):
    """The migration did not complete; it was settled (see the message)."""


@dataclass(frozen=True)
class MigrationResult:
    """What happened."""

    migration_id: str
    source: str
    replacement: str
    node: str
    outcome: str
    """``completed``, ``rolled-back``, ``both-kept`` or ``nothing``."""


@dataclass(frozen=True)
class Timeouts:
    """How long each wait may take, seconds."""

    ready: float = 120.0
    handover: float = 60.0
    watch_chunk: float = 10.0
    """``timeoutSeconds`` of one watch request (re-listed and re-watched after)."""


@dataclass(frozen=True)
class Preflight:
    """What the guard rails read: the source pod, its ReplicaSet, the Ready count."""

    pod: dict[str, Any]
    replicaset: dict[str, Any]
    ready: int


def _obj(namespace: str, name: str, kind: str = "Pod") -> str:
    return f"{kind} {namespace}/{name}"


def new_migration_id() -> str:
    """Ten characters from the alphabet Kubernetes uses for generated names."""
    return "".join(secrets.choice(_ID_ALPHABET) for _ in range(10))


def replacement_name(replicaset: str, migration_id: str) -> str:
    """``<replicaset>-<5 chars>``, shaped like the ReplicaSet's own pod names.

    REACH's "pod name minus two parts" then still gives the Deployment.
    """
    return f"{replicaset}-{migration_id[:5]}"


def _age_seconds(created: str) -> float:
    if not created:
        return float("inf")
    stamp = datetime.fromisoformat(created.replace("Z", "+00:00"))
    if stamp.tzinfo is None:
        stamp = stamp.replace(tzinfo=UTC)
    return (datetime.now(UTC) - stamp).total_seconds()


def _labels(pod: Mapping[str, Any]) -> dict[str, str]:
    return dict(pod["metadata"].get("labels") or {})


def _handed_over(replacement: Mapping[str, Any]) -> bool:
    """The replacement's hash is restored: past the point of no return."""
    meta = replacement["metadata"]
    original = (meta.get("annotations") or {}).get(markers.ORIGINAL_HASH)
    return bool(original) and _labels(replacement).get(markers.HASH_LABEL) == original


class PodMigrator:
    """Carries out :class:`~hooks.actions.MigratePod` actions live.

    Args:
        api: the retrying client.
        timeouts: readiness and hand-over deadlines.
        checkpoint: called with each step name after it is done (tests inject
            crashes here).
        clock: monotonic clock.
        min_pod_age: never move a pod younger than this, seconds.
        progress: called while a migration is under way (every poll of a wait,
            every watch event, every step), so a liveness check can tell a long
            migration from a hung process.
    """

    def __init__(
        self,
        api: KubeApi,
        timeouts: Timeouts | None = None,
        checkpoint: Callable[[str], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
        min_pod_age: float = 0.0,
        progress: Callable[[], None] | None = None,
    ) -> None:
        self.api = api
        self.timeouts = timeouts or Timeouts()
        self._checkpoint = checkpoint or (lambda step: None)
        self.clock = clock
        self.min_pod_age = min_pod_age
        self.progress = progress or (lambda: None)

    def checkpoint(self, step: str) -> None:
        """Step ``step`` is done: report progress, then the test hook."""
        self.progress()
        self._checkpoint(step)

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

    def _read_replicaset(self, namespace: str, name: str) -> dict[str, Any]:
        data: dict[str, Any] = self.api.to_dict(
            self.api.call(
                _obj(namespace, name, "ReplicaSet"),
                self.api.apps.read_namespaced_replica_set, name, namespace,
            )
        )  # fmt: skip
        return data

    # ------------------------------------------------------------ preflight
    def preflight(
        self, action: MigratePod, view: ClusterView | None = None
    ) -> Preflight:
        """Check every guard rail with reads only.

        Raises:
            GuardRailError: the migration must not start (nothing was changed).
        """
        ns, name, node = action.namespace, action.pod, action.target_node
        obj = _obj(ns, name)
        pod = self._read_pod(ns, name)
        if pod is None:
            raise GuardRailError(obj, "the pod no longer exists")
        info = pod_from_json(pod)
        self._check_pod(obj, info, node)
        rs = self._read_replicaset(ns, info.owner_name)
        owners = rs["metadata"].get("ownerReferences") or []
        if not any(
            o.get("kind") == "Deployment" and o.get("controller") for o in owners
        ):
            raise GuardRailError(
                obj, f"expected ReplicaSet {info.owner_name} to belong to a Deployment"
            )
        siblings, _ = self._list(ns, selector_string(rs["spec"].get("selector")))
        owned = [
            p for p in map(pod_from_json, siblings)
            if p.owner_name == info.owner_name and not p.terminating
        ]  # fmt: skip
        unready = [p.name for p in owned if not p.ready]
        if unready:
            raise GuardRailError(
                obj,
                f"every pod of {info.owner_name} must be Ready first (the ReplicaSet "
                f"would shed an unready one instead): {', '.join(unready)}",
            )
        wanted = int(rs["spec"].get("replicas") or 0)
        if len(owned) != wanted:
            raise GuardRailError(
                obj,
                f"ReplicaSet {info.owner_name} is scaling ({len(owned)} pods, "
                f"{wanted} wanted): try again when it is steady",
            )
        in_flight, _ = self._list(ns, f"{markers.REPLICASET}={info.owner_name}")
        if in_flight:
            names = ", ".join(p["metadata"]["name"] for p in in_flight)
            raise GuardRailError(
                obj,
                f"a migration of ReplicaSet {info.owner_name} is in flight ({names}); "
                "one at a time per workload",
            )
        self._check_pdbs(ns, info)
        self._check_target(action, info, view)
        return Preflight(pod, rs, len(owned))

    def _check_pod(self, obj: str, info: PodInfo, node: str) -> None:
        if info.terminating or not info.ready or info.phase != "Running":
            raise GuardRailError(obj, "expected a Running, Ready, not terminating pod")
        if info.node == node:
            raise GuardRailError(obj, f"the pod already runs on {node}")
        if markers.MIGRATION in info.labels:
            raise GuardRailError(obj, "a migration of this pod is in flight")
        if info.owner_kind != "ReplicaSet" or markers.HASH_LABEL not in info.labels:
            raise GuardRailError(
                obj,
                "expected a pod owned by a ReplicaSet of a Deployment, with a "
                "pod-template-hash label (StatefulSet, DaemonSet and bare pods are "
                f"never moved), got owner {info.owner_kind or 'none'}",
            )
        age = _age_seconds(info.created)
        if age < self.min_pod_age:
            raise GuardRailError(
                obj,
                f"the pod is {age:.0f} s old, younger than min_pod_age "
                f"{self.min_pod_age:g} s",
            )

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
            raise GuardRailError(
                obj,
                f"more than one PodDisruptionBudget selects the pod ({names}); the "
                "eviction API refuses such pods too",
            )
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
            MigrationFailed: started but did not complete; settled (rolled back
                before the hand-over, rolled forward after it).
            HookError: a permanent API error (403, 422, ...), after settling.
        """
        pre = self.preflight(action, view)
        ns, source = action.namespace, action.pod
        mid = new_migration_id()
        rs_name = pre.replicaset["metadata"]["name"]
        replacement = replacement_name(rs_name, mid)
        log.info("migration %s: %s/%s -> %s", mid, ns, source, action.target_node)
        try:
            pod, pre = self._mark_source(action, mid, pre)
            self.checkpoint("mark-source")
            self._create_replacement(action, mid, replacement, pod, pre.replicaset)
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
                    f"{self.timeouts.ready:g} s ({why})",
                )  # fmt: skip
            self.checkpoint("wait-ready")
            self._patch(ns, source, {"metadata": {"annotations": {
                markers.DELETION_COST: markers.SHED_COST}}})  # fmt: skip
            self.checkpoint("shed-cost")
            original = pod["metadata"]["labels"][markers.HASH_LABEL]
            self._patch(ns, replacement, {"metadata": {"labels": {
                markers.HASH_LABEL: original}}})  # fmt: skip
            self.checkpoint("adopt")
            done, why = self._wait_handover(ns, mid, pod, replacement, rs_name, pre)
            if not done:
                raise MigrationFailed(
                    _obj(ns, source), None,
                    f"ReplicaSet {rs_name} did not hand over within "
                    f"{self.timeouts.handover:g} s ({why})",
                )  # fmt: skip
            self.checkpoint("wait-handover")
            self._cleanup(ns, source, [replacement])
            self.checkpoint("cleanup")
        except HookError as err:
            outcome = self.settle(ns, mid, wait=not isinstance(err, GuardRailError))
            log.error("migration %s failed (%s); settled: %s", mid, err, outcome)
            if isinstance(err, MigrationFailed):
                raise MigrationFailed(
                    err.obj, err.status, f"{err.reason}; settled: {outcome}"
                ) from err
            raise
        log.info("migrated %s/%s -> %s on %s (%s)", ns, source, replacement,
                 action.target_node, mid)  # fmt: skip
        return MigrationResult(
            mid, source, replacement, action.target_node, "completed"
        )

    def _patch(
        self, namespace: str, name: str, body: Mapping[str, Any], **kw: Any
    ) -> Any:
        return self.api.call(
            _obj(namespace, name), self.api.core.patch_namespaced_pod, name,
            namespace, body, **kw,
        )  # fmt: skip

    def _mark_source(
        self, action: MigratePod, mid: str, pre: Preflight
    ) -> tuple[dict[str, Any], Preflight]:
        """Label the source under its ``resourceVersion``.

        A conflict means the pod changed since the guard rails read it: every guard
        rail (pod, ReplicaSet, in-flight, PodDisruptionBudgets, target) is checked
        again on fresh reads before the next try.

        Returns:
            the marked pod and the guard rails' latest reads.
        """
        ns, name = action.namespace, action.pod
        obj, uid = _obj(ns, name), pre.pod["metadata"]["uid"]
        rs_name = pre.replicaset["metadata"]["name"]
        for _ in range(self.api.retry.attempts):
            current = pre.pod
            if current["metadata"].get("uid") != uid:
                raise GuardRailError(obj, "the pod was replaced meanwhile")
            annotations = current["metadata"].get("annotations") or {}
            body = {
                "metadata": {
                    "resourceVersion": current["metadata"]["resourceVersion"],
                    "labels": {
                        markers.MIGRATION: mid,
                        markers.ROLE: "source",
                        markers.REPLICASET: rs_name,
                    },
                    "annotations": {
                        markers.ORIGINAL_COST: annotations.get(
                            markers.DELETION_COST, ""
                        )
                    },
                }
            }
            try:
                marked: dict[str, Any] = self.api.to_dict(
                    self._patch(ns, name, body, handle={409})
                )
                return marked, pre
            except PermanentHookError as err:
                if err.status != 409:
                    raise
                log.warning("%s changed meanwhile (409); checking again", obj)
            pre = self.preflight(action)
            if pre.replicaset["metadata"]["name"] != rs_name:
                raise GuardRailError(obj, "the pod changed owner meanwhile")
        raise TransientHookError(obj, 409, "the pod kept changing (conflicts)")

    def _create_replacement(
        self,
        action: MigratePod,
        mid: str,
        name: str,
        pod: Mapping[str, Any],
        rs: Mapping[str, Any],
    ) -> None:
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
                "name": name,
                "namespace": ns,
                "labels": labels,
                "annotations": annotations,
            },
            "spec": spec,
        }
        obj = _obj(ns, name)
        for _ in range(self.api.retry.attempts):
            try:
                self.api.call(
                    obj, self.api.core.create_namespaced_pod, ns, body, handle={409}
                )
                break
            except PermanentHookError as err:
                if err.status != 409:
                    raise
            existing = self._read_pod(ns, name)  # a resent create, or a real clash?
            if existing is not None:
                if _labels(existing).get(markers.MIGRATION) == mid:
                    break
                raise PermanentHookError(
                    obj, 409, "the name is taken by a pod of no migration of ours"
                )
        else:
            raise TransientHookError(obj, 409, "creating kept conflicting")
        log.info("created replacement %s/%s pinned to %s", ns, name, action.target_node)

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
        done: Callable[[Pods], str | None],
        timeout: float,
    ) -> tuple[bool, str]:
        """List, then watch ``selector`` until ``done(pods)`` says ``ok`` or fails.

        ``done`` returns None (keep waiting), ``"ok"`` or a failure reason. A watch
        that ends (its ``timeoutSeconds``, a 410, a dropped stream) is followed by a
        fresh list, so no event is lost.
        """
        deadline = self.clock() + timeout
        while True:
            self.progress()
            items, rv = self._list(namespace, selector)
            pods = {p["metadata"]["name"]: p for p in items}
            verdict = done(pods)
            if verdict is not None:
                return verdict == "ok", verdict
            remaining = deadline - self.clock()
            if remaining <= 0:
                return False, "timed out"
            chunk = max(1, int(min(remaining, self.timeouts.watch_chunk)))
            stream = watch.Watch().stream(  # type: ignore[no-untyped-call]
                self.api.core.list_namespaced_pod, namespace,
                label_selector=selector, resource_version=rv, timeout_seconds=chunk,
                _request_timeout=chunk + 5,
            )  # fmt: skip
            try:
                for event in stream:
                    self.progress()
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
                        return False, "timed out"
            except Exception as exc:  # a 410 or a dropped stream: re-list
                log.debug("watch ended (%s); re-listing", exc)

    def _wait_handover(
        self,
        ns: str,
        mid: str,
        source: Mapping[str, Any],
        replacement: str,
        rs_name: str,
        pre: Preflight,
    ) -> tuple[bool, str]:
        uid = source["metadata"]["uid"]

        def handed_over(pods: Pods) -> str | None:
            new = pods.get(replacement)
            if new is None:
                return "the ReplicaSet removed the replacement"
            old = next(
                (p for p in pods.values() if p["metadata"].get("uid") == uid), None
            )
            if old is not None and not old["metadata"].get("deletionTimestamp"):
                return None
            info = pod_from_json(new)
            return "ok" if info.owner_name == rs_name and info.ready else None

        ok, why = self._wait(
            ns, f"{markers.MIGRATION}={mid}", handed_over, self.timeouts.handover
        )
        if not ok:
            return ok, why
        selector = selector_string(pre.replicaset["spec"].get("selector"))
        items, _ = self._list(ns, selector)
        ready = [
            p for p in map(pod_from_json, items)
            if p.owner_name == rs_name and p.ready and not p.terminating
        ]  # fmt: skip
        if len(ready) < pre.ready:
            return False, f"{len(ready)} Ready replicas, fewer than {pre.ready} before"
        return True, "ok"

    def _unmark(self, ns: str, name: str, body: Mapping[str, Any]) -> None:
        """Patch markers away; a pod that is gone meanwhile needs none."""
        try:
            self._patch(ns, name, body)
        except PermanentHookError as err:
            if err.status != 404:
                raise

    def _cleanup(self, ns: str, source: str | None, replacements: list[str]) -> None:
        """In-flight markers off, the source first.

        A crash in between then leaves a replacement alone, which reads as handed
        over.
        """
        if source is not None:
            self._unmark(ns, source, {"metadata": {
                "labels": dict.fromkeys(
                    (markers.MIGRATION, markers.ROLE, markers.REPLICASET)),
                "annotations": {markers.ORIGINAL_COST: None},
            }})  # fmt: skip
        for name in replacements:
            self._unmark(ns, name, {"metadata": {"labels": dict.fromkeys(
                (markers.MIGRATION, markers.ROLE, markers.REPLICASET))}})  # fmt: skip

    def _restore_source(self, ns: str, source: Mapping[str, Any]) -> None:
        annotations = source["metadata"].get("annotations") or {}
        cost = annotations.get(markers.ORIGINAL_COST) or None
        self._unmark(ns, source["metadata"]["name"], {"metadata": {
            "labels": dict.fromkeys(
                (markers.MIGRATION, markers.ROLE, markers.REPLICASET)),
            "annotations": {markers.ORIGINAL_COST: None, markers.DELETION_COST: cost},
        }})  # fmt: skip

    # ------------------------------------------------------------ settle
    def settle(self, ns: str, mid: str, wait: bool = True) -> str:
        """Bring migration ``mid`` to a safe end from its markers alone.

        Before the hand-over (no replacement has its hash back): delete every
        replacement and restore the source -> ``rolled-back``. After it: wait for
        the ReplicaSet to shed the source -> ``completed``; if it shed the
        replacement instead -> ``rolled-back``; if both still run when the wait
        ends, keep both and drop the markers -> ``both-kept`` (no pod is lost).
        Nothing found -> ``nothing``.
        """
        items, _ = self._list(ns, f"{markers.MIGRATION}={mid}")
        if any(_handed_over(p) for p in items if _role(p) == "replacement"):
            return self._settle_forward(ns, mid, items, wait)
        source = next((p for p in items if _role(p) == "source"), None)
        for rep in (p for p in items if _role(p) == "replacement"):
            name = rep["metadata"]["name"]
            options = V1DeleteOptions(
                preconditions=V1Preconditions(uid=rep["metadata"]["uid"])
            )
            try:
                self.api.call(
                    _obj(ns, name), self.api.core.delete_namespaced_pod, name, ns,
                    body=options,
                )  # fmt: skip
            except PermanentHookError as err:
                if err.status != 404:
                    raise
            log.warning("migration %s: replacement %s deleted", mid, name)
        if source is not None:
            self._restore_source(ns, source)
        return "rolled-back" if items else "nothing"

    def _settle_forward(
        self, ns: str, mid: str, items: list[dict[str, Any]], wait: bool
    ) -> str:
        def finished(pods: Pods) -> str | None:
            live_source = any(
                _role(p) == "source" and not p["metadata"].get("deletionTimestamp")
                for p in pods.values()
            )
            reps = [p for p in pods.values() if _role(p) == "replacement"]
            if not reps or not live_source:
                return "ok"
            return None

        if wait:
            self._wait(ns, f"{markers.MIGRATION}={mid}", finished,
                       self.timeouts.handover)  # fmt: skip
            items, _ = self._list(ns, f"{markers.MIGRATION}={mid}")
        source = next((p for p in items if _role(p) == "source"), None)
        reps = [p for p in items if _role(p) == "replacement"]
        source_live = source is not None and not source["metadata"].get(
            "deletionTimestamp"
        )
        if not reps:  # the ReplicaSet shed the replacement: the old pod stays
            if source is not None:
                self._restore_source(ns, source)
            return "rolled-back"
        if source_live:
            assert source is not None
            self._restore_source(ns, source)
            self._cleanup(ns, None, [p["metadata"]["name"] for p in reps])
            log.warning("migration %s: both pods kept running", mid)
            return "both-kept"
        self._cleanup(
            ns,
            source["metadata"]["name"] if source else None,
            [p["metadata"]["name"] for p in reps],
        )
        return "completed"

    def reconcile(self, namespace: str) -> list[MigrationResult]:
        """Settle every migration a crashed run left (one labelled list)."""
        items, _ = self._list(namespace, markers.MIGRATION)
        results = []
        for mid in sorted({_labels(p)[markers.MIGRATION] for p in items}):
            pods = [p for p in items if _labels(p)[markers.MIGRATION] == mid]
            source = next((p for p in pods if _role(p) == "source"), None)
            rep = next((p for p in pods if _role(p) == "replacement"), None)
            outcome = self.settle(namespace, mid)
            results.append(
                MigrationResult(
                    mid,
                    source["metadata"]["name"] if source else "",
                    rep["metadata"]["name"] if rep else "",
                    (rep["metadata"].get("annotations") or {}).get(
                        markers.TARGET_NODE, ""
                    )
                    if rep
                    else "",
                    outcome,
                )
            )
            log.warning("reconciled migration %s: %s", mid, outcome)
        return results


def _role(pod: Mapping[str, Any]) -> str:
    return _labels(pod).get(markers.ROLE, "")


def _replacement_ready(pods: Mapping[str, Mapping[str, Any]], name: str) -> str | None:
    pod = pods.get(name)
    if pod is None:
        return "the replacement was deleted"
    info = pod_from_json(pod)
    if info.phase == "Failed":
        return "the replacement failed"
    return "ok" if info.ready and not info.terminating else None
