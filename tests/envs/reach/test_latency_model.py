"""The latency model against hand-computed values (spec §4), reference and core alike.

Toy cluster (conftest): cloud node ``cl-1`` (CPU type 0), edge nodes ``ed-1`` and
``ee-1`` (type 1), client node ``cli-1``. Layer latencies: client->edge 2 ms,
client->cloud 50, edge->cloud 20, cloud->edge 30, same layer 1 ms (REACH ignores the
config's same-layer values). Execution times (type 0 / type 1): gw 2/4, A 10/20,
B 5/8, C 1/3 ms. Data sizes are 0 unless a test says otherwise.
"""

from __future__ import annotations

import pytest

from envs.reach.config import RescheduleConfig
from envs.reach.core import ReachCore
from envs.reach.model import ReachConfig
from envs.reach.payload import ReachPayloadCodec
from envs.reach.reference import (
    ModelOptions,
    NodeState,
    Snapshot,
    end_to_end_latency,
)

from .conftest import TOY_LATENCY, call, payload_for, toy_config, toy_nodes

LAYER_MS = {
    (src, dst): float(v[0][:-2])
    for src, row in TOY_LATENCY.items()
    for dst, v in row.items()
    if src != dst
}


def _snapshot(
    config: ReachConfig, placement: dict[str, list[str]], background: float = 0.0
) -> Snapshot:
    nodes = {
        n.name: NodeState(n.layer, n.cpu_type, n.bandwidth, background * n.bandwidth)
        for n in config.nodes.nodes
    }
    return Snapshot(nodes=nodes, layer_latency=LAYER_MS, placement=placement)


def _core_latency(config: ReachConfig, placement: dict[str, list[str]]) -> float:
    """The batched core's latency for the same placement, loaded as a payload."""
    core = ReachCore(config, RescheduleConfig(), 1, autoreset=False)
    core.load_payload(
        0, ReachPayloadCodec(config).parse(payload_for(config, placement))
    )
    return core.latency(0)


BASE = {"client": ["cli-1"], "gw": ["ed-1"], "A": ["cl-1"], "B": ["ee-1"]}


@pytest.mark.parametrize(
    ("name", "path", "expected"),
    [
        # gw = 4 + max(A 10 + edge->cloud 20, B 8 + edge->edge 1) = 34; + client->edge 2
        ("parallel", [{"gw": call("gw", [{"A": call("A")}, {"B": call("B")}])}], 36.0),
        # gw = 4 + (30 + 9) = 43; + 2
        ("sequential", [{"gw": call("gw", [{"A": call("A"), "B": call("B")}])}], 45.0),
        # B = 8; A = 10 + (8 + cloud->edge 30) = 48; gw = 4 + (48 + 20) = 72; + 2
        ("chain", [{"gw": call("gw", [{"A": call("A", [{"B": call("B")}])}])}], 74.0),
    ],
)
def test_single_replica_apps(name: str, path: list, expected: float) -> None:
    config = toy_config({"e": path}, {"gw": 1, "A": 1, "B": 1})
    result = end_to_end_latency(config.app, _snapshot(config, BASE))
    assert result.mean == pytest.approx(expected, abs=1e-12), name
    assert _core_latency(config, BASE) == pytest.approx(expected, abs=1e-12)


def test_mixed_app_with_replicas_and_two_endpoints() -> None:
    """Replica averaging, a sequential group beside a parallel one, endpoint mean.

    gw on {ed-1, cl-1}: own = (4 + 2) / 2 = 3. A on cl-1: hop gw->A = mean(20, 1) =
    10.5, A = 10. B on {ed-1, ee-1}: hop = mean(1, 1, 30, 30) = 15.5, B = 8.
    Group 1 (A then B) = 20.5 + 23.5 = 44. C on ee-1: hop = mean(1, 30) = 15.5,
    C = 3, group 2 = 18.5. gw = 3 + 44 = 47; client->gw = mean(2, 50) = 26: 73.
    Endpoint "direct" calls C only: 3 + 2 = 5. Mean over endpoints: 39.
    """
    path = [{"gw": call("gw", [{"A": call("A"), "B": call("B")}, {"C": call("C")}])}]
    config = toy_config(
        {"main": path, "direct": [{"C": call("C")}]}, {"gw": 2, "A": 1, "B": 2, "C": 1}
    )
    placement = {
        "client": ["cli-1"],
        "gw": ["ed-1", "cl-1"],
        "A": ["cl-1"],
        "B": ["ed-1", "ee-1"],
        "C": ["ee-1"],
    }
    result = end_to_end_latency(config.app, _snapshot(config, placement))
    assert result.per_endpoint == pytest.approx({"main": 73.0, "direct": 5.0})
    assert result.mean == pytest.approx(39.0, abs=1e-12)
    assert _core_latency(config, placement) == pytest.approx(39.0, abs=1e-12)


