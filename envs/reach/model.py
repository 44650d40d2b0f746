"""The parsed REACH config: frozen dataclasses, in JSON file order, units resolved.

Cores, GiB-like memory (REACH's M/1024), MB/s and milliseconds throughout. Tuples keep
the file order, which is the order of the node and pod axes (spec §2, §5.1).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

LAYERS = ("cloud", "edge", "client")
"""Layer names; the index is REACH's ``Node_layer`` code (cloud 0, edge 1, client 2)."""
CLOUD, EDGE, CLIENT = 0, 1, 2
PATTERNS = ("aggregator_parallel", "aggregator_sequential", "chain")
"""Call-pattern names whose files sit at the config root."""


@dataclass(frozen=True)
class Node:
    """One generated node, ``<node_type>-<i>``, with the ranges reset samples from."""

    name: str
    """Node name; in a testbed it is the Kubernetes host name."""
    node_type: str
    """Its ``node_type`` key in nodes.json."""
    layer: str
    """``cloud``, ``edge`` or ``client``."""
    cpu_type: int
    """CPU class id, looked up as a string in each call's ``execution-time``."""
    bandwidth: float
    """NIC capacity in MB/s."""
    cpu_choices: tuple[float, ...]
    """Free cores at start: two entries are a uniform range, otherwise one is picked."""
    memory_choices: tuple[float, ...]
    """Free memory at start (GiB-like), same rule."""
    utilization_choices: tuple[float, ...]
    """Background NIC utilisation fraction at start, same rule."""

    @property
    def layer_code(self) -> int:
        """REACH's layer code (cloud 0, edge 1, client 2)."""
        return LAYERS.index(self.layer)


@dataclass(frozen=True)
class NodesConfig:
    """nodes.json: node types, layer latency ranges and the generated nodes."""

    file: str
    """Where it was read from (for messages)."""
    nodes: tuple[Node, ...]
    """Nodes in id order: layers, then node types in file order, then ``i``."""
    latency: Mapping[tuple[str, str], tuple[float, float]]
    """``(from_layer, to_layer) -> (min_ms, max_ms)``, sampled uniformly per reset."""

    def layer_nodes(self, layer: str) -> tuple[Node, ...]:
        """The nodes of one layer, in id order."""
        return tuple(n for n in self.nodes if n.layer == layer)


@dataclass(frozen=True)
class Service:
    """One services.json entry: requests, pod slots, type and placement layer."""

    name: str
    """Service name; pods are ``<name>-<k>``."""
    cpu: float
    """CPU request per pod, cores."""
    memory: float
    """Memory request per pod, GiB-like."""
    max_replica: int
    """Pod slots this service owns on the pod axis."""
    persistent: bool
    """``type: persistent``: never movable."""
    layer: str
    """``client``, ``edge``, ``cloud`` or ``all`` (cloud or edge); binds only the
    initial placement."""

    def allowed_layers(self) -> tuple[str, ...]:
        """Layers the initial placement may use."""
        return ("cloud", "edge") if self.layer == "all" else (self.layer,)

    @property
    def is_client(self) -> bool:
        """Pinned to the client layer (never movable, spec §5.3)."""
        return self.layer == "client"


@dataclass(frozen=True)
class Call:
    """A call to ``service``: its payload, execution times and nested call groups."""

    service: str
    """The callee service."""
    data_size: float
    """Payload per request, GiB-like (REACH's memory grammar)."""
    execution_time: Mapping[int, float]
    """CPU type -> milliseconds."""
    groups: tuple[tuple[Call, ...], ...] = field(default=())
    """Parallel groups of sequential calls made by the callee."""


@dataclass(frozen=True)
class Endpoint:
    """One call-pattern entry: the root service, its rate, QoS target and call path."""

    name: str
    """Endpoint name (free text)."""
    client: str
    """Root service that originates requests (no execution time)."""
    rps: float
    """Requests per second."""
    qos: float
    """Latency target, ms."""
    groups: tuple[tuple[Call, ...], ...]
    """Parallel groups of sequential calls made by the root."""


@dataclass(frozen=True)
class Application:
    """A call-pattern file."""

    file: str
    """Where it was read from."""
    pattern: str
    """The pattern name (file name without ``_call_patterns.json``)."""
    endpoints: tuple[Endpoint, ...]
    """Endpoints in file order; latency is their arithmetic mean."""

    @property
    def qos(self) -> float:
        """REACH's QoS threshold: the mean of the endpoints' ``qos``, ms."""
        return sum(e.qos for e in self.endpoints) / len(self.endpoints)


@dataclass(frozen=True)
class ReachConfig:
    """A validated config set: cluster folder plus one call-pattern file."""

    folder: str
    """The cluster folder ``<nodes>-<pods>``."""
    nodes: NodesConfig
    """nodes.json."""
    services: tuple[Service, ...]
    """services.json, in file order (the pod-slot order)."""
    app: Application
    """The call-pattern file."""

    @property
    def n_nodes(self) -> int:
        """N: nodes on the node axis."""
        return len(self.nodes.nodes)

    @property
    def n_pods(self) -> int:
        """P: pod slots, the sum of ``max-replica``."""
        return sum(s.max_replica for s in self.services)

    def service(self, name: str) -> Service:
        """The service called ``name``."""
        for s in self.services:
            if s.name == name:
                return s
        raise KeyError(name)

    @property
    def node_names(self) -> tuple[str, ...]:
        """Node names in axis order."""
        return tuple(n.name for n in self.nodes.nodes)
