"""REACH's ``POST /get_action`` (spec §6): payload -> state, action -> decision.

:class:`ReachPayloadCodec` turns exactly the body that REACH's pod-migrator sends
(``cluster_state`` with ``nodes`` and ``services``, plus ``pod_deployable``) into a
:class:`PayloadState` on the trained node and pod axes, and maps a chosen action back
to REACH's answer ``{"pod_name", "target_node", "is_stop"}``. Node order is the
config's node order; pods fill their service's slots in services.json order, sorted
by pod name within a service; the remaining slots are empty (``<service>_dummy``).
Every problem raises :class:`~envs.reach.errors.ReachPayloadError` with the JSON path;
``mismatch=True`` marks well-formed bodies that do not fit the trained topology
(HTTP 422) as opposed to malformed ones (400).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from envs.reach.errors import ReachPayloadError
from envs.reach.model import ReachConfig


@dataclass(frozen=True)
class Decision:
    """REACH's ``/get_action`` answer."""

    pod_name: str
    """Pod to migrate (``""`` when stopping)."""
    target_node: str
    """Node to migrate it to (``""`` when stopping)."""
    is_stop: bool
    """True: make no (further) migration."""

    def to_json(self) -> dict[str, str | bool]:
        """The response body, field names as REACH's server writes them."""
        return {
            "pod_name": self.pod_name,
            "target_node": self.target_node,
            "is_stop": self.is_stop,
        }


@dataclass(frozen=True)
class PayloadState:
    """A live-cluster state on the trained axes."""

    node_cpu_free: tuple[float, ...]
    """Free cores per node (millicores / 1000), in config node order."""
    node_memory_free: tuple[float, ...]
    """Free memory per node, GiB (as sent)."""
    slot_pods: tuple[str, ...]
    """Pod name per slot; ``<service>_dummy`` for empty slots."""
    slot_nodes: tuple[int, ...]
    """Node index per slot, -1 for empty slots."""
    replicas: tuple[int, ...]
    """Running pods per service."""
    deployable: np.ndarray | None
    """``bool[N, P]``: node n is in ``pod_deployable`` of slot p's pod; None when the
    request carried no ``pod_deployable`` (then the resource-fit rules apply)."""


