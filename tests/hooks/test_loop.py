"""The migrator's loop: state -> policy (HTTP) -> plan -> actuator -> time series."""

from __future__ import annotations

import csv
import itertools
import json
import logging
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from hooks.actions import MigratePod
from hooks.config import HooksConfig, KubernetesConfig, MigratorConfig
from hooks.errors import PermanentHookError, RetryPolicy
from hooks.jsonl import read_jsonl
from hooks.kubernetes.client import KubeApi
from hooks.kubernetes.migration import PodMigrator, Timeouts
from hooks.migrator.loop import (
    HEARTBEAT_CHUNK,
    MigratorLoop,
    RateLimit,
    health_window,
)
from hooks.migrator.policy import PolicyClient
from hooks.migrator.telemetry import Telemetry
from hooks.migrator.timeseries import COLUMNS, TimeSeries
from hooks.mode import DryRunActuator, LiveActuator
from tests.hooks.conftest import NS
from tests.hooks.helpers import in_flight_markers, live_pods
from tests.hooks.kube_double import KubeDouble
from tests.hooks.policy_stub import PolicyStub, by_service

FAST = Timeouts(ready=2.0, handover=2.0, watch_chunk=1.0)


def _config(**migrator: Any) -> HooksConfig:
    settings = {"max_step": 5, "max_pod_waiting_retries": 50, "polling_period": 0.05}
    return HooksConfig(
        kubernetes=KubernetesConfig(namespace=NS, app_label="app=web"),
        migrator=MigratorConfig(**{**settings, **migrator}),
    )


def _loop(
    cfg: HooksConfig,
    api: KubeApi,
    stub: PolicyStub,
    tmp_path: Path,
    live: bool,
    sleeps: list[float] | None = None,
) -> tuple[MigratorLoop, PodMigrator]:
    migrator = PodMigrator(api, FAST)
    plan = tmp_path / "plan.jsonl"
    actuator = (
        LiveActuator({MigratePod: migrator.migrate}, plan)
        if live
        else DryRunActuator(plan)
    )
    policy = PolicyClient(stub.url, 5.0, RetryPolicy(attempts=2, base_delay=0.01))
    loop = MigratorLoop(
        cfg, api, actuator, policy, lambda: 123.0, TimeSeries(tmp_path / "ts.csv"),
        Telemetry(actuator.mode.value, 60.0),
        sleep=(sleeps.append if sleeps is not None else lambda s: None),
        preflight=migrator.preflight,
    )  # fmt: skip
    return loop, migrator


def _events(tmp_path: Path) -> list[str]:
    with (tmp_path / "ts.csv").open() as f:
        return [row["event"] for row in csv.DictReader(f)]


