"""``python -m hooks.snapshot``: cluster measurements as files the simulator loads.

Writes ``<out>/<N>-<P>/nodes.json`` and ``services.json`` and
``<out>/<pattern>_call_patterns.json`` in REACH's formats, so a policy can be
retrained on the live cluster's numbers (data, not an import: ``envs`` never imports
``hooks``). Measured: node free CPU/memory (Prometheus, or the API's requests view),
per-pod requests and replica counts (the API), request rates and mean execution
time per service and CPU type (Prometheus). Not measurable, so taken from a
template config set: layer latencies, bandwidths, the call graph and QoS targets.
Node names must read ``<node_type>-<i>`` (REACH generates them that way); a node's
layer and CPU type come from labels.

A node's availability in ``nodes.json`` is what the *application* may use: the
simulator places the application's pods itself, so their requests are added back
to the measured free resources (REACH samples availability before placement).
"""

from __future__ import annotations

import argparse
import copy
import json
import logging
import os
import sys
from collections import defaultdict
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from hooks.config import load_config
from hooks.errors import HookError
from hooks.jsonl import write_atomic
from hooks.kubernetes.client import KubeApi
from hooks.kubernetes.state import GIB, ClusterView, NodeInfo
from hooks.prometheus import PrometheusAdapter

log = logging.getLogger("hooks.snapshot")

LAYER_LABEL = "topology.frl.dev/layer"
CPU_TYPE_LABEL = "topology.frl.dev/cpu-type"
DEFAULT_CPU_TYPE = {"cloud": 0, "edge": 1, "client": 2}


def _node_type(name: str) -> str:
    head, _, tail = name.rpartition("-")
    if not head or not tail.isdigit():
        raise ValueError(
            f"node {name!r}: expected a name <node_type>-<i> such as edge-sm-1 "
            "(REACH generates node names that way)"
        )
    return head


def _cpu(cores: float) -> str:
    return f"{max(0, round(cores * 1000))}m"


def _mem(gib: float) -> str:
    return f"{max(0.0, gib):.3f}G"


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.3f}ms"


def build_nodes(
    nodes: Sequence[NodeInfo],
    free: Mapping[str, tuple[float, float]],
    template: Mapping[str, Any],
) -> dict[str, Any]:
    """nodes.json: one node type per ``<type>-<i>`` group, ranges = measured min/max."""
    groups: dict[tuple[str, str], list[NodeInfo]] = defaultdict(list)
    for node in nodes:
        layer = node.labels.get(LAYER_LABEL, "")
        if layer not in DEFAULT_CPU_TYPE:
            raise ValueError(
                f"node {node.name}: expected label {LAYER_LABEL} = cloud, edge or "
                f"client, got {layer!r}"
            )
        groups[(layer, _node_type(node.name))].append(node)
    types: dict[str, Any] = {}
    setup: dict[str, dict[str, Any]] = {}
    for layer in ("cloud", "edge", "client"):
        for (lay, type_name), members in groups.items():
            if lay != layer:
                continue
            members.sort(key=lambda n: int(n.name.rpartition("-")[2]))
            expected = [f"{type_name}-{i}" for i in range(1, len(members) + 1)]
            if [n.name for n in members] != expected:
                raise ValueError(
                    f"node type {type_name}: expected nodes {', '.join(expected)}, "
                    f"got {', '.join(n.name for n in members)}"
                )
            first = members[0]
            old = (template.get("node_type") or {}).get(type_name) or {}
            types[type_name] = {
                "cpu_type": int(
                    first.labels.get(CPU_TYPE_LABEL, DEFAULT_CPU_TYPE[layer])
                ),
                "bandwidth": old.get("bandwidth", "1000m"),
            }
            cpus = [free[n.name][0] for n in members]
            mems = [free[n.name][1] for n in members]
            setup.setdefault(layer, {})[type_name] = {
                "count": len(members),
                "cpu_availability": [_cpu(min(cpus)), _cpu(max(cpus))],
                "memory_availability": [_mem(min(mems)), _mem(max(mems))],
                "bandwidth_utilization": ["0", "0"],
            }
    return {"node_type": types, "latency": copy.deepcopy(template["latency"]),
            "cluster_setup": setup}  # fmt: skip


def build_services(
    view: ClusterView, namespace: str, selector: str, template: Mapping[str, Any]
) -> dict[str, Any]:
    """services.json: template order and types; measured requests and replicas."""
    pods = view.app_pods(namespace, selector)
    by_service: dict[str, list[Any]] = defaultdict(list)
    for pod in pods:
        by_service[pod.service].append(pod)
    out: dict[str, Any] = {}
    for name in [*template, *sorted(set(by_service) - set(template))]:
        spec = dict(template.get(name) or {"type": "service"})
        members = by_service.get(name, [])
        if members:
            spec["cpu-requests"] = _cpu(max(p.cpu for p in members))
            spec["memory-requests"] = f"{max(p.memory for p in members) / 2**20:.1f}M"
        elif "cpu-requests" not in spec:
            continue
        spec["max-replica"] = max(int(spec.get("max-replica", 1)), len(members), 1)
        out[name] = {k: spec[k] for k in
                     ("cpu-requests", "memory-requests", "max-replica", "type", "layer")
                     if k in spec}  # fmt: skip
    return out


