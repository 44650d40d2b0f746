"""A stateful loopback Kubernetes API double for the REST subset the hooks use.

Stdlib ``ThreadingHTTPServer`` on 127.0.0.1, port 0, driven by the *real*
``kubernetes`` client. It keeps one global ``resourceVersion``, filters by label and
field selectors (its own parser, independent of ``hooks``), streams watches as
chunked JSON lines with ``timeoutSeconds`` and a 410 for compacted versions, answers
errors as ``Status`` bodies, and runs tiny controllers: a scheduler (node selector,
cordon, taints, requests), a kubelet (Pending -> Running -> Ready after a delay, or
never Ready, or Failed), a Deployment -> ReplicaSet controller and a ReplicaSet
controller with adoption and Kubernetes' scale-down ranking (unassigned, Pending <
Running, not Ready, lower deletion cost, more co-located, shorter Ready, newer).
Eviction follows the PodDisruptionBudget rules; faults can be queued per request.
Every request is recorded as (method, path, query, body).
"""

from __future__ import annotations

import copy
import json
import random
import re
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"
_PLURAL_KIND = {
    "nodes": "Node",
    "pods": "Pod",
    "replicasets": "ReplicaSet",
    "deployments": "Deployment",
    "poddisruptionbudgets": "PodDisruptionBudget",
    "horizontalpodautoscalers": "HorizontalPodAutoscaler",
}
_API_VERSION = {
    "Node": "v1",
    "Pod": "v1",
    "ReplicaSet": "apps/v1",
    "Deployment": "apps/v1",
    "PodDisruptionBudget": "policy/v1",
    "HorizontalPodAutoscaler": "autoscaling/v1",
}
_ROUTE = re.compile(
    r"^/(?:api/v1|apis/(?:apps|policy|autoscaling)/v\d+)"
    r"(?:/namespaces/(?P<ns>[^/]+))?/(?P<plural>[a-z]+)"
    r"(?:/(?P<name>[^/]+))?(?:/(?P<sub>eviction|scale|status))?$"
)


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _cpu(text: str) -> float:
    return float(text[:-1]) / 1000 if text.endswith("m") else float(text)


def _mem(text: str) -> float:
    units = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "K": 1e3, "M": 1e6, "G": 1e9}
    for suffix, factor in units.items():
        if text.endswith(suffix):
            return float(text[: -len(suffix)]) * factor
    return float(text)


def label_match(selector: str, labels: dict[str, str]) -> bool:
    """The double's own label-selector matcher (set and equality terms)."""
    terms, depth, cur = [], 0, ""
    for ch in selector:
        depth += (ch == "(") - (ch == ")")
        if ch == "," and depth == 0:
            terms.append(cur)
            cur = ""
        else:
            cur += ch
    terms.append(cur)
    for raw in (t.strip() for t in terms):
        if not raw:
            continue
        m = re.match(r"^([\w./-]+)\s+(notin|in)\s+\((.*)\)$", raw)
        if m:
            values = {v.strip() for v in m.group(3).split(",")}
            inside = labels.get(m.group(1)) in values
            if inside != (m.group(2) == "in"):
                return False
        elif "!=" in raw:
            k, v = raw.split("!=", 1)
            if labels.get(k.strip()) == v.strip():
                return False
        elif "=" in raw:
            k, v = raw.replace("==", "=").split("=", 1)
            if labels.get(k.strip()) != v.strip():
                return False
        elif raw.startswith("!"):
            if raw[1:] in labels:
                return False
        elif raw not in labels:
            return False
    return True


def _field_value(obj: dict[str, Any], path: str) -> str:
    value: Any = obj
    for part in path.split("."):
        value = value.get(part, "") if isinstance(value, dict) else ""
    return "" if value is None else str(value)


def field_match(selector: str, obj: dict[str, Any]) -> bool:
    """``a=b,c!=d`` on dotted paths (``metadata.name``, ``spec.nodeName``, ...)."""
    for raw in (t.strip() for t in selector.split(",")):
        if not raw:
            continue
        if "!=" in raw:
            k, v = raw.split("!=", 1)
            if _field_value(obj, k) == v:
                return False
        else:
            k, v = raw.replace("==", "=").split("=", 1)
            if _field_value(obj, k) != v:
                return False
    return True


def selector_of(sel: dict[str, Any]) -> str:
    parts = [f"{k}={v}" for k, v in (sel.get("matchLabels") or {}).items()]
    for e in sel.get("matchExpressions") or []:
        op = {"In": "in", "NotIn": "notin"}.get(e["operator"])
        if op:
            parts.append(f"{e['key']} {op} ({','.join(e['values'])})")
        elif e["operator"] == "Exists":
            parts.append(e["key"])
        else:
            parts.append("!" + e["key"])
    return ",".join(parts)


