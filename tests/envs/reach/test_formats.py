"""Strict config reading: grammars, file order, and every bad case with its message."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from envs.reach.errors import ReachConfigError
from envs.reach.formats import load_reach_config
from envs.reach.model import PATTERNS
from envs.reach.units import (
    parse_bandwidth,
    parse_cpu,
    parse_fraction,
    parse_memory,
    parse_time,
)

from .conftest import EXAMPLE_ROOT

Edit = Callable[[dict[str, Any], dict[str, Any], dict[str, Any]], None]


# ---------------------------------------------------------------- grammars (spec §1)
@pytest.mark.parametrize(
    ("parse", "text", "value"),
    [
        (parse_cpu, "700m", 0.7),
        (parse_cpu, "2", 2.0),
        (parse_memory, "700M", 700 / 1024),
        (parse_memory, "27.68G", 27.68),
        (parse_memory, "0.2M", 0.2 / 1024),
        (parse_bandwidth, "500m", 62.5),
        (parse_bandwidth, "200m", 25.0),
        (parse_fraction, "0.3", 0.3),
        (parse_time, "7ms", 7.0),
        (parse_time, "10.5ms", 10.5),
        (parse_time, "0.08s", 80.0),
    ],
)
def test_value_grammars(parse: Callable[..., float], text: str, value: float) -> None:
    assert parse(text, "f.json", "x") == pytest.approx(value, rel=1e-15)


@pytest.mark.parametrize(
    ("parse", "text", "message"),
    [
        (parse_cpu, "1.5", "f.json: x: expected CPU quantity such as '700m' or '2' "
         "(integer millicores or cores), got '1.5'"),
        (parse_memory, "700K", "f.json: x: expected memory or data size such as "
         "'700M' or '27.68G' (units M|G), got '700K'"),
        (parse_bandwidth, "500M", "f.json: x: expected bandwidth such as '500m' "
         "(integer megabit/s, unit m), got '500M'"),
        (parse_time, "7us", "f.json: x: expected time such as '7ms' or '0.08s' "
         "(units ms|s), got '7us'"),
        (parse_time, 7, "f.json: x: expected a string time such as '7ms' or '0.08s' "
         "(units ms|s), got 7"),
        (parse_fraction, "1.2", "f.json: x: expected a utilisation of at most 1, "
         "got '1.2'"),
    ],
)  # fmt: skip
def test_unknown_units_fail_loudly(
    parse: Callable[..., float], text: object, message: str
) -> None:
    with pytest.raises(ReachConfigError, match=re.escape(message)):
        parse(text, "f.json", "x")


# ---------------------------------------------------------------- the example
def test_example_reads_in_file_order() -> None:
    config = load_reach_config(EXAMPLE_ROOT / "7-21", "aggregator_parallel")
    assert config.node_names == (
        "ex-cloud-xl-1", "ex-cloud-xl-2", "ex-edge-md-1", "ex-edge-md-2",
        "ex-edge-sm-1", "ex-edge-sm-2", "ex-client-sm-1",
    )  # fmt: skip
    assert [s.name for s in config.services] == [
        "client", "gateway", "auth", "catalog", "inference", "cache", "storage",
    ]  # fmt: skip
    assert (config.n_nodes, config.n_pods) == (7, 21)
    assert [e.name for e in config.app.endpoints] == ["browse", "login"]
    browse = config.app.endpoints[0]
    gateway = browse.groups[0][0]
    assert [c.service for g in gateway.groups for c in g] == [
        "catalog", "inference", "cache",
    ]  # fmt: skip
    assert gateway.groups[1][0].execution_time == {0: 38.0, 1: 57.0, 2: 80.0}
    assert config.app.qos == 90.0


@pytest.mark.parametrize("pattern", PATTERNS)
def test_every_example_pattern_loads(pattern: str) -> None:
    config = load_reach_config(EXAMPLE_ROOT / "7-21", pattern)
    assert config.app.pattern == pattern


def test_pattern_file_inside_the_cluster_folder_is_accepted(
    example_copy: Callable[..., tuple[Path, Path]],
) -> None:
    cluster, patterns = example_copy()
    patterns.rename(cluster / patterns.name)
    assert load_reach_config(cluster, "aggregator_parallel").app.pattern == (
        "aggregator_parallel"
    )


# ---------------------------------------------------------------- bad configs
def _set(path: list[Any], value: Any) -> Edit:
    """Edit that sets (or, with value None, deletes) one entry of one document."""

    def edit(
        nodes: dict[str, Any], services: dict[str, Any], patterns: dict[str, Any]
    ) -> None:
        doc = {"nodes": nodes, "services": services, "patterns": patterns}[path[0]]
        for key in path[1:-1]:
            doc = doc[key]
        if value is None:
            del doc[path[-1]]
        else:
            doc[path[-1]] = value

    return edit


GATEWAY = ["patterns", "browse", "call-path", 0, "gateway"]
CASES: list[tuple[str, Edit, str, str]] = [
    (
        "call to an unknown service",
        _set([*GATEWAY, "call-path", 0, "nope"], {"execution-time": {"0": "1ms"}}),
        "patterns",
        "browse.call-path[0].gateway.call-path[0].nope: expected a service defined "
        "in services.json, got 'nope'",
    ),
    (
        "CPU type with no execution time",
        _set([*GATEWAY, "call-path", 1, "inference", "execution-time", "2"], None),
        "patterns",
        "browse.call-path[0].gateway.call-path[1].inference.execution-time.2: "
        "expected an execution time for CPU type 2 (a node that inference can run "
        "on has it), got 'missing'",
    ),
    (
        "unknown unit",
        _set([*GATEWAY, "execution-time", "0"], "3us"),
        "patterns",
        "browse.call-path[0].gateway.execution-time.0: expected time such as '7ms' "
        "or '0.08s' (units ms|s), got '3us'",
    ),
    (
        "unknown memory unit",
        _set(["services", "gateway", "memory-requests"], "512Mi"),
        "services",
        "gateway.memory-requests: expected memory or data size such as '700M' or "
        "'27.68G' (units M|G), got '512Mi'",
    ),
    (
        "negative range",
        _set(["nodes", "latency", "edge", "cloud"], ["-5ms", "160ms"]),
        "nodes",
        "latency.edge.cloud[0]: expected a non-negative time, got '-5ms'",
    ),
    (
        "inverted latency range",
        _set(["nodes", "latency", "edge", "cloud"], ["160ms", "35ms"]),
        "nodes",
        "latency.edge.cloud: expected a range [min, max] with min <= max, "
        "got ['160ms', '35ms']",
    ),
    (
        "inverted availability range",
        _set(["nodes", "cluster_setup", "cloud", "ex-cloud-xl", "cpu_availability"],
             ["12", "6"]),
        "nodes",
        "cluster_setup.cloud.ex-cloud-xl.cpu_availability: expected a range "
        "[min, max] with min <= max, got ['12', '6']",
    ),
    (
        "cycle in a call graph",
        _set([*GATEWAY, "call-path", 0, "catalog", "call-path"],
             [{"gateway": {"execution-time": {"0": "1ms", "1": "1ms", "2": "1ms"}}}]),
        "patterns",
        "browse.call-path[0].gateway.call-path[0].catalog.call-path[0].gateway: "
        "expected an acyclic call path, got 'gateway -> catalog -> gateway'",
    ),
    (
        "unknown key",
        _set([*GATEWAY, "executon-time"], {"0": "1ms"}),
        "patterns",
        "browse.call-path[0].gateway.executon-time: expected only the keys "
        "execution-time, data-size, call-path, got 'unknown key'",
    ),
    (
        "missing key",
        _set(["patterns", "browse", "rps"], None),
        "patterns",
        "browse.rps: expected a required key (keys: client, call-path, rps, qos), "
        "got 'missing'",
    ),
    (
        "varying count_range",
        lambda n, s, p: n["cluster_setup"]["cloud"]["ex-cloud-xl"].update(
            {"count_range": [2, 3]}
        ) or n["cluster_setup"]["cloud"]["ex-cloud-xl"].pop("count"),
        "nodes",
        "cluster_setup.cloud.ex-cloud-xl.count_range: expected a fixed node count "
        "(lo == hi, or use count): the action space needs a fixed number of nodes, "
        "got [2, 3]",
    ),
    (
        "inverted count_range",
        lambda n, s, p: n["cluster_setup"]["cloud"]["ex-cloud-xl"].update(
            {"count_range": [3, 2]}
        ) or n["cluster_setup"]["cloud"]["ex-cloud-xl"].pop("count"),
        "nodes",
        "cluster_setup.cloud.ex-cloud-xl.count_range: expected a range [lo, hi] "
        "with lo <= hi, got [3, 2]",
    ),
    (
        "request that fits no node",
        _set(["services", "inference", "cpu-requests"], "13"),
        "services",
        "inference.cpu-requests: expected a request that fits a node of layer all "
        "(the largest offers 12 cores), got '13 cores'",
    ),
    (
        "negative rps",
        _set(["patterns", "browse", "rps"], -1),
        "patterns",
        "browse.rps: expected a non-negative number, got -1",
    ),
]  # fmt: skip


@pytest.mark.parametrize(
    ("case", "edit", "file", "message"), CASES, ids=[c[0] for c in CASES]
)
def test_bad_config_fails_with_its_message(
    example_copy: Callable[..., tuple[Path, Path]],
    case: str,
    edit: Edit,
    file: str,
    message: str,
) -> None:
    cluster, patterns = example_copy(edit=edit)
    names = {
        "nodes": cluster / "nodes.json",
        "services": cluster / "services.json",
        "patterns": patterns,
    }
    with pytest.raises(ReachConfigError, match=re.escape(f"{names[file]}: {message}")):
        load_reach_config(cluster, patterns)


def test_service_pinned_to_a_layer_without_nodes(
    example_copy: Callable[..., tuple[Path, Path]],
) -> None:
    def no_edge(
        nodes: dict[str, Any], services: dict[str, Any], _: dict[str, Any]
    ) -> None:
        del nodes["cluster_setup"]["edge"]

    cluster, patterns = example_copy(edit=no_edge, folder="3-21")
    message = (
        f"{cluster / 'services.json'}: cache.layer: expected a layer that has at least "
        "one node in nodes.json, got 'edge'"
    )
    with pytest.raises(ReachConfigError, match=re.escape(message)):
        load_reach_config(cluster, patterns)


def test_more_pod_slots_than_the_folder_name(
    example_copy: Callable[..., tuple[Path, Path]],
) -> None:
    cluster, patterns = example_copy(
        edit=_set(["services", "gateway", "max-replica"], 4)
    )
    message = (
        f"{cluster / 'services.json'}: max-replica: expected pod slots summing to 21 "
        "(folder name '7-21'), got 22"
    )
    with pytest.raises(ReachConfigError, match=re.escape(message)):
        load_reach_config(cluster, patterns)


def test_node_count_must_match_the_folder_name(
    example_copy: Callable[..., tuple[Path, Path]],
) -> None:
    cluster, patterns = example_copy(folder="8-21")
    message = (
        f"{cluster / 'nodes.json'}: cluster_setup: expected 8 nodes in total "
        "(folder name '8-21'), got 7"
    )
    with pytest.raises(ReachConfigError, match=re.escape(message)):
        load_reach_config(cluster, patterns)


def test_folder_must_be_named_nodes_dash_pods(
    example_copy: Callable[..., tuple[Path, Path]],
) -> None:
    cluster, patterns = example_copy(folder="example")
    message = f"{cluster}: expected a cluster folder named <nodes>-<pods> such as 7-21"
    with pytest.raises(ReachConfigError, match=re.escape(message)):
        load_reach_config(cluster, patterns)


def test_duplicate_json_keys_are_rejected(
    example_copy: Callable[..., tuple[Path, Path]],
) -> None:
    cluster, patterns = example_copy()
    text = (cluster / "services.json").read_text()
    (cluster / "services.json").write_text(text.replace('"auth"', '"gateway"'))
    message = f"{cluster / 'services.json'}: gateway: expected unique keys"
    with pytest.raises(ReachConfigError, match=re.escape(message)):
        load_reach_config(cluster, patterns)
