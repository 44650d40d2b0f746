"""``python -m hooks.scaler`` live against the real two-tier policy server.

A tiny ``learn=both`` policy is trained on the small scenario and served by
``python -m serving``; the API double runs one Kubernetes node per scenario node
(labelled with its region and name) and one Deployment per pool; Prometheus's
answers (arrivals by type and origin, queue waits) come from a stub. The expected
replicas are worked out here: the test asks the same server about the same state
itself and sums rate x P(region) x P(node) per pool with numpy.
"""

from __future__ import annotations

import math
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
import yaml

from envs.scenario import compile_scenario, load_scenario
from tests.hooks.conftest import write_kubeconfig
from tests.hooks.kube_double import KubeDouble
from tests.hooks.scaler_fixtures import PromStub

pytestmark = [pytest.mark.slow, pytest.mark.e2e]

ROOT = Path(__file__).resolve().parents[2]
NS = "pools"
REGION, NODE = "topology.frl.dev/region", "topology.frl.dev/two-tier-node"
ARRIVALS = {("web", "us-east"): 120.0, ("inference", "eu-central"): 40.0,
            ("analytics", "asia-east"): 15.0}  # fmt: skip
PER_REPLICA, STEP, START = 10.0, 3, 2


@pytest.fixture(scope="module")
def policy(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    from tests.serving.helpers import (
        SMALL_SCENARIO,
        run_config,
        start_server,
        stop_server,
        train_checkpoint,
    )

    assert SMALL_SCENARIO.exists()
    folder = tmp_path_factory.mktemp("two-tier")
    checkpoint = train_checkpoint(
        folder / "both.zip", run_config("two_tier", two_tier={"learn": "both"})
    )
    server = start_server(checkpoint, folder / "server.log")
    try:
        yield server.url
    finally:
        stop_server(server)


def _k8s_name(scenario_node: str) -> str:
    return "k-" + scenario_node.replace("/", "-")


def test_live_scaler_follows_the_real_policy(policy: str, tmp_path: Path) -> None:
    from tests.serving.helpers import SMALL_SCENARIO

    world = compile_scenario(load_scenario(SMALL_SCENARIO))
    pools = sorted({n.rsplit("-", 1)[0] for n in world.node_names})
    deployments = {p: "w-" + p.replace("/", "-") for p in pools}
    with KubeDouble() as double, PromStub(ARRIVALS) as prom:
        for node in world.node_names:
            region, name = node.split("/")
            double.add_node(_k8s_name(node), cpu="2", memory="8Gi",
                            labels={REGION: region, NODE: name})  # fmt: skip
        for deployment in deployments.values():
            double.add_deployment(NS, deployment, START, cpu="100m", memory="64Mi")
        kubeconfig = write_kubeconfig(tmp_path / "kubeconfig", double.url)
        overlay = tmp_path / "scaler.yaml"
        overlay.write_text(yaml.safe_dump({"scaler": {
            "pools": deployments, "per_replica_rps": PER_REPLICA, "max_step": STEP,
            "min_replicas": 1, "max_replicas": 30, "min_share": 0.0}}))  # fmt: skip
        env = {k: v for k, v in os.environ.items()
               if not k.startswith(("KUBE", "HOOKS_", "INTEGRATION_MODE", "POLICY_"))}  # fmt: skip
        env.update(
            HOME=str(tmp_path), PYTHONPATH=str(ROOT), KUBECONFIG=str(kubeconfig),
            NAMESPACE=NS, PROMETHEUS_ADDR=prom.url, INTEGRATION_MODE="live",
            HOOKS_SCALER_POLICY_URL=policy,
            HOOKS_SCALER_OUTPUT=str(tmp_path / "cycles.jsonl"),
            HOOKS_SCALER_PLAN_FILE=str(tmp_path / "plan.jsonl"),
        )  # fmt: skip
        double.requests.clear()
        done = subprocess.run(
            [sys.executable, "-m", "hooks.scaler", "once", "--config", str(overlay)],
            cwd=ROOT, env=env, capture_output=True, text=True, timeout=120, check=False,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        patched = {r.path.split("/")[-2]: r.body["spec"]["replicas"]
                   for r in double.mutating()}  # fmt: skip
        assert all(r.path.endswith("/scale") for r in double.mutating())
        nodes = _nodes(double, world.node_names)

    # the same questions, asked by the test, and the shares summed with numpy
    mix = sorted(ARRIVALS)
    routes = httpx.post(policy + "/v1/route/batch", json={"requests": [
        {"request_type": t, "origin": o, "nodes": nodes} for t, o in mix]},
        timeout=30).json()["decisions"]  # fmt: skip
    asked = [(i, region) for i, d in enumerate(routes)
             for region, p in sorted(d["probabilities"].items()) if p > 0]  # fmt: skip
    schedules = httpx.post(policy + "/v1/schedule/batch", json={"requests": [
        {"request_type": mix[i][0], "origin": mix[i][1], "region": region,
         "nodes": nodes} for i, region in asked]}, timeout=30).json()["decisions"]  # fmt: skip
    per_pool = np.zeros(len(pools))
    for (i, region), answer in zip(asked, schedules, strict=True):
        p_region = routes[i]["probabilities"][region] / sum(
            routes[i]["probabilities"].values()
        )
        for node, p in answer["probabilities"].items():
            per_pool[pools.index(node.rsplit("-", 1)[0])] += (
                ARRIVALS[mix[i]] * p_region * p)  # fmt: skip
    assert per_pool.sum() == pytest.approx(sum(ARRIVALS.values()))  # nothing lost
    want = {}
    for pool, rate in zip(pools, per_pool, strict=True):
        target = min(30, max(1, math.ceil(rate / PER_REPLICA - 1e-9)))
        step = max(-STEP, min(STEP, target - START))
        if step:
            want[deployments[pool]] = START + step
    assert want  # the mix needs more than two replicas somewhere
    assert patched == want


def _nodes(double: KubeDouble, names: tuple[str, ...]) -> dict[str, Any]:
    """The ``nodes`` map as the scaler builds it: busy cores from the requests."""
    busy: dict[str, float] = {}
    for pod in double.pods():
        node = pod["spec"]["nodeName"]
        cpu = pod["spec"]["containers"][0]["resources"]["requests"]["cpu"]
        busy[node] = busy.get(node, 0.0) + float(cpu.removesuffix("m")) / 1000
    return {
        n: {"queue_wait_s": 0.0,
            "busy_cores": min(math.ceil(busy.get(_k8s_name(n), 0.0) - 1e-9), 2)}
        for n in names
    }  # fmt: skip
