"""The Prometheus adapters against a real Prometheus scraping test exporters.

Expected numbers are worked out from what the exporters serve (textbook
``histogram_quantile`` interpolation, sums of requests), never by the adapter.
Rates are compared within 5 %: Prometheus stamps a sample at the scrape's start
and the exporter computes it a little later, by a lag that varies with the load
(tens of ms over a 4 s window); ratios of series scraped together are exact.
"""

from __future__ import annotations

import contextlib
import json
import re
import subprocess
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import pytest
import yaml
from prometheus_api_client import PrometheusConnect
from urllib3.util.retry import Retry

from hooks.config import InstanceMap, NodeForm, PrometheusConfig
from hooks.errors import PermanentHookError, TransientHookError
from hooks.prometheus import PrometheusAdapter, queries
from tests.hooks.policy_stub import free_port
from tests.hooks.prom_fixtures import (
    PROMETHEUS,
    PROMTOOL,
    Exporter,
    Family,
    Histogram,
    LinearCollector,
    Prometheus,
    Series,
)

ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "conf" / "hooks" / "recording_rules.yaml"
GIB, MIB = 1024.0**3, 1024.0**2
WINDOW = 4

needs_prometheus = pytest.mark.skipif(
    PROMETHEUS is None,
    reason="the prometheus binary is absent: run `make system-deps` "
    "(scripts/setup/system_deps.sh installs the Debian package)",
)

# ---------------------------------------------------------------- what is served

IDLE = {"node-a": [0.75, 0.5], "node-b": [0.2, 0.1, 0.9, 0.3]}  # cores idle per CPU
MEM_AVAILABLE = {"node-a": 3.5 * GIB, "node-b": 6.0 * GIB}
ALLOCATABLE = {
    "node-a": (4.0, 16 * GIB),
    "node-b": (8.0, 32 * GIB),
    "node-c": (2.0, 4 * GIB),
}
PODS = [  # namespace, pod, node, phase, [(container, cores, bytes)]
    (
        "shop",
        "web-1",
        "node-a",
        "Running",
        [("app", 0.5, 512 * MIB), ("side", 0.25, 128 * MIB)],
    ),
    ("shop", "web-2", "node-b", "Pending", [("app", 1.5, 2 * GIB)]),
    ("shop", "job-1", "node-a", "Succeeded", [("app", 2.0, 4 * GIB)]),
    ("kube-system", "dns", "node-b", "Running", [("dns", 0.1, 70 * MIB)]),
]
REQUESTS_PER_S = {"gateway": 12.5, "catalog": 3.0}
BOUNDS = [0.01, 0.05, 0.1, 0.5]
HISTOGRAMS = [  # service, node, observations/s per bucket (last: above 0.5 s), sum/s
    ("gateway", "node-a", [2.0, 5.0, 3.0, 1.0, 0.5], 0.6),
    ("gateway", "node-b", [0.0, 1.0, 1.0, 2.0, 0.0], 0.55),
    ("catalog", "node-a", [4.0, 0.0, 0.0, 0.0, 0.0], 0.02),
]


def _node_exporter(node: str) -> LinearCollector:
    cpu = Family("node_cpu_seconds_total", "counter")
    for i, idle in enumerate(IDLE[node]):
        cpu.series.append(Series({"cpu": str(i), "mode": "idle"}, 1e6, idle))
        cpu.series.append(Series({"cpu": str(i), "mode": "user"}, 1e6, 1.0 - idle))
    memory = Family("node_memory_MemAvailable_bytes", "gauge",
                    [Series({}, MEM_AVAILABLE[node])])  # fmt: skip
    uname = Family("node_uname_info", "gauge",
                   [Series({"nodename": node, "sysname": "Linux"}, 1.0)])  # fmt: skip
    return LinearCollector([cpu, memory, uname], {})


