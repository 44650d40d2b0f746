"""What a hook may do, as frozen data: the same plan in dry-run and live mode.

A plan is a ``list[Action]``. Each action names its verb, kind and object so the
dry-run line ``DRY-RUN would <verb> <kind> <ns>/<name>`` and the JSONL plan record
come from one place, and so a live executor can dispatch on the type.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, ClassVar


@dataclass(frozen=True)
class Action:
    """Base: one side effect on one object."""

    verb: ClassVar[str] = "act on"
    kind: ClassVar[str] = "Object"

    @property
    def target(self) -> str:
        """``<ns>/<name>`` (or ``<name>`` for cluster-scoped objects)."""
        raise NotImplementedError

    def describe(self) -> str:
        """``<verb> <kind> <target>`` plus the action's detail."""
        detail = self.detail()
        text = f"{self.verb} {self.kind} {self.target}"
        return f"{text} ({detail})" if detail else text

    def detail(self) -> str:
        """Extra words for logs (target node, replicas, ...)."""
        return ""

    def to_json(self) -> dict[str, Any]:
        """A JSON record: ``{"action": <class>, ...fields}``."""
        return {"action": type(self).__name__, **dataclasses.asdict(self)}


@dataclass(frozen=True)
class MigratePod(Action):
    """Move one ReplicaSet pod to ``target_node``, make-before-break."""

    verb: ClassVar[str] = "migrate"
    kind: ClassVar[str] = "Pod"
    namespace: str
    pod: str
    """The pod to replace (its current name)."""
    target_node: str
    """Node name the replacement must run on."""
    current_node: str = ""
    """Where the pod runs now (for logs and the time series)."""

    @property
    def target(self) -> str:
        """``<ns>/<pod>``."""
        return f"{self.namespace}/{self.pod}"

    def detail(self) -> str:
        """``<current> -> <target>``."""
        return f"{self.current_node or '?'} -> {self.target_node}"


@dataclass(frozen=True)
class ScaleDeployment(Action):
    """Set a Deployment's replicas through its ``scale`` subresource."""

    verb: ClassVar[str] = "scale"
    kind: ClassVar[str] = "Deployment"
    namespace: str
    name: str
    replicas: int

    def __post_init__(self) -> None:
        if self.replicas < 0:
            raise ValueError(f"replicas: expected >= 0, got {self.replicas}")

    @property
    def target(self) -> str:
        """``<ns>/<name>``."""
        return f"{self.namespace}/{self.name}"

    def detail(self) -> str:
        """``replicas=<n>``."""
        return f"replicas={self.replicas}"


@dataclass(frozen=True)
class CordonNode(Action):
    """Mark a node (un)schedulable: REACH's paper mode only."""

    verb: ClassVar[str] = "cordon"
    kind: ClassVar[str] = "Node"
    node: str
    unschedulable: bool = True

    @property
    def target(self) -> str:
        """The node name."""
        return self.node

    def describe(self) -> str:
        """``cordon``/``uncordon`` ``Node <name>``."""
        verb = "cordon" if self.unschedulable else "uncordon"
        return f"{verb} {self.kind} {self.node}"


@dataclass(frozen=True)
class PlaceServer(Action):
    """Boot an OpenStack server where the scheduler tier decided, on a new port."""

    verb: ClassVar[str] = "create"
    kind: ClassVar[str] = "Server"
    project: str
    name: str
    image: str
    flavor: str
    network: str
    availability_zone: str | None = None
    aggregate: str | None = None
    """Aggregate whose host the decision picked (documentation of the choice)."""
    scheduler_hints: dict[str, Any] = field(default_factory=dict)

    @property
    def target(self) -> str:
        """``<project>/<name>``."""
        return f"{self.project}/{self.name}"

    def detail(self) -> str:
        """Zone, aggregate and hints."""
        parts = [f"az={self.availability_zone}"] if self.availability_zone else []
        if self.aggregate:
            parts.append(f"aggregate={self.aggregate}")
        if self.scheduler_hints:
            parts.append(f"hints={self.scheduler_hints}")
        return ", ".join(parts)

    def __hash__(self) -> int:
        return hash((self.project, self.name, self.image, self.flavor, self.network))


Plan = list[Action]
"""What a hook decided for one cycle, in order."""
