"""The two-tier lab's statistics: paired gains and gains pooled over training seeds."""

from __future__ import annotations

import json
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np
import pytest

from conf.flat import to_flat
from envs import RewardConfig
from fl_server.config import compose
from scripts.benchmarks.quality_two_tier import (
    checkpoint_env,
    checkpoint_reward,
    evaluate_checkpoints,
    headroom,
    paired_gain,
    pool,
    pooled_gain,
    slo_shift,
    summary,
)
from tests.serving.helpers import TINY_POLICY, run_config, train_checkpoint

BAR = [-0.1, -0.2, -1.0, -0.3]


def test_paired_gain_is_relative_to_the_bars_mean() -> None:
    better = [b + 0.16 for b in BAR]  # +0.16 on every seed, |mean(bar)| = 0.4
    point, low, high = paired_gain(better, BAR)
    assert point == pytest.approx(40.0)
    assert low == pytest.approx(40.0) and high == pytest.approx(40.0)  # no spread
    point, low, high = paired_gain([-0.1, -0.2, -0.6, -0.5], BAR)
    assert point == pytest.approx(100 * (0.4 - 0.2) / 4 / 0.4)
    assert low < point < high


def test_pooled_gain_averages_training_seeds_and_resamples_them() -> None:
    runs = [[b + d for b in BAR] for d in (0.04, 0.08, -0.04)]  # +10, +20, -10 %
    result = pooled_gain(runs, BAR)
    assert result["per_run_gain_pct"] == pytest.approx([10.0, 20.0, -10.0])
    assert result["gain_pct"] == pytest.approx(20.0 / 3)
    assert result["gain_lo"] < result["gain_pct"] < result["gain_hi"]
    assert result["gain_lo"] >= -10.0 and result["gain_hi"] <= 20.0
    assert result["runs"] == 3 and result["runs_above_bar"] == 2
    request_noise = (0.1, -0.1, 0.05, -0.05)  # per evaluation seed, mean 0
    noisy = pooled_gain(
        [
            [b + d + e for b, e in zip(BAR, request_noise, strict=True)]
            for d in (0.04, 0.08, -0.04)
        ],
        BAR,
    )
    assert noisy["gain_pct"] == pytest.approx(result["gain_pct"])
    assert noisy["gain_lo"] == pytest.approx(result["gain_lo"])  # runs alone: same
    assert noisy["gain_lo_both"] < noisy["gain_lo"] - 5  # the requests vary too
    assert noisy["gain_hi_both"] > noisy["gain_hi"] + 5
    with pytest.raises(ValueError, match=r"one reward per evaluation seed"):
        pooled_gain([[0.0, 0.0]], BAR)


def _line(
    policy: str,
    rewards: list[float],
    seeds: str = "5000-5003",
    slo: dict[str, list[float | None]] | None = None,
) -> str:
    record: dict[str, object] = {
        "scenario": "small",
        "regions": ["eu-central"],
        "reward_weights": "balanced",
        "reward": float(np.mean(rewards)),  # evaluate's lines: the mean reward
        "seeds": seeds,
        "decisions": 20000,
        "deterministic": False,
        "policy": policy,
        "per_seed_reward": rewards,
    }
    if slo is not None:
        record["per_seed_slo"] = slo
    return json.dumps(record) + "\n"


