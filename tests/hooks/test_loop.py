"""The migrator's loop: state -> policy (HTTP) -> plan -> actuator -> time series."""

from __future__ import annotations

import csv
import json
import logging
from pathlib import Path

import pytest

from hooks.actions import MigratePod
from hooks.config import HooksConfig, KubernetesConfig, MigratorConfig
from hooks.errors import PermanentHookError, RetryPolicy
from hooks.jsonl import read_jsonl
from hooks.kubernetes.client import KubeApi
from hooks.kubernetes.migration import PodMigrator, Timeouts
from hooks.migrator.loop import MigratorLoop, RateLimit
from hooks.migrator.policy import PolicyClient
from hooks.migrator.telemetry import Telemetry
from hooks.migrator.timeseries import COLUMNS, TimeSeries
from hooks.mode import DryRunActuator, LiveActuator
from tests.hooks.conftest import NS
from tests.hooks.helpers import in_flight_markers, live_pods
from tests.hooks.kube_double import KubeDouble
from tests.hooks.policy_stub import PolicyStub, by_service

FAST = Timeouts(ready=2.0, handover=2.0, watch_chunk=1.0)


def _config(**migrator: object) -> HooksConfig:
    return HooksConfig(
        kubernetes=KubernetesConfig(namespace=NS, app_label="app=web"),
        migrator=MigratorConfig(max_step=5, max_pod_waiting_retries=50,
                                polling_period=0.05, **migrator),
    )  # fmt: skip


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
    assert placed == {rows[0]["new_pod"]: "node-c", rows[1]["new_pod"]: "node-d"}
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
    sleeps: list[float] = []

    def sleep(seconds: float) -> None:
        sleeps.append(seconds)
        now[0] += seconds

    with PolicyStub(by_service([("web", "node-c"), ("web", "node-c")])) as stub:
        loop, _ = _loop(_config(), api, stub, tmp_path, live=False)
        loop.sleep = sleep
        loop.rate = RateLimit(1, 30.0, clock=lambda: now[0])
        assert loop.run_once() == 0
    # the budget (1 per 30 s) is spent before the 2nd and the 3rd decision (a stop):
    # the loop waits before asking, so no decision goes stale while it waits
    assert sleeps == [pytest.approx(30.0), pytest.approx(30.0)]
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
