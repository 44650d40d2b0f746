"""``hooks.scaler``: the two-tier policy's placement of the measured mix -> replicas.

The cluster is the Kubernetes API double (through the real client): four scenario
nodes in two regions, one Deployment per pool, and pods whose requests make some
cores busy. Arrivals and queue waits come from canned Prometheus answers, the
decisions from a stub of the two-tier batch endpoints. Expected shares and
replicas are worked out here with numpy from the stub's tables.
"""

from __future__ import annotations

import logging
import math
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from hooks.actions import ScaleDeployment
from hooks.config import (
    HooksConfig,
    KubernetesConfig,
    PrometheusConfig,
    ScalerConfig,
    Split,
)
from hooks.errors import RetryPolicy
from hooks.jsonl import read_jsonl
from hooks.kubernetes.client import KubeApi
from hooks.kubernetes.scaler import Scaler, plan_pools
from hooks.mode import DryRunActuator, LiveActuator
from hooks.prometheus import PrometheusAdapter
from hooks.scaler.loop import ScalerLoop
from hooks.scaler.policy import TwoTierClient
from hooks.scaler.share import pool_of
from tests.hooks.kube_double import KubeDouble
from tests.hooks.scaler_fixtures import (
    ARRIVALS,
    QUEUE_WAITS,
    ROUTE,
    SCHEDULE,
    CannedPrometheus,
    PromStub,
    TwoTierStub,
)

ROOT = Path(__file__).resolve().parents[2]
NS = "pools"
REGION, NODE = "topology.frl.dev/region", "topology.frl.dev/two-tier-node"
NODES = {  # Kubernetes node: (region, scenario name, cores)
    "k-use-c1": ("us-east", "cloud-1", "4"),
    "k-use-c2": ("us-east", "cloud-2", "4"),
    "k-use-e1": ("us-east", "edge-arm-1", "2"),
    "k-euc-c1": ("eu-central", "cloud-1", "4"),
}
POOLS = {
    "us-east/cloud": "cloud-us-east",
    "us-east/edge-arm": "edge-arm-us-east",
    "eu-central/cloud": "cloud-eu-central",
}
REPLICAS = {"cloud-us-east": 1, "edge-arm-us-east": 3, "cloud-eu-central": 2}
PER_REPLICA = 10.0


@pytest.fixture
def pools(bare_double: KubeDouble) -> KubeDouble:
    double = bare_double
    for name, (region, scenario, cores) in NODES.items():
        double.add_node(name, cpu=cores, memory="8Gi",
                        labels={REGION: region, NODE: scenario})  # fmt: skip
    double.add_node("k-untagged", cpu="8", memory="8Gi")  # no scenario node
    for deployment, replicas in REPLICAS.items():
        double.add_deployment(NS, deployment, replicas, cpu="700m", memory="256Mi")
    double.requests.clear()
    return double


def _cfg(**scaler: Any) -> HooksConfig:
    settings: dict[str, Any] = {
        "pools": dict(POOLS), "per_replica_rps": PER_REPLICA, "max_step": 2,
        "min_replicas": 1, "max_replicas": 20,
    }  # fmt: skip
    return HooksConfig(
        kubernetes=KubernetesConfig(namespace=NS),
        scaler=ScalerConfig(**{**settings, **scaler}),
    )


def _loop(
    cfg: HooksConfig, api: KubeApi, stub: TwoTierStub, tmp_path: Path, live: bool,
    prometheus: CannedPrometheus | None = None,
) -> ScalerLoop:  # fmt: skip
    cfg.scaler.output = str(tmp_path / "cycles.jsonl")
    scaler = Scaler(api, cfg.scaler.hpa_backoff)
    plan = tmp_path / "plan.jsonl"
    actuator = (
        LiveActuator({ScaleDeployment: scaler}, plan) if live else DryRunActuator(plan)
    )
    policy = TwoTierClient(stub.url, 5.0, RetryPolicy(attempts=1), None)
    adapter = PrometheusAdapter(prometheus or CannedPrometheus(), PrometheusConfig())
    return ScalerLoop(cfg, api, actuator, policy, adapter, scaler)


# ---------------------------------------------------------------- expected values


def expected_pool_rates(
    arrivals: dict[tuple[str, str], float], routed: bool = True
) -> dict[str, float]:
    """Rate x P(region | origin) x P(node | region), summed per pool (numpy)."""
    regions = sorted({r for table in ROUTE.values() for r in table} | set(SCHEDULE))
    nodes = sorted({n for table in SCHEDULE.values() for n in table})
    route = np.zeros((len(regions), len(regions)))  # origin x region
    for o, table in ROUTE.items():
        for r, p in table.items():
            route[regions.index(o), regions.index(r)] = p
    if not routed:
        route = np.eye(len(regions))
    sched = np.zeros((len(regions), len(nodes)))  # region x node
    for r, table in SCHEDULE.items():
        for n, p in table.items():
            sched[regions.index(r), nodes.index(n)] = p
    by_origin = np.zeros(len(regions))
    for (_, origin), rate in arrivals.items():
        by_origin[regions.index(origin)] += rate
    per_node = by_origin @ route @ sched
    out: dict[str, float] = {}
    for node, rate in zip(nodes, per_node, strict=True):
        pool = node.rsplit("-", 1)[0]
        out[pool] = out.get(pool, 0.0) + float(rate)
    return out


