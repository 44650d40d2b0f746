"""The held-out rescheduling table built from the lab's JSON-line logs."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from scripts.benchmarks.quality_reschedule import main
from scripts.benchmarks.reschedule_table import group_runs, table


def _log(
    path: Path,
    config: str,
    greedy: float,
    finals: list[float],
    overrides: tuple[str, ...] = (),
    dynamic: bool = False,
) -> Path:
    key = "latency_mean_reduction_pct" if dynamic else "latency_reduction_pct"
    head = {"tag": path.stem, "config": config, "overrides": list(overrides)}
    head |= {"latency_reduction_pct": greedy, "migrations": 4.0, "mean_return": 1.0}
    if dynamic:
        head[key] = greedy
    lines = [json.dumps(head), "a warning line"]
    for i, value in enumerate(finals, start=1):
        chunk = {"tag": path.stem, "steps": 1000 * i, "train_s": 10.0 * i}
        chunk |= {"latency_reduction_pct": value, "migrations": 6.0, "mean_return": 1}
        if dynamic:
            chunk[key] = value
        lines.append(json.dumps(chunk))
    path.write_text("\n".join(lines) + "\n")
    return path


def test_rows_hold_each_groups_last_chunks_and_their_gain_over_greedy(
    tmp_path: Path,
) -> None:
    finals = [55.0, 57.0, 59.0, 61.0, 63.0]
    logs = [
        _log(tmp_path / f"shop-s{i}.jsonl", "shop", 50.0, [40.0, v])
        for i, v in enumerate(finals)
    ]
    logs.append(
        _log(tmp_path / "dyn-s0.jsonl", "shop", 20.0, [30.0], ("x=1",), dynamic=True)
    )
    headroom = tmp_path / "headroom.jsonl"
    headroom.write_text(
        json.dumps(
            {
                "config": "shop",
                "reference_reduction_pct": 70.0,
                "reference_displaced": 9,
            }
        )
    )
    rows, text = table(logs, [headroom])
    static, dynamic = rows
    assert static["learned"] == pytest.approx(np.mean(finals))
    assert static["ci_low"] < static["learned"] < static["ci_high"]
    assert static["gain"] == pytest.approx(np.mean(finals) - 50.0)
    assert static["gain_low"] == pytest.approx(static["ci_low"] - 50.0)
    assert static["seeds"] == 5 and static["seeds_above_greedy"] == 5
    assert static["reference"] == 70.0
    assert dynamic["variant"] == "dynamic" and dynamic["seeds"] == 1
    assert dynamic["metric"] == "latency_mean_reduction_pct"
    assert np.isnan(dynamic["reference"])  # the reference plans for static episodes
    assert "| shop | static | 50.00 (4.0) | 59.00 [" in text
    assert "+9.00 [" in text


def test_runs_judged_on_different_episodes_are_refused(tmp_path: Path) -> None:
    logs = [
        _log(tmp_path / "a.jsonl", "shop", 50.0, [60.0]),
        _log(tmp_path / "b.jsonl", "shop", 51.0, [60.0]),
    ]
    with pytest.raises(ValueError, match=r"b\.jsonl: greedy figures differ"):
        group_runs(logs)


def test_short_runs_are_left_out_when_asked(tmp_path: Path) -> None:
    logs = [
        _log(tmp_path / "long.jsonl", "shop", 50.0, [55.0, 60.0]),
        _log(tmp_path / "short.jsonl", "shop", 50.0, [58.0]),
    ]
    (group,) = group_runs(logs, min_steps=2000)
    assert [f["latency_reduction_pct"] for f in group.finals] == [60.0]


def test_the_command_prints_the_table(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    logs = [_log(tmp_path / f"s{i}.jsonl", "7-21", 40.0, [45.0 + i]) for i in range(3)]
    assert main(["table", *map(str, logs), "--json"]) == 0
    out = capsys.readouterr().out.splitlines()
    row = json.loads(out[0])
    assert row["config"] == "7-21" and row["learned"] == pytest.approx(46.0)
    assert out[1].startswith("| config | variant |")


def test_rows_of_one_config_are_told_apart_by_their_overrides(tmp_path: Path) -> None:
    logs = [
        _log(tmp_path / "d.jsonl", "shop", 50.0, [60.0]),
        _log(tmp_path / "a.jsonl", "shop", 50.0, [45.0], ("policy.network=mlp",)),
    ]
    rows, text = table(logs, [], show_overrides=True)
    assert [r["overrides"] for r in rows] == [[], ["policy.network=mlp"]]
    assert "| shop | static | 50.00" in text
    assert "| shop | static: `policy.network=mlp` | 50.00" in text


def test_transfer_without_training_or_checkpoint_is_refused(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["transfer", "--test", "wide"])
    assert exit_info.value.code == 2
    assert "give --train configs, --checkpoint, or both" in capsys.readouterr().err
