"""The compose demo's process graph, for real, as plain processes on 127.0.0.1.

Every service of ``docker-compose.yaml`` runs with its own command line, environment
and start order (``compose_graph`` translates them): the certificate one-shot, a TLS
SuperLink, three SuperNodes each with its warm worker, ``flwr run`` through the
submit one-shot, the keyed policy server, the migrator asking it with the key, and
a real Prometheus scraping both. The migrator's cluster is the Kubernetes API double
seeded with the trained topology; its latency query asks Prometheus whether the
policy server is up (1000 ms when it is, above the QoS), so it plans as soon as the
loop is closed. One federation round (``DEMO_ROUNDS=1``).

A policy trained for one tiny round usually answers "stop" on a healthy cluster, so
to see the migrator plan a move the test then publishes a policy made for it (the
global checkpoint with its output layer set so that every allowed move outranks
stop): the server reloads it, and the migrator must log ``DRY-RUN would migrate``
for a move the payload allows and record it.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import torch

from envs.reach.formats import load_reach_config, packaged_cluster
from fl_server.launch.certificates import make_node_key
from fl_server.launch.processes import free_port
from hooks.jsonl import read_jsonl
from policies.checkpoint import load_checkpoint, load_metadata, save_checkpoint
from tests.hooks.conftest import write_kubeconfig
from tests.hooks.kube_double import KubeDouble

from .compose_graph import Graph, resolve
from .conftest import ROOT

pytestmark = [pytest.mark.slow, pytest.mark.e2e]

NAMESPACE = "shop"
REGIONS = ("us-east", "eu-central", "asia-east")
PART_OF = ("app.kubernetes.io/part-of", "reach-demo")


def until(what: str, probe: Any, timeout: float, graph: Graph) -> Any:
    """Poll ``probe()`` until it returns something truthy; fail naming ``what``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = probe()
        if value:
            return value
        dead = [n for n, m in graph.processes.items()  # one-shots may end
                if not m.alive() and graph.services[n].get("restart") != "no"]  # fmt: skip
        assert not dead, {n: graph.log(n)[-2000:] for n in dead}
        time.sleep(1.0)
    raise TimeoutError(f"{what} after {timeout} s; logs in {graph.logs}")


@pytest.fixture
def double() -> Iterator[KubeDouble]:
    with KubeDouble() as d:
        yield d


@pytest.fixture
def graph(double: KubeDouble, tmp_path: Path) -> Iterator[Graph]:
    yield from running(double, tmp_path, [ROOT / "docker-compose.yaml"])


@pytest.fixture
def auth_graph(double: KubeDouble, tmp_path: Path) -> Iterator[Graph]:
    files = [ROOT / "docker-compose.yaml", ROOT / "docker-compose.auth.yaml"]
    yield from running(double, tmp_path, files)


def running(double: KubeDouble, tmp_path: Path, files: list[Path]) -> Iterator[Graph]:
    """The graph of ``files`` (not started), stopped by PID afterwards."""
    kubeconfig = write_kubeconfig(tmp_path / "kubeconfig", double.url)
    model = resolve(
        files,
        {
            "DEMO_ROUNDS": "1",
            "MIGRATOR_KUBECONFIG": str(kubeconfig),
            "MIGRATOR_NAMESPACE": NAMESPACE,
            "MIGRATOR_APP_LABEL": "=".join(PART_OF),
            "MIGRATOR_LATENCY_QUERY": '1000 * max(up{job="policy-server"})',
        },
    )
    graph = Graph(model, tmp_path / "graph")
    try:
        yield graph
    finally:
        graph.stop()
        assert graph.left() == []


def get(url: str, **kw: Any) -> httpx.Response | None:
    try:
        return httpx.get(url, timeout=5, **kw)
    except httpx.HTTPError:
        return None


