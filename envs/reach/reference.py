"""The latency model in plain Python: the readable rule and the test oracle.

REACH mode (spec §4, REACH's ``end_to_end_latency``), in milliseconds:

* **Traffic.** Walking every endpoint's call tree, each caller->callee call with payload
  ``ds`` adds ``w = rps * ds / replicas(caller) / replicas(callee)`` to every
  (caller pod, callee pod) pair. A pod's traffic ``tb`` is the sum of ``w`` over its
  pairs whose two pods are on *different* nodes (counted at both ends). A node's usage
  is its background usage (utilisation x bandwidth) plus the traffic of its pods.
* **Predicted bandwidth** of pod ``a``: ``u = usage(node(a)) - tb(a)``; it is
  ``bandwidth - u`` if ``u / bandwidth < 0.9``, else ``bandwidth / 10``.
* **Network latency** of one pod pair: ``net(a, b, ds) = ds / min(pbw(a), pbw(b)) +
  L(layer(a), layer(b))``, where ``L`` is the layer latency sampled at reset and
  ``L = 1`` ms for two pods in the same layer, even on the same node. The transfer
  term divides GiB-like sizes by MB/s, so it is tiny; REACH computes it this way.
* **Replica-set latency** of a call X->Y is the mean of ``net`` over all pod pairs.
* **DFS.** ``own(X)`` is the mean over X's pods of the call's execution time for the
  CPU type of the pod's node (0 for the endpoint's root service). A call's latency is
  ``own(X) + max over its groups G of sum over calls Y in G of (latency(Y) +
  replica-set latency(X, Y, ds(Y)))``: list elements run in parallel (max), the calls
  inside one group object run in sequence (sum). No queueing, one way only.
* The env's latency is the **arithmetic mean over endpoints** of the root's latency.

Extensions (all off in REACH mode), as :class:`ModelOptions` switches:

* ``rps_scale`` multiplies every endpoint's rps (request-rate surges).
* A node's ``slowdown`` multiplies execution times on it (degradation, failure).
* ``queueing``: each pod's time also includes its node's M/M/c waiting time
  (``envs.queues.mmc_mean_wait``): arrival rate = the requests the node's pods serve
  (each call of a service is split evenly over its replicas), mean service time = the
  rate-weighted execution time there, servers = ``max(1, floor(cores))``; an
  overloaded node waits ``queue_wait_cap_ms``.
* ``response_transfer``: every call also pays its way back,
  ``ratio * ds / min(pbw(a), pbw(b)) + L(layer(b), layer(a))``.

A call to a service with no running pod (possible only in a live-cluster payload)
contributes no time of its own and no network hop.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field

from envs.queues import mmc_mean_wait
from envs.reach.model import Application, Call, Endpoint

SAME_LAYER_MS = 1.0
"""REACH 6aa794e: any two pods in one layer are 1 ms apart, whatever the config says."""
BANDWIDTH_SATURATION = 0.9
"""Above this utilisation a pod's predicted bandwidth collapses to a tenth."""


@dataclass(frozen=True)
class NodeState:
    """What the model needs to know about one node at one instant."""

    layer: str
    """``cloud``, ``edge`` or ``client``."""
    cpu_type: int
    """CPU class (selects execution times)."""
    bandwidth: float
    """NIC capacity, MB/s."""
    background: float = 0.0
    """Background NIC usage, MB/s."""
    cores: float = 1.0
    """CPU capacity, cores (queue servers with ``queueing``)."""
    slowdown: float = 1.0
    """Execution-time factor (1 = healthy)."""


@dataclass(frozen=True)
class ModelOptions:
    """Extension switches; the defaults are REACH mode."""

    queueing: bool = False
    """Add per-node M/M/c waiting."""
    queue_wait_cap_ms: float = 1000.0
    """Wait of an overloaded node."""
    response_transfer: bool = False
    """Add the way back of every call."""
    response_size_ratio: float = 1.0
    """Response size / request ``data-size``."""
    rps_scale: float = 1.0
    """Multiplier of every endpoint's rps."""


@dataclass(frozen=True)
class Snapshot:
    """A cluster instant: node states, sampled layer latencies and the placement."""

    nodes: Mapping[str, NodeState]
    """Node name -> state."""
    layer_latency: Mapping[tuple[str, str], float]
    """``(from_layer, to_layer) -> ms`` for distinct layers."""
    placement: Mapping[str, Sequence[str]]
    """Service -> the node of each of its running pods (missing = no pods)."""


@dataclass(frozen=True)
class LatencyResult:
    """The model's answer."""

    mean: float
    """Mean end-to-end latency over endpoints, ms."""
    per_endpoint: dict[str, float] = field(default_factory=dict)
    """Endpoint name -> latency, ms."""


@dataclass(frozen=True)
class _Pod:
    service: str
    index: int
    node: str


def _edges(caller: str, groups: Sequence[Sequence[Call]]) -> Iterator[tuple[str, Call]]:
    for group in groups:
        for call in group:
            yield caller, call
            yield from _edges(call.service, call.groups)


def _calls(groups: Sequence[Sequence[Call]]) -> Iterator[Call]:
    for _, call in _edges("", groups):
        yield call


