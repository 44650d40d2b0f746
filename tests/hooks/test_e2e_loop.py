"""The loop end to end: Prometheus, the API double, the policy server, the migrator.

Each runs as its own process (or server) on 127.0.0.1: a real Prometheus, the
stateful API double, the real ``python -m serving`` and ``python -m hooks.migrator``
in live mode. A tiny policy is trained on the packaged 7-21 REACH cluster; the double runs a
cluster with the same node names and one Deployment per service. The migrator
(monitor mode) reads the application latency from Prometheus, asks the policy,
and carries its moves out with adopt-and-shed; Prometheus also scrapes the
migrator's own ``/metrics``.
"""

from __future__ import annotations

import itertools
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from hooks.jsonl import read_jsonl
from hooks.snapshot import LAYER_LABEL
from tests.hooks.conftest import write_kubeconfig
from tests.hooks.helpers import controller, in_flight_markers
from tests.hooks.kube_double import KubeDouble
from tests.hooks.policy_stub import free_port
from tests.hooks.prom_fixtures import (
    PROMETHEUS,
    Exporter,
    Family,
    LinearCollector,
    Prometheus,
    Series,
)

pytestmark = [
    pytest.mark.slow,
    pytest.mark.e2e,
    pytest.mark.skipif(
        PROMETHEUS is None,
        reason="the prometheus binary is absent: run `make system-deps`",
    ),
]

ROOT = Path(__file__).resolve().parents[2]
NS = "shop"
LATENCY_MS = 300.0
MOVES = 3
NODES = [  # the packaged 7-21 cluster's node names (envs/data/reach/7-21)
    ("ex-cloud-xl-1", "cloud", "12", "30Gi"),
    ("ex-cloud-xl-2", "cloud", "12", "30Gi"),
    ("ex-edge-md-1", "edge", "6", "12Gi"),
    ("ex-edge-md-2", "edge", "6", "12Gi"),
    ("ex-edge-sm-1", "edge", "3", "6Gi"),
    ("ex-edge-sm-2", "edge", "3", "6Gi"),
    ("ex-client-sm-1", "client", "2", "4Gi"),
]
SERVICES = [  # Deployment = service of services.json, replicas <= max-replica
    ("client", 1, "300m", "256Mi"),
    ("gateway", 2, "400m", "512Mi"),
    ("auth", 1, "250m", "300Mi"),
    ("catalog", 2, "500m", "800Mi"),
    ("inference", 1, "1200m", "1500Mi"),
    ("cache", 1, "200m", "1Gi"),
    ("storage", 1, "300m", "1Gi"),
]


@pytest.fixture(scope="module")
def policy_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    from tests.serving.helpers import (
        run_config,
        start_server,
        stop_server,
        train_checkpoint,
    )

    folder = tmp_path_factory.mktemp("policy")
    checkpoint = train_checkpoint(folder / "reach.zip", run_config("reschedule"))
    server = start_server(checkpoint, folder / "server.log")
    try:
        yield server.url + "/get_action"
    finally:
        stop_server(server)


def _cluster(double: KubeDouble) -> None:
    for name, layer, cpu, memory in NODES:
        double.add_node(name, cpu=cpu, memory=memory, labels={LAYER_LABEL: layer})
    for name, replicas, cpu, memory in SERVICES:
        pin = {LAYER_LABEL: "client"} if name == "client" else None
        double.add_deployment(NS, name, replicas, cpu=cpu, memory=memory,
                              labels={"tier": "app"}, node_selector=pin)  # fmt: skip


