"""The federated rescheduling table: global policies over training seeds vs greedy."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from scripts.benchmarks.federation_table import (
    federation_rows,
    markdown,
    transfer_rows,
)


def _eval(round_: int, policy: str, region: str, seed: int, pct: float) -> dict:
    return {
        "round": round_,
        "phase": "server-eval",
        "policy": policy,
        "region": region,
        "eval_seed": seed,
        "latency_reduction_pct": pct,
        "migrations": 4.0,
    }


def _federation(path: Path, final: float, greedy: float = 50.0) -> Path:
    """Two eval seeds; greedy at round 0, the global policy at rounds 0, 3 and 6."""
    lines = [{"round": 1, "phase": "train", "policy": "local-update"}]
    for seed, shift in ((1000, -1.0), (1001, 1.0)):
        lines.append(_eval(0, "greedy", "c", seed, greedy + shift))
        lines.append(_eval(0, "global", "c", seed, 40.0 + shift))
        lines.append(_eval(3, "global", "c", seed, 45.0 + shift))
        lines.append(_eval(6, "global", "c", seed, final + shift))
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    return path


def test_rows_take_each_runs_last_round_and_resample_the_runs(tmp_path: Path) -> None:
    runs = [
        _federation(tmp_path / f"s{k}.jsonl", v) for k, v in enumerate((54, 56, 49))
    ]
    (row,) = federation_rows(runs)
    assert row["greedy"] == pytest.approx(50.0)
    assert row["learned"] == pytest.approx(53.0)  # round 6, not 0 or 3
    assert row["gain"] == pytest.approx(3.0)
    assert 49.0 <= row["ci_low"] < 53.0 < row["ci_high"] <= 56.0
    assert row["seeds"] == 3 and row["seeds_above_greedy"] == 2
    assert "| c | trained | 50.00 (4.0) | 53.00 [" in markdown([row])


def test_runs_evaluated_on_other_episodes_are_refused(tmp_path: Path) -> None:
    a = _federation(tmp_path / "a.jsonl", 54)
    b = _federation(tmp_path / "b.jsonl", 54, greedy=51.0)
    with pytest.raises(ValueError, match=r"different episodes"):
        federation_rows([a, b])


def test_a_run_stopped_at_another_round_is_not_pooled(tmp_path: Path) -> None:
    full = _federation(tmp_path / "a.jsonl", 54)
    short = tmp_path / "b.jsonl"
    lines = [json.loads(t) for t in full.read_text().splitlines()]
    short.write_text(
        "".join(json.dumps(r) + "\n" for r in lines if r.get("round") != 6)
    )
    with pytest.raises(ValueError, match=r"last evaluated round is 3.*not pooled"):
        federation_rows([full, short])


def test_transfer_rows_give_zero_shot_and_the_longest_fine_tuning(
    tmp_path: Path,
) -> None:
    greedy = {"latency_reduction_pct": 60.0, "migrations": 5.0}
    paths = []
    for k, (zero, tuned) in enumerate(((62.0, 64.0), (61.0, 65.0))):
        lines = [
            {"checkpoint": f"s{k}/global_policy.zip"},
            {
                "test": "wide",
                "greedy": greedy,
                "zero_shot": {"latency_reduction_pct": zero, "migrations": 3.0},
            },
            {"test": "wide", "finetune_steps": 10, "latency_reduction_pct": 0.0,
             "migrations": 3.0},
            {"test": "wide", "finetune_steps": 20, "latency_reduction_pct": tuned,
             "migrations": 3.0},
        ]  # fmt: skip
        paths.append(tmp_path / f"t{k}.jsonl")
        paths[-1].write_text("".join(json.dumps(line) + "\n" for line in lines))
    zero_row, tuned_row = transfer_rows(paths)
    longer = (
        paths[1].read_text().replace('"finetune_steps": 20', '"finetune_steps": 30')
    )
    paths[1].write_text(longer)
    with pytest.raises(ValueError, match=r"fine-tuning on wide is 30.*not pooled"):
        transfer_rows(paths)
    assert (zero_row["how"], tuned_row["how"]) == ("zero-shot", "fine-tuned")
    assert zero_row["learned"] == pytest.approx(61.5)
    assert tuned_row["learned"] == pytest.approx(64.5)
    assert zero_row["greedy"] == tuned_row["greedy"] == 60.0


def test_the_lab_command_prints_the_table(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from scripts.benchmarks.quality_reschedule import main

    run = _federation(tmp_path / "s0.jsonl", 54)
    assert main(["federation-table", str(run)]) == 0
    assert "| c | trained | 50.00 (4.0) | 54.00 [" in capsys.readouterr().out
