"""Assertions on the double's state and history, independent of ``hooks``."""

from __future__ import annotations

from typing import Any

from tests.hooks.kube_double import KubeDouble

MARKER_PREFIX = "hooks.frl.dev/"
IN_FLIGHT = ("migration", "role", "replicaset")


def replicaset(double: KubeDouble, ns: str, app: str) -> dict[str, Any]:
    """The one ReplicaSet of Deployment ``app``."""
    with double.lock:
        sets = [
            rs
            for (n, _), rs in double.store["ReplicaSet"].items()
            if n == ns and rs["metadata"]["name"].startswith(app + "-")
        ]
    assert len(sets) == 1, sets
    return sets[0]


def controller(pod: dict[str, Any]) -> str:
    """The name of the pod's controlling owner ('' for none)."""
    refs = pod["metadata"].get("ownerReferences") or []
    return next((r["name"] for r in refs if r.get("controller")), "")


def live_pods(double: KubeDouble, ns: str, app: str) -> list[dict[str, Any]]:
    """The app's pods that are not terminating."""
    return [
        p
        for p in double.app_pods(ns, app)
        if not p["metadata"].get("deletionTimestamp")
    ]


def in_flight_markers(double: KubeDouble, ns: str) -> dict[str, list[str]]:
    """Pod name -> the migration labels still on it (empty when all is settled)."""
    out = {}
    for pod in double.pods(ns):
        left = [
            k
            for k in pod["metadata"].get("labels") or {}
            if k.startswith(MARKER_PREFIX) and k.split("/", 1)[1] in IN_FLIGHT
        ]
        if left:
            out[pod["metadata"]["name"]] = left
    return out


def min_ready_since(double: KubeDouble, rs_name: str, since: int) -> int:
    """Fewest Ready, not terminating pods of ``rs_name`` at any event after ``since``.

    Replays the double's event log, so a dip between two polls is seen too.
    """

    def counts(pod: dict[str, Any]) -> bool:
        ready = any(
            c["type"] == "Ready" and c["status"] == "True"
            for c in pod["status"].get("conditions", [])
        )
        return (
            controller(pod) == rs_name
            and ready
            and not pod["metadata"].get("deletionTimestamp")
        )

    with double.lock:
        state = {
            (p["metadata"]["namespace"], p["metadata"]["name"]): p
            for p in double.pods()
        }
        events = [e for e in double.events if e[1] == "Pod"]
    # rebuild the state at ``since``: undo later events backwards
    for rv, _, type_, obj, old in reversed(events):
        if rv <= since:
            break
        key = (obj["metadata"]["namespace"], obj["metadata"]["name"])
        if type_ == "ADDED":
            state.pop(key, None)
        elif type_ == "MODIFIED":
            assert old is not None
            state[key] = old
        else:  # DELETED: the last state before removal
            state[key] = obj
    lowest = sum(1 for p in state.values() if counts(p))
    for rv, _, type_, obj, _old in events:
        if rv <= since:
            continue
        key = (obj["metadata"]["namespace"], obj["metadata"]["name"])
        if type_ == "DELETED":
            state.pop(key, None)
        else:
            state[key] = obj
        lowest = min(lowest, sum(1 for p in state.values() if counts(p)))
    return lowest


def pods_added_since(double: KubeDouble, since: int) -> list[str]:
    """Names of the pods created after ``since``."""
    with double.lock:
        return [
            e[3]["metadata"]["name"]
            for e in double.events
            if e[0] > since and e[1] == "Pod" and e[2] == "ADDED"
        ]


def sequence(double: KubeDouble) -> list[str]:
    """``METHOD path`` of every recorded request (queries left out)."""
    return [f"{r.method} {r.path}" for r in double.requests]
