r"""Could any policy meet the carbon goal? The bound of envs.two_tier.carbon_bound.

Issue 15's goal 2: at latency-greedy's p95 (+10 %) and SLO-miss rate (+1 point),
>= 30 % less gCO2 per 1,000 requests. This command measures latency-greedy on the
evaluation protocol (each region controlled in turn, the given seeds), then solves
the lower-bound program with its pooled per-type p95 times each factor and its SLO
misses plus the allowance as limits: the least carbon *any* policy can emit there.
Named policies evaluated alongside are placed against the bound at their own p95s
and SLO rate (how much of what their latency budget allows they save)::

    python -m scripts.benchmarks.carbon_bound --scenario small --seeds 1000-1002 \
        --decisions 2000 --policies carbon,weighted_greedy \
        --checkpoint learned=multirun/.../global_policy.zip --json

``--limit-weights 8,16`` also places ``fpi_greedy`` told the goal's limits: it adds
``W x P(latency > the type's limit)`` to every score (the Lagrangian of the p95
limits; :class:`policies.networks.two_tier.FpiGreedyPolicy`), as ``fpi_limits@W``:
what the best myopic rule keeping the limits saves. Every policy row says whether it
is ``within_goal_limits``; ``goal.limits`` prints them.

``--calibrate 5000-5002`` gives that rule one multiplier per type's limit (the
Lagrangian of K limits has K), found by dual ascent
(:mod:`policies.limit_multipliers`) on those tuning seeds at *their* goal limits
(latency-greedy's there), and places the multipliers it picks as
``fpi_limits@calibrated`` on the evaluation seeds; ``calibration`` lists every step.
With ``--calibration-margin m`` the rule prices and the search keeps the limits
times ``m`` (a back-off), on the tuning and the evaluation seeds alike; the row is
judged against the goal's own limits. With ``--pooled`` one limit prices every
type, so the four multipliers move together (§11's single weight). ``--lb-wait``
builds both on ``fpi_wait_greedy`` (the LB phase reads each region's wait), as
``fpi_wait_limits@W`` and ``fpi_wait_limits@calibrated``.

``--within-shares 0.955,0.96`` also prints the bound when each type keeps that
share within its limit instead of 0.95 (``tail_margin``): how much of it rests on
spending the whole tail allowance. ``--oracle-scales 1.5,2`` places the clairvoyant
:class:`envs.two_tier.limit_oracle.LimitOracle` (the simulator's state, exact
chances, the goal bound's prices times each scale) as ``oracle@<scale>``: what a
rule deciding one request at a time with everything it could know keeps.
``--calibrate-rule oracle`` searches the oracle's per-type prices instead (multiples
of latency-greedy's mean gCO2 per request, the SLO priced by the bound, all from the
tuning seeds) and places the pick as ``oracle@calibrated``.

Figures are pooled over every request of every cell (region x seed), not averaged
over cells: the bound is a statement about pooled quantiles. In the JSON a
``p95_factor`` of null is no p95 limit (SLO misses only); a null bound means the
limits are below what even an empty system reaches in expectation (a short run's
measured quantile can be: the bound is about expectations).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from envs import RewardConfig, TwoTierCore, TwoTierEnvConfig
from envs.errors import ConfigError
from envs.scenario import TYPE_NODE_EXEC_S, World
from envs.two_tier.carbon_bound import (
    P95,
    Cell,
    LatencyLimits,
    LimitPrices,
    carbon_lower_bound,
)
from envs.two_tier.limit_oracle import LimitOracle
from envs.two_tier.reference import RULES
from policies.baselines import BASELINES, TABLE_BASELINES
from policies.limit_multipliers import Limits, Measured, calibrate
from scripts.benchmarks.quality_two_tier import (
    Run,
    add_reward_options,
    checkpoint_env,
    parse_seeds,
    reward_option,
    simulate,
)

REFERENCE = "latency"
"""The policy whose p95 and SLO rate set goal 2's limits."""
EXPECTED = "expected_carbon_g_per_1k"
"""What reductions are computed on: the bound's own quantity, an expectation."""


