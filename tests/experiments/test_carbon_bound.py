"""The carbon bound against the simulator's own runs, and its command line."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from envs import RewardConfig, TwoTierEnvConfig
from envs.scenario import (
    HOUR_CARBON,
    NODE_ACCESS_RTT_S,
    PAIR_BW_BPS,
    PAIR_RTT_S,
    PAIR_RTT_SIGMA,
    TYPE_BYTES,
    TYPE_NODE_ENERGY_J,
    TYPE_NODE_EXEC_S,
    compile_scenario,
    load_scenario,
)
from envs.two_tier.carbon_bound import (
    LatencyLimits,
    LimitPrices,
    build_program,
    carbon_lower_bound,
)
from policies.checkpoint import load_checkpoint
from scripts.benchmarks import carbon_bound
from scripts.benchmarks.quality_two_tier import (
    checkpoint_env,
    checkpoint_reward,
    parse_reward,
    simulate,
)
from tests.serving.helpers import TINY_POLICY, run_config, train_checkpoint

WORLD = compile_scenario(load_scenario("small"))
REGION = "asia-east"  # the dirtiest region of small: its requests have somewhere to go
SEEDS = [1000, 1001]


@pytest.fixture(scope="module", params=["latency", "weighted_greedy", "carbon"])
def run(request: pytest.FixtureRequest) -> carbon_bound.Run:
    return simulate(
        request.param, "small", REGION, parse_reward("carbon"), TwoTierEnvConfig(),
        SEEDS, 1500,
    )  # fmt: skip


def _placements(run: carbon_bound.Run) -> np.ndarray:
    """``x[c, k, n]``: the run's share of each cell's type-k requests on node n."""
    x = np.zeros((len(run.requests), WORLD.n_types, WORLD.n_nodes))
    for c, table in enumerate(run.requests):
        kinds = table["request_type"].astype(int)
        np.add.at(x[c], (kinds, table["node"].astype(int)), 1.0)
        x[c] /= np.maximum(x[c].sum(axis=1, keepdims=True), 1.0)
    return x


def test_the_programs_carbon_is_the_simulators_accounting(
    run: carbon_bound.Run,
) -> None:
    """The program prices exactly what the simulator charges.

    Each request's carbon is its node's expected energy x the hour's intensity x its
    drawn service factor (which no decision sees).
    """
    origin = WORLD.region_index(REGION)
    cells = carbon_bound.cells_of([run], [origin])
    expected_g = 0.0
    requests = 0
    for table, cell in zip(run.requests, cells, strict=True):
        k = table["request_type"].astype(int)
        n = table["node"].astype(int)
        q = table["region"].astype(int)
        intensity = WORLD.hourly[q, cell.hour, HOUR_CARBON]
        per_request = WORLD.type_node[k, n, TYPE_NODE_ENERGY_J] * intensity / 3.6e6
        factor = table["service_s"] / WORLD.type_node[k, n, TYPE_NODE_EXEC_S]
        np.testing.assert_allclose(table["carbon_g"], per_request * factor, rtol=1e-9)
        expected_g += per_request.sum()
        requests += k.size
    stats = carbon_bound.pooled([run], WORLD)
    program = build_program(
        WORLD, cells, LatencyLimits(stats["p95_s"], stats["slo_miss_share"])
    )
    x = _placements(run)
    assert program.cost @ x.ravel() == pytest.approx(expected_g / requests * 1e3)
    assert stats["expected_carbon_g_per_1k"] == pytest.approx(
        expected_g / requests * 1e3
    )
    assert np.all(x.ravel()[program.upper == 0] == 0)  # the run used allowed nodes
    np.testing.assert_allclose(program.a_eq @ x.ravel(), program.b_eq)


def test_the_floor_is_the_simulators_latency_without_queueing(
    run: carbon_bound.Run,
) -> None:
    """The floor is the simulator's latency without queueing.

    Latency minus the queue wait is access RTT (+ an inter-region RTT, checked
    below) + transfer at the pair's bandwidth + service.
    """
    origin = WORLD.region_index(REGION)
    for table in run.requests:
        k = table["request_type"].astype(int)
        n = table["node"].astype(int)
        q = table["region"].astype(int)
        np.testing.assert_allclose(
            table["latency_s"] - table["queue_wait_s"],
            table["rtt_s"] + table["transfer_s"] + table["service_s"],
            rtol=1e-9,
        )
        pair = WORLD.pair_f[origin, q]
        np.testing.assert_allclose(
            table["transfer_s"], WORLD.type_f[k, TYPE_BYTES] / pair[:, PAIR_BW_BPS]
        )
        home = q == origin
        np.testing.assert_allclose(
            table["rtt_s"][home], WORLD.node_f[n[home], NODE_ACCESS_RTT_S], atol=1e-12
        )


def test_remote_rtts_are_lognormal_around_the_pairs_median() -> None:
    """What ``floor_cdf`` draws: ``median x exp(sigma Z)`` on top of the access RTT."""
    origin = WORLD.region_index(REGION)
    run = simulate(
        "carbon", "small", REGION, parse_reward("carbon"), TwoTierEnvConfig(),
        SEEDS, 1500,
    )  # fmt: skip
    standard = []
    for table in run.requests:
        q = table["region"].astype(int)
        away = q != origin
        pair = WORLD.pair_f[origin, q[away]]
        access = WORLD.node_f[table["node"].astype(int)[away], NODE_ACCESS_RTT_S]
        ratio = (table["rtt_s"][away] - access) / pair[:, PAIR_RTT_S]
        standard.append(np.log(ratio) / pair[:, PAIR_RTT_SIGMA])
    z = np.concatenate(standard)
    assert z.size >= 1000  # carbon-greedy sends most requests away from asia-east
    assert abs(float(np.mean(z))) < 0.1
    assert float(np.std(z)) == pytest.approx(1.0, abs=0.1)


def test_no_policy_run_beats_the_bound_at_its_own_latency(
    run: carbon_bound.Run,
) -> None:
    """The bound at a run's own latency is at most the run's expected carbon.

    Limits: the run's p95s + 15 % and SLO misses + 2 points, the slack for a finite
    run's quantiles (an empirical p95 of ~800 exponential service times falls up to
    10 % below the population's); the run's own placement meets the program's rows.
    """
    origin = WORLD.region_index(REGION)
    cells = carbon_bound.cells_of([run], [origin])
    stats = carbon_bound.pooled([run], WORLD)
    limits = LatencyLimits(
        stats["p95_s"] * 1.15, min(stats["slo_miss_share"] + 0.02, 1)
    )
    bound = carbon_lower_bound(WORLD, cells, limits)
    program = build_program(WORLD, cells, limits)
    x = _placements(run).ravel()
    achieved = float(program.cost @ x)
    assert bound.carbon_g_per_1k <= achieved * (1 + 1e-9)
    total = sum(float(cell.counts.sum()) for cell in cells)
    assert np.all(program.a_ub @ x <= program.b_ub + 1e-9 * total)  # feasible


def test_command_line_reports_the_goal_and_a_monotone_frontier(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code = carbon_bound.main(
        [
            "--scenario", "small", "--regions", REGION, "--seeds", "1000",
            "--decisions", "1500", "--p95-factors", "1,2,inf", "--p95-factor", "1.5",
            "--samples", "20000", "--policies", "weighted_greedy",
            "--limit-weights", "0,50", "--within-shares", "0.95,0.97",
            "--oracle-scales", "0,3", "--json",
        ]
    )  # fmt: skip
    assert code == 0
    report = json.loads(capsys.readouterr().out)
    plain, margin = report["tail_margin"]
    assert plain["within_share"] == 0.95 and margin["within_share"] == 0.97
    assert plain["carbon_g_per_1k"] == report["goal"]["bound_g_per_1k"]
    assert margin["carbon_g_per_1k"] >= plain["carbon_g_per_1k"]
    factors = [row["p95_factor"] for row in report["frontier"]]
    assert factors == [1.0, 1.5, 2.0, None]  # the goal's factor joins; None: no limit
    carbon = [row["carbon_g_per_1k"] for row in report["frontier"][1:]]
    assert None not in carbon and carbon == sorted(carbon, reverse=True)
    goal = report["goal"]
    assert goal["bound_g_per_1k"] == report["frontier"][1]["carbon_g_per_1k"]
    assert goal["p95_factor"] == 1.5
    assert goal["reachable"] == (goal["max_reduction_pct"] >= 30.0)
    again = simulate(
        "latency", "small", REGION, parse_reward("carbon"), TwoTierEnvConfig(),
        [1000], 1500,
    )  # fmt: skip
    reference = carbon_bound.pooled([again], WORLD)
    lg = report["latency_greedy"]
    assert lg["carbon_g_per_1k"] == pytest.approx(reference["carbon_g_per_1k"], 1e-5)
    reduction = 100 * (1 - goal["bound_g_per_1k"] / lg["expected_carbon_g_per_1k"])
    assert goal["max_reduction_pct"] == pytest.approx(reduction, abs=0.01)
    policy, free, priced, greedy_oracle, oracle = report["policies"]
    assert [policy["policy"], free["policy"], priced["policy"]] == [
        "weighted_greedy", "fpi_limits@0", "fpi_limits@50",
    ]  # fmt: skip
    assert [greedy_oracle["policy"], oracle["policy"]] == ["oracle@0", "oracle@3"]
    # Unpriced, the oracle takes the cleanest node: the least carbon of any row.
    least = min(row["expected_carbon_g_per_1k"] for row in report["policies"])
    assert greedy_oracle["expected_carbon_g_per_1k"] == least
    assert least < lg["expected_carbon_g_per_1k"]
    own = policy["bound_at_own_latency_g_per_1k"]
    assert own is None or own <= policy["expected_carbon_g_per_1k"]
    limits = goal["limits"]
    assert limits["p95_all_ms"] is None  # per-type reading: no pooled limit
    assert limits["slo_miss_pct"] == pytest.approx(lg["slo_miss_pct"] + 1.0, abs=1e-3)
    for row in report["policies"]:
        keeps = row["slo_miss_pct"] <= limits["slo_miss_pct"] + 1e-3 and all(
            row["p95_ms"][t] <= limits["p95_ms"][t] + 0.1 for t in limits["p95_ms"]
        )
        assert row["within_goal_limits"] == keeps, row
    for t, limit in limits["p95_ms"].items():
        assert limit == pytest.approx(1.5 * lg["p95_ms"][t], abs=0.2)
    # Weight 0 is fpi_greedy; pricing the limits gives up carbon to keep them.
    assert priced["expected_carbon_g_per_1k"] >= free["expected_carbon_g_per_1k"]


def test_lb_wait_prices_the_limits_on_fpi_wait_greedy(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Weight 0 of ``--lb-wait``'s rule is ``fpi_wait_greedy``, not ``fpi_greedy``."""
    code = carbon_bound.main(
        [
            "--scenario", "small", "--regions", "eu-central", "--seeds", "5007",
            "--decisions", "3000", "--p95-factors", "inf", "--samples", "5000",
            "--load-input", "--policies", "fpi_greedy,fpi_wait_greedy",
            "--limit-weights", "0", "--lb-wait", "--json",
        ]
    )  # fmt: skip
    assert code == 0
    report = json.loads(capsys.readouterr().out)
    assert report["lb_wait"] is True
    old, new, free = report["policies"]
    assert free["policy"] == "fpi_wait_limits@0"
    for key in ("expected_carbon_g_per_1k", "slo_miss_pct", "p95_ms"):
        assert free[key] == new[key], key
    # The rules differ once eu-central's burst on this seed starts (by decision 3,000).
    assert free["p95_ms"]["web"] < old["p95_ms"]["web"]


