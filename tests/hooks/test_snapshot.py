"""``python -m hooks.snapshot`` writes REACH files that the simulator's loader takes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from envs.reach.config import RescheduleConfig
from envs.reach.env import ReachRescheduleEnv
from envs.reach.formats import load_reach_config, packaged_cluster
from hooks.kubernetes.client import KubeApi
from hooks.snapshot import CPU_TYPE_LABEL, LAYER_LABEL, snapshot
from tests.hooks.kube_double import KubeDouble

ROOT = Path(__file__).resolve().parents[2]
NS = "shop"
TEMPLATE = packaged_cluster()
PATTERN = "aggregator_sequential"
NODES = [  # name, layer, cpu type, allocatable cores, GiB
    ("ex-cloud-xl-1", "cloud", 0, 12, 30),
    ("ex-cloud-xl-2", "cloud", 0, 8, 16),
    ("ex-edge-md-1", "edge", 1, 6, 12),
    ("ex-edge-md-2", "edge", 1, 4, 8),
    ("ex-edge-sm-1", "edge", 2, 3, 6),
    ("ex-edge-sm-2", "edge", 2, 2, 4),
    ("ex-client-sm-1", "client", 2, 2, 4),
]
APPS = [  # deployment, replicas, cpu, memory (auth is not deployed: template kept)
    ("client", 1, "300m", "256Mi"),
    ("gateway", 2, "400m", "512Mi"),
    ("catalog", 3, "500m", "800Mi"),
    ("inference", 1, "1200m", "1500Mi"),
    ("cache", 1, "200m", "1Gi"),
    ("storage", 1, "300m", "1Gi"),
]


@pytest.fixture
def cluster(bare_double: KubeDouble) -> KubeDouble:
    d = bare_double
    for name, layer, cpu_type, cores, gib in NODES:
        d.add_node(name, cpu=str(cores), memory=f"{gib}Gi",
                   labels={LAYER_LABEL: layer, CPU_TYPE_LABEL: str(cpu_type)})  # fmt: skip
    # background load the application cannot use: 2 cores, 4 GiB on ex-cloud-xl-1
    d.add_pod("kube-system", "metrics", "ex-cloud-xl-1", "2", "4Gi", {"app": "metrics"})
    for name, replicas, cpu, memory in APPS:
        selector = {LAYER_LABEL: "client"} if name == "client" else None
        d.add_deployment(NS, name, replicas, cpu=cpu, memory=memory,
                         labels={"tier": "app"}, node_selector=selector)  # fmt: skip
    d.requests.clear()
    return d


def _expected_nodes() -> dict[str, Any]:
    """Allocatable minus the background pod, as [min, max] per node type."""
    free = {n: (c - (2 if n == "ex-cloud-xl-1" else 0), g - (4 if n == "ex-cloud-xl-1" else 0))
            for n, _, _, c, g in NODES}  # fmt: skip
    setup: dict[str, Any] = {}
    for node_type in ("ex-cloud-xl", "ex-edge-md", "ex-edge-sm", "ex-client-sm"):
        members = [n for n in NODES if n[0].startswith(node_type + "-")]
        cores = [free[n[0]][0] for n in members]
        gib = [free[n[0]][1] for n in members]
        setup.setdefault(members[0][1], {})[node_type] = {
            "count": len(members),
            "cpu_availability": [f"{min(cores) * 1000}m", f"{max(cores) * 1000}m"],
            "memory_availability": [f"{min(gib):.3f}G", f"{max(gib):.3f}G"],
            "bandwidth_utilization": ["0", "0"],
        }
    return setup


def _snapshot_cli(kubeconfig: Path, tmp_path: Path) -> Path:
    """``python -m hooks.snapshot`` against the double; the cluster folder."""
    out = tmp_path / "snapshot"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KUBE", "HOOKS_"))}
    env.update(PYTHONPATH=str(ROOT), HOME=str(tmp_path), KUBECONFIG=str(kubeconfig),
               NAMESPACE=NS, APP_LABEL="tier=app")  # fmt: skip
    done = subprocess.run(
        [sys.executable, "-m", "hooks.snapshot", "--out", str(out), "--template",
         str(TEMPLATE), "--pattern", PATTERN, "--no-prometheus"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return out / "7-21"


def test_cli_writes_files_the_loader_takes(
    cluster: KubeDouble, kubeconfig: Path, tmp_path: Path
) -> None:
    folder = _snapshot_cli(kubeconfig, tmp_path)
    out = folder.parent
    assert {r.method for r in cluster.requests} == {"GET"}
    nodes = json.loads((folder / "nodes.json").read_text())
    assert nodes["cluster_setup"] == _expected_nodes()
    template_nodes = json.loads((TEMPLATE / "nodes.json").read_text())
    assert nodes["latency"] == template_nodes["latency"]
    assert {k: v["cpu_type"] for k, v in nodes["node_type"].items()} == {
        "ex-cloud-xl": 0, "ex-edge-md": 1, "ex-edge-sm": 2, "ex-client-sm": 2,
    }  # fmt: skip
    services = json.loads((folder / "services.json").read_text())
    template = json.loads((TEMPLATE / "services.json").read_text())
    assert list(services) == list(template)  # the template's order
    assert services["gateway"] == {"cpu-requests": "400m", "memory-requests": "512.0M",
                                   "max-replica": 3, "type": "service"}  # fmt: skip
    assert services["cache"]["memory-requests"] == "1024.0M"
    assert (
        services["cache"]["layer"] == "edge"
        and services["storage"]["type"] == "persistent"
    )
    assert services["auth"] == template["auth"]  # not deployed: the template's numbers
    patterns = json.loads((out / f"{PATTERN}_call_patterns.json").read_text())
    assert patterns == json.loads(
        (TEMPLATE.parent / f"{PATTERN}_call_patterns.json").read_text()
    )
    # the simulator's own loader and env take the files
    config = load_reach_config(folder, PATTERN)
    gateway = next(s for s in config.services if s.name == "gateway")
    assert (gateway.cpu, gateway.memory) == (pytest.approx(0.4), pytest.approx(0.5))
    assert len(config.nodes.nodes) == 7


@pytest.mark.slow  # building the env compiles its numba kernels (~40 s when cold)
def test_the_env_runs_on_a_snapshot(
    cluster: KubeDouble, kubeconfig: Path, tmp_path: Path
) -> None:
    folder = _snapshot_cli(kubeconfig, tmp_path)
    env_ = ReachRescheduleEnv(
        config=RescheduleConfig(cluster=str(folder), pattern=PATTERN)
    )
    _, info = env_.reset(seed=0)
    assert info["action_mask"][-1]  # stop is always allowed
    _, _, terminated, _, _ = env_.step(int(env_.action_space.n) - 1)
    assert terminated


class MeasuredPrometheus:
    """Stands for the adapter: what Prometheus would have answered."""

    def node_availability(self) -> dict[str, tuple[float, float]]:
        return {n: (c / 2, g / 2) for n, _, _, c, g in NODES}

    def mean_latency_by_node(self) -> dict[str, dict[str, float]]:
        return {"gateway": {"ex-edge-md-1": 0.004, "ex-edge-md-2": 0.006,
                            "ex-cloud-xl-1": 0.002}}  # fmt: skip

    def request_rates(self) -> dict[str, float]:
        return {"gateway": 42.5}


def test_measured_times_and_rates_go_into_the_call_patterns(
    cluster: KubeDouble, api: KubeApi, tmp_path: Path
) -> None:
    folder = snapshot(api, MeasuredPrometheus(), NS, "tier=app", "", TEMPLATE,
                      PATTERN, tmp_path)  # fmt: skip
    patterns = json.loads((tmp_path / f"{PATTERN}_call_patterns.json").read_text())
    gateway = patterns["browse"]["call-path"][0]["gateway"]
    # CPU type 1 (edge-md): mean of 4 ms and 6 ms; type 0 (cloud): 2 ms; type 2 kept
    assert gateway["execution-time"] == {"0": "2.000ms", "1": "5.000ms", "2": "6ms"}
    assert patterns["browse"]["rps"] == 42.5
    # availability = measured free + the app's own requests on that node
    nodes = json.loads((folder / "nodes.json").read_text())
    view = {p["spec"]["nodeName"]: 0.0 for p in cluster.pods()}
    for pod in cluster.pods(NS):
        req = pod["spec"]["containers"][0]["resources"]["requests"]["cpu"]
        view[pod["spec"]["nodeName"]] += float(req[:-1]) / 1000
    cores = {n: c / 2 + view.get(n, 0.0) for n, _, _, c, _ in NODES}
    cloud = nodes["cluster_setup"]["cloud"]["ex-cloud-xl"]["cpu_availability"]
    low, high = sorted([cores["ex-cloud-xl-1"], cores["ex-cloud-xl-2"]])
    assert cloud == [f"{round(low * 1000)}m", f"{round(high * 1000)}m"]
    load_reach_config(folder, PATTERN)