def pooled(runs: Sequence[Run], world: World) -> dict[str, Any]:
    """Pooled per-type p95 (s), SLO-miss share and gCO2 per 1,000 requests.

    Besides the measured carbon, its expectation given the run's placements (each
    request's carbon over its drawn service factor, which no decision sees): the
    quantity the bound is about, free of the service-time noise (about 3 % with a
    few thousand requests).
    """
    names = runs[0].types.names
    tables = [t for r in runs for t in r.requests]
    kind = np.concatenate([t["request_type"] for t in tables]).astype(np.int64)
    node = np.concatenate([t["node"] for t in tables]).astype(np.int64)
    service = np.concatenate([t["service_s"] for t in tables])
    mean_service = world.type_node[kind, node, TYPE_NODE_EXEC_S]
    latency = np.concatenate([t["latency_s"] for t in tables])
    missed = np.concatenate([t["slo_violated"] for t in tables])
    carbon = np.concatenate([t["carbon_g"] for t in tables])
    expected = carbon * mean_service / service
    p95 = np.array(
        [
            np.percentile(latency[kind == k], 95) if np.any(kind == k) else math.inf
            for k in range(len(names))
        ]
    )
    return {
        "p95_s": p95,
        "pooled_p95_s": float(np.percentile(latency, 95)),
        "slo_miss_share": float(missed.mean()),
        "carbon_g_per_1k": float(carbon.sum() / latency.size * 1e3),
        "expected_carbon_g_per_1k": float(expected.sum() / latency.size * 1e3),
        "requests": int(latency.size),
    }


def cells_of(runs: Sequence[Run], origins: Sequence[int]) -> list[Cell]:
    """One cell per (region, seed): its origin, start hour and requests per type."""
    out = []
    for run, origin in zip(runs, origins, strict=True):
        k_types = len(run.types.names)
        for table, hour in zip(run.requests, run.start_hours.tolist(), strict=True):
            kinds = table["request_type"].astype(np.int64)
            out.append(Cell(origin, int(hour), np.bincount(kinds, minlength=k_types)))
    return out


def _figures(stats: dict[str, Any], names: Sequence[str]) -> dict[str, Any]:
    return {
        "carbon_g_per_1k": round(stats["carbon_g_per_1k"], 6),
        "expected_carbon_g_per_1k": round(stats["expected_carbon_g_per_1k"], 6),
        "slo_miss_pct": round(100 * stats["slo_miss_share"], 3),
        "p95_all_ms": round(1e3 * stats["pooled_p95_s"], 1),
        "p95_ms": {  # null for a type no cell saw (JSON has no Infinity)
            t: round(1e3 * v, 1) if math.isfinite(v) else None
            for t, v in zip(names, stats["p95_s"].tolist(), strict=True)
        },
    }