def build_patterns(
    template: Mapping[str, Any],
    mean_latency: Mapping[str, Mapping[str, float]],
    rates: Mapping[str, float],
    cpu_type_of: Mapping[str, int],
) -> dict[str, Any]:
    """Call patterns: the template's graph with measured execution times and rps."""
    measured: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    for service, nodes in mean_latency.items():
        for node, seconds in nodes.items():
            if node in cpu_type_of:
                measured[service][str(cpu_type_of[node])].append(seconds)

    def fill(groups: list[dict[str, Any]]) -> None:
        for group in groups:
            for callee, call in group.items():
                for cpu_type, values in measured.get(callee, {}).items():
                    call.setdefault("execution-time", {})[cpu_type] = _ms(
                        sum(values) / len(values)
                    )
                fill(call.get("call-path") or [])

    out = copy.deepcopy(dict(template))
    for endpoint in out.values():
        fill(endpoint["call-path"])
        first = (
            next(iter(endpoint["call-path"][0]), None)
            if endpoint["call-path"]
            else None
        )
        if isinstance(first, str) and first in rates:
            endpoint["rps"] = round(rates[first], 6)
    return out


def write_snapshot(
    out: Path, nodes: dict[str, Any], services: dict[str, Any],
    patterns: dict[str, Any], pattern: str,
) -> Path:  # fmt: skip
    """Write the three files atomically; returns the cluster folder."""
    count = sum(spec["count"] for layer in nodes["cluster_setup"].values()
                for spec in layer.values())  # fmt: skip
    slots = sum(s["max-replica"] for s in services.values())
    folder = out / f"{count}-{slots}"
    write_atomic(folder / "nodes.json", json.dumps(nodes, indent=2) + "\n")
    write_atomic(folder / "services.json", json.dumps(services, indent=2) + "\n")
    write_atomic(out / f"{pattern}_call_patterns.json",
                 json.dumps(patterns, indent=2) + "\n")  # fmt: skip
    return folder


def app_available(
    view: ClusterView,
    namespace: str,
    selector: str,
    nodes: Sequence[NodeInfo],
    measured: Mapping[str, tuple[float, float]],
) -> dict[str, tuple[float, float]]:
    """Measured free (cores, GiB) plus the application's own requests per node."""
    out = {}
    for node in nodes:
        cpu, gib = measured[node.name]
        mine = [p for p in view.app_pods(namespace, selector) if p.node == node.name]
        cpu += sum(p.cpu for p in mine)
        gib += sum(p.memory for p in mine) / GIB
        out[node.name] = (max(cpu, 0.0), max(gib, 0.0))
    return out


def snapshot(
    api: KubeApi, prom: PrometheusAdapter | None, namespace: str, selector: str,
    node_selector: str, template_folder: Path, pattern: str, out: Path,
) -> Path:  # fmt: skip
    """Measure and write; returns the cluster folder written."""
    view = ClusterView.read(api)
    nodes = view.selected_nodes(node_selector)
    if prom is not None:
        measured = prom.node_availability()
        missing = [n.name for n in nodes if n.name not in measured]
        if missing:
            raise HookError(
                "node availability",
                200,
                "no Prometheus samples for " + ", ".join(missing),
            )
        mean, rates = prom.mean_latency_by_node(), prom.request_rates()
    else:
        measured = {n.name: (view.free(n)[0], view.free(n)[1] / GIB) for n in nodes}
        mean, rates = {}, {}
    free = app_available(view, namespace, selector, nodes, measured)
    template_nodes = json.loads((template_folder / "nodes.json").read_text())
    template_services = json.loads((template_folder / "services.json").read_text())
    template_patterns = json.loads(
        (template_folder.parent / f"{pattern}_call_patterns.json").read_text()
    )
    node_json = build_nodes(nodes, free, template_nodes)
    cpu_type_of = {
        n.name: node_json["node_type"][_node_type(n.name)]["cpu_type"] for n in nodes
    }
    return write_snapshot(
        out, node_json, build_services(view, namespace, selector, template_services),
        build_patterns(template_patterns, mean, rates, cpu_type_of), pattern,
    )  # fmt: skip


def main(argv: Sequence[str] | None = None) -> int:
    """CLI: reads only (GETs and PromQL); safe in any mode."""
    parser = argparse.ArgumentParser(prog="python -m hooks.snapshot")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument(
        "--template",
        type=Path,
        required=True,
        help="a REACH cluster folder (latencies, call graph, QoS)",
    )
    parser.add_argument("--pattern", default="aggregator_sequential")
    parser.add_argument(
        "--no-prometheus",
        action="store_true",
        help="use the API's requests view instead of Prometheus",
    )
    parser.add_argument(
        "--config",
        type=Path,
        action="append",
        default=[],
        help="extra YAML overlay (sections kubernetes, prometheus)",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    try:
        cfg = load_config(os.environ, *args.config)
        if not cfg.kubernetes.namespace or not cfg.kubernetes.app_label:
            raise ValueError("NAMESPACE and APP_LABEL: expected both to be set")
        api = KubeApi.from_config(cfg.kubernetes, os.environ)
        prom = (
            None
            if args.no_prometheus
            else PrometheusAdapter.from_config(cfg.prometheus)
        )
        folder = snapshot(api, prom, cfg.kubernetes.namespace, cfg.kubernetes.app_label,
                          cfg.kubernetes.node_selector, args.template, args.pattern,
                          args.out)  # fmt: skip
    except (ValueError, HookError, OSError) as err:
        log.error("snapshot failed: %s", err)
        return 2
    log.info("wrote %s and %s", folder, args.out / f"{args.pattern}_call_patterns.json")
    return 0


if __name__ == "__main__":
    sys.exit(main())
