"""Config generator and the two command-line tools."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from envs.reach.formats import load_reach_config
from envs.reach.generator import generate
from envs.reach.model import PATTERNS
from scripts import check_reach_config, gen_reach_config

from .conftest import EXAMPLE_ROOT


@pytest.mark.parametrize(("nodes", "pods"), [(12, 28), (100, 300), (3, 2)])
def test_generated_configs_validate_with_the_strict_loader(
    tmp_path: Path, nodes: int, pods: int
) -> None:
    assert (
        gen_reach_config.main(
            [
                "--nodes",
                str(nodes),
                "--pods",
                str(pods),
                "--out",
                str(tmp_path),
                "--seed",
                "3",
            ]
        )
        == 0
    )
    folder = tmp_path / f"{nodes}-{pods}"
    for pattern in PATTERNS:
        config = load_reach_config(folder, pattern)
        assert (config.n_nodes, config.n_pods) == (nodes, pods)
        assert config.app.pattern == pattern


def test_generator_is_deterministic_and_shaped_by_pattern() -> None:
    first = generate(12, 28, seed=9)
    assert first == generate(12, 28, seed=9)
    assert first != generate(12, 28, seed=10)
    chain = first.to_config("chain").app.endpoints[0]
    depth, groups = 0, chain.groups
    while groups:
        assert len(groups) == 1 and len(groups[0]) == 1  # one call, one child
        depth += 1
        groups = groups[0][0].groups
    assert depth == len(first.services) - 1
    gateway = first.to_config("aggregator_sequential").app.endpoints[0].groups[0][0]
    assert len(gateway.groups) == 1 and len(gateway.groups[0]) > 1  # in sequence
    gateway = first.to_config("aggregator_parallel").app.endpoints[0].groups[0][0]
    assert len(gateway.groups) > 1 and all(len(g) == 1 for g in gateway.groups)


def test_generator_rejects_impossible_sizes() -> None:
    with pytest.raises(ValueError, match=re.escape("n_nodes: expected >= 3")):
        generate(2, 10)


def test_check_tool_prints_the_summary(capsys: pytest.CaptureFixture[str]) -> None:
    code = check_reach_config.main(
        [
            str(EXAMPLE_ROOT / "7-21"),
            str(EXAMPLE_ROOT / "aggregator_parallel_call_patterns.json"),
            "--samples", "4",
        ]
    )  # fmt: skip
    out = capsys.readouterr().out
    assert code == 0
    assert "nodes: 7" in out
    assert "  cloud     2   cpu_type 0: 2   (ex-cloud-xl)" in out
    assert "  edge      4   cpu_type 1: 2, cpu_type 2: 2" in out
    assert "pods: 21 slots in 7 services" in out
    assert "storage    max-replica   4" in out and "persistent" in out
    assert "endpoints: 2 (pattern aggregator_parallel), QoS threshold 90 ms" in out
    assert re.search(r"default-scheduler placement \(4 sampled clusters, seed 0\): "
                     r"[0-9.]+ ms", out)  # fmt: skip


def test_check_tool_exits_1_with_the_message(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    patterns = tmp_path / "chain_call_patterns.json"
    doc = json.loads((EXAMPLE_ROOT / "chain_call_patterns.json").read_text())
    doc["browse"]["qos"] = "140 ms"
    patterns.write_text(json.dumps(doc))
    code = check_reach_config.main([str(EXAMPLE_ROOT / "7-21"), str(patterns)])
    err = capsys.readouterr().err
    assert code == 1
    assert err.strip() == (
        f"invalid config: {patterns}: browse.qos: expected time such as '7ms' or "
        "'0.08s' (units ms|s), got '140 ms'"
    )