def test_calibrated_multipliers_are_searched_on_tuning_seeds_and_judged_on_others(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Searched on the tuning seed, judged on the evaluation seed.

    The search prices and keeps latency-greedy's limits on the tuning seed, backed
    off by the margin; its pick is the step within them with the least carbon,
    rerun on the evaluation seed pricing that seed's limits backed off alike.
    """
    reward = "1,0,1,0.1,4"  # carbon pulls requests far: the limits bite
    margin = 0.95
    code = carbon_bound.main(
        [
            "--scenario", "small", "--regions", REGION, "--seeds", "1000",
            "--decisions", "1000", "--p95-factors", "inf", "--samples", "5000",
            "--reward", reward, "--calibrate", "5001", "--calibration-steps", "4",
            "--calibration-start", "2", "--calibration-margin", str(margin), "--json",
        ]
    )  # fmt: skip
    assert code == 0
    report = json.loads(capsys.readouterr().out)
    search = report["calibration"]
    assert search["seeds"] == [5001]
    setting = carbon_bound.Setting(
        "small", [REGION], TwoTierEnvConfig(), parse_reward(reward), 1000, WORLD
    )

    def backed_off(seed: int) -> LatencyLimits:
        """latency-greedy's limits on ``seed``, x 1.1 x the margin."""
        reference = carbon_bound.pooled(
            [simulate("latency", "small", REGION, setting.reward, setting.env,
                      [seed], 1000)],
            WORLD,
        )  # fmt: skip
        return carbon_bound.goal_limits_of(reference, 1.1 * margin, 1.0, False)

    tuned = backed_off(5001)
    limits = search["limits"]["p95_ms"]
    for k, t in enumerate(WORLD.type_names):
        assert limits[t] == pytest.approx(1e3 * tuned.p95_s[k], abs=0.1)
    steps = search["steps"]
    assert len(steps) == 4
    first = np.array([steps[0]["limit_weights"][t] for t in WORLD.type_names])
    assert np.all(first == 2.0)
    again = carbon_bound.pooled(
        carbon_bound.limit_aware(setting, first, tuned, [5001]), WORLD
    )  # the first step, rerun: the search ran on the tuning seed, its limits priced
    for k, t in enumerate(WORLD.type_names):
        assert steps[0]["p95_ms"][t] == pytest.approx(1e3 * again["p95_s"][k], abs=0.1)
    for step in steps:
        keeps = step["slo_miss_pct"] <= search["limits"]["slo_miss_pct"] + 1e-3 and all(
            step["p95_ms"][t] <= limits[t] + 0.1 for t in WORLD.type_names
        )
        assert step["within_limits"] == keeps, step
    kept = [s for s in steps if s["within_limits"]]
    assert kept, "no step kept the limits: the test's settings no longer exercise it"
    least_carbon = max(kept, key=lambda s: s["reduction_pct"])
    assert search["picked"] == least_carbon["limit_weights"]
    row = next(r for r in report["policies"] if r["policy"] == "fpi_limits@calibrated")
    weights = np.array([search["picked"][t] for t in WORLD.type_names])
    rerun = carbon_bound.pooled(
        carbon_bound.limit_aware(setting, weights, backed_off(1000), [1000]), WORLD
    )
    assert row["expected_carbon_g_per_1k"] == pytest.approx(
        rerun["expected_carbon_g_per_1k"], abs=5e-7
    )  # the row's 6 decimals
    assert row["p95_ms"] == {
        t: pytest.approx(1e3 * rerun["p95_s"][k], abs=0.05)
        for k, t in enumerate(WORLD.type_names)
    }


def test_within_ignores_a_type_the_run_never_saw() -> None:
    limits = LatencyLimits(np.array([0.1, 0.5]), slo_miss_share=0.05)
    stats = {"p95_s": np.array([0.08, np.inf]), "pooled_p95_s": 0.08}
    assert carbon_bound.within(stats | {"slo_miss_share": 0.01}, limits)
    assert not carbon_bound.within(stats | {"slo_miss_share": 0.06}, limits)
    over = {"p95_s": np.array([0.12, np.inf]), "pooled_p95_s": 0.12}
    assert not carbon_bound.within(over | {"slo_miss_share": 0.01}, limits)


@pytest.mark.parametrize(
    ("argv", "named"),
    [
        (["--p95-factors", "1,-2"], "--p95-factors"),
        (["--p95-factors", "1,x"], "--p95-factors"),
        (["--scenario", "nowhere"], "scenario"),
        (["--regions", "mars"], "region"),
        (["--policies", "latency,oracle"], "--policies"),
        (["--checkpoint", "x=/no/such/policy.zip"], "--checkpoint"),
        (["--checkpoint", "x="], "--checkpoint"),
        (["--limit-weights", "4,-1"], "--limit-weights"),
        (["--limit-weights", "four"], "--limit-weights"),
        (["--calibrate", "1000-1001"], "--calibrate"),  # the evaluation seeds
        (["--calibrate", "later"], "--calibrate"),
        (["--calibrate", "5002-5000"], "--calibrate"),  # no seed at all
        (["--seeds", "1002-1000"], "--seeds"),
        (["--within-shares", "0.95,1.2"], "--within-shares"),
        (["--within-shares", "most"], "--within-shares"),
        (["--oracle-scales", "1,-1"], "--oracle-scales"),
        (["--oracle-scales", "nan"], "--oracle-scales"),
        (["--calibrate-rule", "oracle"], "--calibrate-rule"),  # no --calibrate
        (["--reward-from", "/no/such/policy.zip"], "--reward-from"),
        (["--reward", "1,0,1"], "--reward"),
        (  # the goal's limits below the floor: the bound has no prices
            f"--oracle-scales 1 --regions {REGION} --seeds 1000 --decisions 300 "
            "--p95-factors inf --p95-factor 0.3".split(),
            "--oracle-scales",
        ),
        (["--calibrate", "5000", "--calibration-steps", "0"], "--calibration-steps"),
        (["--calibrate", "5000", "--calibration-start", "-1"], "--calibration-start"),
        (["--calibrate", "5000", "--calibration-margin", "0"], "--calibration-margin"),
        (
            ["--calibrate", "5000", "--calibration-margin", "1.2"],
            "--calibration-margin",
        ),
    ],
)
def test_command_line_refuses_bad_input_naming_it(
    argv: list[str], named: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as stop:
        carbon_bound.main(argv)
    assert stop.value.code == 2
    assert named in capsys.readouterr().err


def test_a_checkpoint_is_placed_against_the_bound_under_its_label(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A trained policy is run with its own observation settings.

    Here a tiny FPI-prior one reading region loads; a path with commas, as Hydra's
    multirun folders have, is one checkpoint.
    """
    folder = tmp_path / "reward.carbon=1.0,seed=0"
    folder.mkdir()
    cfg = run_config(
        "two_tier",
        two_tier={"learn": "both", "load_input": True},
        policy={**TINY_POLICY, "network": "two_tier_scorer_fpi"},
    )
    path = train_checkpoint(folder / "global_policy.zip", cfg, seed=3)
    code = carbon_bound.main(
        [
            "--scenario", "small", "--regions", REGION, "--seeds", "1000",
            "--decisions", "400", "--p95-factors", "inf", "--samples", "5000",
            "--checkpoint", f"tiny={path}", "--json",
        ]
    )  # fmt: skip
    assert code == 0
    (row,) = json.loads(capsys.readouterr().out)["policies"]
    assert row["policy"] == "tiny"
    direct = simulate(
        "tiny", "small", REGION, parse_reward("carbon"), checkpoint_env(str(path)),
        [1000], 400, policy=load_checkpoint(path),
    )  # fmt: skip
    stats = carbon_bound.pooled([direct], WORLD)
    assert row["carbon_g_per_1k"] == pytest.approx(stats["carbon_g_per_1k"], 1e-5)


def test_rules_beside_a_checkpoint_read_its_reward_and_it_decides_by_argmax(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The rules read the checkpoint's reward; the checkpoint decides by argmax.

    ``--reward-from``: ``fpi_greedy`` prices the checkpoint's own limits, as the
    learner's prior does; ``--deterministic``: argmax, as the policy server decides.
    """
    limits = {"inference": 0.1, "analytics": 0.5, "personal-data": 0.05}
    cfg = run_config(
        "two_tier",
        two_tier={"learn": "both", "load_input": True},
        policy={**TINY_POLICY, "network": "two_tier_scorer_fpi"},
        reward={
            "cost": 0.1,
            "carbon": 4.0,
            "limit_s": limits,
            "limit_exceeded": dict.fromkeys(limits, 20.0),
        },
    )
    path = train_checkpoint(tmp_path / "global_policy.zip", cfg, seed=3)
    code = carbon_bound.main(
        [
            "--scenario", "small", "--regions", REGION, "--seeds", "1000",
            "--decisions", "400", "--p95-factors", "inf", "--samples", "5000",
            "--load-input", "--reward-from", str(path), "--policies", "fpi_greedy",
            "--checkpoint", f"tiny={path}", "--deterministic", "--json",
        ]
    )  # fmt: skip
    assert code == 0
    report = json.loads(capsys.readouterr().out)
    assert report["deterministic"] is True
    rows = {row["policy"]: row for row in report["policies"]}
    trained = checkpoint_reward(str(path))
    assert trained.limit_s == limits and trained.carbon == 4.0
    env = TwoTierEnvConfig(load_input=True)

    def carbon_of(name: str, reward: RewardConfig, policy: object = None) -> float:
        run = simulate(
            name, "small", REGION, reward, env, [1000], 400,
            policy=policy, deterministic=policy is not None,
        )  # fmt: skip
        return float(carbon_bound.pooled([run], WORLD)["carbon_g_per_1k"])

    priced = carbon_of("fpi_greedy", trained)
    assert rows["fpi_greedy"]["carbon_g_per_1k"] == pytest.approx(priced, 1e-5)
    unpriced = replace(trained, limit_s={}, limit_exceeded={})
    assert carbon_of("fpi_greedy", unpriced) != pytest.approx(priced, 1e-3)
    argmax = carbon_of("tiny", trained, policy=load_checkpoint(path))
    assert rows["tiny"]["carbon_g_per_1k"] == pytest.approx(argmax, 1e-5)


def test_the_oracle_can_be_calibrated_from_the_tuning_seeds_alone(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """``--calibrate-rule oracle``: prices in units and an SLO price of the tuning seeds.

    The search's steps are the oracle at those prices on the tuning seed (a step
    rerun must match), and the evaluation row is the pick rerun on the evaluation
    seed with the tuning seeds' unit and SLO price.
    """
    reward = "1,0,1,0.1,4"
    margin = 0.95
    code = carbon_bound.main(
        [
            "--scenario", "small", "--regions", REGION, "--seeds", "1000",
            "--decisions", "1000", "--p95-factors", "inf", "--p95-factor", "1.5",
            "--samples", "5000",
            "--reward", reward, "--calibrate", "5001", "--calibrate-rule", "oracle",
            "--calibration-steps", "3", "--calibration-start", "4",
            "--calibration-margin", str(margin), "--json",
        ]
    )  # fmt: skip
    assert code == 0
    report = json.loads(capsys.readouterr().out)
    search = report["calibration"]
    assert search["rule"] == "oracle" and search["seeds"] == [5001]
    setting = carbon_bound.Setting(
        "small", [REGION], TwoTierEnvConfig(), parse_reward(reward), 1000, WORLD
    )
    tuning_runs = [
        simulate("latency", "small", REGION, setting.reward, setting.env, [5001], 1000)
    ]
    tuning = carbon_bound.pooled(tuning_runs, WORLD)
    unit = tuning["expected_carbon_g_per_1k"] / 1e3
    assert search["price_unit_g_per_request"] == pytest.approx(unit, rel=1e-9)
    tuned = carbon_bound.goal_limits_of(tuning, 1.5 * margin, 1.0, False)
    cells = carbon_bound.cells_of(tuning_runs, [WORLD.region_index(REGION)])
    slo_price = carbon_lower_bound(WORLD, cells, tuned, 5000).prices.slo
    assert slo_price > 0  # (1.5x: limits the program can meet, so it prices them)
    assert search["slo_price_g"] == pytest.approx(slo_price, rel=1e-6)
    steps = search["steps"]
    first = np.array([steps[0]["limit_weights"][t] for t in WORLD.type_names])
    assert np.all(first == 4.0) and len(steps) == 3
    again = carbon_bound.pooled(
        carbon_bound.oracle(
            setting, tuned, LimitPrices(first * unit, slo_price), 1.0, [5001]
        ),
        WORLD,
    )
    for k, t in enumerate(WORLD.type_names):
        assert steps[0]["p95_ms"][t] == pytest.approx(1e3 * again["p95_s"][k], abs=0.1)
    rows = [r for r in report["policies"] if r["policy"] == "oracle@calibrated"]
    assert search["picked"] is not None, "no step kept the limits: not exercised"
    assert len(rows) == 1
    weights = np.array([search["picked"][t] for t in WORLD.type_names])
    evaluation = carbon_bound.pooled(
        [
            simulate(
                "latency", "small", REGION, setting.reward, setting.env, [1000], 1000
            )
        ],
        WORLD,
    )
    backed_off = carbon_bound.goal_limits_of(evaluation, 1.5 * margin, 1.0, False)
    rerun = carbon_bound.pooled(
        carbon_bound.oracle(
            setting, backed_off, LimitPrices(weights * unit, slo_price), 1.0, [1000]
        ),
        WORLD,
    )
    assert rows[0]["expected_carbon_g_per_1k"] == pytest.approx(
        rerun["expected_carbon_g_per_1k"], abs=5e-7
    )