def seed(double: KubeDouble, ready: dict[str, Any]) -> None:
    """The served topology (``/readyz``), one pod per service, in the namespace.

    Node sizes and pod requests are the packaged cluster's (largest node choice).
    """
    config = load_reach_config(packaged_cluster(), "aggregator_sequential")
    sizes = {n.name: n for n in config.nodes.nodes}
    assert set(ready["nodes"]) == set(sizes)  # the demo regions are the 7-21 cluster
    for name in ready["nodes"]:
        node = sizes[name]
        double.add_node(name, cpu=f"{max(node.cpu_choices):g}",
                        memory=f"{max(node.memory_choices):g}Gi")  # fmt: skip
    requests = {s.name: s for s in config.services}
    for name in ready["services"]:
        service = requests[name]
        double.add_deployment(
            NAMESPACE, name, 1, cpu=f"{service.cpu * 1000:g}m",
            memory=f"{service.memory * 1024:g}Mi", labels=dict([PART_OF]),
        )  # fmt: skip


def test_the_compose_graph_federates_serves_scrapes_and_plans(
    graph: Graph, double: KubeDouble
) -> None:
    graph.up(timeout=240)
    runs = graph.root / "volumes" / "runs"
    secrets = graph.root / "volumes" / "secrets"

    # one federation round completes: submit follows the run to finished:completed
    until("submit finished", lambda: graph.processes["submit"].popen.poll() is not None,
          900, graph)  # fmt: skip
    assert graph.processes["submit"].popen.returncode == 0, graph.log("submit")[-4000:]
    assert "finished:completed" in graph.log("submit")
    folder = runs / "runs" / "demo"
    assert json.loads((folder / "state.json").read_text())["last_round"] == 1
    checkpoint = folder / "global_policy.zip"
    digest = hashlib.sha256(checkpoint.read_bytes()).hexdigest()

    # the policy server loads that checkpoint (its key from the secrets volume)
    key = (secrets / "api" / "serving-api-key").read_text().strip()
    base = f"http://127.0.0.1:{graph.port('policy-server', 8000)}"

    def loaded() -> dict[str, Any] | None:
        reply = get(base + "/readyz")
        if reply is None or reply.status_code != 200:
            return None
        body: dict[str, Any] = reply.json()
        return body if digest[:12] in json.dumps(body) else None

    ready = until("policy server loaded the global checkpoint", loaded, 180, graph)
    assert get(base + "/metrics").status_code == 401  # type: ignore[union-attr]
    metrics = get(base + "/metrics", headers={"X-API-Key": key})
    assert metrics is not None and metrics.status_code == 200
    seed(double, ready)
    seeded_at = time.time() + 3  # earlier steps may have read a partial cluster

    # Prometheus scrapes both targets
    prometheus = f"http://127.0.0.1:{graph.port('prometheus', 9090)}"

    def both_up() -> dict[str, str] | None:
        reply = get(prometheus + "/api/v1/query", params={"query": "up"})
        if reply is None or reply.status_code != 200:
            return None
        seen = {
            r["metric"]["job"]: r["value"][1] for r in reply.json()["data"]["result"]
        }
        return seen if seen == {"policy-server": "1", "migrator": "1"} else None

    until("Prometheus scraped the policy server and the migrator", both_up, 120, graph)

    # the migrator decides (dry-run) on the seeded cluster with the trained policy,
    # asking the keyed server with the key; the cluster receives reads only
    series = runs / "migrator" / "timeseries.jsonl"

    def decided(after: float, events: set[str]) -> list[dict[str, Any]]:
        rows = read_jsonl(series) if series.exists() else []
        return [r for r in rows if r["event"] in events and r["timestamp"] > after]

    decisions = until("the migrator's first decision",
                      lambda: decided(seeded_at, {"stop", "rescheduling"}), 180, graph)  # fmt: skip
    first = decisions[0]
    assert first["mode"] == "dry-run" and first["latency"] == 1000.0
    assert set(first["payload"]["cluster_state"]["nodes"]) == set(ready["nodes"])
    assert set(first["payload"]["cluster_state"]["services"]) == set(ready["services"])
    assert "MODE dry-run" in graph.log("migrator")

    # a policy made for the test: every allowed move outranks stop
    published = time.time()
    force_moves(checkpoint)
    until("the policy server reloaded the test's policy",
          lambda: (r := get(base + "/readyz")) is not None and r.status_code == 200
          and r.json()["policy_version"] != ready["policy_version"], 120, graph)  # fmt: skip
    moves = until("a planned move", lambda: decided(published + 2, {"rescheduling"}),
                  120, graph)  # fmt: skip
    move = moves[0]
    assert move["mode"] == "dry-run" and move["outcome"] == "planned"
    pod, target = move["target_pod"], move["target_node"]
    assert target in move["payload"]["pod_deployable"][pod]  # a move it allows
    assert target != move["current_node"] and target in ready["nodes"]
    line = f"DRY-RUN would migrate Pod {NAMESPACE}/{pod} ({move['current_node']} -> {target})"
    assert line in graph.log("migrator")
    plan = read_jsonl(runs / "migrator" / "plan.jsonl")
    assert {"action": "MigratePod", "namespace": NAMESPACE, "pod": pod,
            "target_node": target, "current_node": move["current_node"],
            "mode": "dry-run"}.items() <= next(
        r for r in plan if r["pod"] == pod and r["timestamp"] > published).items()  # fmt: skip
    assert all(r["mode"] == "dry-run" for r in plan)
    assert double.mutating() == []

    # ... and Prometheus sees the migrator's decisions
    def counted() -> bool:
        reply = get(prometheus + "/api/v1/query",
                    params={"query": "sum(hooks_migrator_decisions_total)"})  # fmt: skip
        result = reply.json()["data"]["result"] if reply is not None else []
        return bool(result) and float(result[0]["value"][1]) >= 1

    until("Prometheus scraped the migrator's decisions", counted, 60, graph)