def test_dry_run_plans_a_whole_episode_and_sends_only_reads(
    double: KubeDouble, api: KubeApi, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    first, second = sorted(p["metadata"]["name"] for p in double.app_pods(NS, "web"))
    where = {
        p["metadata"]["name"]: p["spec"]["nodeName"] for p in double.app_pods(NS, "web")
    }
    caplog.set_level(logging.INFO, logger="hooks")
    with PolicyStub(by_service([("web", "node-c"), ("web", "node-c")])) as stub:
        loop, _ = _loop(_config(), api, stub, tmp_path, live=False)
        assert loop.run_once() == 0
    assert {r.method for r in double.requests} == {"GET"}  # watches are GETs too
    # the plan: both pods to node-c, the second decided on the virtual cluster
    plan = read_jsonl(tmp_path / "plan.jsonl")
    assert [(p["action"], p["pod"], p["target_node"], p["mode"]) for p in plan] == [
        ("MigratePod", first, "node-c", "dry-run"),
        ("MigratePod", second, "node-c", "dry-run"),
    ]
    second_payload = stub.payloads[1]["cluster_state"]["services"]["web"]["pods"]
    assert {"pod_name": first, "node_name": "node-c"} in second_payload
    # node-c: 1000m - 500m for the first (virtual) move
    assert (
        stub.payloads[1]["cluster_state"]["nodes"]["node-c"]["cpu_availability"]
        == 500.0
    )
    assert (
        f"DRY-RUN would migrate Pod {NS}/{first} ({where[first]} -> node-c)"
        in caplog.text
    )
    assert _events(tmp_path) == [
        "experiment_start", "rescheduling", "rescheduling", "stop", "latency",
    ]  # fmt: skip
    rows = read_jsonl(tmp_path / "ts.jsonl")
    assert rows[1]["outcome"] == "planned" and rows[1]["latency"] == 123.0
    assert rows[1]["decision"] == {
        "pod_name": first,
        "target_node": "node-c",
        "is_stop": False,
    }
    # the cluster is as it was
    assert sorted(p["metadata"]["name"] for p in double.app_pods(NS, "web")) == [
        first,
        second,
    ]


def test_dry_run_reports_what_live_would_refuse(
    double: KubeDouble, api: KubeApi, tmp_path: Path
) -> None:
    double.add_pdb(NS, "web-pdb", {"app": "web"}, disruptions_allowed=0)
    with PolicyStub(by_service([("web", "node-c")])) as stub:
        loop, _ = _loop(_config(), api, stub, tmp_path, live=False)
        assert loop.run_once() == 0
    assert {r.method for r in double.requests} == {"GET"}
    assert _events(tmp_path) == ["experiment_start", "refused", "latency"]
    refused = read_jsonl(tmp_path / "ts.jsonl")[1]
    assert "PodDisruptionBudget web-pdb allows no disruption" in refused["outcome"]
    assert not (tmp_path / "plan.jsonl").exists()


def test_live_loop_migrates_in_the_policys_order(
    double: KubeDouble, api: KubeApi, tmp_path: Path
) -> None:
    double.add_node("node-d", cpu="1", memory="2Gi")
    moves = [("web", "node-c"), ("web", "node-d")]
    with PolicyStub(by_service(moves)) as stub:
        loop, _ = _loop(_config(), api, stub, tmp_path, live=True)
        assert loop.run_once() == 0
    rows = [
        r for r in read_jsonl(tmp_path / "ts.jsonl") if r["event"] == "rescheduling"
    ]
    assert [(r["target_node"], r["outcome"]) for r in rows] == [
        ("node-c", "completed"), ("node-d", "completed"),
    ]  # fmt: skip
    double.wait_for(lambda: len(double.app_pods(NS, "web")) == 2, 5)
    placed = {
        p["metadata"]["name"]: p["spec"]["nodeName"]
        for p in live_pods(double, NS, "web")
    }
    # replay the two moves on the first payload: the stub picks a source by name,
    # and pod names are random, so the second source may be the first replacement
    expected = {
        p["pod_name"]: p["node_name"]
        for p in stub.payloads[0]["cluster_state"]["services"]["web"]["pods"]
    }
    for row in rows:
        del expected[row["target_pod"]]
        expected[row["new_pod"]] = row["target_node"]
    assert placed == expected
    assert sorted(placed.values()).count("node-d") == 1
    assert in_flight_markers(double, NS) == {}
    # the second decision saw the first move done (the live state is re-read)
    second = stub.payloads[1]["cluster_state"]["services"]["web"]["pods"]
    assert {"pod_name": rows[0]["new_pod"], "node_name": "node-c"} in second
    with (tmp_path / "ts.csv").open() as f:
        assert next(csv.reader(f)) == list(COLUMNS)


def test_rate_limit_waits_between_migrations(
    double: KubeDouble, api: KubeApi, tmp_path: Path
) -> None:
    now = [1000.0]
    waited: dict[int, float] = {}  # policy calls made so far -> seconds slept

    with PolicyStub(by_service([("web", "node-c"), ("web", "node-c")])) as stub:

        def sleep(seconds: float) -> None:
            assert seconds <= HEARTBEAT_CHUNK  # long waits report progress
            calls = len(stub.payloads)
            waited[calls] = waited.get(calls, 0.0) + seconds
            now[0] += seconds

        loop, _ = _loop(_config(), api, stub, tmp_path, live=False)
        loop.sleep = sleep
        loop.rate = RateLimit(1, 30.0, clock=lambda: now[0])
        assert loop.run_once() == 0
    # the budget (1 per 30 s) is spent before the 2nd and the 3rd decision (a stop):
    # the loop waits before asking, so no decision goes stale while it waits
    assert waited == {1: pytest.approx(30.0), 2: pytest.approx(30.0)}
    assert len(stub.payloads) == 3
    assert RateLimit(0, 30.0).wait_time() == 0.0


def test_a_rolled_back_move_ends_the_episode_with_status_1(
    double: KubeDouble, api: KubeApi, tmp_path: Path
) -> None:
    double.knobs.never_ready = lambda pod: pod["spec"].get("nodeName") == "node-c"
    before = sorted(p["metadata"]["uid"] for p in double.app_pods(NS, "web"))
    with PolicyStub(by_service([("web", "node-c")] * 3)) as stub:
        loop, migrator = _loop(_config(), api, stub, tmp_path, live=True)
        migrator.timeouts = Timeouts(ready=1.0, handover=1.0, watch_chunk=1.0)
        assert loop.run_once() == 1
    assert len(stub.payloads) == 1
    assert _events(tmp_path) == ["experiment_start", "rollback", "latency"]
    double.wait_for(lambda: len(double.app_pods(NS, "web")) == 2, 5)
    assert sorted(p["metadata"]["uid"] for p in double.app_pods(NS, "web")) == before


def test_forbidden_stops_the_loop_with_the_servers_message(
    double: KubeDouble, api: KubeApi, tmp_path: Path
) -> None:
    double.fault("PATCH", r"/pods/", 403, times=10, message="patch is forbidden")
    with PolicyStub(by_service([("web", "node-c")])) as stub:
        loop, _ = _loop(_config(), api, stub, tmp_path, live=True)
        with pytest.raises(
            PermanentHookError, match="HTTP 403: Forbidden: patch is forbidden"
        ):
            loop.run_once()
    error = read_jsonl(tmp_path / "ts.jsonl")[-1]
    assert error["event"] == "error" and "HTTP 403" in error["outcome"]
    assert [r.method for r in double.requests].count("PATCH") == 1


def test_policy_errors_surface_with_the_servers_message(
    double: KubeDouble, api: KubeApi, tmp_path: Path
) -> None:
    with PolicyStub(by_service([])) as stub:
        stub.status = 422
        loop, _ = _loop(_config(), api, stub, tmp_path, live=False)
        with pytest.raises(PermanentHookError, match="HTTP 422: scripted failure"):
            loop.run_once()
    assert len(stub.payloads) == 1  # 4xx is not retried
    stub_json = json.dumps(stub.payloads[0])
    assert "pod_deployable" in stub_json


def test_health_stays_fresh_during_a_migration_longer_than_the_window(
    double: KubeDouble, api: KubeApi, tmp_path: Path
) -> None:
    """Progress inside the waits keeps ``/healthz`` at 200 while a slow move runs.

    The replacement takes 3.5 s to become Ready, the health window is 1.5 s (more
    than one 1 s watch request, the longest quiet stretch here): a loop that only
    reports finished cycles would be declared stale (and restarted by a liveness
    probe) in the middle of the migration.
    """
    double.knobs.ready_delay = 3.5
    telemetry = Telemetry("live", stale_after=1.5)
    migrator = PodMigrator(
        api, Timeouts(ready=10.0, handover=10.0, watch_chunk=1.0),
        progress=telemetry.progress,
    )  # fmt: skip
    with PolicyStub(by_service([("web", "node-c")])) as stub:
        loop = MigratorLoop(
            _config(max_step=1), api,
            LiveActuator({MigratePod: migrator.migrate}, tmp_path / "plan.jsonl"),
            PolicyClient(stub.url, 5.0, RetryPolicy(attempts=2, base_delay=0.01)),
            lambda: 123.0, TimeSeries(tmp_path / "ts.csv"), telemetry,
            preflight=migrator.preflight,
        )  # fmt: skip
        verdicts: list[bool] = []
        result: list[int] = []
        runner = threading.Thread(target=lambda: result.append(loop.run_once()))
        started = time.monotonic()
        runner.start()
        while runner.is_alive():
            verdicts.append(telemetry.healthy())
            time.sleep(0.05)
        runner.join()
        took = time.monotonic() - started
    assert result == [0]
    assert took > 2 * telemetry.stale_after  # the window really was exceeded
    rows = read_jsonl(tmp_path / "ts.jsonl")
    moved = [r for r in rows if r["event"] == "rescheduling"]
    assert [r["outcome"] for r in moved] == ["completed"]
    assert len(verdicts) > 20 and all(verdicts)


def test_health_goes_stale_without_progress_and_healthz_says_so() -> None:
    telemetry = Telemetry("live", stale_after=0.3)
    port = telemetry.serve("127.0.0.1", 0)
    try:
        assert httpx.get(f"http://127.0.0.1:{port}/healthz").status_code == 200
        time.sleep(0.5)
        stale = httpx.get(f"http://127.0.0.1:{port}/healthz")
        assert stale.status_code == 503 and stale.json()["status"] == "stale"
        telemetry.progress()
        assert httpx.get(f"http://127.0.0.1:{port}/healthz").status_code == 200
    finally:
        telemetry.close()


def test_the_health_window_outlasts_the_longest_blocking_call() -> None:
    cfg = HooksConfig()
    k8s = cfg.kubernetes
    # every try of one Kubernetes request times out: attempts x timeout at least
    assert health_window(cfg) >= 2 * k8s.retry_attempts * k8s.request_timeout
    assert health_window(cfg) >= 2 * 3 * cfg.migrator.policy_timeout
    slow = HooksConfig(migrator=MigratorConfig(polling_period=30.0))
    assert health_window(slow) == pytest.approx(600.0)  # REACH: 20 x POLLING_PERIOD


def test_failed_moves_count_against_the_rate_and_monitor_backs_off(
    double: KubeDouble, api: KubeApi, tmp_path: Path
) -> None:
    """A never-Ready target: each attempt is rolled back, and the next waits.

    The rate limit (1 per 30 s) counts the failed attempts, and monitor backs off
    30 s, then 60 s: without that, a replacement would be created, waited for and
    deleted on every poll for as long as the latency stays high.
    """
    double.knobs.never_ready = lambda pod: pod["spec"].get("nodeName") == "node-c"
    double.knobs.grace = 0.0  # a rolled-back replacement is gone at once (fake clock)
    now = [1000.0]
    attempts: list[float] = []
    loop: MigratorLoop | None = None

    def sleep(seconds: float) -> None:
        now[0] += seconds
        if now[0] > 1000.0 + 150.0:
            assert loop is not None
            loop.stop()

    with PolicyStub(by_service([("web", "node-c")] * 100)) as stub:
        cfg = _config(qos_threshold=100.0, failure_backoff=30.0,
                      failure_backoff_max=600.0, polling_period=5.0)  # fmt: skip
        loop, migrator = _loop(cfg, api, stub, tmp_path, live=True)
        migrator.timeouts = Timeouts(ready=0.3, handover=1.0, watch_chunk=1.0)

        def migrate(action: MigratePod) -> object:
            attempts.append(now[0])
            return migrator.migrate(action)

        loop.actuator = LiveActuator({MigratePod: migrate})
        loop.sleep = sleep
        loop.clock = lambda: now[0]
        loop.rate = RateLimit(1, 30.0, clock=lambda: now[0])
        assert loop.run_monitor() == 0
    rows = read_jsonl(tmp_path / "ts.jsonl")
    assert [r["event"] for r in rows].count("rollback") == len(attempts)
    # t=0 fails (back-off 30 s), t>=30 fails (60 s), t>=90 fails (120 s): 3 in 150 s
    gaps = [b - a for a, b in itertools.pairwise(attempts)]
    assert len(attempts) == 3, attempts
    assert gaps[0] >= 30.0 and gaps[1] >= 60.0, gaps
    double.wait_for(lambda: len(double.app_pods(NS, "web")) == 2, 5)
    assert in_flight_markers(double, NS) == {}


def test_rate_limit_counts_a_move_before_it_is_carried_out(
    double: KubeDouble, api: KubeApi, tmp_path: Path
) -> None:
    seen: list[int] = []
    with PolicyStub(by_service([("web", "node-c")])) as stub:
        loop, _ = _loop(_config(max_step=1), api, stub, tmp_path, live=False)

        class Counting(DryRunActuator):
            def apply(self, action: Any) -> None:
                seen.append(len(loop.rate.times))
                super().apply(action)

        loop.actuator = Counting(tmp_path / "plan.jsonl")
        assert loop.run_once() == 0
    assert seen == [1]


def test_errors_before_acting_do_not_back_off(
    double: KubeDouble, api: KubeApi, tmp_path: Path
) -> None:
    """A policy server that is not ready yet (503) is asked again at the next poll."""
    now = [1000.0]
    loop: MigratorLoop | None = None

    def sleep(seconds: float) -> None:
        now[0] += seconds
        if now[0] >= 1000.0 + 10 * 5.0:
            assert loop is not None
            loop.stop()

    with PolicyStub(by_service([("web", "node-c")])) as stub:
        stub.status = 503
        cfg = _config(qos_threshold=100.0, polling_period=5.0)
        loop, _ = _loop(cfg, api, stub, tmp_path, live=True)
        loop.policy.retry = RetryPolicy(attempts=1)
        loop.sleep = sleep
        loop.clock = lambda: now[0]
        assert loop.run_monitor() == 0
    assert len(stub.payloads) == 10  # every poll asked
    assert loop.failures == 0 and double.mutating() == []
