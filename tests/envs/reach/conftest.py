"""Fixtures of the REACH rescheduling tests: the shipped 7-21 example and toy apps."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from envs.reach import register_envs
from envs.reach.formats import config_from_data, packaged_cluster
from envs.reach.model import ReachConfig

EXAMPLE_ROOT = packaged_cluster().parent


@pytest.fixture(scope="session", autouse=True)
def _registered() -> None:
    register_envs()


@pytest.fixture
def example_copy(tmp_path: Path) -> Callable[..., tuple[Path, Path]]:
    """Copy the 7-21 example into ``tmp_path``, apply edits, return (folder, patterns).

    Call it as ``example_copy(pattern, edit)`` where ``edit(nodes, services,
    patterns)`` mutates the parsed JSON documents in place, and optionally
    ``folder="7-22"`` to rename the cluster folder.
    """

    def make(
        pattern: str = "aggregator_parallel",
        edit: Callable[[dict[str, Any], dict[str, Any], dict[str, Any]], None]
        | None = None,
        folder: str = "7-21",
    ) -> tuple[Path, Path]:
        root = tmp_path / "config"
        shutil.copytree(EXAMPLE_ROOT, root)
        cluster = root / "7-21"
        docs = {
            "nodes": json.loads((cluster / "nodes.json").read_text()),
            "services": json.loads((cluster / "services.json").read_text()),
            "patterns": json.loads(
                (root / f"{pattern}_call_patterns.json").read_text()
            ),
        }
        if edit is not None:
            edit(docs["nodes"], docs["services"], docs["patterns"])
        (cluster / "nodes.json").write_text(json.dumps(docs["nodes"]))
        (cluster / "services.json").write_text(json.dumps(docs["services"]))
        patterns = root / f"{pattern}_call_patterns.json"
        patterns.write_text(json.dumps(docs["patterns"]))
        if folder != "7-21":
            cluster = cluster.rename(root / folder)
        return cluster, patterns

    return make


# ---------------------------------------------------------------- toy cluster
TOY_LATENCY = {
    "client": {"client": ["0.5ms", "0.5ms"], "edge": ["2ms", "2ms"], "cloud": ["50ms", "50ms"]},
    "edge": {"client": ["2ms", "2ms"], "edge": ["0.5ms", "0.5ms"], "cloud": ["20ms", "20ms"]},
    "cloud": {"client": ["50ms", "50ms"], "edge": ["30ms", "30ms"], "cloud": ["0.5ms", "0.5ms"]},
}  # fmt: skip
"""Fixed layer latencies (ms); same-layer entries are ignored by REACH's model (1 ms)."""


def toy_nodes(edge_util: str = "0", cloud_util: str = "0") -> dict[str, Any]:
    """One cloud node (cpu_type 0, 100 MB/s), two edge (type 1, 50 MB/s), one client."""

    def spec(cpu: str, mem: str, util: str) -> dict[str, Any]:
        return {
            "count": 1,
            "cpu_availability": [cpu],
            "memory_availability": [mem],
            "bandwidth_utilization": [util],
        }

    return {
        "node_type": {
            "cl": {"cpu_type": 0, "bandwidth": "800m"},
            "ed": {"cpu_type": 1, "bandwidth": "400m"},
            "ee": {"cpu_type": 1, "bandwidth": "400m"},
            "cli": {"cpu_type": 2, "bandwidth": "400m"},
        },
        "latency": TOY_LATENCY,
        "cluster_setup": {
            "cloud": {"cl": spec("8", "16G", cloud_util)},
            "edge": {
                "ed": spec("4", "8G", edge_util),
                "ee": spec("4", "8G", edge_util),
            },
            "client": {"cli": spec("2", "4G", "0")},
        },
    }


def toy_services(replicas: dict[str, int]) -> dict[str, Any]:
    """The client service plus one service per entry of ``replicas``."""
    services: dict[str, Any] = {
        "client": {
            "cpu-requests": "100m",
            "memory-requests": "100M",
            "max-replica": 1,
            "type": "service",
            "layer": "client",
        }
    }
    for name, count in replicas.items():
        services[name] = {
            "cpu-requests": "100m",
            "memory-requests": "100M",
            "max-replica": count,
            "type": "service",
        }
    return services


EXEC = {
    "gw": {"0": "2ms", "1": "4ms"},
    "A": {"0": "10ms", "1": "20ms"},
    "B": {"0": "5ms", "1": "8ms"},
    "C": {"0": "1ms", "1": "3ms"},
}


def call(
    name: str, groups: list[dict[str, Any]] | None = None, size: str = "0M"
) -> Any:
    """One call of the toy app."""
    return {"data-size": size, "execution-time": EXEC[name], "call-path": groups or []}


def toy_config(
    endpoints: dict[str, list[dict[str, Any]]],
    replicas: dict[str, int],
    *,
    rps: float = 10,
    nodes: dict[str, Any] | None = None,
) -> ReachConfig:
    """Validate a toy config set (4 nodes) whose endpoints have the given call paths."""
    patterns = {
        name: {"client": "client", "call-path": path, "rps": rps, "qos": "100ms"}
        for name, path in endpoints.items()
    }
    pods = 1 + sum(replicas.values())
    return config_from_data(
        nodes or toy_nodes(),
        toy_services(replicas),
        patterns,
        folder=f"4-{pods}",
        pattern="toy",
    )


def payload_for(
    config: ReachConfig, placement: dict[str, list[str]], cpu: float = 4000.0
) -> dict[str, Any]:
    """A ``/get_action`` body placing each service's pods on the given nodes."""
    nodes = {
        n: {"node_name": n, "cpu_availability": cpu, "memory_availability": 8.0}
        for n in config.node_names
    }
    services = {
        svc: {
            "service_name": svc,
            "pods": [
                {"pod_name": f"{svc}-{i}-x", "node_name": node}
                for i, node in enumerate(hosts)
            ],
        }
        for svc, hosts in placement.items()
    }
    return {"cluster_state": {"nodes": nodes, "services": services}}