def expected_replicas(rates: dict[str, float], current: dict[str, int],
                      step: int = 2, low: int = 1, high: int = 20) -> dict[str, int]:  # fmt: skip
    out = {}
    for pool, deployment in POOLS.items():
        target = min(high, max(low, math.ceil(rates.get(pool, 0.0) / PER_REPLICA)))
        now = current[deployment]
        out[deployment] = now + max(-step, min(step, target - now))
    return out


def expected_nodes(double: KubeDouble) -> dict[str, dict[str, float | int]]:
    """The two-tier ``nodes`` map: busy cores = ceil of the requested cores."""
    requested: dict[str, float] = {}
    for pod in double.pods():
        node = pod["spec"].get("nodeName")
        cpu = pod["spec"]["containers"][0]["resources"]["requests"]["cpu"]
        requested[node] = requested.get(node, 0.0) + float(cpu.removesuffix("m")) / 1e3
    return {
        f"{region}/{scenario}": {
            "queue_wait_s": QUEUE_WAITS.get(name, 0.0),
            "busy_cores": min(math.ceil(requested.get(name, 0.0) - 1e-9), int(cores)),
        }
        for name, (region, scenario, cores) in NODES.items()
    }


def test_the_stub_tables_give_the_hand_worked_shares() -> None:
    # us-east's 120 req/s: 90 stay (0.75), 30 go to eu-central; eu-central's 30 stay
    assert expected_pool_rates(ARRIVALS) == pytest.approx(
        {"us-east/cloud": 72.0, "us-east/edge-arm": 18.0, "eu-central/cloud": 60.0}
    )


# ---------------------------------------------------------------- the loop


def test_dry_run_plans_bounded_steps_and_sends_only_reads(
    pools: KubeDouble, api: KubeApi, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="hooks")
    with TwoTierStub() as stub:
        record = _loop(_cfg(), api, stub, tmp_path, live=False).cycle()
    assert pools.mutating() == []
    rates = expected_pool_rates(ARRIVALS)
    assert record["pool_rates"] == pytest.approx(rates)
    want = expected_replicas(rates, REPLICAS)
    assert want == {"cloud-us-east": 3, "edge-arm-us-east": 2, "cloud-eu-central": 4}
    plan = read_jsonl(tmp_path / "plan.jsonl")
    in_pool_order = [POOLS[pool] for pool in sorted(POOLS)]
    assert [(p["action"], p["name"], p["replicas"], p["mode"]) for p in plan] == [
        ("ScaleDeployment", d, want[d], "dry-run") for d in in_pool_order
    ]
    assert f"DRY-RUN would scale Deployment {NS}/cloud-us-east (replicas=3)" in (
        caplog.text
    )
    assert [(a["deployment"], a["from"], a["to"], a["outcome"])
            for a in record["actions"]] == [
        ("cloud-eu-central", 2, 4, "planned"), ("cloud-us-east", 1, 3, "planned"),
        ("edge-arm-us-east", 3, 2, "planned"),
    ]  # fmt: skip
    assert read_jsonl(tmp_path / "cycles.jsonl") == [record]
    # what the policy was sent: the live nodes map and every (stream, region) pair
    nodes = expected_nodes(pools)
    [route] = stub.bodies["route"]
    assert [(r["request_type"], r["origin"]) for r in route["requests"]] == sorted(
        ARRIVALS
    )
    assert all(r["nodes"] == nodes for r in route["requests"])
    # and every region's arrivals, for policies that observe region loads
    rates = {"us-east": 120.0, "eu-central": 30.0}
    assert rates == {o: sum(r for (_, q), r in ARRIVALS.items() if q == o)
                     for (_, o) in ARRIVALS}  # fmt: skip
    [schedule] = stub.bodies["schedule"]
    bodies = route["requests"] + schedule["requests"]
    assert all(r["region_rates"] == pytest.approx(rates) for r in bodies)
    asked = sorted((r["request_type"], r["origin"], r["region"])
                   for r in schedule["requests"])  # fmt: skip
    assert asked == sorted((t, o, region) for (t, o) in ARRIVALS for region in ROUTE[o])


