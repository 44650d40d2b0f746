"""``python -m hooks.migrator`` as a process against the API double.

Settings come from REACH's environment names, the kubeconfig points at the double,
the policy is a scripted stub (the end-to-end test uses the real server).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from hooks.jsonl import read_jsonl
from hooks.kubernetes.migration import STEPS
from tests.hooks.conftest import NS
from tests.hooks.helpers import controller, in_flight_markers, live_pods, replicaset
from tests.hooks.kube_double import KubeDouble
from tests.hooks.policy_stub import JsonStub, PolicyStub, by_service, free_port

ROOT = Path(__file__).resolve().parents[2]
_OURS = ("KUBE", "HOOKS_", "INTEGRATION_MODE", "NAMESPACE", "APP_LABEL", "POLICY_URL",
         "PROMETHEUS_ADDR", "OS_", "POLLING_PERIOD", "MAX_STEP", "QOS_THRESHOLD",
         "ENTRY_SERVICE_URL")  # fmt: skip


def migrator_env(
    tmp_path: Path, kubeconfig: Path, policy: str, **extra: str
) -> dict[str, str]:
    """A clean environment: nothing of the caller's cluster settings leaks in."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(_OURS)}
    env.update(
        HOME=str(tmp_path),
        PYTHONPATH=str(ROOT),
        KUBECONFIG=str(kubeconfig),
        NAMESPACE=NS,
        APP_LABEL="app=web",
        POLICY_URL=policy,
        POLLING_PERIOD="50ms",
        MAX_POD_WAITING_RETRIES="100",
        HOOKS_OUTPUT=str(tmp_path / "out" / "ts.csv"),
        HOOKS_PLAN_FILE=str(tmp_path / "out" / "plan.jsonl"),
        HOOKS_METRICS_PORT="0",
        HOOKS_READY_TIMEOUT="5s",
        HOOKS_HANDOVER_TIMEOUT="5s",
        HOOKS_RETRY_BASE_DELAY="0.01",
    )
    env.update(extra)
    return env


def run(
    env: dict[str, str], *args: str, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "hooks.migrator", *args], cwd=ROOT, env=env,
        capture_output=True, text=True, timeout=timeout, check=False,
    )  # fmt: skip


def test_missing_settings_exit_2_naming_them(kubeconfig: Path, tmp_path: Path) -> None:
    env = migrator_env(tmp_path, kubeconfig, "http://127.0.0.1:9/get_action")
    del env["APP_LABEL"]
    done = run(env)
    assert done.returncode == 2
    assert "cannot start: APP_LABEL: expected a label selector" in done.stderr


def test_dry_run_episode_sends_no_mutating_request(
    double: KubeDouble, kubeconfig: Path, tmp_path: Path
) -> None:
    with PolicyStub(by_service([("web", "node-c")])) as stub:
        done = run(migrator_env(tmp_path, kubeconfig, stub.url), "once")
    assert done.returncode == 0, done.stderr
    assert "kubernetes hook: MODE dry-run (no mutating request is sent)" in done.stderr
    assert "DRY-RUN would migrate Pod shop/web-" in done.stderr
    assert double.requests and {r.method for r in double.requests} == {"GET"}
    plan = read_jsonl(tmp_path / "out" / "plan.jsonl")
    assert [(p["action"], p["target_node"], p["mode"]) for p in plan] == [
        ("MigratePod", "node-c", "dry-run")
    ]


def test_live_without_credentials_stays_dry_and_says_why(
    double: KubeDouble, kubeconfig: Path, tmp_path: Path
) -> None:
    with PolicyStub(by_service([])) as stub:
        env = migrator_env(tmp_path, kubeconfig, stub.url, INTEGRATION_MODE="live")
        env["KUBECONFIG"] = str(tmp_path / "missing")
        done = run(env, "once")
    assert done.returncode == 2
    assert "MODE dry-run (INTEGRATION_MODE=live but no credentials found" in done.stderr
    assert "no credentials: expected kubernetes.kubeconfig" in done.stderr
    assert double.requests == []


def test_live_forbidden_exits_1_with_the_servers_message(
    double: KubeDouble, kubeconfig: Path, tmp_path: Path
) -> None:
    message = (
        'pods is forbidden: User "system:serviceaccount:shop:migrator" cannot create'
    )
    double.fault("POST", rf"/namespaces/{NS}/pods$", 403, times=10, message=message)
    before = sorted(p["metadata"]["uid"] for p in double.app_pods(NS, "web"))
    with PolicyStub(by_service([("web", "node-c")])) as stub:
        env = migrator_env(tmp_path, kubeconfig, stub.url, INTEGRATION_MODE="live")
        done = run(env, "once")
    assert done.returncode == 1
    assert "MODE live (credentials: kubeconfig" in done.stderr
    assert f"stopped: Pod {NS}/web-" in done.stderr
    assert f"HTTP 403: Forbidden: {message}" in done.stderr
    assert sorted(p["metadata"]["uid"] for p in double.app_pods(NS, "web")) == before
    assert in_flight_markers(double, NS) == {}