def test_transfer_term_uses_predicted_bandwidth_and_saturation() -> None:
    """Spec §4.2-4.3 with a 512M payload on gw->A at 10 rps.

    Traffic w = 10 * 0.5 GiB = 5 on the (gw, A) pair (different nodes). Edge
    background 0.5 x 50 MB/s = 25: gw's usage without itself is 25, 25/50 < 0.9, so
    pbw(gw) = 25. Cloud background 0.95 x 100 = 95 >= 0.9 x 100: pbw(A) = 100/10 = 10.
    Transfer = 0.5 / min(25, 10) = 0.05 ms on top of the parallel app's 36 ms.
    """
    path = [{"gw": call("gw", [{"A": call("A", size="512M")}, {"B": call("B")}])}]
    nodes = toy_nodes(edge_util="0.5", cloud_util="0.95")
    config = toy_config({"e": path}, {"gw": 1, "A": 1, "B": 1}, nodes=nodes)
    snap = _snapshot(config, BASE)
    snap = Snapshot(
        nodes={
            name: NodeState(
                s.layer,
                s.cpu_type,
                s.bandwidth,
                s.bandwidth
                * (0.95 if s.layer == "cloud" else 0.5 if s.layer == "edge" else 0.0),
            )
            for name, s in snap.nodes.items()
        },
        layer_latency=snap.layer_latency,
        placement=snap.placement,
    )
    assert end_to_end_latency(config.app, snap).mean == pytest.approx(36.05, abs=1e-12)
    assert _core_latency(config, BASE) == pytest.approx(36.05, abs=1e-12)


def test_same_node_pods_pay_the_same_layer_millisecond() -> None:
    """Two pods on one node are 1 ms apart, like any same-layer pair (pitfall 3)."""
    path = [{"gw": call("gw", [{"B": call("B")}])}]
    config = toy_config({"e": path}, {"gw": 1, "B": 1})
    placement = {"client": ["cli-1"], "gw": ["ed-1"], "B": ["ed-1"]}
    # gw = 4 + (8 + 1) = 13; + client->edge 2
    assert end_to_end_latency(config.app, _snapshot(config, placement)).mean == 15.0


def test_extensions_add_response_and_queueing() -> None:
    """Response transfer adds the reverse hop; queueing adds M/M/c waiting.

    Chain gw->A with gw on ed-1, A on cl-1: REACH: gw = 4 + (10 + 20) = 34, + 2 = 36.
    With responses: + cloud->edge 30 + edge->client 2 = 68. Queueing at 10 rps with
    one-core nodes: A's node serves 10/s x 10 ms = 0.1 busy, M/M/1 wait
    0.1 / (1/10 - 1/100) ms = 1.111 ms; gw's node 10/s x 4 ms: 0.04 / (1/4 - 1/100).
    """
    path = [{"gw": call("gw", [{"A": call("A")}])}]
    config = toy_config({"e": path}, {"gw": 1, "A": 1})
    placement = {"client": ["cli-1"], "gw": ["ed-1"], "A": ["cl-1"]}
    snap = _snapshot(config, placement)
    assert end_to_end_latency(config.app, snap).mean == pytest.approx(36.0)
    both_ways = ModelOptions(response_transfer=True)
    assert end_to_end_latency(config.app, snap, both_ways).mean == pytest.approx(68.0)
    wait_a = 0.01 * 10 / (1 / 10 - 0.01)
    wait_gw = 0.01 * 4 / (1 / 4 - 0.01)
    queued = ModelOptions(queueing=True)
    assert end_to_end_latency(config.app, snap, queued).mean == pytest.approx(
        36.0 + wait_a + wait_gw
    )