def test_live_patches_only_the_scale_subresource_of_each_pool(
    pools: KubeDouble, api: KubeApi, tmp_path: Path
) -> None:
    with TwoTierStub() as stub:
        loop = _loop(_cfg(), api, stub, tmp_path, live=True)
        loop.cycle()
        want = expected_replicas(expected_pool_rates(ARRIVALS), REPLICAS)
        writes = [(r.method, r.path, r.body) for r in pools.mutating()]
        assert writes == [
            ("PATCH", f"/apis/apps/v1/namespaces/{NS}/deployments/{d}/scale",
             {"spec": {"replicas": want[d]}})
            for d in ("cloud-eu-central", "cloud-us-east", "edge-arm-us-east")
        ]  # fmt: skip
        for deployment, replicas in want.items():
            assert pools.get("Deployment", NS, deployment)["spec"]["replicas"] == (
                replicas
            )
        # the next cycle starts from there: one more bounded step up where needed
        pools.requests.clear()
        loop.cycle()
        again = expected_replicas(expected_pool_rates(ARRIVALS), want)
        assert again == {"cloud-us-east": 5, "edge-arm-us-east": 2,
                         "cloud-eu-central": 6}  # fmt: skip
        assert {r.path.split("/")[-2]: r.body["spec"]["replicas"]
                for r in pools.mutating()} == {
            "cloud-us-east": 5, "cloud-eu-central": 6}  # fmt: skip