def merge(target: dict[str, Any], patch: dict[str, Any]) -> dict[str, Any]:
    """JSON merge patch (strategic merge for the maps we use): None deletes."""
    for key, value in patch.items():
        if value is None:
            target.pop(key, None)
        elif isinstance(value, dict) and isinstance(target.get(key), dict):
            merge(target[key], value)
        else:
            target[key] = copy.deepcopy(value)
    return target


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, str]
    body: Any

    @property
    def watch(self) -> bool:
        return self.query.get("watch") in ("true", "1", "True")

    def __str__(self) -> str:
        q = "&".join(f"{k}={v}" for k, v in self.query.items())
        return f"{self.method} {self.path}{'?' + q if q else ''}"


@dataclass
class Fault:
    method: str
    pattern: re.Pattern[str]
    status: int
    times: int
    reason: str
    message: str
    retry_after: str | None = None


class ApiError(Exception):
    def __init__(
        self,
        code: int,
        reason: str,
        message: str,
        kind: str = "",
        name: str = "",
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.code, self.reason, self.message = code, reason, message
        self.kind, self.name, self.headers = kind, name, headers or {}

    def body(self) -> dict[str, Any]:
        return {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "details": {"name": self.name, "kind": self.kind.lower() + "s"},
            "code": self.code,
        }


@dataclass
class Knobs:
    ready_delay: float = 0.05
    """Seconds from scheduling to Running + Ready."""
    never_ready: Callable[[dict[str, Any]], bool] = lambda pod: False
    fail: Callable[[dict[str, Any]], bool] = lambda pod: False
    keep_events: int = 100_000
    """Events older than the newest ``keep_events`` are compacted (410)."""
    honour_deletion_cost: bool = True
    """False: the ReplicaSet ignores ``pod-deletion-cost`` (before 1.22, or the
    feature gate off), so ties fall to the later rules."""
    grace: float = 0.1
    """Seconds a deleted, scheduled pod stays terminating (``deletionTimestamp``
    set, still listed) before it is removed; a DELETE's ``gracePeriodSeconds``
    overrides it, 0 removes at once."""


class KubeDouble:
    """The API server double; use as a context manager or ``start()``/``stop()``."""

    def __init__(self, seed: int = 0) -> None:
        self.lock = threading.RLock()
        self.changed = threading.Condition(self.lock)
        self.rv = 0
        self.store: dict[str, dict[tuple[str, str], dict[str, Any]]] = {
            kind: {} for kind in _PLURAL_KIND.values()
        }
        self.events: list[
            tuple[int, str, str, dict[str, Any], dict[str, Any] | None]
        ] = []
        self.compacted = 0
        self.requests: list[Request] = []
        self.faults: list[Fault] = []
        self.knobs = Knobs()
        self.rng = random.Random(seed)
        self._scheduled_at: dict[str, float] = {}
        self._ready_at: dict[str, float] = {}
        self._created_seq: dict[str, int] = {}
        self._remove_at: dict[tuple[str, str], float] = {}
        self._stop = threading.Event()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    # ------------------------------------------------------------ lifecycle
    def start(self) -> KubeDouble:
        threading.Thread(
            target=self.server.serve_forever, args=(0.05,), daemon=True
        ).start()
        threading.Thread(target=self._tick_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self.server.shutdown()
        self.server.server_close()

    def __enter__(self) -> KubeDouble:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _tick_forever(self) -> None:
        while not self._stop.wait(0.01):
            with self.lock:
                self.reconcile()

    # ------------------------------------------------------------ setup
    def add_node(
        self,
        name: str,
        cpu: str = "4",
        memory: str = "8Gi",
        labels: dict[str, str] | None = None,
        taints: list[dict[str, str]] | None = None,
        unschedulable: bool = False,
        ready: bool = True,
    ) -> dict[str, Any]:
        node = {
            "metadata": {
                "name": name,
                "labels": {"kubernetes.io/hostname": name, **(labels or {})},
            },
            "spec": {"unschedulable": unschedulable, "taints": taints or []},
            "status": {
                "allocatable": {"cpu": cpu, "memory": memory, "pods": "110"},
                "capacity": {"cpu": cpu, "memory": memory, "pods": "110"},
                "conditions": [
                    {"type": "Ready", "status": "True" if ready else "False"}
                ],
            },
        }
        with self.lock:
            return self._create("Node", "", node)

    def add_deployment(
        self,
        ns: str,
        name: str,
        replicas: int,
        cpu: str = "100m",
        memory: str = "128Mi",
        labels: dict[str, str] | None = None,
        node_selector: dict[str, str] | None = None,
        wait: bool = True,
    ) -> dict[str, Any]:
        tpl_labels = {"app": name, **(labels or {})}
        spec = {
            "containers": [
                {
                    "name": "app",
                    "image": f"example/{name}:1",
                    "resources": {"requests": {"cpu": cpu, "memory": memory}},
                }
            ]
        }
        if node_selector:
            spec["nodeSelector"] = node_selector
        dep = {
            "metadata": {"name": name, "labels": tpl_labels},
            "spec": {
                "replicas": replicas,
                "selector": {"matchLabels": {"app": name}},
                "template": {"metadata": {"labels": tpl_labels}, "spec": spec},
            },
        }
        with self.lock:
            dep = self._create("Deployment", ns, dep)
            h = "".join(self.rng.choice(_ALPHABET) for _ in range(9))
            rs_labels = {**tpl_labels, "pod-template-hash": h}
            rs = {
                "metadata": {
                    "name": f"{name}-{h}",
                    "labels": rs_labels,
                    "ownerReferences": [self._owner_ref(dep)],
                },
                "spec": {
                    "replicas": replicas,
                    "selector": {"matchLabels": {"app": name, "pod-template-hash": h}},
                    "template": {
                        "metadata": {"labels": rs_labels},
                        "spec": copy.deepcopy(spec),
                    },
                },
            }
            self._create("ReplicaSet", ns, rs)
            self.reconcile()
        if wait:
            self.wait_for(lambda: self.ready_pods(ns, name) == replicas, 10)
        return dep

    def add_pdb(
        self,
        ns: str,
        name: str,
        match_labels: dict[str, str],
        disruptions_allowed: int,
        generation_lag: bool = False,
    ) -> None:
        pdb = {
            "metadata": {"name": name, "generation": 2 if generation_lag else 1},
            "spec": {"selector": {"matchLabels": match_labels}, "minAvailable": 1},
            "status": {
                "disruptionsAllowed": disruptions_allowed,
                "currentHealthy": 1,
                "desiredHealthy": 1,
                "expectedPods": 1,
                "observedGeneration": 1,
            },
        }
        with self.lock:
            self._create("PodDisruptionBudget", ns, pdb)

    def add_pod(
        self,
        ns: str,
        name: str,
        node: str | None,
        cpu: str = "100m",
        memory: str = "128Mi",
        labels: dict[str, str] | None = None,
        phase: str = "Running",
        ready: bool = True,
        spec: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """A bare pod already placed (``node``) in ``phase``: the kubelet leaves it."""
        pod = {
            "metadata": {"name": name, "labels": dict(labels or {})},
            "spec": {
                "containers": [
                    {
                        "name": "app",
                        "image": "example/app:1",
                        "resources": {"requests": {"cpu": cpu, "memory": memory}},
                    }
                ],
                **({"nodeName": node} if node else {}),
                **(spec or {}),
            },
        }
        with self.lock:
            created = self._create("Pod", ns, pod)
            created["status"] = {
                "phase": phase,
                "conditions": [
                    {"type": "Ready", "status": "True" if ready else "False"}
                ],
            }
            return copy.deepcopy(created)

    def set_node(
        self, name: str, ready: bool | None = None, unschedulable: bool | None = None
    ) -> None:
        """Flip a node's Ready condition or cordon, as a kubelet or an admin would."""
        with self.lock:
            node = self.store["Node"][("", name)]
            old = copy.deepcopy(node)
            if ready is not None:
                node["status"]["conditions"] = [
                    {"type": "Ready", "status": "True" if ready else "False"}
                ]
            if unschedulable is not None:
                node["spec"]["unschedulable"] = unschedulable
            self._update("Node", node, old)
            self.reconcile()

    def add_hpa(self, ns: str, name: str, deployment: str) -> None:
        hpa = {
            "metadata": {"name": name},
            "spec": {
                "scaleTargetRef": {
                    "apiVersion": "apps/v1",
                    "kind": "Deployment",
                    "name": deployment,
                },
                "minReplicas": 1,
                "maxReplicas": 10,
            },
        }
        with self.lock:
            self._create("HorizontalPodAutoscaler", ns, hpa)

    def fault(
        self,
        method: str,
        path: str,
        status: int,
        times: int = 1,
        reason: str = "",
        message: str = "injected fault",
        retry_after: str | None = None,
    ) -> None:
        reasons = {
            403: "Forbidden",
            404: "NotFound",
            409: "Conflict",
            422: "Invalid",
            429: "TooManyRequests",
            500: "InternalError",
        }
        with self.lock:
            self.faults.append(
                Fault(
                    method,
                    re.compile(path),
                    status,
                    times,
                    reason or reasons.get(status, "Unknown"),
                    message,
                    retry_after,
                )
            )

    # ------------------------------------------------------------ queries
    def pods(self, ns: str | None = None) -> list[dict[str, Any]]:
        with self.lock:
            return [
                copy.deepcopy(p)
                for (n, _), p in sorted(self.store["Pod"].items())
                if ns is None or n == ns
            ]

    def app_pods(self, ns: str, app: str) -> list[dict[str, Any]]:
        return [p for p in self.pods(ns) if p["metadata"]["labels"].get("app") == app]

    def ready_pods(self, ns: str, app: str) -> int:
        return sum(1 for p in self.app_pods(ns, app) if self._is_ready(p))

    def get(self, kind: str, ns: str, name: str) -> dict[str, Any] | None:
        with self.lock:
            obj = self.store[kind].get((ns, name))
            return copy.deepcopy(obj) if obj else None

    def mutating(self) -> list[Request]:
        return [r for r in self.requests if r.method != "GET"]

    def wait_for(self, predicate: Callable[[], bool], timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while not predicate():
            if time.monotonic() > deadline:
                raise TimeoutError("double: condition not reached")
            time.sleep(0.02)

    # ------------------------------------------------------------ store
    def _bump(self) -> str:
        self.rv += 1
        return str(self.rv)

    def _emit(
        self, kind: str, type_: str, obj: dict[str, Any], old: dict[str, Any] | None
    ) -> None:
        self.events.append((self.rv, kind, type_, copy.deepcopy(obj), old))
        if len(self.events) > self.knobs.keep_events:
            drop = len(self.events) - self.knobs.keep_events
            self.compacted = self.events[drop - 1][0]
            del self.events[:drop]
        self.changed.notify_all()

    def _create(self, kind: str, ns: str, obj: dict[str, Any]) -> dict[str, Any]:
        meta = obj.setdefault("metadata", {})
        if not meta.get("name"):
            if not meta.get("generateName"):
                raise ApiError(
                    422,
                    "Invalid",
                    f'{kind} "" is invalid: metadata.name: '
                    "Required value: name or generateName is required",
                    kind,
                )
            meta["name"] = meta["generateName"] + "".join(
                self.rng.choice(_ALPHABET) for _ in range(5)
            )
        if (ns, meta["name"]) in self.store[kind]:
            raise ApiError(
                409,
                "AlreadyExists",
                f'{kind.lower()}s "{meta["name"]}" already exists',
                kind,
                meta["name"],
            )
        if ns:
            meta["namespace"] = ns
        meta.update(
            uid=str(uuid.UUID(int=self.rng.getrandbits(128))),
            creationTimestamp=_now(),
            resourceVersion=self._bump(),
        )
        meta.setdefault("labels", {})
        self._created_seq[meta["uid"]] = self.rv
        obj["apiVersion"], obj["kind"] = _API_VERSION[kind], kind
        if kind == "Pod":
            obj.setdefault("status", {})["phase"] = "Pending"
            obj["status"]["conditions"] = [{"type": "Ready", "status": "False"}]
        self.store[kind][(ns, meta["name"])] = obj
        self._emit(kind, "ADDED", obj, None)
        return obj

    def _update(self, kind: str, obj: dict[str, Any], old: dict[str, Any]) -> None:
        obj["metadata"]["resourceVersion"] = self._bump()
        self._emit(kind, "MODIFIED", obj, old)

    def _delete(
        self, kind: str, ns: str, name: str, grace: float | None = None
    ) -> dict[str, Any]:
        """Graceful for a scheduled pod (terminating, removed later), else at once."""
        obj = self.store[kind][(ns, name)]
        grace = self.knobs.grace if grace is None else grace
        scheduled = kind == "Pod" and bool(obj["spec"].get("nodeName"))
        if obj["metadata"].get("deletionTimestamp") and (ns, name) in self._remove_at:
            if grace > 0:
                return obj  # already terminating
        elif scheduled and grace > 0:
            old = copy.deepcopy(obj)
            obj["metadata"]["deletionTimestamp"] = _now()
            obj["metadata"]["deletionGracePeriodSeconds"] = int(grace)
            self._update(kind, obj, old)
            self._remove_at[(ns, name)] = time.monotonic() + grace
            return obj
        return self._remove(kind, ns, name)

    def _remove(self, kind: str, ns: str, name: str) -> dict[str, Any]:
        obj = self.store[kind][(ns, name)]
        self._remove_at.pop((ns, name), None)
        if not obj["metadata"].get("deletionTimestamp"):
            old = copy.deepcopy(obj)
            obj["metadata"]["deletionTimestamp"] = _now()
            self._update(kind, obj, old)
        del self.store[kind][(ns, name)]
        self._bump()
        self._emit(kind, "DELETED", obj, None)
        return obj

    @staticmethod
    def _owner_ref(obj: dict[str, Any]) -> dict[str, Any]:
        return {
            "apiVersion": obj["apiVersion"],
            "kind": obj["kind"],
            "name": obj["metadata"]["name"],
            "uid": obj["metadata"]["uid"],
            "controller": True,
            "blockOwnerDeletion": True,
        }

    @staticmethod
    def _is_ready(pod: dict[str, Any]) -> bool:
        return any(
            c["type"] == "Ready" and c["status"] == "True"
            for c in pod["status"].get("conditions", [])
        )

    # ------------------------------------------------------------ controllers
    def reconcile(self) -> None:
        """One pass of every controller (caller holds the lock)."""
        for dep in list(self.store["Deployment"].values()):
            ns = dep["metadata"]["namespace"]
            for rs in self.store["ReplicaSet"].values():
                owner = rs["metadata"].get("ownerReferences", [{}])[0]
                if (
                    owner.get("uid") == dep["metadata"]["uid"]
                    and rs["spec"]["replicas"] != dep["spec"]["replicas"]
                ):
                    old = copy.deepcopy(rs)
                    rs["spec"]["replicas"] = dep["spec"]["replicas"]
                    self._update("ReplicaSet", rs, old)
            del ns
        for rs in list(self.store["ReplicaSet"].values()):
            self._replicaset(rs)
        self._schedule()
        self._kubelet()

    def _replicaset(self, rs: dict[str, Any]) -> None:
        ns, uid = rs["metadata"]["namespace"], rs["metadata"]["uid"]
        sel = selector_of(rs["spec"]["selector"])
        owned = []
        for (pns, _), pod in list(self.store["Pod"].items()):
            if pns != ns or pod["metadata"].get("deletionTimestamp"):
                continue
            refs = pod["metadata"].get("ownerReferences") or []
            ctrl = next((r for r in refs if r.get("controller")), None)
            matches = label_match(sel, pod["metadata"]["labels"])
            if ctrl is None and matches:  # adoption
                old = copy.deepcopy(pod)
                pod["metadata"]["ownerReferences"] = [self._owner_ref(rs)]
                self._update("Pod", pod, old)
                ctrl = pod["metadata"]["ownerReferences"][0]
            elif ctrl is not None and ctrl["uid"] == uid and not matches:  # release
                old = copy.deepcopy(pod)
                pod["metadata"]["ownerReferences"] = []
                self._update("Pod", pod, old)
                continue
            if (
                ctrl is not None
                and ctrl["uid"] == uid
                and pod["status"]["phase"] not in ("Succeeded", "Failed")
            ):
                owned.append(pod)
        want = rs["spec"]["replicas"]
        if len(owned) > want:
            for pod in sorted(owned, key=lambda p: self._rank(p, owned))[
                : len(owned) - want
            ]:
                self._delete("Pod", ns, pod["metadata"]["name"])
        for _ in range(want - len(owned)):
            tpl = copy.deepcopy(rs["spec"]["template"])
            pod = {
                "metadata": {
                    "generateName": rs["metadata"]["name"] + "-",
                    "labels": tpl["metadata"]["labels"],
                    "annotations": tpl["metadata"].get("annotations", {}),
                    "ownerReferences": [self._owner_ref(rs)],
                },
                "spec": tpl["spec"],
            }
            self._create("Pod", ns, pod)
        ready = sum(1 for p in owned if self._is_ready(p))
        rs["status"] = {"replicas": len(owned), "readyReplicas": ready}

    def _rank(
        self, pod: dict[str, Any], peers: list[dict[str, Any]]
    ) -> tuple[Any, ...]:
        """Sort key: the first pods are deleted first (ActivePodsWithRanks)."""
        node = pod["spec"].get("nodeName") or ""
        phase = {"Pending": 0, "Unknown": 1, "Running": 2}.get(
            pod["status"]["phase"], 0
        )
        cost = int(
            (pod["metadata"].get("annotations") or {}).get(
                "controller.kubernetes.io/pod-deletion-cost", "0"
            )
        )
        if not self.knobs.honour_deletion_cost:
            cost = 0
        colocated = sum(1 for p in peers if node and p["spec"].get("nodeName") == node)
        ready_at = self._ready_at.get(pod["metadata"]["uid"], 0.0)
        return (
            bool(node),
            phase,
            self._is_ready(pod),
            cost,
            -colocated,
            -ready_at,
            -self._created_seq.get(pod["metadata"]["uid"], 0),
        )

    def _fits(self, pod: dict[str, Any], node: dict[str, Any]) -> bool:
        labels = node["metadata"]["labels"]
        if node["spec"].get("unschedulable") or not self._is_ready(node):
            return False
        if any(
            labels.get(k) != v
            for k, v in (pod["spec"].get("nodeSelector") or {}).items()
        ):
            return False
        tolerated = {t.get("key") for t in pod["spec"].get("tolerations") or []}
        if any(
            t["effect"] in ("NoSchedule", "NoExecute") and t["key"] not in tolerated
            for t in node["spec"].get("taints") or []
        ):
            return False
        return (
            self._free(node)[0] >= self._req(pod)[0] - 1e-9
            and self._free(node)[1] >= self._req(pod)[1]
        )

    @staticmethod
    def _req(pod: dict[str, Any]) -> tuple[float, float]:
        cpu = mem = 0.0
        for c in pod["spec"]["containers"]:
            r = (c.get("resources") or {}).get("requests") or {}
            cpu += _cpu(r.get("cpu", "0"))
            mem += _mem(r.get("memory", "0"))
        return cpu, mem

    def _free(self, node: dict[str, Any]) -> tuple[float, float]:
        name = node["metadata"]["name"]
        cpu = _cpu(node["status"]["allocatable"]["cpu"])
        mem = _mem(node["status"]["allocatable"]["memory"])
        for pod in self.store["Pod"].values():
            if pod["spec"].get("nodeName") == name and pod["status"]["phase"] not in (
                "Succeeded",
                "Failed",
            ):
                c, m = self._req(pod)
                cpu, mem = cpu - c, mem - m
        return cpu, mem

    def _schedule(self) -> None:
        for pod in self.store["Pod"].values():
            if pod["spec"].get("nodeName") or pod["metadata"].get("deletionTimestamp"):
                continue
            fits = [n for n in self.store["Node"].values() if self._fits(pod, n)]
            if not fits:
                continue
            best = max(fits, key=lambda n: (self._free(n)[0], n["metadata"]["name"]))
            old = copy.deepcopy(pod)
            pod["spec"]["nodeName"] = best["metadata"]["name"]
            self._scheduled_at[pod["metadata"]["uid"]] = time.monotonic()
            self._update("Pod", pod, old)

    def _kubelet(self) -> None:
        now = time.monotonic()
        for (ns, name), at in list(self._remove_at.items()):
            if now >= at and (ns, name) in self.store["Pod"]:
                self._remove("Pod", ns, name)
        for pod in self.store["Pod"].values():
            uid = pod["metadata"]["uid"]
            at = self._scheduled_at.get(uid)
            if (
                at is None
                or pod["status"]["phase"] != "Pending"
                or pod["metadata"].get("deletionTimestamp")
                or now - at < self.knobs.ready_delay
            ):
                continue
            old = copy.deepcopy(pod)
            if self.knobs.fail(pod):
                pod["status"]["phase"] = "Failed"
            else:
                pod["status"]["phase"] = "Running"
                if not self.knobs.never_ready(pod):
                    pod["status"]["conditions"] = [{"type": "Ready", "status": "True"}]
                    self._ready_at[uid] = now
            self._update("Pod", pod, old)

    # ------------------------------------------------------------ HTTP
    def _handler(self) -> type[BaseHTTPRequestHandler]:
        double = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True  # one segment per answer: no 40 ms ACK waits

            def log_message(self, *args: Any) -> None:
                pass

            def _serve(self) -> None:
                url = urlsplit(self.path)
                query = {k: v[-1] for k, v in parse_qs(url.query).items()}
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                body = json.loads(raw) if raw else None
                req = Request(self.command, url.path, query, body)
                try:
                    with double.lock:
                        double.requests.append(req)
                        double._inject(req)
                    if req.watch:
                        double._watch(self, req)
                        return
                    with double.lock:
                        code, payload = double._dispatch(req, self.headers)
                        double.reconcile()
                    self._send(code, payload)
                except ApiError as err:
                    self._send(err.code, err.body(), err.headers)

            def _send(
                self, code: int, payload: Any, headers: dict[str, str] | None = None
            ) -> None:
                data = json.dumps(payload).encode()
                try:
                    self.send_response(code)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    for k, v in (headers or {}).items():
                        self.send_header(k, v)
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client went away (a killed migrator)

            do_GET = do_POST = do_PATCH = do_DELETE = do_PUT = _serve

        return Handler

    def _inject(self, req: Request) -> None:
        for fault in self.faults:
            if (
                fault.times > 0
                and fault.method == req.method
                and fault.pattern.search(req.path)
            ):
                fault.times -= 1
                headers = (
                    {"Retry-After": fault.retry_after} if fault.retry_after else {}
                )
                raise ApiError(
                    fault.status, fault.reason, fault.message, headers=headers
                )

    def _dispatch(self, req: Request, headers: Any) -> tuple[int, Any]:  # noqa: C901
        m = _ROUTE.match(req.path)
        if not m:
            raise ApiError(404, "NotFound", f"the server could not find {req.path}")
        ns, plural, name, sub = m.group("ns") or "", m["plural"], m["name"], m["sub"]
        kind = _PLURAL_KIND.get(plural)
        if kind is None:
            raise ApiError(404, "NotFound", f"unknown resource {plural}")
        if sub == "eviction":
            return self._evict(ns, name, req.body)
        if sub == "scale":
            return self._scale(ns, name, req)
        if name is None:
            if req.method == "GET":
                return 200, self._list(kind, ns if m.group("ns") else None, req.query)
            if req.method == "POST":
                body = copy.deepcopy(req.body or {})  # the record stays as sent
                if kind == "Pod" and not (body.get("spec") or {}).get("containers"):
                    raise ApiError(
                        422,
                        "Invalid",
                        'Pod "" is invalid: spec.containers: Required value',
                        kind,
                    )
                return 201, copy.deepcopy(self._create(kind, ns, body))
            raise ApiError(405, "MethodNotAllowed", f"{req.method} on a list")
        obj = self.store[kind].get((ns, name))
        if obj is None:
            raise ApiError(404, "NotFound", f'{plural} "{name}" not found', kind, name)
        if req.method == "GET":
            return 200, copy.deepcopy(obj)
        if req.method == "PATCH":
            ctype = headers.get("Content-Type", "")
            if "json-patch" in ctype or not isinstance(req.body, dict):
                raise ApiError(415, "UnsupportedMediaType", f"{ctype} not served")
            want = (req.body.get("metadata") or {}).get("resourceVersion")
            if want and want != obj["metadata"]["resourceVersion"]:
                raise ApiError(
                    409,
                    "Conflict",
                    f'Operation cannot be fulfilled on {plural} "{name}": '
                    "the object has been modified; please apply your "
                    "changes to the latest version and try again",
                    kind,
                    name,
                )
            old = copy.deepcopy(obj)
            patch = copy.deepcopy(req.body)
            patch.get("metadata", {}).pop("resourceVersion", None)
            merge(obj, patch)
            self._update(kind, obj, old)
            return 200, copy.deepcopy(obj)
        if req.method == "DELETE":
            options = req.body or {}
            pre = options.get("preconditions") or {}
            if pre.get("uid") and pre["uid"] != obj["metadata"]["uid"]:
                raise ApiError(
                    409,
                    "Conflict",
                    "Precondition failed: UID in precondition: "
                    f"{pre['uid']}, UID in object meta: {obj['metadata']['uid']}",
                    kind,
                    name,
                )
            grace = options.get("gracePeriodSeconds")
            return 200, copy.deepcopy(
                self._delete(kind, ns, name, None if grace is None else float(grace))
            )
        raise ApiError(405, "MethodNotAllowed", req.method)

    def _list(self, kind: str, ns: str | None, query: dict[str, str]) -> dict[str, Any]:
        items = [
            copy.deepcopy(o)
            for (n, _), o in sorted(self.store[kind].items())
            if (ns is None or n == ns)
            and label_match(query.get("labelSelector", ""), o["metadata"]["labels"])
            and field_match(query.get("fieldSelector", ""), o)
        ]
        return {
            "kind": f"{kind}List",
            "apiVersion": _API_VERSION[kind],
            "metadata": {"resourceVersion": str(self.rv)},
            "items": items,
        }

    def _evict(self, ns: str, name: str, body: Any) -> tuple[int, Any]:
        pod = self.store["Pod"].get((ns, name))
        if pod is None:
            raise ApiError(404, "NotFound", f'pods "{name}" not found', "Pod", name)
        if (body or {}).get("metadata", {}).get("name") != name:
            raise ApiError(
                400, "BadRequest", "name in URL does not match eviction body"
            )
        budgets = [
            b
            for (n, _), b in self.store["PodDisruptionBudget"].items()
            if n == ns
            and label_match(
                selector_of(b["spec"]["selector"]), pod["metadata"]["labels"]
            )
        ]
        if pod["status"]["phase"] == "Running" and budgets:
            if len(budgets) > 1:
                raise ApiError(
                    500,
                    "InternalError",
                    "This pod has more than one "
                    "PodDisruptionBudget, which the eviction subresource "
                    "does not support.",
                )
            b = budgets[0]
            if b["status"]["observedGeneration"] < b["metadata"]["generation"]:
                raise ApiError(
                    429,
                    "TooManyRequests",
                    "Cannot evict pod as it would violate the pod's disruption budget.",
                    headers={"Retry-After": "10"},
                )
            if b["status"]["disruptionsAllowed"] == 0:
                raise ApiError(
                    429,
                    "TooManyRequests",
                    "Cannot evict pod as it would violate the pod's disruption budget.",
                )
            b["status"]["disruptionsAllowed"] -= 1
        self._delete("Pod", ns, name)
        return 201, {
            "kind": "Status",
            "apiVersion": "v1",
            "status": "Success",
            "metadata": {},
            "code": 201,
        }

    def _scale(self, ns: str, name: str, req: Request) -> tuple[int, Any]:
        dep = self.store["Deployment"].get((ns, name))
        if dep is None:
            raise ApiError(
                404,
                "NotFound",
                f'deployments.apps "{name}" not found',
                "Deployment",
                name,
            )
        if req.method == "PATCH":
            replicas = ((req.body or {}).get("spec") or {}).get("replicas")
            if not isinstance(replicas, int) or replicas < 0:
                raise ApiError(422, "Invalid", "spec.replicas: Invalid value")
            old = copy.deepcopy(dep)
            dep["spec"]["replicas"] = replicas
            self._update("Deployment", dep, old)
        elif req.method != "GET":
            raise ApiError(405, "MethodNotAllowed", req.method)
        return 200, {
            "apiVersion": "autoscaling/v1",
            "kind": "Scale",
            "metadata": {
                "name": name,
                "namespace": ns,
                "resourceVersion": dep["metadata"]["resourceVersion"],
            },
            "spec": {"replicas": dep["spec"]["replicas"]},
            "status": {"replicas": dep["spec"]["replicas"], "selector": f"app={name}"},
        }

    def _watch(self, handler: BaseHTTPRequestHandler, req: Request) -> None:
        m = _ROUTE.match(req.path)
        assert m, req.path
        kind = _PLURAL_KIND[m["plural"]]
        ns = m.group("ns")
        timeout = float(req.query.get("timeoutSeconds", "30"))
        since = int(req.query.get("resourceVersion") or "0")
        labels = req.query.get("labelSelector", "")
        fields = req.query.get("fieldSelector", "")
        handler.send_response(200)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Transfer-Encoding", "chunked")
        handler.end_headers()

        def send(event: dict[str, Any]) -> None:
            data = (json.dumps(event) + "\n").encode()
            handler.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
            handler.wfile.flush()

        def matches(obj: dict[str, Any] | None) -> bool:
            return (
                obj is not None
                and (ns is None or obj["metadata"].get("namespace") == ns)
                and label_match(labels, obj["metadata"]["labels"])
                and field_match(fields, obj)
            )

        deadline = time.monotonic() + timeout
        try:
            with self.lock:
                if since and since < self.compacted:
                    send(
                        {
                            "type": "ERROR",
                            "object": ApiError(
                                410,
                                "Expired",
                                f"too old resource version: {since} ({self.compacted})",
                            ).body(),
                        }
                    )
                    handler.wfile.write(b"0\r\n\r\n")
                    return
            cursor = since
            while not self._stop.is_set():
                with self.lock:
                    batch = [e for e in self.events if e[0] > cursor and e[1] == kind]
                    if not batch:
                        remaining = deadline - time.monotonic()
                        if remaining <= 0:
                            break
                        self.changed.wait(min(remaining, 0.5))
                        continue
                for rv, _, type_, obj, old in batch:
                    cursor = rv
                    now, before = matches(obj), matches(old)
                    if type_ == "MODIFIED" and before and not now:
                        send({"type": "DELETED", "object": obj})
                    elif type_ == "MODIFIED" and now and not before:
                        send({"type": "ADDED", "object": obj})
                    elif now:
                        send({"type": type_, "object": obj})
            handler.wfile.write(b"0\r\n\r\n")
            handler.wfile.flush()
        except (BrokenPipeError, ConnectionResetError):
            pass
