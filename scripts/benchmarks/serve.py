"""Policy server speed: single-decision latency and throughput, batched throughput.

``python -m scripts.bench serve --json`` trains a tiny policy of the default network
size (unless ``--checkpoint`` is given), starts the real server (``python -m serving``,
one worker) on a free loopback port and drives it from a separate load-generator
process: a plain asyncio HTTP/1.1 client on keep-alive connections that replays
pre-encoded requests (64 different live states), so the client costs little next to
the server on a 2-core machine. Three timed phases, each after a warm-up:

* ``p50_ms`` / ``p99_ms``: open loop at ``--rate`` requests/s (500) on the single
  endpoint; latency runs from each request's *scheduled* send time to the end of its
  response, so queueing behind a slow answer counts (no coordinated omission);
* ``decisions_per_s``: closed loop, ``--connections`` back-to-back clients;
* ``batch_decisions_per_s``: closed loop on ``/v1/route/batch`` with
  ``--batch-size`` decisions per call.

Every response must be a 200 (a count of others is logged and fails the run).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

log = logging.getLogger(__name__)

ROOT = Path(__file__).resolve().parents[2]
SINGLE_PATHS = {
    "route": "/v1/route",
    "schedule": "/v1/schedule",
    "get_action": "/get_action",
}
N_VARIANTS = 64


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Budget and shape of the load."""
    parser.add_argument("--duration", type=float, default=8.0, help="s per phase")
    parser.add_argument("--warmup", type=float, default=1.5, help="s before each")
    parser.add_argument("--rate", type=float, default=500.0, help="open-loop req/s")
    parser.add_argument("--connections", type=int, default=8, help="closed-loop")
    parser.add_argument("--batch-size", type=int, default=256, help="per batch call")
    parser.add_argument(
        "--endpoint",
        choices=sorted(SINGLE_PATHS),
        default="route",
        help="single-decision endpoint measured",
    )
    parser.add_argument(
        "--checkpoint",
        type=Path,
        default=None,
        help="two-tier checkpoint to serve (default: train a tiny one)",
    )


# ---------------------------------------------------------------- checkpoints


def _train_checkpoint(path: Path, env: str) -> Path:
    """A policy of the default network size after a few hundred steps."""
    from omegaconf import OmegaConf

    from conf.schema import RunConfig
    from policies.checkpoint import save_checkpoint
    from policies.local import LocalTrainer
    from policies.runs import make_training_env

    raw = {
        "env": env,
        "scenario": OmegaConf.load(ROOT / "envs" / "data" / "scenarios" / "small.yaml"),
        "policy": {"n_envs": 2, "n_steps": 64, "batch_size": 64, "n_epochs": 1},
    }
    cfg = OmegaConf.to_object(OmegaConf.merge(OmegaConf.structured(RunConfig), raw))
    assert isinstance(cfg, RunConfig)
    region = "us-east" if env == "two_tier" else None
    trainer = LocalTrainer(make_training_env(cfg, region, 2, 0), cfg.policy, 0)
    trainer.fit(None, 256)
    config = OmegaConf.to_container(OmegaConf.structured(cfg))
    return save_checkpoint(trainer.model, path, {"config": config})


# ---------------------------------------------------------------- request bodies


def _two_tier_bodies(checkpoint: Path, path: str, batch: int) -> list[bytes]:
    """Live states of the checkpoint's scenario: random loads, types and origins."""
    from envs import TwoTierCore
    from serving.run_config import run_config_from_metadata

    meta = json.loads(checkpoint.with_suffix(".json").read_text())
    world = TwoTierCore(run_config_from_metadata(meta).scenario, 1).world
    rng = np.random.default_rng(0)

    def state() -> dict[str, Any]:
        nodes = {}
        for n in rng.choice(world.n_nodes, 6, replace=False):
            nodes[world.node_names[n]] = {
                "queue_wait_s": round(float(rng.exponential(0.02)), 4),
                "busy_cores": int(rng.integers(0, world.node_cores[n] + 1)),
            }
        item = {
            "request_type": str(rng.choice(world.type_names)),
            "origin": str(rng.choice(world.region_ids)),
            "time": f"2023-{rng.integers(1, 13):02d}-10T{rng.integers(0, 24):02d}:00Z",
            "nodes": nodes,
        }
        if "schedule" in path:
            item["region"] = item["origin"]
        return item

    if batch:
        docs: list[Any] = [
            {"requests": [state() for _ in range(batch)]} for _ in range(4)
        ]
    else:
        docs = [state() for _ in range(N_VARIANTS)]
    return [json.dumps(d).encode() for d in docs]