def test_an_hpa_owned_pool_is_left_alone_in_both_modes(
    pools: KubeDouble, api: KubeApi, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    pools.add_hpa(NS, "eu-hpa", "cloud-eu-central")
    with TwoTierStub() as stub:
        dry = _loop(_cfg(), api, stub, tmp_path / "dry", live=False).cycle()
        assert pools.mutating() == []
        live = _loop(_cfg(), api, stub, tmp_path / "live", live=True).cycle()
    for record in (dry, live):
        outcome = {a["deployment"]: a["outcome"] for a in record["actions"]}
        assert outcome["cloud-eu-central"] == "hpa"
    assert "scaled by HorizontalPodAutoscaler eu-hpa: not scaling" in caplog.text
    patched = [r.path for r in pools.mutating()]
    assert patched and not any("cloud-eu-central" in p for p in patched)
    assert pools.get("Deployment", NS, "cloud-eu-central")["spec"]["replicas"] == 2


def test_a_policy_that_does_not_route_keeps_requests_in_their_origin(
    pools: KubeDouble, api: KubeApi, tmp_path: Path
) -> None:
    with TwoTierStub() as stub:
        stub.route_status = 409
        loop = _loop(_cfg(), api, stub, tmp_path, live=False)
        record = loop.cycle()
        loop.cycle()
    rates = expected_pool_rates(ARRIVALS, routed=False)
    assert rates == pytest.approx(
        {"us-east/cloud": 96.0, "us-east/edge-arm": 24.0, "eu-central/cloud": 30.0}
    )
    assert record["pool_rates"] == pytest.approx(rates)
    assert len(stub.bodies["route"]) == 1  # asked once, then remembered
    regions = {(r["origin"], r["region"]) for b in stub.bodies["schedule"]
               for r in b["requests"]}  # fmt: skip
    assert regions == {("us-east", "us-east"), ("eu-central", "eu-central")}


def test_no_measured_arrivals_plan_nothing_but_zero_traffic_scales_down(
    pools: KubeDouble, api: KubeApi, tmp_path: Path
) -> None:
    with TwoTierStub() as stub:
        empty = _loop(_cfg(), api, stub, tmp_path / "a", live=True,
                      prometheus=CannedPrometheus({})).cycle()  # fmt: skip
        assert empty["outcome"] == "no-data" and pools.mutating() == []
        assert stub.bodies == {"route": [], "schedule": []}
        idle = dict.fromkeys(ARRIVALS, 0.0)
        quiet = _loop(_cfg(), api, stub, tmp_path / "b", live=True,
                      prometheus=CannedPrometheus(idle)).cycle()  # fmt: skip
    # no traffic at all: every pool steps down towards min_replicas
    assert {(a["deployment"], a["to"]) for a in quiet["actions"]} == {
        ("edge-arm-us-east", 1), ("cloud-eu-central", 1)}  # fmt: skip


def test_plan_pools_bounds_and_the_decisions_split(tmp_path: Path) -> None:
    current = {"a": 5, "b": 1}
    deployments = {"r/x": "a", "r/y": "b", "r/z": "missing"}
    plan = plan_pools({"r/x": 1000.0, "r/y": 0.0}, deployments, current, NS, 10.0,
                      minimum=2, maximum=7, max_step=3)  # fmt: skip
    assert plan == [ScaleDeployment(NS, "a", 7), ScaleDeployment(NS, "b", 2)]
    assert plan_pools({"r/x": 50.0}, {"r/x": "a"}, {"a": 5}, NS, 10.0) == []
    with pytest.raises(ValueError, match="per_replica_rps: expected > 0"):
        plan_pools({}, {}, {}, NS, 0.0)
    with pytest.raises(ValueError, match="max_step: expected >= 1"):
        plan_pools({}, {}, {}, NS, 1.0, max_step=0)
    assert pool_of("us-east/cloud-spot-12") == "us-east/cloud-spot"
    with pytest.raises(ValueError, match="<region>/<pool>-<i>"):
        pool_of("cloud-1")


def test_the_decisions_split_sends_whole_streams_to_the_answer(
    pools: KubeDouble, api: KubeApi, tmp_path: Path
) -> None:
    with TwoTierStub() as stub:
        record = _loop(_cfg(split=Split.decisions), api, stub, tmp_path,
                       live=False).cycle()  # fmt: skip
    # argmax: us-east origin -> us-east -> cloud-1; eu-central -> eu-central/cloud-1
    assert record["pool_rates"] == pytest.approx(
        {"us-east/cloud": 120.0, "eu-central/cloud": 30.0}
    )


# ---------------------------------------------------------------- the CLI


def _env(tmp_path: Path, kubeconfig: Path, **extra: str) -> dict[str, str]:
    ours = ("KUBE", "HOOKS_", "INTEGRATION_MODE", "NAMESPACE", "PROMETHEUS_ADDR",
            "POLICY_", "OS_")  # fmt: skip
    env = {k: v for k, v in os.environ.items() if not k.startswith(ours)}
    env.update(
        HOME=str(tmp_path), PYTHONPATH=str(ROOT), KUBECONFIG=str(kubeconfig),
        NAMESPACE=NS, HOOKS_RETRY_BASE_DELAY="0.01",
        HOOKS_SCALER_POOLS=",".join(f"{p}={d}" for p, d in POOLS.items()),
        HOOKS_SCALER_PER_REPLICA_RPS=str(PER_REPLICA),
        HOOKS_SCALER_OUTPUT=str(tmp_path / "out" / "cycles.jsonl"),
        HOOKS_SCALER_PLAN_FILE=str(tmp_path / "out" / "plan.jsonl"),
        **extra,
    )  # fmt: skip
    return env


def _run(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "hooks.scaler", *args], cwd=ROOT, env=env,
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip


def test_cli_dry_run_then_live_with_the_key(
    pools: KubeDouble, kubeconfig: Path, tmp_path: Path
) -> None:
    key = "s" * 32
    with TwoTierStub(key=key) as stub, PromStub() as prom:
        env = _env(tmp_path, kubeconfig, PROMETHEUS_ADDR=prom.url,
                   HOOKS_SCALER_POLICY_URL=stub.url, POLICY_API_KEY=key)  # fmt: skip
        dry = _run(env, "once")
        assert dry.returncode == 0, dry.stderr
        assert "kubernetes hook: MODE dry-run" in dry.stderr
        assert f"DRY-RUN would scale Deployment {NS}/cloud-us-east (replicas=3)" in (
            dry.stderr
        )
        assert pools.mutating() == []
        live = _run({**env, "INTEGRATION_MODE": "live"}, "once")
        assert live.returncode == 0, live.stderr
        assert "MODE live (credentials: kubeconfig" in live.stderr
        assert set(stub.keys) == {key}
    want = expected_replicas(expected_pool_rates(ARRIVALS), REPLICAS)
    assert {r.path.split("/")[-2]: r.body["spec"]["replicas"]
            for r in pools.mutating()} == want  # fmt: skip
    records = read_jsonl(tmp_path / "out" / "cycles.jsonl")
    assert [r["mode"] for r in records] == ["dry-run", "live"]


def test_cli_refuses_missing_pools_and_a_policy_error_exits_1(
    pools: KubeDouble, kubeconfig: Path, tmp_path: Path
) -> None:
    env = _env(tmp_path, kubeconfig)
    del env["HOOKS_SCALER_POOLS"]
    done = _run(env, "once")
    assert done.returncode == 2
    assert "cannot start: scaler.pools: expected at least one" in done.stderr
    bad = _run({**_env(tmp_path, kubeconfig), "HOOKS_SCALER_POOLS": "cloud"}, "once")
    assert bad.returncode == 2 and "HOOKS_SCALER_POOLS: expected pool=deployment" in (
        bad.stderr
    )
    with TwoTierStub(key="right" * 4) as stub, PromStub() as prom:
        env = _env(tmp_path, kubeconfig, PROMETHEUS_ADDR=prom.url,
                   HOOKS_SCALER_POLICY_URL=stub.url, POLICY_API_KEY="wrong" * 4)  # fmt: skip
        refused = _run(env, "once")
    assert refused.returncode == 1
    assert "/v1/route/batch: HTTP 401" in refused.stderr
    assert pools.mutating() == []