def _wait(
    what: str, ready: Any, timeout: float, process: subprocess.Popen[str]
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert process.poll() is None, (
            f"migrator exited early:\n{process.communicate()[1]}"
        )
        if ready():
            return
        time.sleep(0.2)
    raise TimeoutError(f"{what} not reached in {timeout} s")


def test_policy_moves_happen_in_order_and_are_recorded(
    policy_server: str, tmp_path: Path
) -> None:
    metrics_port = free_port()
    exporter = Exporter(LinearCollector(
        [Family("frontend_latency_ms", "gauge", [Series({"service": "client"}, LATENCY_MS)])],
        {},
    ))  # fmt: skip
    prometheus = Prometheus(
        tmp_path, {"app": [exporter.target], "migrator": [f"127.0.0.1:{metrics_port}"]}
    )
    out = tmp_path / "out"
    with KubeDouble() as double:
        _cluster(double)
        kubeconfig = write_kubeconfig(tmp_path / "kubeconfig", double.url)
        double.requests.clear()
        process: subprocess.Popen[str] | None = None
        try:
            prometheus.wait(lambda: httpx.get(prometheus.url + "/-/ready").status_code == 200,
                            "/-/ready")  # fmt: skip
            prometheus.wait(
                lambda: prometheus.query('up{job="app"} == 1') != [], "app up"
            )
            env = {k: v for k, v in os.environ.items()
                   if not k.startswith(("KUBE", "HOOKS_", "OS_"))}  # fmt: skip
            env.update(
                PYTHONPATH=str(ROOT), HOME=str(tmp_path), KUBECONFIG=str(kubeconfig),
                INTEGRATION_MODE="live", NAMESPACE=NS, APP_LABEL="tier=app",
                POLICY_URL=policy_server, PROMETHEUS_ADDR=prometheus.url,
                HOOKS_LATENCY_QUERY="max(frontend_latency_ms)", QOS_THRESHOLD="250",
                POLLING_PERIOD="200ms", HOOKS_MAX_MIGRATIONS=str(MOVES),
                HOOKS_RATE_INTERVAL="1h", HOOKS_METRICS_PORT=str(metrics_port),
                HOOKS_OUTPUT=str(out / "timeseries.csv"),
                HOOKS_PLAN_FILE=str(out / "plan.jsonl"),
                HOOKS_READY_TIMEOUT="10s", HOOKS_HANDOVER_TIMEOUT="10s",
            )  # fmt: skip
            process = subprocess.Popen(
                [sys.executable, "-m", "hooks.migrator", "monitor"], cwd=ROOT, env=env,
                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            )  # fmt: skip
            series = out / "timeseries.jsonl"

            def rows(event: str) -> list[dict[str, Any]]:
                return [r for r in read_jsonl(series) if r["event"] == event]

            # the budget is MOVES per hour: the loop then waits; or the policy stops
            _wait("the policy's moves",
                  lambda: len(rows("rescheduling")) >= MOVES or rows("stop"), 120, process)  # fmt: skip
            base = f"http://127.0.0.1:{metrics_port}"
            health = httpx.get(base + "/healthz", timeout=2)
            metrics = httpx.get(base + "/metrics", timeout=2).text
            moved = rows("rescheduling")
            completed = float(len([r for r in moved if r["outcome"] == "completed"]))
            prometheus.wait(
                lambda: [float(s["value"][1]) for s in prometheus.query(
                    'hooks_migrator_migrations_total{outcome="completed"}')] == [completed],
                "Prometheus scraped the migrator's moves",
            )  # fmt: skip
        finally:
            if process is not None:
                process.send_signal(signal.SIGTERM)
                _, stderr = process.communicate(timeout=30)
            prometheus.stop()
            exporter.close()
        assert process.returncode == 0, stderr
        assert "MODE live: monitor migrations of tier=app" in stderr
        assert health.status_code == 200 and health.json()["mode"] == "live"
        assert 'hooks_migrator_mode_info{mode="live"} 1.0' in metrics
        assert f"hooks_migrator_latency_ms {LATENCY_MS}" in metrics

        # -- the moves: at least one, every one completed, in the policy's order
        assert moved, f"the policy stopped at once:\n{stderr}"
        assert all(r["outcome"] == "completed" for r in moved), moved
        assert all(r["latency"] == LATENCY_MS for r in moved)
        decisions = [
            (r["decision"]["pod_name"], r["decision"]["target_node"]) for r in moved
        ]
        assert decisions == [(r["target_pod"], r["target_node"]) for r in moved]
        creates = [r for r in double.requests if r.method == "POST"]
        assert [
            c.body["spec"]["nodeSelector"]["kubernetes.io/hostname"] for c in creates
        ] == [r["target_node"] for r in moved]
        assert [c.body["metadata"]["name"] for c in creates] == [
            r["new_pod"] for r in moved
        ]
        for before, after in itertools.pairwise(moved):
            # each decision was made on the cluster after the previous move
            pods = [p for s in after["payload"]["cluster_state"]["services"].values()
                    for p in s["pods"]]  # fmt: skip
            assert before["target_pod"] not in {p["pod_name"] for p in pods}
            moved_pod = {
                "pod_name": before["new_pod"],
                "node_name": before["target_node"],
            }
            assert moved_pod in pods
        # -- the cluster afterwards: every service at its size, all adopted, no markers
        double.wait_for(lambda: len(double.pods(NS)) == sum(s[1] for s in SERVICES), 10)
        for name, replicas, _, _ in SERVICES:
            pods = double.app_pods(NS, name)
            assert len(pods) == replicas
            assert all(controller(p).startswith(name + "-") for p in pods)
        assert in_flight_markers(double, NS) == {}
        last = moved[-1]
        final = double.get("Pod", NS, last["new_pod"])
        assert final is not None and final["spec"]["nodeName"] == last["target_node"]
        # -- the CSV twin has the same events
        csv_lines = (out / "timeseries.csv").read_text().splitlines()
        assert csv_lines[0].startswith("timestamp,human_readable_timestamp,latency,")
        assert sum(",rescheduling," in line for line in csv_lines) == len(moved)


def test_nothing_can_move_so_the_server_stops_and_nothing_is_sent(
    policy_server: str, tmp_path: Path
) -> None:
    """Every pod's ``pod_deployable`` list is empty: the server answers a stop."""
    with KubeDouble() as double:
        _cluster(double)
        for name, *_ in NODES:
            double.set_node(name, unschedulable=True)
        kubeconfig = write_kubeconfig(tmp_path / "kubeconfig", double.url)
        double.requests.clear()
        env = {k: v for k, v in os.environ.items()
               if not k.startswith(("KUBE", "HOOKS_", "OS_"))}  # fmt: skip
        env.update(
            PYTHONPATH=str(ROOT), HOME=str(tmp_path), KUBECONFIG=str(kubeconfig),
            INTEGRATION_MODE="live", NAMESPACE=NS, APP_LABEL="tier=app",
            POLICY_URL=policy_server, HOOKS_METRICS_PORT="0",
            HOOKS_OUTPUT=str(tmp_path / "ts.csv"), HOOKS_PLAN_FILE=str(tmp_path / "p.jsonl"),
        )  # fmt: skip
        done = subprocess.run(
            [sys.executable, "-m", "hooks.migrator", "once"], cwd=ROOT, env=env,
            capture_output=True, text=True, timeout=120, check=False,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        rows = read_jsonl(tmp_path / "ts.jsonl")
        stop = next(r for r in rows if r["event"] == "stop")
        assert stop["decision"] == {"pod_name": "", "target_node": "", "is_stop": True}
        assert all(v == [] for v in stop["payload"]["pod_deployable"].values())
        assert len(stop["payload"]["pod_deployable"]) == sum(s[1] for s in SERVICES)
        assert {r.method for r in double.requests} == {"GET"}