def _parser() -> argparse.ArgumentParser:
    """The command line; its checks are in :func:`_factors`."""
    parser = argparse.ArgumentParser(prog="carbon_bound", description=__doc__)
    parser.add_argument("--scenario", default="small")
    parser.add_argument("--regions", default="all", help="comma list or all")
    parser.add_argument("--seeds", default="1000-1002")
    parser.add_argument("--decisions", type=int, default=2000)
    add_reward_options(parser, "carbon")
    parser.add_argument(
        "--policies", default="", help="heuristics placed against the bound (commas)"
    )
    parser.add_argument(
        "--checkpoint",
        action="append",
        default=[],
        metavar="LABEL=PATH",
        help="a trained policy placed against the bound (repeatable)",
    )
    parser.add_argument(
        "--deterministic",
        action="store_true",
        help="checkpoints decide by argmax, as the policy server does (default: "
        "sampled)",
    )
    parser.add_argument("--load-input", action="store_true")
    parser.add_argument(
        "--lb-wait",
        action="store_true",
        help="the limit-aware rule is fpi_wait_greedy's (rows fpi_wait_limits@...)",
    )
    parser.add_argument(
        "--p95-factors",
        default="1,1.1,1.25,1.5,2,3,inf",
        help="limits: latency-greedy's p95 of each type times these",
    )
    parser.add_argument("--p95-factor", type=float, default=1.1, help="the goal's")
    parser.add_argument("--slo-points", type=float, default=1.0, help="the goal's")
    parser.add_argument("--target-pct", type=float, default=30.0, help="the goal's")
    parser.add_argument(
        "--pooled",
        action="store_true",
        help="limit the p95 of all requests together instead of each type's",
    )
    parser.add_argument(
        "--limit-weights",
        default="",
        help="also place fpi_greedy + W x P(latency > the goal's limit) for each W "
        "(commas): the Lagrangian of the goal's p95 limits",
    )
    parser.add_argument(
        "--calibrate",
        default="",
        metavar="SEEDS",
        help="also place fpi_greedy with one multiplier per type's limit, found by "
        "dual ascent on these (tuning) seeds at their own goal limits",
    )
    parser.add_argument(
        "--calibrate-rule",
        choices=("fpi_limits", "oracle"),
        default="fpi_limits",
        help="the rule whose per-type multipliers --calibrate searches: fpi_greedy "
        "pricing the limits (reward units), or the limit oracle (multiples of "
        "latency-greedy's mean gCO2 per request on the tuning seeds, SLO priced by "
        "the tuning seeds' bound)",
    )
    parser.add_argument("--calibration-steps", type=int, default=12)
    parser.add_argument(
        "--calibration-margin",
        type=float,
        default=0.97,
        help="the rule prices, and the search keeps, the p95 limits times this (a "
        "back-off, on tuning and evaluation seeds alike): multipliers that just keep "
        "the limits on some seeds break them by a hair on others",
    )
    parser.add_argument(
        "--calibration-start", type=float, default=4.0, help="every multiplier's"
    )
    parser.add_argument(
        "--oracle-scales",
        default="",
        help="also place the clairvoyant limit oracle (envs.two_tier.limit_oracle: "
        "the simulator's state, exact chances, the goal bound's prices times each "
        "scale; commas): what a rule deciding one request at a time can keep",
    )
    parser.add_argument(
        "--within-shares",
        default="",
        help="also the bound at the goal's limits when each type keeps these shares "
        "(commas, e.g. 0.955,0.96) within its p95 limit instead of 0.95: how much "
        "of the bound rests on spending the whole tail allowance",
    )
    parser.add_argument("--samples", type=int, default=200_000)
    parser.add_argument("--json", action="store_true", help="one JSON object only")
    return parser


def _seed_list(parser: argparse.ArgumentParser, option: str, text: str) -> list[int]:
    """The seeds ``text`` names (exit 2 naming ``option`` if none or malformed)."""
    try:
        seeds = parse_seeds(text)
    except ValueError:
        seeds = []
    if not seeds:
        parser.error(f"{option}: seeds like 1000-1002 or 1000,1003, got {text!r}")
    return seeds


def _check_calibration(
    parser: argparse.ArgumentParser, args: argparse.Namespace
) -> None:
    """``--calibrate`` and its settings (exit 2 naming the option if wrong)."""
    if not args.calibrate:
        if args.calibrate_rule != "fpi_limits":
            parser.error("--calibrate-rule: needs --calibrate SEEDS to search on")
        return
    tuning = _seed_list(parser, "--calibrate", args.calibrate)
    if set(tuning) & set(parse_seeds(args.seeds)):
        parser.error("--calibrate: tuning seeds must not be evaluation --seeds")
    if args.calibration_steps < 1:
        parser.error(f"--calibration-steps: at least 1, got {args.calibration_steps}")
    if not 0 < args.calibration_margin <= 1:
        parser.error(f"--calibration-margin: in (0, 1], got {args.calibration_margin}")
    start = args.calibration_start
    if not (math.isfinite(start) and start >= 0):
        parser.error(f"--calibration-start: a weight >= 0, got {start}")


def _factors(parser: argparse.ArgumentParser, args: argparse.Namespace) -> list[float]:
    """The p95 factors to bound at, once every option is checked (exit 2 if not)."""
    if args.decisions < 1:
        parser.error(f"--decisions: a positive count, got {args.decisions}")
    _seed_list(parser, "--seeds", args.seeds)
    try:
        listed = {float(v) for v in args.p95_factors.split(",")}
    except ValueError:
        parser.error(f"--p95-factors: numbers or inf, got {args.p95_factors!r}")
    factors = sorted(listed | {args.p95_factor})
    if any(f <= 0 for f in factors):
        parser.error(f"--p95-factors: positive factors, got {args.p95_factors}")

    known = [*BASELINES, *TABLE_BASELINES, *RULES]
    for name in [p for p in args.policies.split(",") if p]:
        if name not in known:
            parser.error(f"--policies: names of {known}, got {name!r}")
    for item in args.checkpoint:
        label, _, path = item.partition("=")
        if not label or not path or not Path(path).is_file():
            parser.error(f"--checkpoint: LABEL=PATH of a policy file, got {item!r}")
    try:
        weights = [float(v) for v in args.limit_weights.split(",") if v]
    except ValueError:
        weights = [-1.0]
    if not all(math.isfinite(w) and w >= 0 for w in weights):
        parser.error(f"--limit-weights: weights >= 0, got {args.limit_weights!r}")
    _check_calibration(parser, args)
    return factors