def _reach_bodies() -> list[bytes]:
    """REACH pod-migrator payloads of the packaged 7-21 cluster."""
    from envs.reach.env import ReachRescheduleEnv

    env = ReachRescheduleEnv()
    nodes = env.codec.node_names
    out = []
    for seed in range(N_VARIANTS):
        env.reset(seed=seed)
        core = env.core
        res = core.node_resources(0)
        pods = core.pod_names(0)
        where = core.pod_nodes(0)
        services: dict[str, Any] = {}
        slot = 0
        for service in core.config.services:
            listed = []
            for _ in range(service.max_replica):
                if where[slot] >= 0:
                    listed.append(
                        {"pod_name": pods[slot], "node_name": nodes[where[slot]]}
                    )
                slot += 1
            services[service.name] = {"service_name": service.name, "pods": listed}
        body = {
            "cluster_state": {
                "nodes": {
                    name: {
                        "node_name": name,
                        "cpu_availability": round(float(res["cpu_free"][i]) * 1000),
                        "memory_availability": round(float(res["memory_free"][i]), 3),
                    }
                    for i, name in enumerate(nodes)
                },
                "services": services,
            },
            "pod_deployable": {
                p["pod_name"]: [n for n in nodes if "client" not in n]
                for s in services.values()
                for p in s["pods"]
            },
        }
        out.append(json.dumps(body).encode())
    return out


# ---------------------------------------------------------------- the server


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def _server(checkpoint: Path, log_path: Path) -> Any:
    import httpx

    port = _free_port()
    cmd = [sys.executable, "-m", "serving", "--checkpoint", str(checkpoint)]
    cmd += ["--port", str(port), "--reload-interval", "0", "--log-level", "warning"]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    with log_path.open("wb") as out:
        proc = subprocess.Popen(cmd, cwd=ROOT, stdout=out, stderr=out, env=env)
    try:
        deadline = time.monotonic() + 120
        while True:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"server did not start:\n{log_path.read_text()}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"http://127.0.0.1:{port}/readyz").status_code == 200:
                    break
            time.sleep(0.1)
        yield port
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


# ---------------------------------------------------------------- load generator