def _kube_state_metrics() -> LinearCollector:
    alloc = Family("kube_node_status_allocatable", "gauge")
    for node, (cores, memory) in ALLOCATABLE.items():
        alloc.series += [
            Series({"node": node, "resource": "cpu", "unit": "core"}, cores),
            Series({"node": node, "resource": "memory", "unit": "byte"}, memory),
            Series({"node": node, "resource": "pods", "unit": "integer"}, 110.0),
        ]
    requests = Family("kube_pod_container_resource_requests", "gauge")
    phases = Family("kube_pod_status_phase", "gauge")
    for ns, pod, node, phase, containers in PODS:
        for container, cores, memory in containers:
            labels = {"namespace": ns, "pod": pod, "container": container, "node": node}
            requests.series += [
                Series({**labels, "resource": "cpu", "unit": "core"}, cores),
                Series({**labels, "resource": "memory", "unit": "byte"}, memory),
            ]
        for candidate in ("Pending", "Running", "Succeeded", "Failed", "Unknown"):
            phases.series.append(Series({"namespace": ns, "pod": pod, "phase": candidate},
                                        1.0 if candidate == phase else 0.0))  # fmt: skip
    return LinearCollector([alloc, requests, phases], {})


def _app() -> LinearCollector:
    counter = Family("http_requests_total", "counter",
                     [Series({"service": s}, 1e6, r) for s, r in REQUESTS_PER_S.items()])  # fmt: skip
    histograms = [
        Histogram({"service": s, "node": n}, BOUNDS, rates, total)
        for s, n, rates, total in HISTOGRAMS
    ]
    return LinearCollector([counter], {"http_request_duration_seconds": histograms})


@pytest.fixture(scope="module")
def prometheus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Prometheus]:
    if PROMETHEUS is None:
        pytest.skip("the prometheus binary is absent: run `make system-deps`")
    exporters = {
        "node-a": Exporter(_node_exporter("node-a")),
        "node-b": Exporter(_node_exporter("node-b")),
        "ksm": Exporter(_kube_state_metrics()),
        "app": Exporter(_app()),
    }
    jobs = {
        "node": [exporters["node-a"].target, exporters["node-b"].target],
        "kube-state-metrics": [exporters["ksm"].target],
        "app": [exporters["app"].target],
    }
    server = Prometheus(tmp_path_factory.mktemp("prometheus"), jobs, [RULES])
    try:
        server.wait_scraping(WINDOW)
        yield server
    finally:
        server.stop()
        for exporter in exporters.values():
            exporter.close()


def _adapter(server: Prometheus, **cfg: Any) -> PrometheusAdapter:
    config = PrometheusConfig(url=server.url, window=f"{WINDOW}s", timeout=5.0, **cfg)
    client = PrometheusConnect(url=server.url, disable_ssl=True, retry=Retry(total=0))
    return PrometheusAdapter(client, config)


# ---------------------------------------------------------------- textbook answers


def textbook_quantile(q: float, bounds: list[float], counts: list[float]) -> float:
    """``histogram_quantile`` as documented: interpolate in the bucket of rank q*n.

    The first bucket starts at 0; a rank in the +Inf bucket gives the top bound.
    """
    cumulative, total = [], 0.0
    for c in counts:
        total += c
        cumulative.append(total)
    rank = q * total
    for i, upper in enumerate(bounds):
        if cumulative[i] >= rank:
            lower = bounds[i - 1] if i else 0.0
            below = cumulative[i - 1] if i else 0.0
            return lower + (upper - lower) * (rank - below) / (cumulative[i] - below)
    return bounds[-1]  # rank in the +Inf bucket: the highest finite bound


# ---------------------------------------------------------------- tests


@needs_prometheus
def test_node_exporter_form_maps_instance_to_node_name(prometheus: Prometheus) -> None:
    adapter = _adapter(prometheus, node_form=NodeForm.node_exporter,
                       instance_map=InstanceMap.uname)  # fmt: skip
    got = adapter.node_availability()
    assert sorted(got) == ["node-a", "node-b"]
    for node, idle in IDLE.items():
        cores, gib = got[node]
        assert cores == pytest.approx(sum(idle), rel=0.05)
        assert gib == MEM_AVAILABLE[node] / GIB