def _numbers(
    parser: argparse.ArgumentParser,
    option: str,
    text: str,
    valid: Callable[[float], bool],
    expected: str,
) -> list[float]:
    """A comma list of numbers, each ``valid`` (exit 2 naming the option if not)."""
    try:
        values = [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        values = [math.nan]
    if not all(valid(v) for v in values):
        parser.error(f"{option}: {expected}, got {text!r}")
    return values


def _oracle_scales(parser: argparse.ArgumentParser, text: str) -> list[float]:
    """``--oracle-scales``: finite factors >= 0, each once."""
    scales = _numbers(
        parser, "--oracle-scales", text, lambda v: math.isfinite(v) and v >= 0,
        "factors >= 0",
    )  # fmt: skip
    return list(dict.fromkeys(scales))  # one row per scale


def _within_shares(parser: argparse.ArgumentParser, text: str) -> list[float]:
    """``--within-shares``: shares in (0, 1]."""
    return _numbers(
        parser, "--within-shares", text, lambda v: 0.0 < v <= 1.0, "shares in (0, 1]"
    )


def _limits_json(limits: LatencyLimits, names: Sequence[str]) -> dict[str, Any]:
    """Milliseconds and percent; null where there is no limit (JSON has no inf)."""

    def ms(seconds: float) -> float | None:
        return round(1e3 * seconds, 1) if math.isfinite(seconds) else None

    return {
        "p95_ms": {t: ms(v) for t, v in zip(names, limits.p95_s.tolist(), strict=True)},
        "p95_all_ms": ms(limits.pooled_p95_s),
        "slo_miss_pct": round(100 * limits.slo_miss_share, 3),
    }


def measured_of(stats: dict[str, Any], objective: float = math.nan) -> Measured:
    """A pooled run's figures (:func:`pooled`) as the limit rule reads them.

    ``objective``: what a calibration search minimises (unused by the limit check).
    """
    return Measured(
        stats["p95_s"], stats["pooled_p95_s"], stats["slo_miss_share"], objective
    )


def limits_of(limits: LatencyLimits) -> Limits:
    """The program's limits as the calibration search keeps them."""
    return Limits(limits.p95_s, limits.pooled_p95_s, limits.slo_miss_share)


def within(stats: dict[str, Any], limits: LatencyLimits) -> bool:
    """Whether measured ``stats`` keep ``limits`` (every p95 given and SLO misses).

    One rule with the calibration search (:meth:`Limits.kept_by`): a type with no
    request in the run (p95 ``inf`` from :func:`pooled`) breaks no limit.
    """
    return limits_of(limits).kept_by(measured_of(stats))


@dataclass(frozen=True)
class Setting:
    """Where every policy is measured: scenario, regions, env, reward, length."""

    scenario: str
    regions: list[str]
    env: TwoTierEnvConfig
    reward: RewardConfig
    decisions: int
    world: World
    lb_wait: bool = False
    """The limit-aware rule reads each region's wait in the LB phase."""

    @property
    def limits_rule(self) -> str:
        """The limit-aware rule's row name (before ``@``)."""
        return "fpi_wait_limits" if self.lb_wait else "fpi_limits"


def goal_limits_of(
    stats: dict[str, Any], factor: float, points: float, pooled_reading: bool
) -> LatencyLimits:
    """Goal 2's limits from a reference's ``stats``.

    Its p95s (each type's, or all requests' with ``pooled_reading``) times
    ``factor``, its SLO-miss share + ``points`` percentage points.
    """
    miss = min(stats["slo_miss_share"] + points / 100, 1.0)
    if pooled_reading:
        return LatencyLimits(
            np.full(len(stats["p95_s"]), np.inf), miss, stats["pooled_p95_s"] * factor
        )
    return LatencyLimits(stats["p95_s"] * factor, miss)


def limit_aware(
    setting: Setting,
    weight: float | np.ndarray,
    limits: LatencyLimits,
    seeds: Sequence[int],
) -> list[Run]:
    """fpi_greedy (or fpi_wait_greedy) pricing ``limits``, every region.

    The pooled limit, when there is one, caps every type's.
    """
    from policies.networks.two_tier import FpiGreedyPolicy

    per_type = np.minimum(limits.p95_s, limits.pooled_p95_s)
    runs = []
    for r in setting.regions:
        core = TwoTierCore(setting.scenario, 1, [r], setting.env, setting.reward)
        rule = FpiGreedyPolicy(
            core,
            latency_limits_s=per_type,
            limit_weight=weight,
            lb_wait=setting.lb_wait,
        )
        runs.append(
            simulate(
                setting.limits_rule, setting.scenario, r, setting.reward,
                setting.env, seeds, setting.decisions, policy=rule,
            )
        )  # fmt: skip
    return runs


def oracle(
    setting: Setting,
    limits: LatencyLimits,
    prices: LimitPrices,
    scale: float,
    seeds: Sequence[int],
) -> list[Run]:
    """The clairvoyant limit oracle at ``prices`` x ``scale``, every region."""

    def rule(core: TwoTierCore) -> Callable[[TwoTierCore], np.ndarray]:
        decider = LimitOracle(core, limits, prices, scale)
        return lambda _core: decider.act()

    return [
        simulate(
            "oracle", setting.scenario, r, setting.reward, setting.env, seeds,
            setting.decisions, rule=rule,
        )
        for r in setting.regions
    ]  # fmt: skip


Runner = Callable[[np.ndarray, LatencyLimits, Sequence[int]], list[Run]]
"""Runs a rule at per-type multipliers pricing some limits, every region."""


def oracle_at(
    setting: Setting,
    unit: float,
    slo_price: float,
    pooled_reading: bool,
    weights: np.ndarray,
    limits: LatencyLimits,
    seeds: Sequence[int],
) -> list[Run]:
    """The limit oracle with each type's p95 priced at its multiplier x ``unit``.

    With the pooled reading the one pooled limit is priced at the largest
    multiplier (the search moves them together there).
    """
    weights = np.asarray(weights, dtype=float)
    if pooled_reading:
        prices = LimitPrices(
            np.zeros_like(weights), slo_price, float(weights.max()) * unit
        )
    else:
        prices = LimitPrices(weights * unit, slo_price)
    return oracle(setting, limits, prices, 1.0, seeds)


def calibrated(
    setting: Setting, args: argparse.Namespace
) -> tuple[dict[str, Any], np.ndarray | None, Runner]:
    """Per-type multipliers by dual ascent on the tuning seeds (``--calibrate``).

    The tuning seeds' limits are the goal's definition applied to latency-greedy on
    those seeds, p95s backed off by ``--calibration-margin`` (the rule prices what
    it must keep); the evaluation seeds are never run here. Returns the search's
    report, the multipliers it picked (``None``: no step kept the limits) and the
    rule they are multipliers of (everything it needs comes from the tuning seeds).
    """
    tuning = parse_seeds(args.calibrate)
    names = list(setting.world.type_names)
    reference_runs = [
        simulate(
            REFERENCE, setting.scenario, r, setting.reward, setting.env, tuning,
            setting.decisions,
        )
        for r in setting.regions
    ]  # fmt: skip
    reference = pooled(reference_runs, setting.world)
    tuned = goal_limits_of(
        reference,
        args.p95_factor * args.calibration_margin,
        args.slo_points,
        args.pooled,
    )
    limits = limits_of(tuned)
    extra: dict[str, Any] = {}
    runner: Runner = partial(limit_aware, setting)
    if args.calibrate_rule == "oracle":
        origins = [setting.world.region_index(r) for r in setting.regions]
        cells = cells_of(reference_runs, origins)
        try:
            slo_price = carbon_lower_bound(
                setting.world, cells, tuned, args.samples
            ).prices.slo
        except ConfigError:  # limits below the floor (a short run): no price
            slo_price = 0.0
            print(
                "calibration: the tuning limits are below the no-queueing floor; "
                "the oracle's SLO is not priced (slo_price_g 0)",
                file=sys.stderr,
            )
        unit = reference[EXPECTED] / 1e3  # g per request
        runner = partial(oracle_at, setting, unit, slo_price, args.pooled)
        extra = {"price_unit_g_per_request": unit, "slo_price_g": slo_price}

    def measure(weights: np.ndarray) -> Measured:
        stats = pooled(runner(weights, tuned, tuning), setting.world)
        run = measured_of(stats, stats[EXPECTED])
        print(  # progress: a step takes about a minute on default
            f"calibration: multipliers {np.round(weights, 2).tolist()}, p95 / limit "
            f"{np.round(limits.excess(run), 3).tolist()}",
            file=sys.stderr,
        )
        return run

    search = calibrate(
        measure,
        limits,
        np.full(len(names), args.calibration_start),
        args.calibration_steps,
    )

    def named(weights: np.ndarray) -> dict[str, float]:
        return dict(zip(names, weights.tolist(), strict=True))  # exact: rerunnable

    steps = [
        {
            "limit_weights": named(w),
            "reduction_pct": round(100 * (1 - run.objective / reference[EXPECTED]), 2),
            "p95_ms": {
                t: round(1e3 * v, 1) if math.isfinite(v) else None
                for t, v in zip(names, run.p95_s.tolist(), strict=True)
            },
            "p95_all_ms": round(1e3 * run.pooled_p95_s, 1),
            "slo_miss_pct": round(100 * run.slo_miss_share, 3),
            "within_limits": limits.kept_by(run),
        }
        for w, run in search.steps
    ]
    report = {
        "rule": args.calibrate_rule,
        "seeds": tuning,
        "limits": _limits_json(tuned, names),
        "steps": steps,
        "picked": None if search.best is None else named(search.best),
    } | extra
    return report, search.best, runner


def _print_frontier(frontier: list[dict[str, Any]]) -> None:
    """The frontier as a Markdown table (the text output's last part)."""
    print("\n| p95 limit (x latency-greedy) | least gCO2/1k | max reduction % |")
    print("|---|---|---|")
    for row in frontier:
        factor = "none" if row["p95_factor"] is None else f"{row['p95_factor']:g}"
        if row["carbon_g_per_1k"] is None:
            print(f"| {factor} | below the no-queueing floor | |")
        else:
            print(
                f"| {factor} | {row['carbon_g_per_1k']:.5f} "
                f"| {row['reduction_pct']:+.1f} |"
            )


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    factors = _factors(parser, args)
    shares = _within_shares(parser, args.within_shares)
    scales = _oracle_scales(parser, args.oracle_scales)
    try:
        world = TwoTierCore(args.scenario, 1).world
        regions = (
            list(world.region_ids) if args.regions == "all" else args.regions.split(",")
        )
        origins = [world.region_index(r) for r in regions]
    except ConfigError as exc:
        parser.error(str(exc))
    env = TwoTierEnvConfig(load_input=args.load_input)
    reward = reward_option(parser, args)
    seeds = parse_seeds(args.seeds)

    def measure(name: str) -> list[Run]:
        """A heuristic by name, or a checkpoint given as ``label=path.zip``."""
        label, _, path = name.partition("=")
        if not path:
            return [
                simulate(name, args.scenario, r, reward, env, seeds, args.decisions)
                for r in regions
            ]
        from policies.checkpoint import load_checkpoint

        model, trained = load_checkpoint(path), checkpoint_env(path)
        common = (reward, trained, seeds, args.decisions)
        return [
            simulate(
                label,
                args.scenario,
                r,
                *common,
                policy=model,
                deterministic=args.deterministic,
            )
            for r in regions
        ]

    reference_runs = measure(REFERENCE)
    reference = pooled(reference_runs, world)
    cells = cells_of(reference_runs, origins)
    names = list(world.type_names)

    setting = Setting(
        args.scenario, regions, env, reward, args.decisions, world, args.lb_wait
    )

    def limits_at(stats: dict[str, Any], factor: float, points: float) -> LatencyLimits:
        return goal_limits_of(stats, factor, points, args.pooled)

    goal_limits = limits_at(reference, args.p95_factor, args.slo_points)

    def bound(
        stats: dict[str, Any], factor: float, points: float, share: float = P95
    ) -> dict[str, Any]:
        """The bound at ``stats``' p95s times ``factor``, SLO misses + ``points``.

        ``share`` of each type's requests within its limit (0.95: the p95 itself).
        """
        limits = replace(limits_at(stats, factor, points), within_share=share)
        try:
            result = carbon_lower_bound(world, cells, limits, args.samples)
        except ConfigError:  # a measured p95 below the floor's own: a short run
            return {"carbon_g_per_1k": None, "reduction_pct": None}
        return {
            "carbon_g_per_1k": round(result.carbon_g_per_1k, 6),
            "reduction_pct": round(
                100 * (1 - result.carbon_g_per_1k / reference[EXPECTED]), 2
            ),
            "remote_share": {
                t: round(v, 3)
                for t, v in zip(names, result.remote_share.tolist(), strict=True)
            },
        }

    frontier = [
        {"p95_factor": f if math.isfinite(f) else None}
        | bound(reference, f, args.slo_points)
        for f in factors
    ]
    goal = next(row for row in frontier if row["p95_factor"] == args.p95_factor)
    tail_margin = [
        {"within_share": share}
        | bound(reference, args.p95_factor, args.slo_points, share)
        for share in shares
    ]
    policies = []
    named = [p for p in args.policies.split(",") if p] + args.checkpoint
    weights = [float(w) for w in args.limit_weights.split(",") if w]
    measured: list[tuple[str, Callable[[], list[Run]]]] = [
        (n.partition("=")[0], partial(measure, n)) for n in named
    ]
    measured += [
        (
            f"{setting.limits_rule}@{w:g}",
            partial(limit_aware, setting, w, goal_limits, seeds),
        )
        for w in weights
    ]
    if scales:
        try:
            prices = carbon_lower_bound(world, cells, goal_limits, args.samples).prices
        except ConfigError:
            parser.error(
                "--oracle-scales: the goal's limits are below what even an empty "
                "system reaches in expectation, so the bound has no prices to scale "
                "(a short run: more --decisions or a larger --p95-factor)"
            )
        measured += [
            (
                f"oracle@{s:g}",
                partial(oracle, setting, goal_limits, prices, s, seeds),
            )
            for s in scales
        ]
    calibration: dict[str, Any] | None = None
    if args.calibrate:
        calibration, picked, runner = calibrated(setting, args)
        backed_off = goal_limits_of(
            reference,
            args.p95_factor * args.calibration_margin,
            args.slo_points,
            args.pooled,
        )  # what the searched rule priced; the row is judged on goal_limits
        if picked is not None:
            rule_name = (
                setting.limits_rule
                if args.calibrate_rule == "fpi_limits"
                else args.calibrate_rule
            )
            measured.append(
                (
                    f"{rule_name}@calibrated",
                    partial(runner, picked, backed_off, seeds),
                )
            )
    for label, runs_of in measured:
        stats = pooled(runs_of(), world)
        own = bound(stats, 1.0, 0.0)
        policies.append(
            {"policy": label}
            | _figures(stats, names)
            | {
                "reduction_pct": round(
                    100 * (1 - stats[EXPECTED] / reference[EXPECTED]),
                    2,
                ),
                "within_goal_limits": within(stats, goal_limits),
                "bound_at_own_latency_g_per_1k": own["carbon_g_per_1k"],
                "bound_at_own_latency_reduction_pct": own["reduction_pct"],
            }
        )
    report = {
        "scenario": args.scenario,
        "regions": regions,
        "seeds": seeds,
        "decisions": args.decisions,
        "lb_wait": args.lb_wait,
        "deterministic": args.deterministic,
        "cells": len(cells),
        "requests": reference["requests"],
        "latency_greedy": _figures(reference, names),
        "goal": {
            "p95": "pooled" if args.pooled else "per type",
            "p95_factor": args.p95_factor,
            "slo_points": args.slo_points,
            "target_reduction_pct": args.target_pct,
            "bound_g_per_1k": goal["carbon_g_per_1k"],
            "max_reduction_pct": goal["reduction_pct"],
            "reachable": goal["reduction_pct"] is not None
            and goal["reduction_pct"] >= args.target_pct,
            "limits": _limits_json(goal_limits, names),
        },
        "frontier": frontier,
        "policies": policies,
    }
    if calibration is not None:
        report["calibration"] = calibration
    if tail_margin:
        report["tail_margin"] = tail_margin
    if args.json:
        print(json.dumps(report))
        return 0
    print(json.dumps(report, indent=1))
    _print_frontier(frontier)
    return 0


if __name__ == "__main__":
    sys.exit(main())