class _Connection:
    """One keep-alive HTTP/1.1 connection sending pre-encoded POSTs."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.reader: asyncio.StreamReader
        self.writer: asyncio.StreamWriter

    async def open(self) -> None:
        self.reader, self.writer = await asyncio.open_connection("127.0.0.1", self.port)

    async def post(self, request: bytes) -> int:
        self.writer.write(request)
        head = await self.reader.readuntil(b"\r\n\r\n")
        status = int(head[9:12])
        length = 0
        for line in head.split(b"\r\n"):
            if line[:15].lower() == b"content-length:":
                length = int(line[15:])
        await self.reader.readexactly(length)
        return status

    def close(self) -> None:
        self.writer.close()


def _requests(port: int, path: str, bodies: list[bytes]) -> list[bytes]:
    return [
        (
            f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(b)}\r\n\r\n"
        ).encode()
        + b
        for b in bodies
    ]


async def _closed_loop(
    port: int, requests: list[bytes], connections: int, seconds: float
) -> dict[str, Any]:
    conns = [_Connection(port) for _ in range(connections)]
    await asyncio.gather(*(c.open() for c in conns))
    latencies: list[float] = []
    errors = 0
    end = time.perf_counter() + seconds

    async def client(k: int, conn: _Connection) -> None:
        nonlocal errors
        i = k
        while time.perf_counter() < end:
            t0 = time.perf_counter()
            status = await conn.post(requests[i % len(requests)])
            latencies.append(time.perf_counter() - t0)
            errors += status != 200
            i += connections

    start = time.perf_counter()
    await asyncio.gather(*(client(k, c) for k, c in enumerate(conns)))
    elapsed = time.perf_counter() - start
    for c in conns:
        c.close()
    return {"completed": len(latencies), "seconds": elapsed, "errors": errors}


async def _open_loop(
    port: int, requests: list[bytes], rate: float, seconds: float
) -> dict[str, Any]:
    """Send at a fixed schedule; latency counts from the scheduled send time."""
    pool: asyncio.Queue[_Connection] = asyncio.Queue()
    for _ in range(16):
        conn = _Connection(port)
        await conn.open()
        pool.put_nowait(conn)
    latencies: list[float] = []
    errors = 0
    tasks = []

    async def one(i: int, due: float) -> None:
        nonlocal errors
        conn = await pool.get()
        try:
            status = await conn.post(requests[i % len(requests)])
        finally:
            pool.put_nowait(conn)
        latencies.append(time.perf_counter() - due)
        errors += status != 200

    n = int(rate * seconds)
    start = time.perf_counter()
    for i in range(n):
        due = start + i / rate
        delay = due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(i, due)))
    await asyncio.gather(*tasks)
    elapsed = time.perf_counter() - start
    while not pool.empty():
        pool.get_nowait().close()
    ms = np.array(latencies) * 1e3
    return {
        "completed": len(latencies),
        "seconds": elapsed,
        "errors": errors,
        "p50_ms": float(np.percentile(ms, 50)),
        "p99_ms": float(np.percentile(ms, 99)),
    }


def _loadgen(spec: dict[str, Any]) -> dict[str, Any]:
    """One phase, run in the load-generator process (uvloop if available)."""
    with contextlib.suppress(ImportError):
        import uvloop

        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    bodies = [b.encode("latin-1") for b in spec["bodies"]]
    requests = _requests(spec["port"], spec["path"], bodies)
    if spec["mode"] == "open":
        coro = _open_loop(spec["port"], requests, spec["rate"], spec["seconds"])
    else:
        coro = _closed_loop(
            spec["port"], requests, spec["connections"], spec["seconds"]
        )
    warm = dict(spec, seconds=spec["warmup"])
    if spec["mode"] == "open":
        asyncio.run(_open_loop(warm["port"], requests, spec["rate"], warm["seconds"]))
    else:
        asyncio.run(
            _closed_loop(warm["port"], requests, spec["connections"], warm["seconds"])
        )
    return asyncio.run(coro)


def _phase(spec: dict[str, Any]) -> dict[str, Any]:
    """Run one phase in a separate process (never the server's, nor ours)."""
    spec = dict(spec, bodies=[b.decode("latin-1") for b in spec["bodies"]])
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
        json.dump(spec, f)
    try:
        out = subprocess.run(
            [sys.executable, "-m", "scripts.benchmarks.serve", f.name],
            cwd=ROOT,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
            capture_output=True,
            text=True,
            timeout=spec["seconds"] + spec["warmup"] + 120,
            check=True,
        ).stdout
    finally:
        Path(f.name).unlink()
    result: dict[str, Any] = json.loads(out)
    if result["errors"]:
        raise RuntimeError(f"{spec['path']}: {result['errors']} non-200 answers")
    log.info(
        "%s %s: %d answers in %.1f s",
        spec["mode"],
        spec["path"],
        result["completed"],
        result["seconds"],
    )
    return result


# ---------------------------------------------------------------- the benchmark


def run(args: Any) -> dict[str, float]:
    """Measure the four figures."""
    with tempfile.TemporaryDirectory(prefix="bench-serve-") as tmp:
        folder = Path(tmp)
        two_tier = args.checkpoint or _train_checkpoint(folder / "tt.zip", "two_tier")
        common = {"seconds": args.duration, "warmup": args.warmup}
        path = SINGLE_PATHS[args.endpoint]
        figures: dict[str, float] = {}
        if args.endpoint == "get_action":
            single_ckpt = _train_checkpoint(folder / "rs.zip", "reschedule")
            single_bodies = _reach_bodies()
        else:
            single_ckpt, single_bodies = two_tier, _two_tier_bodies(two_tier, path, 0)
        with _server(single_ckpt, folder / "single.log") as port:
            spec = {**common, "port": port, "path": path, "bodies": single_bodies}
            closed = _phase({**spec, "mode": "closed", "connections": args.connections})
            opened = _phase({**spec, "mode": "open", "rate": args.rate})
        figures["decisions_per_s"] = round(closed["completed"] / closed["seconds"])
        figures["p50_ms"] = round(opened["p50_ms"], 3)
        figures["p99_ms"] = round(opened["p99_ms"], 3)
        batch_bodies = _two_tier_bodies(two_tier, "/v1/route/batch", args.batch_size)
        with _server(two_tier, folder / "batch.log") as port:
            batch = _phase(
                {
                    **common,
                    "port": port,
                    "path": "/v1/route/batch",
                    "bodies": batch_bodies,
                    "mode": "closed",
                    "connections": 2,
                }
            )
        figures["batch_decisions_per_s"] = round(
            batch["completed"] * args.batch_size / batch["seconds"]
        )
        return figures


if __name__ == "__main__":  # the load-generator process: one phase, JSON out
    with open(sys.argv[1]) as spec_file:
        print(json.dumps(_loadgen(json.load(spec_file))))