def force_moves(checkpoint: Path) -> None:
    """Rewrite the served policy: every move's logit 0, stop's far below.

    The masked argmax is then the first move the request allows, whatever the
    trained weights said; the metadata (config, round) stays, the file is replaced
    atomically as the federation would.
    """
    model = load_checkpoint(checkpoint)
    head = model.policy.action_net
    # the shipped greedy_mlp head is a linear layer plus beta * move gain
    linear = getattr(head, "linear", head)
    assert linear.out_features == model.action_space.n  # stop is the last action
    with torch.no_grad():
        linear.weight.zero_()
        linear.bias.zero_()
        linear.bias[-1] = -50.0
        if hasattr(head, "log_beta"):
            head.log_beta.fill_(-30.0)  # beta ~ 1e-13: the gain prior vanishes
    save_checkpoint(model, checkpoint, load_metadata(checkpoint))


def test_the_auth_overlay_admits_registered_supernodes_and_refuses_others(
    auth_graph: Graph, tmp_path: Path
) -> None:
    """Node authentication: registered keys federate, an unregistered one is refused."""
    graph = auth_graph
    graph.up(timeout=240, only={"submit", *(f"worker-{r}" for r in REGIONS)})
    assert "--enable-supernode-auth" in graph.command("superlink")
    until("submit finished", lambda: graph.processes["submit"].popen.poll() is not None,
          900, graph)  # fmt: skip
    assert graph.processes["submit"].popen.returncode == 0, graph.log("submit")[-4000:]
    assert "finished:completed" in graph.log("submit")
    assert graph.log("register").count(" registered") == len(REGIONS)
    for region in REGIONS:
        command = graph.log(f"supernode-{region}").splitlines()[0]
        assert f"--auth-supernode-private-key {graph.root}" in command, command

    # a SuperNode with a key nobody registered, otherwise configured like the others
    rogue_key, _ = make_node_key(tmp_path / "rogue", "rogue")
    command = graph.command("supernode-us-east")
    command[command.index("--port") + 1] = str(free_port())
    env = {
        **graph.environment("supernode-us-east"),
        "SUPERNODE_AUTH_KEY": str(rogue_key),
    }
    rogue = subprocess.run([*command, "--max-retries", "1"], cwd=ROOT, env=env,
                           capture_output=True, text=True, timeout=180, check=False)  # fmt: skip
    assert rogue.returncode != 0, "a SuperNode with an unregistered key was accepted"
    assert f"--auth-supernode-private-key {rogue_key}" in rogue.stderr
    assert "Failed to activate SuperNode" in rogue.stdout + rogue.stderr, (
        (rogue.stdout + rogue.stderr)[-3000:])  # fmt: skip

    # registering again is a no-op (the one-shot runs on every `up`)
    rerun = subprocess.run(graph.command("register"), cwd=ROOT,
                           env=graph.environment("register"), capture_output=True,
                           text=True, timeout=120, check=False)  # fmt: skip
    assert rerun.returncode == 0, rerun.stderr
    assert rerun.stderr.count("already registered") == len(REGIONS), rerun.stderr
