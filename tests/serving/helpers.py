"""Test checkpoints and a real server process on a free loopback port."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import numpy as np
from omegaconf import OmegaConf

from conf.schema import RunConfig
from fl_server.launch import free_port
from policies.checkpoint import save_checkpoint
from policies.local import LocalTrainer
from policies.runs import make_training_env

ROOT = Path(__file__).resolve().parents[2]
SMALL_SCENARIO = ROOT / "envs" / "data" / "scenarios" / "small.yaml"
TINY_POLICY = {
    "net_arch": [32, 32],
    "n_envs": 2,
    "n_steps": 32,
    "batch_size": 32,
    "n_epochs": 1,
}


def run_config(env: str, **sections: Any) -> RunConfig:
    """A typed run config like a composed one (small scenario, tiny learner)."""
    overrides = {
        "env": env,
        "scenario": OmegaConf.load(SMALL_SCENARIO),
        "policy": TINY_POLICY,
        **sections,
    }
    cfg = OmegaConf.to_object(
        OmegaConf.merge(OmegaConf.structured(RunConfig), overrides)
    )
    assert isinstance(cfg, RunConfig)
    return cfg


def train_checkpoint(
    path: Path, cfg: RunConfig, seed: int = 0, steps: int = 64, **meta: Any
) -> Path:
    """Train ``cfg``'s learner a few steps and save it as ``scripts.train`` does."""
    region = "us-east" if cfg.env == "two_tier" else None
    env = make_training_env(cfg, region, cfg.policy.n_envs, seed)
    trainer = LocalTrainer(env, cfg.policy, seed)
    trainer.fit(None, steps)
    config = OmegaConf.to_container(OmegaConf.structured(cfg))
    return save_checkpoint(trainer.model, path, {"config": config, **meta})


@dataclass
class Server:
    """A running ``python -m serving`` process."""

    process: subprocess.Popen[bytes]
    url: str
    log: Path

    def output(self) -> str:
        return self.log.read_text(errors="replace")


def start_server(
    checkpoint: Path,
    log: Path,
    *extra: str,
    env: dict[str, str] | None = None,
    wait: bool = True,
    probe: str = "/readyz",
) -> Server:
    """Start ``python -m serving`` on a free loopback port (and wait for ``probe``)."""
    port = free_port()
    cmd = [
        sys.executable,
        "-m",
        "serving",
        "--checkpoint",
        str(checkpoint),
        "--port",
        str(port),
        *extra,
    ]
    full_env = {**os.environ, "PYTHONPATH": str(ROOT), **(env or {})}
    with log.open("wb") as out:
        process = subprocess.Popen(
            cmd, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT, env=full_env
        )
    server = Server(process, f"http://127.0.0.1:{port}", log)
    if wait:
        try:
            wait_ready(server, probe)
        except BaseException:
            stop_server(server)
            raise
    return server


def wait_ready(server: Server, probe: str = "/readyz", timeout: float = 120.0) -> None:
    """Poll ``probe`` until it answers 200 (port readiness, never a fixed sleep)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise RuntimeError(
                f"server exited with {server.process.returncode}:\n{server.output()}"
            )
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(server.url + probe, timeout=1.0).status_code == 200:
                return
        time.sleep(0.1)
    raise RuntimeError(f"server not ready in {timeout} s:\n{server.output()}")


def stop_server(server: Server) -> None:
    """SIGTERM by PID, then SIGKILL if it does not exit."""
    process = server.process
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=15)


# ---------------------------------------------------------------- request bodies


def reach_body(env: Any, seed: int, rng: np.random.Generator) -> dict[str, Any]:
    """The pod-migrator payload of a cluster sampled by ``env.reset(seed=seed)``.

    ``pod_deployable`` lists a random subset of the non-client nodes for each pod
    (sometimes its own node too, sometimes nothing but it, sometimes nothing at
    all), like REACH's resource-fit check on a busy cluster.
    """
    env.reset(seed=seed)
    core = env.core
    names = env.codec.node_names
    free = core.node_resources(0)
    pods, where = core.pod_names(0), core.pod_nodes(0)
    services: dict[str, Any] = {}
    slot = 0
    for service in core.config.services:
        listed = []
        for _ in range(service.max_replica):
            if where[slot] >= 0:
                listed.append({"node_name": names[where[slot]], "pod_name": pods[slot]})
            slot += 1
        if listed or rng.random() < 0.5:  # services without pods may be left out
            services[service.name] = {"service_name": service.name, "pods": listed}
    targets = [n for n in names if "client" not in n]
    deployable = {
        p["pod_name"]: [str(n) for n in rng.choice(targets, rng.integers(0, 4))]
        for s in services.values()
        for p in s["pods"]
    }
    return {
        "cluster_state": {
            "nodes": {
                name: {
                    "node_name": name,
                    "cpu_availability": float(round(free["cpu_free"][i] * 1000)),
                    "memory_availability": float(round(free["memory_free"][i], 3)),
                }
                for i, name in enumerate(names)
            },
            "services": services,
        },
        "pod_deployable": deployable,
    }


def two_tier_request(
    world: Any, rng: np.random.Generator, rates: bool = False
) -> dict[str, Any]:
    """A live routing request: type, origin, an hour of 2023 and a few node loads.

    With ``rates``, every region's arrival rate too (from idle to twice its
    capacity), as policies that observe region loads need.
    """
    nodes = {}
    for n in rng.choice(world.n_nodes, int(rng.integers(0, 8)), replace=False):
        nodes[world.node_names[n]] = {
            "queue_wait_s": float(round(rng.exponential(0.05), 4)),
            "busy_cores": int(rng.integers(0, world.node_cores[n] + 1)),
        }
    when = datetime(2023, 1, 1, tzinfo=UTC) + timedelta(hours=int(rng.integers(8760)))
    request = {
        "request_type": str(rng.choice(world.type_names)),
        "origin": str(rng.choice(world.region_ids)),
        "time": when.isoformat(),
        "nodes": nodes,
    }
    if rates:
        request["region_rates"] = {
            region: float(round(rng.uniform(0.0, 2.0) * capacity, 3))
            for region, capacity in zip(
                world.region_ids, world.capacity_rps, strict=True
            )
        }
    return request


def observable(request: dict[str, Any], region: str | None = None) -> Any:
    """The same request as the env's own ``ObservableState``."""
    from envs.two_tier.live import NodeLoad, ObservableState

    return ObservableState(
        request_type=request["request_type"],
        origin=request["origin"],
        phase="lb" if region is None else "scheduler",
        selected_region=region,
        time=datetime.fromisoformat(request["time"]),
        nodes={
            name: NodeLoad(load["queue_wait_s"], load["busy_cores"])
            for name, load in request["nodes"].items()
        },
        region_rates=request.get("region_rates"),
    )