def test_pool_reads_evaluate_logs_and_refuses_mixed_settings(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    first, second = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    first.write_text(
        _line("weighted_greedy", BAR) + _line("s0", list(np.add(BAR, 0.04)))
    )
    second.write_text(_line("s1", list(np.add(BAR, 0.08))))
    assert pool([str(first), str(second), "--runs", "s0,s1"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["policies"] == ["s0", "s1"] and out["gain_pct"] == pytest.approx(15.0)
    assert out["slo_shift_points"] is None and out["types_worse"] == []  # old logs
    with pytest.raises(SystemExit, match=r"no evaluation of \['s2'\]"):
        pool([str(first), str(second), "--runs", "s0,s2"])
    second.write_text(_line("s1", list(np.add(BAR, 0.08)), seeds="1000-1003"))
    with pytest.raises(SystemExit, match=r"mix evaluation settings"):
        pool([str(first), str(second), "--runs", "s0,s1"])


def test_slo_shift_flags_a_type_worse_beyond_its_interval() -> None:
    bar = [0.010, 0.020, None, 0.004]  # evaluation seed 2 saw no such request
    worse = slo_shift([[v + 0.01 if v is not None else None for v in bar]] * 3, bar)
    assert worse["points"] == pytest.approx(1.0) and worse["lo"] == pytest.approx(1.0)
    assert worse["worse"]
    mixed = slo_shift([[0.012, 0.018, 0.5, 0.004], [0.008, 0.022, None, 0.005]], bar)
    assert mixed["lo"] < 0 < mixed["hi"] and not mixed["worse"]  # seed 2 dropped
    assert mixed["points"] == pytest.approx(100 * 0.001 / 6)
    assert slo_shift([[None] * 4], bar)["points"] is None
    one = slo_shift([[0.011, 0.021, None, 0.0045]], bar)  # one run: requests resampled
    assert one["worse"] and one["lo_runs"] is None
    level = slo_shift([[0.012, 0.018, None, 0.004]], bar)  # +0.2, -0.2, 0 points
    assert level["lo"] < 0 < level["hi"] and not level["worse"]
    with pytest.raises(ValueError, match=r"one SLO rate per evaluation seed"):
        slo_shift([[0.0, 0.0]], bar)


def test_summary_logs_per_seed_slo_rates_and_pool_tests_each_type(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    def seeds(web: list[float], ana: list[float]) -> list[dict[str, float]]:
        return [
            {
                "mean_reward": -0.1,
                "cost_usd_per_1k": 0.0,
                "carbon_g_per_1k": 0.0,
                "remote_share": 0.0,
                "latency_p95_ms:web": 10.0,
                "latency_p95_ms:analytics": 100.0,
                "slo_violation_rate:web": w,
                "slo_violation_rate:analytics": a,
            }
            for w, a in zip(web, ana, strict=True)
        ]

    rows = {
        "bar": seeds([0.01, 0.02, 0.03], [0.0, 0.0, 0.0]),
        "s0": seeds([0.01, 0.02, 0.03], [0.02, 0.03, float("nan")]),
        "s1": seeds([0.01, 0.02, 0.03], [0.03, 0.02, 0.01]),
    }
    lines = summary(rows, ("web", "analytics"), "bar")
    assert lines[1]["per_seed_slo"] == {
        "web": [0.01, 0.02, 0.03],
        "analytics": [0.02, 0.03, None],
    }
    assert lines[1]["slo:analytics"] == pytest.approx(0.025)
    log = tmp_path / "e.jsonl"
    log.write_text(
        "".join(
            _line(x["policy"], x["per_seed_reward"], slo=x["per_seed_slo"])
            for x in lines
        )
    )
    assert pool([str(log), "--runs", "s0,s1", "--bar", "bar"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["types_worse"] == ["analytics"]
    assert out["slo_shift_points"]["web"]["points"] == pytest.approx(0.0)
    assert out["slo_shift_points"]["analytics"]["points"] == pytest.approx(2.5)
    assert pool([str(log), "--runs", "s0", "--bar", "bar"]) == 0  # one run
    out = json.loads(capsys.readouterr().out)
    assert out["slo_shift_points"]["analytics"]["lo_runs"] is None
    assert out["types_worse"] == ["analytics"]  # +2 and +3 points on its seeds


@pytest.mark.parametrize(
    "config",
    [
        {"two_tier": {"region_id_input": False, "load_input": True}},  # scripts.train
        {"two-tier.region-id-input": False, "two-tier.load-input": True},  # federation
    ],
)
def test_checkpoint_env_reads_single_agent_and_federated_metadata(
    tmp_path: Path, config: dict[str, object]
) -> None:
    (tmp_path / "policy.json").write_text(json.dumps({"config": config}))
    env = checkpoint_env(str(tmp_path / "policy.zip"))
    assert env.region_id_input is False and env.load_input is True
    bare = checkpoint_env(str(tmp_path / "none.zip"))  # no metadata: the defaults
    assert bare.region_id_input is True and bare.load_input is False


LIMITED = RewardConfig(
    1.0,
    0.0,
    1.0,
    0.1,
    2.0,
    limit_s={"analytics": 0.9},
    limit_exceeded={"analytics": 30.0},
)


@pytest.mark.parametrize("form", ["single-agent", "federation"])
def test_checkpoint_reward_reads_the_weights_and_priced_limits(
    tmp_path: Path, form: str
) -> None:
    """The reward a rule beside a checkpoint reads is the one it trained with."""
    run = compose()
    run.reward = LIMITED
    flat = to_flat(run)
    config = (
        {"reward": asdict(LIMITED), "two_tier": {}} if form == "single-agent" else flat
    )
    (tmp_path / "policy.json").write_text(json.dumps({"config": config}))
    assert checkpoint_reward(str(tmp_path / "policy.zip")) == LIMITED
    (tmp_path / "bad.json").write_text(
        json.dumps({"config": {**flat, "reward.limit-s": "[0.9]"}})
    )
    with pytest.raises(ValueError, match=r"reward\.limit-s"):
        checkpoint_reward(str(tmp_path / "bad.zip"))
    with pytest.raises(ValueError, match="no reward keys"):
        checkpoint_reward(str(tmp_path / "none.zip"))


def test_evaluate_appends_one_log_that_pool_reads_per_type(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Two evaluate calls (as two processes would) share one log; pool pairs them."""
    cfg = run_config(
        "two_tier",
        two_tier={"learn": "both", "load_input": True},
        policy={**TINY_POLICY, "network": "two_tier_scorer_fpi_wait"},
    )
    path = train_checkpoint(tmp_path / "policy.zip", cfg, seed=1)
    log = tmp_path / "eval.jsonl"
    common = ["--scenario", "small", "--regions", "eu-central", "--seeds", "1000-1002"]
    common += ["--decisions", "300", "--load-input", "--out", str(log)]
    assert (
        evaluate_checkpoints([f"c0={path}", "--baselines", "fpi_wait_greedy", *common])
        == 0
    )
    assert evaluate_checkpoints([f"c1={path}", "--baselines=", *common]) == 0
    capsys.readouterr()
    lines = [json.loads(text) for text in log.read_text().splitlines()]
    assert [line["policy"] for line in lines] == ["fpi_wait_greedy", "c0", "c1"]
    assert all(len(line["per_seed_reward"]) == 3 for line in lines)
    assert lines[0]["baseline_load_input"] and lines[1]["checkpoints"] == [f"c0={path}"]
    assert pool([str(log), "--runs", "c0,c1", "--bar", "fpi_wait_greedy"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["runs"] == 2
    assert set(out["slo_shift_points"]) == set(lines[0]["per_seed_slo"])
    assert set(lines[0]["per_seed_slo"]) >= {"web", "analytics"}


def test_evaluate_scores_every_policy_by_the_checkpoints_own_reward(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``--reward-from``: every policy is scored by the reward the checkpoint was paid.

    Limits priced; the log records that reward whole.
    """
    tight = replace(
        LIMITED,
        limit_s={"inference": 0.1, "analytics": 0.5},
        limit_exceeded={"inference": 20.0, "analytics": 20.0},
    )  # limits that some requests of a short run exceed
    cfg = run_config(
        "two_tier",
        two_tier={"learn": "both", "load_input": True},
        policy={**TINY_POLICY, "network": "two_tier_scorer_fpi_wait"},
        reward=asdict(tight),
    )
    path = train_checkpoint(tmp_path / "policy.zip", cfg, seed=1)
    log = tmp_path / "eval.jsonl"
    common = ["--scenario", "small", "--regions", "asia-east", "--seeds", "1000"]
    common += ["--decisions", "300", "--load-input", "--baselines", "fpi_wait_greedy"]
    for reward in (["--reward-from", str(path)], ["--reward", "1,0,1,0.1,2"]):
        assert (
            evaluate_checkpoints([f"c={path}", *common, *reward, "--out", str(log)])
            == 0
        )
    capsys.readouterr()
    priced, plain = (
        [json.loads(text) for text in log.read_text().splitlines()][i : i + 2]
        for i in (0, 2)
    )
    assert priced[0]["reward_weights"] == json.loads(json.dumps(asdict(tight)))
    assert plain[0]["reward_weights"] == "1,0,1,0.1,2"  # the same without limits
    for with_limits, without in zip(priced, plain, strict=True):
        assert with_limits["policy"] == without["policy"]
        assert with_limits["reward"] < without["reward"]  # exceedances are charged


def test_headroom_reads_either_reward_option(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``headroom`` takes ``--reward`` or ``--reward-from`` and names a bad one."""
    common = ["--scenario", "small", "--seeds", "1000", "--decisions", "200"]
    common += ["--policies", "latency,weighted_greedy"]
    assert headroom([*common, "--reward", "carbon"]) == 0
    assert "reward carbon" in capsys.readouterr().out
    (tmp_path / "policy.json").write_text(
        json.dumps({"config": {"reward": asdict(LIMITED)}})
    )
    assert headroom([*common, "--reward-from", str(tmp_path / "policy.zip")]) == 0
    assert "policy.zip" in capsys.readouterr().out
    with pytest.raises(SystemExit) as stop:
        headroom([*common, "--reward-from", str(tmp_path / "none.zip")])
    assert stop.value.code == 2
    assert "--reward-from" in capsys.readouterr().err
