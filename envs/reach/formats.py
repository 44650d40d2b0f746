"""Strict readers of REACH's config files (spec §0-§4): nothing is guessed.

A config set is a cluster folder named ``<nodes>-<pods>`` holding ``nodes.json`` and
``services.json``, plus one ``<pattern>_call_patterns.json`` (at the config root, one
level above the folder, or inside it). Every key, unit and cross-reference is checked
and any problem raises :class:`~envs.reach.errors.ReachConfigError` naming the file,
the JSON path and what was expected. JSON object order is kept everywhere (never
sorted), because it defines the node and pod axes.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from envs.reach.errors import ReachConfigError
from envs.reach.model import (
    LAYERS,
    Application,
    Call,
    Endpoint,
    Node,
    NodesConfig,
    ReachConfig,
    Service,
)
from envs.reach.units import (
    parse_bandwidth,
    parse_cpu,
    parse_fraction,
    parse_memory,
    parse_time,
)

_FOLDER = re.compile(r"([0-9]+)-([0-9]+)")
_CPU_TYPE_KEY = re.compile(r"[0-9]+")
_SERVICE_LAYERS = ("client", "edge", "cloud", "all")
_PATTERN_SUFFIX = "_call_patterns.json"


# ---------------------------------------------------------------- generic helpers
def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _object(value: object, file: str, path: str, what: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ReachConfigError(file, path, what, value)
    return value


def _non_empty_object(value: object, file: str, path: str, what: str) -> dict[str, Any]:
    obj = _object(value, file, path, what)
    if not obj:
        raise ReachConfigError(file, path, what, value)
    return obj


def _check_keys(
    obj: Mapping[str, Any],
    file: str,
    path: str,
    required: Sequence[str],
    optional: Sequence[str] = (),
) -> None:
    allowed = ", ".join([*required, *optional])
    for key in obj:
        if key not in required and key not in optional:
            raise ReachConfigError(
                file, _join(path, key), f"only the keys {allowed}", "unknown key"
            )
    for key in required:
        if key not in obj:
            raise ReachConfigError(
                file, _join(path, key), f"a required key (keys: {allowed})", "missing"
            )


def _integer(value: object, file: str, path: str, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ReachConfigError(file, path, f"an integer >= {minimum}", value)
    return value


def _list(value: object, file: str, path: str, what: str) -> list[Any]:
    if not isinstance(value, list) or not value:
        raise ReachConfigError(file, path, what, value)
    return value


def _range_choices(
    value: object,
    file: str,
    path: str,
    parse: Callable[[object, str, str], float],
    what: str,
) -> tuple[float, ...]:
    """A REACH value list: two entries are ``[min, max]``, any other length a choice."""
    items = _list(value, file, path, f"a non-empty list of {what} strings")
    parsed = tuple(parse(v, file, f"{path}[{i}]") for i, v in enumerate(items))
    if len(parsed) == 2 and parsed[0] > parsed[1]:
        raise ReachConfigError(file, path, "a range [min, max] with min <= max", items)
    return parsed


def _no_duplicates(file: str) -> Callable[[list[tuple[str, Any]]], dict[str, Any]]:
    def hook(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key, value in pairs:
            if key in out:
                raise ReachConfigError(file, key, "unique keys in every object", key)
            out[key] = value
        return out

    return hook


def read_json(path: Path) -> Any:
    """Parse one JSON file, rejecting duplicate keys (``json`` silently keeps one)."""
    file = str(path)
    if not path.is_file():
        raise ReachConfigError(file, "", "an existing JSON file", "no such file")
    try:
        return json.loads(
            path.read_text(encoding="utf-8"), object_pairs_hook=_no_duplicates(file)
        )
    except json.JSONDecodeError as err:
        raise ReachConfigError(
            file, f"line {err.lineno} column {err.colno}", "valid JSON", err.msg
        ) from err


# ---------------------------------------------------------------- nodes.json
def _parse_latency(
    value: object, file: str, layers: Sequence[str]
) -> dict[tuple[str, str], tuple[float, float]]:
    table = _object(value, file, "latency", "an object latency[from_layer][to_layer]")
    out: dict[tuple[str, str], tuple[float, float]] = {}
    for src, row in table.items():
        if src not in LAYERS:
            raise ReachConfigError(
                file, _join("latency", src), "a layer client|edge|cloud", src
            )
        row_path = _join("latency", src)
        row_obj = _object(row, file, row_path, "an object to_layer -> latency")
        for dst, cell in row_obj.items():
            path = _join(row_path, dst)
            if dst not in LAYERS:
                raise ReachConfigError(file, path, "a layer client|edge|cloud", dst)
            if isinstance(cell, str):  # oldest simulator: one fixed value
                fixed = parse_time(cell, file, path)
                out[(src, dst)] = (fixed, fixed)
                continue
            if not isinstance(cell, list) or len(cell) != 2:
                raise ReachConfigError(
                    file, path, "a range ['<min>', '<max>'] of two time strings", cell
                )
            low = parse_time(cell[0], file, f"{path}[0]")
            high = parse_time(cell[1], file, f"{path}[1]")
            if low > high:
                raise ReachConfigError(
                    file, path, "a range [min, max] with min <= max", cell
                )
            out[(src, dst)] = (low, high)
    for src in layers:
        for dst in layers:
            if src != dst and (src, dst) not in out:
                raise ReachConfigError(
                    file,
                    f"latency.{src}.{dst}",
                    f"a latency range for every pair of layers in cluster_setup "
                    f"({', '.join(layers)})",
                    "missing",
                )
    return out


def _parse_count(spec: Mapping[str, Any], file: str, path: str) -> int:
    if ("count" in spec) == ("count_range" in spec):
        raise ReachConfigError(
            file,
            _join(path, "count"),
            "exactly one of count or count_range",
            "both or none",
        )
    if "count" in spec:
        return _integer(spec["count"], file, _join(path, "count"), 1)
    rng_path = _join(path, "count_range")
    raw = spec["count_range"]
    if not isinstance(raw, list) or len(raw) != 2:
        raise ReachConfigError(file, rng_path, "a list [lo, hi] of two integers", raw)
    low = _integer(raw[0], file, f"{rng_path}[0]", 1)
    high = _integer(raw[1], file, f"{rng_path}[1]", 1)
    if low > high:
        raise ReachConfigError(file, rng_path, "a range [lo, hi] with lo <= hi", raw)
    if low != high:
        raise ReachConfigError(
            file,
            rng_path,
            "a fixed node count (lo == hi, or use count): the action space needs "
            "a fixed number of nodes",
            raw,
        )
    return low


def parse_nodes(data: object, file: str) -> NodesConfig:
    """Validate a parsed nodes.json and generate its nodes in id order (spec §2)."""
    root = _object(
        data, file, "", "a JSON object with node_type, latency, cluster_setup"
    )
    _check_keys(root, file, "", ("node_type", "latency", "cluster_setup"))
    types = _non_empty_object(
        root["node_type"], file, "node_type", "a non-empty object"
    )
    parsed_types: dict[str, tuple[int, float]] = {}
    for name, spec in types.items():
        path = _join("node_type", name)
        obj = _object(spec, file, path, "an object with cpu_type, bandwidth")
        _check_keys(obj, file, path, ("cpu_type", "bandwidth"))
        cpu_type = _integer(obj["cpu_type"], file, _join(path, "cpu_type"), 0)
        bandwidth = parse_bandwidth(obj["bandwidth"], file, _join(path, "bandwidth"))
        parsed_types[name] = (cpu_type, bandwidth)

    setup = _non_empty_object(
        root["cluster_setup"],
        file,
        "cluster_setup",
        "a non-empty object layer -> types",
    )
    nodes: list[Node] = []
    seen_types: set[str] = set()
    for layer, layer_types in setup.items():
        layer_path = _join("cluster_setup", layer)
        if layer not in LAYERS:
            raise ReachConfigError(file, layer_path, "a layer client|edge|cloud", layer)
        layer_obj = _non_empty_object(
            layer_types, file, layer_path, "a non-empty object node_type -> spec"
        )
        for type_name, spec in layer_obj.items():
            path = _join(layer_path, type_name)
            if type_name not in parsed_types:
                raise ReachConfigError(
                    file, path, "a node type declared in node_type", type_name
                )
            if type_name in seen_types:
                raise ReachConfigError(
                    file,
                    path,
                    "each node type in one layer only (names would clash)",
                    type_name,
                )
            seen_types.add(type_name)
            obj = _object(spec, file, path, "an object with count and availabilities")
            _check_keys(
                obj,
                file,
                path,
                ("cpu_availability", "memory_availability", "bandwidth_utilization"),
                ("count", "count_range"),
            )
            count = _parse_count(obj, file, path)
            cpu = _range_choices(
                obj["cpu_availability"], file, _join(path, "cpu_availability"),
                parse_cpu, "CPU",
            )  # fmt: skip
            memory = _range_choices(
                obj["memory_availability"], file, _join(path, "memory_availability"),
                parse_memory, "memory",
            )  # fmt: skip
            util_path = _join(path, "bandwidth_utilization")
            utilization = _range_choices(
                obj["bandwidth_utilization"], file, util_path, parse_fraction,
                "utilisation",
            )  # fmt: skip
            cpu_type, bandwidth = parsed_types[type_name]
            for i in range(1, count + 1):
                nodes.append(
                    Node(
                        name=f"{type_name}-{i}",
                        node_type=type_name,
                        layer=layer,
                        cpu_type=cpu_type,
                        bandwidth=bandwidth,
                        cpu_choices=cpu,
                        memory_choices=memory,
                        utilization_choices=utilization,
                    )
                )
    layers = list(setup)
    if "client" not in layers:
        raise ReachConfigError(
            file,
            "cluster_setup.client",
            "a client layer with the client node(s)",
            "missing",
        )
    if layers == ["client"]:
        raise ReachConfigError(
            file, "cluster_setup", "an edge or cloud layer besides client", list(setup)
        )
    latency = _parse_latency(root["latency"], file, layers)
    return NodesConfig(file=file, nodes=tuple(nodes), latency=latency)


# ---------------------------------------------------------------- services.json
def _check_fit(service: Service, nodes: NodesConfig, file: str) -> None:
    hosts = [n for n in nodes.nodes if n.layer in service.allowed_layers()]
    if not hosts:
        raise ReachConfigError(
            file,
            _join(service.name, "layer"),
            "a layer that has at least one node in nodes.json",
            service.layer,
        )
    if not any(max(n.cpu_choices) + 1e-9 >= service.cpu for n in hosts):
        best = max(max(n.cpu_choices) for n in hosts)
        raise ReachConfigError(
            file,
            _join(service.name, "cpu-requests"),
            f"a request that fits a node of layer {service.layer} "
            f"(the largest offers {best:g} cores)",
            f"{service.cpu:g} cores",
        )
    if not any(max(n.memory_choices) + 1e-9 >= service.memory for n in hosts):
        best = max(max(n.memory_choices) for n in hosts)
        raise ReachConfigError(
            file,
            _join(service.name, "memory-requests"),
            f"a request that fits a node of layer {service.layer} "
            f"(the largest offers {best:g} GiB)",
            f"{service.memory:g} GiB",
        )


def parse_services(data: object, file: str, nodes: NodesConfig) -> tuple[Service, ...]:
    """Validate a parsed services.json against the nodes (spec §3)."""
    root = _non_empty_object(data, file, "", "a non-empty JSON object service -> spec")
    services: list[Service] = []
    for name, spec in root.items():
        if not name or "_" in name:
            raise ReachConfigError(
                file,
                name,
                "a non-empty service name without '_' (a Kubernetes name; empty pod "
                "slots are called <service>_dummy)",
                name,
            )
        obj = _object(spec, file, name, "an object with the service's spec")
        _check_keys(
            obj,
            file,
            name,
            ("cpu-requests", "memory-requests", "max-replica", "type"),
            ("layer",),
        )
        kind = obj["type"]
        if kind not in ("service", "persistent"):
            raise ReachConfigError(
                file, _join(name, "type"), "'service' or 'persistent'", kind
            )
        layer = obj.get("layer", "all")
        if layer not in _SERVICE_LAYERS:
            raise ReachConfigError(
                file, _join(name, "layer"), "one of client, edge, cloud, all", layer
            )
        service = Service(
            name=name,
            cpu=parse_cpu(obj["cpu-requests"], file, _join(name, "cpu-requests")),
            memory=parse_memory(
                obj["memory-requests"], file, _join(name, "memory-requests")
            ),
            max_replica=_integer(
                obj["max-replica"], file, _join(name, "max-replica"), 1
            ),
            persistent=kind == "persistent",
            layer=layer,
        )
        _check_fit(service, nodes, file)
        services.append(service)
    return tuple(services)


# ---------------------------------------------------------------- call patterns
class _CallReader:
    """Reads one call-pattern file, knowing the services and nodes it refers to."""

    def __init__(
        self, file: str, services: Sequence[Service], nodes: NodesConfig
    ) -> None:
        self.file = file
        self.services = {s.name: s for s in services}
        client_types = {n.cpu_type for n in nodes.nodes if n.layer == "client"}
        other_types = {n.cpu_type for n in nodes.nodes if n.layer != "client"}
        # A client-pinned pod never leaves the client layer; any other pod may be
        # moved to every edge or cloud node, so it needs all their CPU types.
        self.needed = {
            s.name: sorted(client_types if s.is_client else other_types)
            for s in services
        }

    def service(self, name: object, path: str) -> str:
        if not isinstance(name, str) or name not in self.services:
            raise ReachConfigError(
                self.file, path, "a service defined in services.json", name
            )
        return name

    def exec_times(self, value: object, service: str, path: str) -> dict[int, float]:
        obj = _object(value, self.file, path, "an object '<cpu_type>' -> time")
        times: dict[int, float] = {}
        for key, raw in obj.items():
            if _CPU_TYPE_KEY.fullmatch(key) is None:
                raise ReachConfigError(
                    self.file, _join(path, key), "a CPU type id such as '0'", key
                )
            times[int(key)] = parse_time(raw, self.file, _join(path, key))
        for cpu_type in self.needed[service]:
            if cpu_type not in times:
                raise ReachConfigError(
                    self.file,
                    _join(path, str(cpu_type)),
                    f"an execution time for CPU type {cpu_type} (a node that "
                    f"{service} can run on has it)",
                    "missing",
                )
        return times

    def groups(
        self, value: object, path: str, ancestors: tuple[str, ...]
    ) -> tuple[tuple[Call, ...], ...]:
        if not isinstance(value, list):
            raise ReachConfigError(
                self.file, path, "a list of groups (objects service -> call)", value
            )
        groups: list[tuple[Call, ...]] = []
        for i, group in enumerate(value):
            group_path = f"{path}[{i}]"
            obj = _non_empty_object(
                group, self.file, group_path, "a non-empty object service -> call"
            )
            calls = [
                self.call(callee, spec, _join(group_path, callee), ancestors)
                for callee, spec in obj.items()
            ]
            groups.append(tuple(calls))
        return tuple(groups)

    def call(
        self, callee: str, spec: object, path: str, ancestors: tuple[str, ...]
    ) -> Call:
        service = self.service(callee, path)
        if service in ancestors:
            cycle = " -> ".join([*ancestors[ancestors.index(service) :], service])
            raise ReachConfigError(self.file, path, "an acyclic call path", cycle)
        obj = _object(spec, self.file, path, "an object with execution-time")
        _check_keys(
            obj, self.file, path, ("execution-time",), ("data-size", "call-path")
        )
        data_size = parse_memory(
            obj.get("data-size", "0M"), self.file, _join(path, "data-size")
        )
        times = self.exec_times(
            obj["execution-time"], service, _join(path, "execution-time")
        )
        groups = self.groups(
            obj.get("call-path", []), _join(path, "call-path"), (*ancestors, service)
        )
        return Call(service, data_size, times, groups)

    def endpoint(self, name: str, value: object) -> Endpoint:
        obj = _object(
            value, self.file, name, "an object with client, rps, qos, call-path"
        )
        _check_keys(obj, self.file, name, ("client", "call-path", "rps", "qos"))
        client = self.service(obj["client"], _join(name, "client"))
        rps = obj["rps"]
        if isinstance(rps, bool) or not isinstance(rps, int | float) or rps < 0:
            raise ReachConfigError(
                self.file, _join(name, "rps"), "a non-negative number", rps
            )
        qos = parse_time(obj["qos"], self.file, _join(name, "qos"))
        groups = self.groups(obj["call-path"], _join(name, "call-path"), (client,))
        return Endpoint(name, client, float(rps), qos, groups)


def parse_call_patterns(
    data: object,
    file: str,
    services: Sequence[Service],
    nodes: NodesConfig,
    pattern: str,
) -> Application:
    """Validate a parsed call-pattern file against services and nodes (spec §4.1)."""
    root = _non_empty_object(data, file, "", "a non-empty JSON object endpoint -> spec")
    reader = _CallReader(file, services, nodes)
    endpoints = tuple(reader.endpoint(name, spec) for name, spec in root.items())
    return Application(file=file, pattern=pattern, endpoints=endpoints)


# ---------------------------------------------------------------- config sets
def pattern_name(path: Path) -> str:
    """``aggregator_parallel`` from ``.../aggregator_parallel_call_patterns.json``."""
    name = path.name
    return (
        name[: -len(_PATTERN_SUFFIX)] if name.endswith(_PATTERN_SUFFIX) else path.stem
    )


def find_call_patterns(cluster: str | Path, pattern: str) -> Path:
    """Locate a pattern: a path to a file, or a name looked up as REACH lays it out.

    REACH keeps ``<pattern>_call_patterns.json`` one level above the cluster folder;
    a copy inside the folder is accepted too (spec §0).
    """
    as_path = Path(pattern)
    if as_path.suffix == ".json":
        return as_path
    folder = Path(cluster)
    candidates = [
        folder.parent / f"{pattern}{_PATTERN_SUFFIX}",
        folder / f"{pattern}{_PATTERN_SUFFIX}",
    ]
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    raise ReachConfigError(
        str(candidates[0]),
        "",
        f"a call-pattern file for pattern {pattern!r} at the config root or in "
        f"{folder}",
        "no such file",
    )


def config_from_data(
    nodes_data: object,
    services_data: object,
    patterns_data: object,
    *,
    folder: str,
    pattern: str,
    nodes_file: str = "nodes.json",
    services_file: str = "services.json",
    patterns_file: str = "call_patterns.json",
) -> ReachConfig:
    """Validate already-parsed JSON documents as one config set.

    ``folder`` is the cluster folder (its name must read ``<nodes>-<pods>``); the file
    arguments only label messages. The generator and tests use this directly.
    """
    name = Path(folder).name
    match = _FOLDER.fullmatch(name)
    if match is None:
        raise ReachConfigError(
            folder, "", "a cluster folder named <nodes>-<pods> such as 7-21", name
        )
    nodes = parse_nodes(nodes_data, nodes_file)
    if len(nodes.nodes) != int(match[1]):
        raise ReachConfigError(
            nodes_file,
            "cluster_setup",
            f"{int(match[1])} nodes in total (folder name {name!r})",
            len(nodes.nodes),
        )
    services = parse_services(services_data, services_file, nodes)
    slots = sum(s.max_replica for s in services)
    if slots != int(match[2]):
        raise ReachConfigError(
            services_file,
            "max-replica",
            f"pod slots summing to {int(match[2])} (folder name {name!r})",
            slots,
        )
    app = parse_call_patterns(patterns_data, patterns_file, services, nodes, pattern)
    return ReachConfig(folder=folder, nodes=nodes, services=services, app=app)


def load_reach_config(cluster: str | Path, call_patterns: str | Path) -> ReachConfig:
    """Read and validate a cluster folder plus a call-pattern file (name or path).

    Raises:
        ReachConfigError: anything malformed, inconsistent or missing.
    """
    folder = Path(cluster)
    if not folder.is_dir():
        raise ReachConfigError(str(folder), "", "a cluster folder", "no such folder")
    patterns = (
        Path(call_patterns)
        if isinstance(call_patterns, Path)
        else find_call_patterns(folder, call_patterns)
    )
    nodes_file = folder / "nodes.json"
    services_file = folder / "services.json"
    return config_from_data(
        read_json(nodes_file),
        read_json(services_file),
        read_json(patterns),
        folder=str(folder),
        pattern=pattern_name(patterns),
        nodes_file=str(nodes_file),
        services_file=str(services_file),
        patterns_file=str(patterns),
    )


def packaged_cluster() -> Path:
    """The example 7-21 cluster folder shipped in ``envs/data/reach``."""
    return Path(__file__).resolve().parent.parent / "data" / "reach" / "7-21"