@needs_prometheus
def test_kube_state_metrics_form_is_allocatable_minus_live_requests(
    prometheus: Prometheus,
) -> None:
    got = _adapter(
        prometheus, node_form=NodeForm.kube_state_metrics
    ).node_availability()
    expected = {}
    for node, (cores, memory) in ALLOCATABLE.items():
        for _, _, where, phase, containers in PODS:
            if where == node and phase in ("Pending", "Running"):
                cores -= sum(c for _, c, _ in containers)
                memory -= sum(m for _, _, m in containers)
        expected[node] = (cores, memory / GIB)
    # node-a: 4 - 0.75 (job-1 Succeeded is left out); node-c runs nothing, still there
    assert expected["node-a"] == (3.25, 15.375) and expected["node-c"] == (2.0, 4.0)
    assert sorted(got) == sorted(expected)
    for node, (cores, gib) in expected.items():
        assert got[node] == (pytest.approx(cores), pytest.approx(gib))


@needs_prometheus
def test_request_rates_by_service(prometheus: Prometheus) -> None:
    got = _adapter(prometheus).request_rates()
    assert sorted(got) == sorted(REQUESTS_PER_S)
    for service, rate in REQUESTS_PER_S.items():
        assert got[service] == pytest.approx(rate, rel=0.05)


@needs_prometheus
@pytest.mark.parametrize("q", [0.5, 0.95, 0.99])
def test_latency_quantiles_follow_histogram_quantile(
    prometheus: Prometheus, q: float
) -> None:
    got = _adapter(prometheus).latency_quantile(q)
    for service in ("gateway", "catalog"):
        rows = [rates for s, _, rates, _ in HISTOGRAMS if s == service]
        counts = [sum(col) for col in zip(*rows, strict=True)]
        assert got[service] == pytest.approx(
            textbook_quantile(q, BOUNDS, counts), rel=1e-6
        )
    # gateway p95 by hand: buckets 2, 6, 4, 3, 0.5 -> rank 14.725 in (0.1, 0.5]
    if q == 0.95:
        assert got["gateway"] == pytest.approx(0.1 + 0.4 * (14.725 - 12) / 3, rel=1e-6)


@needs_prometheus
def test_mean_latency_by_service_and_node(prometheus: Prometheus) -> None:
    got = _adapter(prometheus).mean_latency_by_node()
    expected: dict[str, dict[str, float]] = {}
    for service, node, rates, total in HISTOGRAMS:
        expected.setdefault(service, {})[node] = total / sum(rates)
    assert got == {
        s: {n: pytest.approx(v, rel=1e-6) for n, v in nodes.items()}
        for s, nodes in expected.items()
    }


@needs_prometheus
def test_a_latency_query_in_milliseconds_is_one_scalar(prometheus: Prometheus) -> None:
    adapter = _adapter(prometheus)
    gateway_mean_ms = adapter.scalar(
        f'1000 * sum(rate(http_request_duration_seconds_sum{{service="gateway"}}[{WINDOW}s]))'
        f' / sum(rate(http_request_duration_seconds_count{{service="gateway"}}[{WINDOW}s]))'
    )
    assert gateway_mean_ms == pytest.approx(
        1000 * (0.6 + 0.55) / (11.5 + 4.0), rel=1e-6
    )
    assert adapter.scalar('http_requests_total{service="none"}') is None


def test_strip_port_and_identity_mappings() -> None:
    class Canned:
        def custom_query(self, promql: str) -> list[dict[str, Any]]:
            if "node_cpu" in promql:
                return [{"metric": {"instance": "edge-1:9100"}, "value": [0, "1.5"]}]
            return [{"metric": {"instance": "edge-1:9100"}, "value": [0, str(2 * GIB)]}]

    strip = PrometheusAdapter(
        Canned(), PrometheusConfig(node_form=NodeForm.node_exporter,
                                   instance_map=InstanceMap.strip_port))  # fmt: skip
    assert strip.node_availability() == {"edge-1": (1.5, 2.0)}
    same = PrometheusAdapter(
        Canned(), PrometheusConfig(node_form=NodeForm.node_exporter,
                                   instance_map=InstanceMap.identity))  # fmt: skip
    assert same.node_availability() == {"edge-1:9100": (1.5, 2.0)}


def test_an_unreachable_prometheus_is_a_transient_error() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    client = PrometheusConnect(url=url, disable_ssl=True, retry=Retry(total=0))
    adapter = PrometheusAdapter(client, PrometheusConfig(url=url))
    with pytest.raises(TransientHookError, match="no HTTP answer"):
        adapter.request_rates()


