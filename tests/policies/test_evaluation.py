"""Held-out evaluation: seeded, and per request type, quantile sketch, episodes."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from envs import make_region_vec_env
from policies.config import PolicyConfig
from policies.evaluation import (
    POOLED,
    QUANTILES,
    RequestTypes,
    RescheduleEvalSpec,
    TwoTierEvalSpec,
    _metrics,
    _sketches,
    evaluate_reschedule_detailed,
    evaluate_two_tier,
    evaluate_two_tier_detailed,
)
from policies.local import LocalTrainer


def _spec(deterministic: bool) -> TwoTierEvalSpec:
    return TwoTierEvalSpec(
        scenario="small",
        region="us-east",
        seeds=(21, 22),
        decisions=300,
        deterministic=deterministic,
    )


def test_sampled_evaluation_is_seeded_and_leaves_the_callers_generator_alone() -> None:
    env = make_region_vec_env("small", "us-east", n_envs=2, seed=0)
    model = LocalTrainer(env, PolicyConfig(n_envs=2), seed=0).model

    torch.manual_seed(123)
    expected_next = torch.rand(3)
    torch.manual_seed(123)
    first = evaluate_two_tier(model, _spec(deterministic=False))
    assert torch.equal(torch.rand(3), expected_next)  # training stream untouched

    again = evaluate_two_tier(model, _spec(deterministic=False))
    assert again == first
    argmax = evaluate_two_tier(model, _spec(deterministic=True))
    assert argmax != first  # an untrained policy's samples are not its argmax


# ---------------------------------------------------------------- per-type metrics


def _synthetic_requests() -> tuple[dict[str, np.ndarray], RequestTypes]:
    """Two request types with known latencies; type 1 has a 10x larger SLO."""
    rng = np.random.default_rng(7)
    kind = rng.integers(0, 2, size=400)
    latency = np.where(kind == 0, rng.exponential(0.05, 400), rng.exponential(0.5, 400))
    slo = np.array([0.1, 1.0])
    n = latency.size
    placed = {
        "latency_s": latency,
        "queue_wait_s": np.zeros(n),
        "slo_violated": (latency > slo[kind]).astype(float),
        "cost_usd": np.full(n, 2e-6),
        "carbon_g": np.full(n, 0.01),
        "energy_j": np.full(n, 3.0),
        "region": np.zeros(n),
        "origin": (np.arange(n) % 4 == 0).astype(float),
        "request_type": kind.astype(float),
    }
    return placed, RequestTypes(("short", "long"), slo)


def test_metrics_per_request_type_match_numpy_on_each_types_requests() -> None:
    placed, types = _synthetic_requests()
    metrics = _metrics(placed, np.zeros(10), np.zeros(10), 1.0, types)

    latency, kind = placed["latency_s"], placed["request_type"].astype(int)
    for k, name in enumerate(types.names):
        mine = latency[kind == k]
        assert metrics[f"requests:{name}"] == mine.size
        for q in (50, 95, 99):
            expected = np.percentile(mine, q) * 1e3
            assert metrics[f"latency_p{q}_ms:{name}"] == pytest.approx(expected)
        violated = float(np.mean(mine > types.slo_s[k]))
        assert metrics[f"slo_violation_rate:{name}"] == pytest.approx(violated)
    ratio = latency / types.slo_s[kind]
    assert metrics["latency_slo_ratio_p95"] == pytest.approx(np.percentile(ratio, 95))
    assert metrics["latency_p95_ms"] == pytest.approx(np.percentile(latency, 95) * 1e3)
    assert metrics["remote_share"] == pytest.approx(0.25)
    assert metrics["carbon_g_per_1k"] == pytest.approx(10.0)


def test_sketch_holds_each_quantile_of_the_pooled_and_per_type_latencies() -> None:
    placed, types = _synthetic_requests()
    sketch = _sketches(placed, types)

    assert set(sketch) == {POOLED, "short", "long"}
    assert len(QUANTILES) == 101 and QUANTILES[0] == 0.01 and QUANTILES[-1] == 0.999
    latency_ms = placed["latency_s"] * 1e3
    kind = placed["request_type"].astype(int)
    for label, values in ((POOLED, latency_ms), ("long", latency_ms[kind == 1])):
        for i in (0, 49, 94, 100):
            ordered = np.sort(values)
            position = QUANTILES[i] * (values.size - 1)  # linear interpolation
            low = ordered[int(np.floor(position))]
            high = ordered[int(np.ceil(position))]
            expected = low + (high - low) * (position - np.floor(position))
            assert sketch[label][i] == pytest.approx(expected)
        assert np.all(np.diff(sketch[label]) >= 0)


def test_a_type_without_requests_has_missing_metrics_not_zeros() -> None:
    placed, types = _synthetic_requests()
    only_short = placed["request_type"] == 0
    placed = {k: v[only_short] for k, v in placed.items()}
    metrics = _metrics(placed, np.zeros(3), np.zeros(3), 1.0, types)
    assert metrics["requests:long"] == 0
    assert np.isnan(metrics["latency_p95_ms:long"])
    assert np.isnan(_sketches(placed, types)["long"]).all()


def test_detailed_two_tier_evaluation_agrees_with_its_own_summary() -> None:
    results = evaluate_two_tier_detailed("latency", _spec(deterministic=True))
    assert [r.seed for r in results] == [21, 22]
    for result in results:
        m = result.metrics
        names = [k.split(":", 1)[1] for k in m if k.startswith("requests:")]
        assert sum(m[f"requests:{n}"] for n in names) == m["requests"]
        counted = [n for n in names if m[f"requests:{n}"] > 0]
        pooled = sum(m[f"slo_violation_rate:{n}"] * m[f"requests:{n}"] for n in counted)
        assert pooled / m["requests"] == pytest.approx(m["slo_violation_rate"])
        sketch = result.latency_quantiles[POOLED]
        assert sketch[QUANTILES.index(0.95)] == pytest.approx(m["latency_p95_ms"])
        assert result.slo_ms["web"] == 120.0  # the small scenario's web SLO


def test_rescheduling_records_every_episode_behind_its_means() -> None:
    spec = RescheduleEvalSpec(seeds=(5, 6), episodes=3)
    results = evaluate_reschedule_detailed("greedy", spec)
    for result in results:
        assert [e["episode"] for e in result.episodes] == [0, 1, 2]
        ends = [e["latency_end_ms"] for e in result.episodes]
        assert np.mean(ends) == pytest.approx(result.metrics["latency_after_ms"])
        moves = [e["moves"] for e in result.episodes]
        assert np.mean(moves) == pytest.approx(result.metrics["migrations"])
        for e in result.episodes:
            expected = 100 * (1 - e["latency_end_ms"] / e["latency_start_ms"])
            assert e["latency_reduction_pct"] == pytest.approx(expected)


def test_fixed_horizon_episodes_report_the_latency_averaged_over_their_steps() -> None:
    """Dynamic variant: the mean over decision steps, replayed step by step here."""
    from envs.reach import ENV_IDS
    from envs.reach.baselines import make_baseline
    from envs.reach.config import RescheduleConfig
    from envs.reach.core import ReachCore
    from envs.rng import seed_streams

    settings = RescheduleConfig(
        **ENV_IDS["ReachRescheduleDynamic-v0"], horizon=True, max_moves=12
    )
    spec = RescheduleEvalSpec(settings, seeds=(7,), episodes=2)
    result = evaluate_reschedule_detailed("greedy", spec)[0]

    core = ReachCore.from_settings(settings, num_envs=1, autoreset=True)
    greedy = make_baseline("greedy", core, seed=7)
    core.reset_env(0, seed_streams(np.random.default_rng(7), 1)[0])
    trace = []
    for _ in range(settings.max_moves):
        trace.append(core.latency(0))
        actions, _ = greedy.predict(core.obs, action_masks=core.action_masks())
        core.step(np.asarray(actions))
    first = result.episodes[0]
    assert first["steps"] == settings.max_moves
    assert first["latency_mean_ms"] == pytest.approx(np.mean(trace))
    assert first["latency_start_ms"] == pytest.approx(trace[0])
    means = [e["latency_mean_ms"] for e in result.episodes]
    assert result.metrics["latency_mean_ms"] == pytest.approx(np.mean(means))
    expected = 100 * (1 - np.mean(means) / result.metrics["latency_before_ms"])
    assert result.metrics["latency_mean_reduction_pct"] == pytest.approx(expected)


def test_episodes_that_stop_carry_no_horizon_average() -> None:
    result = evaluate_reschedule_detailed("greedy", RescheduleEvalSpec(seeds=(5,)))[0]
    assert "latency_mean_reduction_pct" not in result.metrics
    assert all("latency_mean_ms" not in e for e in result.episodes)