class _Model:
    """One evaluation: pods, traffic, bandwidth, waits, then the DFS."""

    def __init__(self, app: Application, snap: Snapshot, opts: ModelOptions) -> None:
        self.app = app
        self.snap = snap
        self.opts = opts
        self.pods: dict[str, list[_Pod]] = {
            svc: [_Pod(svc, i, node) for i, node in enumerate(nodes)]
            for svc, nodes in snap.placement.items()
        }
        self.traffic = self._traffic()
        self.usage = {
            name: node.background
            + sum(
                self.traffic[p]
                for pods in self.pods.values()
                for p in pods
                if p.node == name
            )
            for name, node in snap.nodes.items()
        }
        self.wait = self._waits() if opts.queueing else {}

    def replicas(self, service: str) -> list[_Pod]:
        return self.pods.get(service, [])

    def _traffic(self) -> dict[_Pod, float]:
        traffic = {p: 0.0 for pods in self.pods.values() for p in pods}
        for endpoint in self.app.endpoints:
            rps = endpoint.rps * self.opts.rps_scale
            for caller, call in _edges(endpoint.client, endpoint.groups):
                src, dst = self.replicas(caller), self.replicas(call.service)
                if not src or not dst:
                    continue
                w = rps * call.data_size / len(src) / len(dst)
                for a in src:
                    for b in dst:
                        if a.node != b.node:
                            traffic[a] += w
                            traffic[b] += w
        return traffic

    def _waits(self) -> dict[str, float]:
        arrivals = dict.fromkeys(self.snap.nodes, 0.0)  # requests per ms
        busy = dict.fromkeys(self.snap.nodes, 0.0)  # ms of work per ms
        for endpoint in self.app.endpoints:
            rate = endpoint.rps * self.opts.rps_scale / 1000.0
            for call in _calls(endpoint.groups):
                pods = self.replicas(call.service)
                for p in pods:
                    node = self.snap.nodes[p.node]
                    share = rate / len(pods)
                    arrivals[p.node] += share
                    busy[p.node] += (
                        share * call.execution_time[node.cpu_type] * node.slowdown
                    )
        waits = {}
        for name, node in self.snap.nodes.items():
            lam = arrivals[name]
            if lam <= 0.0 or busy[name] <= 0.0:
                waits[name] = 0.0
                continue
            servers = max(1, math.floor(node.cores + 1e-9))
            wait = float(mmc_mean_wait(lam, lam / busy[name], servers))
            cap = self.opts.queue_wait_cap_ms
            waits[name] = cap if not math.isfinite(wait) or wait > cap else wait
        return waits

    def predicted_bandwidth(self, pod: _Pod) -> float:
        node = self.snap.nodes[pod.node]
        used = self.usage[pod.node] - self.traffic[pod]
        if used / node.bandwidth < BANDWIDTH_SATURATION:
            return node.bandwidth - used
        return node.bandwidth / 10.0

    def layer_latency(self, src: str, dst: str) -> float:
        return SAME_LAYER_MS if src == dst else self.snap.layer_latency[(src, dst)]

    def net(self, a: _Pod, b: _Pod, data_size: float) -> float:
        la = self.snap.nodes[a.node].layer
        lb = self.snap.nodes[b.node].layer
        bandwidth = min(self.predicted_bandwidth(a), self.predicted_bandwidth(b))
        value = data_size / bandwidth + self.layer_latency(la, lb)
        if self.opts.response_transfer:
            response = data_size * self.opts.response_size_ratio
            value += response / bandwidth + self.layer_latency(lb, la)
        return value

    def replica_set_latency(self, caller: str, callee: str, data_size: float) -> float:
        src, dst = self.replicas(caller), self.replicas(callee)
        if not src or not dst:
            return 0.0
        total = sum(self.net(a, b, data_size) for a in src for b in dst)
        return total / (len(src) * len(dst))

    def own(self, call: Call) -> float:
        pods = self.replicas(call.service)
        if not pods:
            return 0.0
        total = 0.0
        for p in pods:
            node = self.snap.nodes[p.node]
            total += call.execution_time[node.cpu_type] * node.slowdown
            total += self.wait.get(p.node, 0.0)
        return total / len(pods)

    def latency(
        self, service: str, own: float, groups: Sequence[Sequence[Call]]
    ) -> float:
        best = 0.0
        for group in groups:
            total = 0.0
            for call in group:
                total += self.latency(call.service, self.own(call), call.groups)
                total += self.replica_set_latency(service, call.service, call.data_size)
            best = max(best, total)
        return own + best

    def endpoint(self, endpoint: Endpoint) -> float:
        return self.latency(endpoint.client, 0.0, endpoint.groups)


def end_to_end_latency(
    app: Application, snapshot: Snapshot, options: ModelOptions | None = None
) -> LatencyResult:
    """Mean end-to-end latency of ``app`` on ``snapshot`` (ms), and per endpoint."""
    model = _Model(app, snapshot, options or ModelOptions())
    per_endpoint = {e.name: model.endpoint(e) for e in app.endpoints}
    mean = sum(per_endpoint.values()) / len(per_endpoint)
    return LatencyResult(mean=mean, per_endpoint=per_endpoint)