def test_monitor_acts_above_the_qos_and_serves_metrics_and_health(
    double: KubeDouble, kubeconfig: Path, tmp_path: Path
) -> None:
    port = free_port()
    with (
        PolicyStub(by_service([("web", "node-c")])) as stub,
        JsonStub({"service_calling_latency": 300.0}) as entry,
    ):
        env = migrator_env(
            tmp_path, kubeconfig, stub.url, HOOKS_METRICS_PORT=str(port),
            ENTRY_SERVICE_URL=entry.url, QOS_THRESHOLD="250", POLLING_PERIOD="100ms",
        )  # fmt: skip
        process = subprocess.Popen(
            [sys.executable, "-m", "hooks.migrator", "monitor"], cwd=ROOT, env=env,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        try:
            base = f"http://127.0.0.1:{port}"
            deadline = time.monotonic() + 30
            metrics = ""
            while time.monotonic() < deadline:
                assert process.poll() is None, process.communicate()[1]
                try:
                    metrics = httpx.get(base + "/metrics", timeout=1).text
                except httpx.HTTPError:
                    metrics = ""
                if 'hooks_migrator_decisions_total{outcome="stop"}' in metrics:
                    break
                time.sleep(0.1)
            health = httpx.get(base + "/healthz", timeout=1)
        finally:
            process.send_signal(signal.SIGTERM)
            _, stderr = process.communicate(timeout=20)
    assert process.returncode == 0, stderr
    assert health.status_code == 200
    assert health.json() == {"status": "ok", "mode": "dry-run"}
    assert 'hooks_migrator_mode_info{mode="dry-run"} 1.0' in metrics
    assert 'hooks_migrator_decisions_total{outcome="move"} 1.0' in metrics
    assert 'hooks_migrator_migrations_total{outcome="planned"} 1.0' in metrics
    assert "hooks_migrator_latency_ms 300.0" in metrics
    rows = read_jsonl(tmp_path / "out" / "ts.jsonl")
    assert {r["event"] for r in rows} >= {"latency", "rescheduling", "stop"}
    assert all(r["latency"] == 300.0 for r in rows if r["event"] == "latency")
    assert {r.method for r in double.requests} == {"GET"}


EXPECTED = {
    "mark-source": "rolled-back",
    "create-replacement": "rolled-back",
    "wait-ready": "rolled-back",
    "shed-cost": "rolled-back",
    "adopt": "completed",
    "wait-handover": "completed",
    "cleanup": None,
}


@pytest.mark.slow
@pytest.mark.parametrize("step", STEPS)
def test_kill_9_at_each_step_is_settled_when_the_migrator_starts_again(
    double: KubeDouble, kubeconfig: Path, tmp_path: Path, step: str
) -> None:
    pod = sorted(live_pods(double, NS, "web"), key=lambda p: p["metadata"]["name"])[0]
    env = migrator_env(tmp_path, kubeconfig, "http://127.0.0.1:9/get_action")
    crashed = subprocess.run(
        [sys.executable, "-m", "tests.hooks.crash_migration", "--kubeconfig",
         str(kubeconfig), "--namespace", NS, "--pod", pod["metadata"]["name"],
         "--node", "node-c", "--at", step],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert crashed.returncode == -signal.SIGKILL, crashed.stderr
    with PolicyStub(by_service([])) as stub:  # the policy stops at once
        env = migrator_env(tmp_path, kubeconfig, stub.url, INTEGRATION_MODE="live")
        done = run(env, "once")
    assert done.returncode == 0, done.stderr
    reconciled = [r for r in read_jsonl(tmp_path / "out" / "ts.jsonl")
                  if r["event"] == "reconciled"]  # fmt: skip
    expected = EXPECTED[step]
    assert [r["outcome"] for r in reconciled] == ([expected] if expected else [])
    double.wait_for(lambda: len(double.app_pods(NS, "web")) == 2, 5)
    pods = live_pods(double, NS, "web")
    rs = replicaset(double, NS, "web")["metadata"]["name"]
    assert len(pods) == 2 and all(controller(p) == rs for p in pods)
    uids = {p["metadata"]["uid"] for p in pods}
    on_c = [p for p in pods if p["spec"]["nodeName"] == "node-c"]
    if expected == "rolled-back":
        assert pod["metadata"]["uid"] in uids and on_c == []
    else:
        assert pod["metadata"]["uid"] not in uids and len(on_c) == 1
    assert in_flight_markers(double, NS) == {}