# ---------------------------------------------------------------- recording rules


@pytest.mark.skipif(
    PROMTOOL is None, reason="promtool is absent: run `make system-deps`"
)
def test_recording_rules_pass_promtool() -> None:
    assert PROMTOOL is not None
    done = subprocess.run([PROMTOOL, "check", "rules", str(RULES)],
                          capture_output=True, text=True, check=False)  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS: 8 rules found" in done.stdout


def test_recording_rules_are_the_adapters_queries() -> None:
    rules = {
        r["record"]: " ".join(r["expr"].split())
        for r in yaml.safe_load(RULES.read_text())["groups"][0]["rules"]
    }
    q = {k: " ".join(v.split()) for k, v in queries(PrometheusConfig()).items()}
    assert rules == {
        "instance:node_cpu_idle_cores:rate1m": q["cpu_free_node_exporter"],
        "node:cpu_free_cores:requests": q["cpu_free_kube_state_metrics"],
        "node:memory_free_bytes:requests": q["memory_free_kube_state_metrics"],
        "service:http_requests:rate1m": q["request_rate"],
        "service:http_request_duration_seconds:p95_1m": q["latency_quantile"].replace(
            "{q}", "0.95"
        ),
        "service_node:http_request_duration_seconds:mean1m": q["latency_mean_by_node"],
        "type_origin:frl_requests:rate1m": q["arrival_rate"],
        "node:frl_node_queue_wait_seconds:max": q["queue_wait"],
    }
    assert all(re.search(r"\[1m\]", expr) for expr in rules.values() if "rate(" in expr)


# ---------------------------------------------------------------- error classes


class _Canned(BaseHTTPRequestHandler):
    """``/api/v1/query`` answering ``status`` with ``body`` after ``delay`` s."""

    status = 200
    body: ClassVar[dict[str, Any]] = {}
    delay = 0.0

    def log_message(self, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        time.sleep(self.delay)
        data = json.dumps(self.body).encode()
        with contextlib.suppress(OSError):  # the client may have given up
            self.send_response(self.status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)


@contextlib.contextmanager
def _serving(status: int, body: dict[str, Any], delay: float = 0.0) -> Iterator[str]:
    handler = type("Handler", (_Canned,), {"status": status, "body": body,
                                           "delay": delay})  # fmt: skip
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@needs_prometheus
def test_malformed_promql_is_permanent_with_prometheus_reason(
    prometheus: Prometheus,
) -> None:
    adapter = PrometheusAdapter.from_config(
        PrometheusConfig(url=prometheus.url, timeout=5.0), retries=0
    )
    with pytest.raises(PermanentHookError) as caught:
        adapter.query("sum by (node (up)")
    assert caught.value.status == 400
    assert caught.value.reason.startswith("bad_data: ")
    assert "parse error" in caught.value.reason


def test_a_server_error_stays_transient_and_a_422_is_permanent() -> None:
    body = {"status": "error", "errorType": "unavailable", "error": "shutting down"}
    with _serving(503, body) as url:
        adapter = PrometheusAdapter.from_config(PrometheusConfig(url=url), retries=0)
        with pytest.raises(TransientHookError):
            adapter.query("up")
    body = {"status": "error", "errorType": "execution", "error": "many-to-many"}
    with _serving(422, body) as url:
        adapter = PrometheusAdapter.from_config(PrometheusConfig(url=url), retries=0)
        with pytest.raises(PermanentHookError, match="HTTP 422: execution: many-to"):
            adapter.query("up")


def test_a_sub_second_timeout_is_kept() -> None:
    answer = {"status": "success", "data": {"resultType": "vector", "result": []}}
    with _serving(200, answer, delay=2.0) as url:
        adapter = PrometheusAdapter.from_config(
            PrometheusConfig(url=url, timeout=0.5), retries=0
        )
        started = time.monotonic()
        with pytest.raises(TransientHookError, match="no HTTP answer"):
            adapter.query("up")
        assert time.monotonic() - started < 1.5  # gave up after 0.5 s, not 2 s
    with pytest.raises(ValueError, match=r"prometheus\.timeout: expected > 0 s, got 0"):
        PrometheusAdapter.from_config(PrometheusConfig(url=url, timeout=0.0))
