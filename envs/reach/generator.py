"""Generate valid REACH config sets of any size: nodes, services and call patterns.

The output is in REACH's own formats, so a generated folder can be fed to REACH as
well as to this project. Capacities are sized so that every service fits and the
default placement of the largest replica counts uses well under half the cluster,
which keeps resets from ever failing. The same ``seed`` gives the same files.
"""

from __future__ import annotations

import itertools
import json
import math
import os
import random
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from envs.reach.formats import config_from_data
from envs.reach.model import PATTERNS, ReachConfig

_FANOUT = 4
_CPU_FACTOR = {0: 1.0, 1: 1.5, 2: 2.0}
_CLIENT, _EDGE, _CLOUD = ["1ms", "4ms"], ["0.5ms", "2ms"], ["40ms", "180ms"]
_LATENCY = {
    "client": {"client": ["0.2ms", "0.2ms"], "edge": _CLIENT, "cloud": _CLOUD},
    "edge": {"client": _CLIENT, "edge": _EDGE, "cloud": ["35ms", "160ms"]},
    "cloud": {"client": _CLOUD, "edge": ["35ms", "160ms"], "cloud": ["0.3ms", "0.3ms"]},
}
"""Layer latency ranges of the generated clusters (those of the 7-21 example)."""


@dataclass(frozen=True)
class GeneratedConfig:
    """One generated config set, as JSON-ready dicts."""

    n_nodes: int
    """Total nodes (the folder's first number)."""
    n_pods: int
    """Total pod slots (the folder's second number)."""
    nodes: dict[str, Any]
    """nodes.json."""
    services: dict[str, Any]
    """services.json."""
    call_patterns: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Pattern name -> ``<pattern>_call_patterns.json``."""

    @property
    def folder_name(self) -> str:
        """``<nodes>-<pods>``."""
        return f"{self.n_nodes}-{self.n_pods}"

    def to_config(self, pattern: str) -> ReachConfig:
        """Validate in memory with the strict loader and return the parsed config."""
        return config_from_data(
            self.nodes,
            self.services,
            self.call_patterns[pattern],
            folder=self.folder_name,
            pattern=pattern,
            nodes_file=f"{self.folder_name}/nodes.json",
            services_file=f"{self.folder_name}/services.json",
            patterns_file=f"{pattern}_call_patterns.json",
        )


def _split(total: int, parts: int) -> list[int]:
    base, extra = divmod(total, parts)
    return [base + (1 if i < extra else 0) for i in range(parts)]


def _ms(value: float) -> str:
    return f"{value:.3f}".rstrip("0").rstrip(".") + "ms"


def _services(n_pods: int, rng: random.Random, has_edge: bool) -> dict[str, Any]:
    services: dict[str, Any] = {
        "client": {
            "cpu-requests": "300m",
            "memory-requests": "256M",
            "max-replica": 1,
            "type": "service",
            "layer": "client",
        }
    }
    slots = n_pods - 1
    count = max(1, math.ceil(slots / 4))
    persistent = count // 8
    pinned = count // 8 if has_edge else 0
    for i, replicas in enumerate(_split(slots, count)):
        name = "gateway" if i == 0 else f"svc{i:03d}"
        spec: dict[str, Any] = {
            "cpu-requests": f"{rng.randrange(100, 600, 50)}m",
            "memory-requests": f"{rng.randrange(128, 1024, 64)}M",
            "max-replica": replicas,
            "type": "persistent" if i >= count - persistent else "service",
        }
        if 0 < i <= pinned:
            spec["layer"] = "edge"
        services[name] = spec
    return services


def _nodes(
    n_nodes: int, services: dict[str, Any], rng: random.Random
) -> dict[str, Any]:
    others = n_nodes - 1
    clouds = max(1, round(others * 0.25)) if others > 1 else 0
    edges = others - clouds
    medium, small = edges - edges // 2, edges // 2
    cpu_total = sum(
        int(s["cpu-requests"][:-1]) / 1000 * s["max-replica"] for s in services.values()
    )
    mem_total = sum(
        int(s["memory-requests"][:-1]) / 1024 * s["max-replica"]
        for s in services.values()
    )
    # Weighted shares: cloud 4, edge-md 2, edge-sm 1; minimum capacity = 3x the need.
    weight = 4 * clouds + 2 * medium + small
    cpu_unit = max(1.0, 3.0 * cpu_total / weight)
    mem_unit = max(1.0, 3.0 * mem_total / weight)

    def setup(count: int, scale: int) -> dict[str, Any]:
        cpu_lo = math.ceil(cpu_unit * scale)
        mem_lo = math.ceil(mem_unit * scale)
        return {
            "count": count,
            "cpu_availability": [str(cpu_lo), str(cpu_lo * 2)],
            "memory_availability": [f"{mem_lo}G", f"{mem_lo * 2}G"],
            "bandwidth_utilization": ["0", f"{rng.choice([0.1, 0.2, 0.3])}"],
        }

    node_type: dict[str, Any] = {}
    cluster: dict[str, Any] = {}
    if clouds:
        node_type["gen-cloud-xl"] = {"cpu_type": 0, "bandwidth": "1000m"}
        cluster["cloud"] = {"gen-cloud-xl": setup(clouds, 4)}
    edge: dict[str, Any] = {}
    if medium:
        node_type["gen-edge-md"] = {"cpu_type": 1, "bandwidth": "300m"}
        edge["gen-edge-md"] = setup(medium, 2)
    if small:
        node_type["gen-edge-sm"] = {"cpu_type": 2, "bandwidth": "150m"}
        edge["gen-edge-sm"] = setup(small, 1)
    if edge:
        cluster["edge"] = edge
    node_type["gen-client"] = {"cpu_type": 2, "bandwidth": "150m"}
    cluster["client"] = {
        "gen-client": {
            "count": 1,
            "cpu_availability": ["2", "2"],
            "memory_availability": ["4G", "4G"],
            "bandwidth_utilization": ["0", "0"],
        }
    }
    layers = list(cluster)
    latency = {src: {dst: _LATENCY[src][dst] for dst in layers} for src in layers}
    return {"node_type": node_type, "latency": latency, "cluster_setup": cluster}


def _call(name: str, base: dict[str, float], rng: random.Random) -> dict[str, Any]:
    return {
        "data-size": f"{rng.choice([0.05, 0.1, 0.2, 0.3, 0.5])}M",
        "execution-time": {str(t): _ms(base[name] * f) for t, f in _CPU_FACTOR.items()},
        "call-path": [],
    }


def _tree(
    pattern: str, chain: Sequence[str], base: dict[str, float], rng: random.Random
) -> list[dict[str, Any]]:
    """The root's call-path over ``chain`` (first = entry service) in one pattern."""
    calls = {name: _call(name, base, rng) for name in chain}
    if pattern == "chain":
        for parent, child in itertools.pairwise(chain):
            calls[parent]["call-path"] = [{child: calls[child]}]
    else:
        for i, name in enumerate(chain[1:], start=1):
            caller = calls[chain[(i - 1) // _FANOUT]]
            if pattern == "aggregator_parallel":
                caller["call-path"].append({name: calls[name]})
            elif caller["call-path"]:
                caller["call-path"][0][name] = calls[name]
            else:
                caller["call-path"].append({name: calls[name]})
    return [{chain[0]: calls[chain[0]]}]


def _critical_ms(groups: list[dict[str, Any]]) -> float:
    best = 0.0
    for group in groups:
        total = 0.0
        for call in group.values():
            total += float(call["execution-time"]["1"][:-2]) + 20.0
            total += _critical_ms(call["call-path"])
        best = max(best, total)
    return best


def _patterns(
    services: dict[str, Any],
    patterns: Sequence[str],
    endpoints: int,
    rng: random.Random,
) -> dict[str, dict[str, Any]]:
    names = [n for n in services if n != "client"]
    base = {name: round(rng.uniform(2.0, 40.0), 2) for name in names}
    chains = [names]
    for _ in range(1, endpoints):
        subset = rng.sample(names[1:], k=max(0, (len(names) - 1) // 2))
        chains.append([names[0], *subset])
    rates = [rng.randint(2, 10) for _ in chains]
    out: dict[str, dict[str, Any]] = {}
    for pattern in patterns:
        doc: dict[str, Any] = {}
        for e, (chain, rps) in enumerate(zip(chains, rates, strict=True)):
            path = _tree(pattern, chain, base, random.Random(rng.random()))
            qos = _critical_ms(path) + 60.0
            doc[f"api{e}"] = {
                "client": "client",
                "call-path": path,
                "rps": rps,
                "qos": _ms(round(qos)),
            }
        out[pattern] = doc
    return out


def generate(
    n_nodes: int,
    n_pods: int,
    *,
    seed: int = 0,
    patterns: Sequence[str] = PATTERNS,
    endpoints: int = 2,
) -> GeneratedConfig:
    """A valid config set with ``n_nodes`` nodes and ``n_pods`` pod slots.

    Args:
        n_nodes: total nodes, >= 3 (one client node, the rest edge and cloud).
        n_pods: total pod slots, >= 2 (one client pod slot, the rest services).
        seed: the same seed gives the same files.
        patterns: which call-pattern files to write.
        endpoints: endpoints per call-pattern file (the first covers every service).
    """
    if n_nodes < 3:
        raise ValueError(f"n_nodes: expected >= 3 (client, edge, cloud), got {n_nodes}")
    if n_pods < 2:
        raise ValueError(
            f"n_pods: expected >= 2 (client and one service), got {n_pods}"
        )
    if endpoints < 1:
        raise ValueError(f"endpoints: expected >= 1, got {endpoints}")
    unknown = [p for p in patterns if p not in PATTERNS]
    if unknown:
        raise ValueError(f"patterns: expected names from {PATTERNS}, got {unknown}")
    rng = random.Random(seed)
    services = _services(n_pods, rng, has_edge=n_nodes > 2)
    nodes = _nodes(n_nodes, services, rng)
    call_patterns = _patterns(services, patterns, endpoints, rng)
    return GeneratedConfig(n_nodes, n_pods, nodes, services, call_patterns)


def _write_json(path: Path, data: object) -> None:
    """Write atomically (temp file + rename) so a reader never sees half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        json.dump(data, handle, indent=4)
        handle.write("\n")
    os.replace(tmp, path)


def write_config(generated: GeneratedConfig, root: str | Path) -> Path:
    """Write REACH's layout under ``root``; return the cluster folder.

    ``root/<nodes>-<pods>/{nodes,services}.json`` and
    ``root/<pattern>_call_patterns.json``.
    """
    base = Path(root)
    folder = base / generated.folder_name
    _write_json(folder / "nodes.json", generated.nodes)
    _write_json(folder / "services.json", generated.services)
    for pattern, doc in generated.call_patterns.items():
        _write_json(base / f"{pattern}_call_patterns.json", doc)
    return folder