def _object(value: object, path: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise ReachPayloadError(path, "a JSON object", value)
    return value


def _number(value: object, path: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ReachPayloadError(path, "a number", value)
    number = float(value)
    if not math.isfinite(number) or number < 0:
        raise ReachPayloadError(path, "a finite number >= 0", value)
    return number


def _string(value: object, path: str) -> str:
    if not isinstance(value, str) or not value:
        raise ReachPayloadError(path, "a non-empty string", value)
    return value


class ReachPayloadCodec:
    """Maps ``/get_action`` bodies onto a config's axes and actions back to names.

    Args:
        config: the config set the policy was trained on.
        max_nodes: node axis length of the action space (0 = the config's N).
        max_pods: pod axis length of the action space (0 = the config's P).
    """

    def __init__(
        self, config: ReachConfig, max_nodes: int = 0, max_pods: int = 0
    ) -> None:
        self.config = config
        self.node_names = config.node_names
        self.max_nodes = max_nodes or config.n_nodes
        self.max_pods = max_pods or config.n_pods
        self._node_index = {name: i for i, name in enumerate(self.node_names)}
        self._services = {s.name: s for s in config.services}

    @property
    def stop_action(self) -> int:
        """The stop action, ``max_nodes * max_pods``."""
        return self.max_nodes * self.max_pods

    def parse(self, body: Mapping[str, Any]) -> PayloadState:
        """Validate a request body (``cluster_state`` + optional ``pod_deployable``)."""
        root = _object(body, "body")
        if "cluster_state" not in root:
            raise ReachPayloadError("cluster_state", "a required object", "missing")
        state = _object(root["cluster_state"], "cluster_state")
        if "services" not in state and "pods" in state:
            raise ReachPayloadError(
                "cluster_state.pods",
                "the current request shape with cluster_state.services (the legacy "
                "cluster_state.pods map is not supported)",
                "legacy request",
            )
        for key in ("nodes", "services"):
            if key not in state:
                raise ReachPayloadError(
                    f"cluster_state.{key}", "a required object", "missing"
                )
        cpu, memory = self._nodes(state["nodes"])
        slot_pods, slot_nodes, replicas = self._services_(state["services"])
        deployable = None
        if root.get("pod_deployable") is not None:
            deployable = self._deployable(root["pod_deployable"], slot_pods, slot_nodes)
        return PayloadState(cpu, memory, slot_pods, slot_nodes, replicas, deployable)

    def _nodes(self, value: object) -> tuple[tuple[float, ...], tuple[float, ...]]:
        nodes = _object(value, "cluster_state.nodes")
        cpu = [0.0] * len(self.node_names)
        memory = [0.0] * len(self.node_names)
        for name, spec in nodes.items():
            path = f"cluster_state.nodes.{name}"
            if name not in self._node_index:
                raise ReachPayloadError(
                    path, "a node of the trained cluster", name, mismatch=True
                )
            obj = _object(spec, path)
            for key in ("node_name", "cpu_availability", "memory_availability"):
                if key not in obj:
                    raise ReachPayloadError(
                        f"{path}.{key}", "a required field", "missing"
                    )
            if obj["node_name"] != name:
                raise ReachPayloadError(
                    f"{path}.node_name",
                    f"the key's node name {name!r}",
                    obj["node_name"],
                )
            j = self._node_index[name]
            cpu[j] = (
                _number(obj["cpu_availability"], f"{path}.cpu_availability") / 1000.0
            )
            memory[j] = _number(
                obj["memory_availability"], f"{path}.memory_availability"
            )
        missing = [n for n in self.node_names if n not in nodes]
        if missing:
            raise ReachPayloadError(
                "cluster_state.nodes",
                "every node of the trained cluster",
                f"missing {', '.join(missing)}",
                mismatch=True,
            )
        return tuple(cpu), tuple(memory)

    def _services_(
        self, value: object
    ) -> tuple[tuple[str, ...], tuple[int, ...], tuple[int, ...]]:
        services = _object(value, "cluster_state.services")
        listed: dict[str, list[tuple[str, int]]] = {}
        seen: set[str] = set()
        for name, spec in services.items():
            path = f"cluster_state.services.{name}"
            if name not in self._services:
                raise ReachPayloadError(
                    path, "a service of services.json", name, mismatch=True
                )
            obj = _object(spec, path)
            if "service_name" in obj and obj["service_name"] != name:
                raise ReachPayloadError(
                    f"{path}.service_name",
                    f"the key's name {name!r}",
                    obj["service_name"],
                )
            pods = obj.get("pods")
            if not isinstance(pods, list):
                raise ReachPayloadError(f"{path}.pods", "a list of pods", pods)
            limit = self._services[name].max_replica
            if len(pods) > limit:
                raise ReachPayloadError(
                    f"{path}.pods",
                    f"at most {limit} pods (max-replica in services.json)",
                    len(pods),
                    mismatch=True,
                )
            entries: list[tuple[str, int]] = []
            for i, pod in enumerate(pods):
                pod_path = f"{path}.pods[{i}]"
                pod_obj = _object(pod, pod_path)
                pod_name = _string(pod_obj.get("pod_name"), f"{pod_path}.pod_name")
                node_name = _string(pod_obj.get("node_name"), f"{pod_path}.node_name")
                if pod_name in seen:
                    raise ReachPayloadError(
                        f"{pod_path}.pod_name", "a unique pod name", pod_name
                    )
                if node_name not in self._node_index:
                    raise ReachPayloadError(
                        f"{pod_path}.node_name",
                        "a node of the trained cluster",
                        node_name,
                        mismatch=True,
                    )
                seen.add(pod_name)
                entries.append((pod_name, self._node_index[node_name]))
            listed[name] = sorted(entries)
        slot_pods: list[str] = []
        slot_nodes: list[int] = []
        replicas: list[int] = []
        for service in self.config.services:
            entries = listed.get(service.name, [])
            replicas.append(len(entries))
            for pod_name, node in entries:
                slot_pods.append(pod_name)
                slot_nodes.append(node)
            for _ in range(service.max_replica - len(entries)):
                slot_pods.append(f"{service.name}_dummy")
                slot_nodes.append(-1)
        return tuple(slot_pods), tuple(slot_nodes), tuple(replicas)

    def _deployable(
        self, value: object, slot_pods: tuple[str, ...], slot_nodes: tuple[int, ...]
    ) -> np.ndarray:
        lists = _object(value, "pod_deployable")
        slot_of = {pod: p for p, pod in enumerate(slot_pods) if slot_nodes[p] >= 0}
        allowed = np.zeros((len(self.node_names), len(slot_pods)), dtype=np.bool_)
        for pod_name, nodes in lists.items():
            path = f"pod_deployable.{pod_name}"
            if pod_name not in slot_of:
                raise ReachPayloadError(
                    path,
                    "a pod listed in cluster_state.services",
                    pod_name,
                    mismatch=True,
                )
            if not isinstance(nodes, list):
                raise ReachPayloadError(path, "a list of node names", nodes)
            for i, node in enumerate(nodes):
                if not isinstance(node, str) or node not in self._node_index:
                    raise ReachPayloadError(
                        f"{path}[{i}]",
                        "a node of the trained cluster",
                        node,
                        mismatch=True,
                    )
                allowed[self._node_index[node], slot_of[pod_name]] = True
        return allowed

    def decode(
        self, action: int, slot_pods: tuple[str, ...], mask: np.ndarray | None = None
    ) -> Decision:
        """REACH's answer for ``action`` given each slot's pod name.

        A move that the mask rejects (or that names an empty slot or a padding node)
        keeps the names but sets ``is_stop``, as REACH's server does.
        """
        action = int(action)
        if action == self.stop_action:
            return Decision("", "", True)
        if not 0 <= action < self.stop_action:
            raise ValueError(
                f"action: expected an integer in [0, {self.stop_action}], got {action}"
            )
        node, pod = divmod(action, self.max_pods)
        pod_name = slot_pods[pod] if pod < len(slot_pods) else ""
        node_name = self.node_names[node] if node < len(self.node_names) else ""
        valid = (
            bool(mask[action]) if mask is not None else True
        ) and not pod_name.endswith("_dummy")
        if not valid or not pod_name or not node_name:
            return Decision(pod_name, node_name, True)
        return Decision(pod_name, node_name, False)

    def encode(
        self, pod_name: str, target_node: str, slot_pods: tuple[str, ...]
    ) -> int:
        """The action that moves ``pod_name`` to ``target_node``."""
        if pod_name not in slot_pods:
            raise ValueError(
                f"pod_name: expected one of the state's pods, got {pod_name!r}"
            )
        if target_node not in self.node_names:
            raise ValueError(f"target_node: expected a node name, got {target_node!r}")
        return self.node_names.index(target_node) * self.max_pods + slot_pods.index(
            pod_name
        )
