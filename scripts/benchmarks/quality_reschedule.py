"""Rescheduling policy quality: learned vs greedy vs the offline reference.

``measure(args)`` is the rescheduling half of ``python -m scripts.bench quality``: one
training seed of the shipped learner (``conf/env/reschedule.yaml``, no per-config
tuning) on a config set it was not tuned on, then the learned policy, one-step greedy
and the offline reference search (:mod:`envs.reach.search`) on the same held-out
episodes. The module is also the lab's command line (docs/quality/reschedule.md)::

    python -m scripts.benchmarks.quality_reschedule headroom 7-21 shop --seeds 5000-5003
    python -m scripts.benchmarks.quality_reschedule train shop --steps 262144
        --chunk 65536 --set policy.network=mlp reschedule.move_gains=false
    python -m scripts.benchmarks.quality_reschedule transfer --train tune shop
        --test wide --steps 262144
    python -m scripts.benchmarks.quality_reschedule table
        docs/quality/data/reschedule/D-* --headroom docs/quality/data/reschedule/H-*

Config names: a shipped set (``7-21``, ``shop``, ``tight``, ``pinned``, ``wide``,
``edge``, ``tune``), ``gen-<nodes>-<pods>-<seed>`` for the generator's config (written
to a temporary folder), or a cluster folder path (``--pattern`` then names its
pattern). Every figure is printed as one JSON object per line.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from envs.reach.config import RescheduleConfig
from envs.reach.core import ReachCore
from envs.reach.formats import packaged_cluster
from envs.reach.generator import generate, write_config
from envs.reach.search import SearchSettings, evaluate_reference
from envs.vec_env import BatchedVecEnv
from fl_server.config import compose
from policies.config import PolicyConfig
from policies.evaluation import (
    RescheduleEvalSpec,
    evaluate_reschedule,
    evaluate_reschedule_detailed,
)
from policies.factory import NETWORKS, NetworkSpec
from policies.local import LocalTrainer
from policies.params import get_weights, set_weights
from scripts.benchmarks import federation_table, reschedule_table

DATA = packaged_cluster().parent
SHIPPED = {
    "7-21": ("7-21", "aggregator_sequential"),
    "shop": ("shop/12-28", "aggregator_sequential"),
    "tight": ("tight/9-20", "chain"),
    "pinned": ("pinned/10-24", "aggregator_parallel"),
    "wide": ("wide/16-40", "aggregator_sequential"),
    "edge": ("edge/8-18", "chain"),
    "tune": ("tune/11-26", "aggregator_sequential"),
}
"""Shipped config sets: name -> (folder under envs/data/reach, call pattern)."""
HELD_OUT_SEEDS = (1000, 1001, 1002, 1003, 1004)
"""Seeds reported; tuning used 5000-5003."""


def parse_seeds(text: str) -> tuple[int, ...]:
    """``1000-1004`` or ``1000,1003``."""
    if "-" in text and "," not in text:
        low, high = (int(x) for x in text.split("-"))
        return tuple(range(low, high + 1))
    return tuple(int(x) for x in text.split(","))


@contextmanager
def config_folder(name: str, pattern: str | None = None) -> Iterator[tuple[str, str]]:
    """(cluster folder, pattern) of a config name; generated ones live meanwhile."""
    if name in SHIPPED:
        folder, default = SHIPPED[name]
        yield str(DATA / folder), pattern or default
    elif name.startswith("gen-"):
        nodes, pods, seed = (int(x) for x in name[4:].split("-"))
        chosen = pattern or "aggregator_sequential"
        with tempfile.TemporaryDirectory() as root:
            generated = generate(nodes, pods, seed=seed, patterns=(chosen,))
            yield str(write_config(generated, root)), chosen
    else:
        yield name, pattern or "aggregator_sequential"


def shipped_run(overrides: Sequence[str] = ()) -> Any:
    """The composed run config of ``env=reschedule`` plus Hydra overrides.

    An ``env=`` among the overrides (e.g. ``env=reschedule_dynamic``) replaces it.
    """
    if any(item.startswith("env=") for item in overrides):
        return compose(list(overrides))
    return compose(["env=reschedule", *overrides])


def settings_for(run: Any, cluster: str, pattern: str) -> RescheduleConfig:
    """The run's env settings on one config set."""
    settings: RescheduleConfig = dataclasses.replace(
        run.reschedule, cluster=cluster, pattern=pattern
    )
    return settings


def mean_metrics(results: Sequence[dict[str, float]]) -> dict[str, float]:
    """Seed means of the harness's headline figures."""
    keys: tuple[str, ...] = ("latency_reduction_pct", "migrations", "mean_return")
    if "latency_mean_reduction_pct" in results[0]:  # fixed-horizon (dynamic) episodes
        keys += ("latency_mean_reduction_pct",)
    return {k: round(float(np.mean([r[k] for r in results])), 3) for k in keys}


def reach_return(drop_ms: float, moves: int, max_moves: int) -> float:
    """An episode's return under REACH's own reward, whatever the policy trained on.

    The k-th move costs 0.2 ms x k (6aa794e, growing), the final step nothing.
    """
    charged = moves if moves < max_moves else moves - 1  # truncation: last step free
    return drop_ms - 0.1 * charged * (charged + 1)


def figures(policy: Any, spec: RescheduleEvalSpec) -> dict[str, float]:
    """Latency reduction, moves, training-reward return and REACH's net return."""
    results = evaluate_reschedule_detailed(policy, spec)
    out = mean_metrics([r.metrics for r in results])
    max_moves = spec.settings.max_moves if spec.settings else 100
    returns = [
        reach_return(
            e["latency_start_ms"] - e["latency_end_ms"], int(e["moves"]), max_moves
        )
        for r in results
        for e in r.episodes
    ]
    out["reach_return_ms"] = round(float(np.mean(returns)), 3)
    return out


def emit(record: dict[str, Any]) -> None:
    """One JSON line on stdout."""
    print(json.dumps(record), flush=True)


class Learner:
    """One training seed of a policy config on one env setting, trained in chunks."""

    def __init__(self, settings: RescheduleConfig, policy: PolicyConfig, seed: int):
        env = BatchedVecEnv(ReachCore.from_settings(settings, policy.n_envs), seed=seed)
        self.trainer = LocalTrainer(env, policy, seed=seed)
        self.steps = 0
        self.train_s = 0.0

    def learn(self, steps: int) -> None:
        """Train ``steps`` more env steps (timed)."""
        start = time.perf_counter()
        self.trainer.model.learn(
            total_timesteps=steps, reset_num_timesteps=self.steps == 0
        )
        self.train_s += time.perf_counter() - start
        self.steps += steps


def train_curve(
    settings: RescheduleConfig,
    policy: PolicyConfig,
    spec: RescheduleEvalSpec,
    steps: int,
    chunk: int,
    seed: int = 0,
    tag: str = "",
) -> tuple[Learner, dict[str, float]]:
    """Train in chunks, evaluating after each; returns the learner and last figures."""
    learner = Learner(settings, policy, seed)
    last: dict[str, float] = {}
    while learner.steps < steps:
        learner.learn(min(chunk, steps - learner.steps))
        last = figures(learner.trainer.model, spec)
        emit(
            {"tag": tag, "steps": learner.steps, "train_s": round(learner.train_s, 1)}
            | last
        )
    return learner, last


# ---------------------------------------------------------------- bench half
def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of the bench half (prefixed: the parser is shared with two-tier)."""
    parser.add_argument(
        "--reschedule-config",
        default="shop",
        help="config set the learner trains and is judged on (not a tuning set)",
    )
    parser.add_argument(
        "--reschedule-steps",
        type=int,
        default=262_144,
        help="training env steps of the shipped learner",
    )
    parser.add_argument(
        "--reschedule-seeds",
        default="1000-1004",
        help="held-out evaluation seeds",
    )
    parser.add_argument(
        "--reschedule-episodes", type=int, default=10, help="episodes per seed"
    )


def measure(args: argparse.Namespace) -> dict[str, Any]:
    """Learned vs greedy vs reference latency reduction (%), and the training time."""
    run = shipped_run()
    seeds = parse_seeds(args.reschedule_seeds)
    with config_folder(args.reschedule_config) as (cluster, pattern):
        settings = settings_for(run, cluster, pattern)
        spec = RescheduleEvalSpec(settings, seeds, args.reschedule_episodes)
        learner = Learner(settings, run.policy, seed=0)
        learner.learn(args.reschedule_steps)
        learned = mean_metrics(evaluate_reschedule(learner.trainer.model, spec))
        greedy = mean_metrics(evaluate_reschedule("greedy", spec))
        reference = evaluate_reference(
            dataclasses.replace(settings, horizon=False),
            seeds,
            args.reschedule_episodes,
            SearchSettings(),
        )
    return {
        "reschedule_learned_pct": learned["latency_reduction_pct"],
        "reschedule_greedy_pct": greedy["latency_reduction_pct"],
        "reschedule_reference_pct": round(
            float(np.mean([r["reference_reduction_pct"] for r in reference])), 3
        ),
        "reschedule_train_s": round(learner.train_s, 1),
    }


# ---------------------------------------------------------------- lab commands
def _headroom(args: argparse.Namespace) -> None:
    run = shipped_run(args.set)
    seeds = parse_seeds(args.seeds)
    budget = SearchSettings(restarts=args.restarts, rounds=args.rounds)
    for name in args.configs:
        with config_folder(name, args.pattern) as (cluster, pattern):
            settings = settings_for(run, cluster, pattern)
            start = time.perf_counter()
            rows = evaluate_reference(settings, seeds, args.episodes, budget)
            spec = RescheduleEvalSpec(settings, seeds, args.episodes)
            rebalance = mean_metrics(evaluate_reschedule("rebalance", spec))
            keys = (
                "latency_before_ms",
                "greedy_reduction_pct",
                "reference_reduction_pct",
                "greedy_moves",
                "reference_displaced",
                "evaluations",
            )
            figures = {k: round(float(np.mean([r[k] for r in rows])), 3) for k in keys}
            emit(
                {"config": name, "pattern": pattern}
                | figures
                | {
                    "rebalance_pct": rebalance["latency_reduction_pct"],
                    "seconds": round(time.perf_counter() - start, 1),
                }
            )


def _train(args: argparse.Namespace) -> None:
    run = shipped_run(args.set)
    seeds = parse_seeds(args.seeds)
    with config_folder(args.config, args.pattern) as (cluster, pattern):
        settings = settings_for(run, cluster, pattern)
        spec = RescheduleEvalSpec(settings, seeds, args.episodes)
        greedy = figures("greedy", spec)
        emit({"tag": args.tag, "config": args.config, "overrides": args.set} | greedy)
        train_curve(
            settings,
            run.policy,
            spec,
            args.steps,
            args.chunk,
            args.train_seed,
            args.tag,
        )


def _transfer(args: argparse.Namespace) -> None:
    """Train on ``--train`` configs in turn (shared weights), test zero-shot, tune.

    ``--checkpoint`` starts from a saved policy instead (e.g. a federation's
    ``global_policy.zip``); ``--train`` then adds local passes before the tests.
    """
    run = shipped_run(args.set)
    seeds = parse_seeds(args.seeds)
    weights = None
    if args.checkpoint is not None:
        from sb3_contrib import MaskablePPO

        weights = get_weights(MaskablePPO.load(args.checkpoint, device="cpu").policy)
        emit({"checkpoint": str(args.checkpoint)})
    for round_ in range(args.rounds):
        for name in args.train:
            with config_folder(name) as (cluster, pattern):
                learner = Learner(
                    settings_for(run, cluster, pattern), run.policy, args.train_seed
                )
                if weights is not None:
                    set_weights(learner.trainer.model.policy, weights)
                learner.learn(args.steps)
                weights = get_weights(learner.trainer.model.policy)
                emit({"round": round_, "trained_on": name, "steps": learner.steps})
    for name in args.test:
        with config_folder(name) as (cluster, pattern):
            settings = settings_for(run, cluster, pattern)
            spec = RescheduleEvalSpec(settings, seeds, args.episodes)
            greedy = figures("greedy", spec)
            learner = Learner(settings, run.policy, args.train_seed)
            if weights is not None:
                set_weights(learner.trainer.model.policy, weights)
            zero = figures(learner.trainer.model, spec)
            emit({"test": name, "greedy": greedy, "zero_shot": zero})
            while learner.steps < args.finetune:
                learner.learn(min(args.chunk, args.finetune - learner.steps))
                tuned = figures(learner.trainer.model, spec)
                emit({"test": name, "finetune_steps": learner.steps} | tuned)


def _table(args: argparse.Namespace) -> int:
    rows, text = reschedule_table.table(
        args.logs, args.headroom, args.min_steps, args.show_overrides
    )
    if args.json:
        for row in rows:
            emit(row)
    print(text)
    return 0


def _federation_table(args: argparse.Namespace) -> int:
    rows = federation_table.federation_rows(args.metrics)
    rows += federation_table.transfer_rows(args.transfer)
    if args.json:
        for row in rows:
            emit(row)
    print(federation_table.markdown(rows))
    return 0


def _with_kwargs(spec: NetworkSpec, extra: dict[str, Any]) -> NetworkSpec:
    """A network spec whose policy kwargs also get ``extra`` (lab ablations)."""

    def build(env: Any, cfg: PolicyConfig) -> tuple[Any, dict[str, Any]]:
        policy, kwargs = spec(env, cfg)
        return policy, kwargs | extra

    return build


def main(argv: list[str] | None = None) -> int:
    """The lab's command line."""
    parser = argparse.ArgumentParser(
        prog="python -m scripts.benchmarks.quality_reschedule", description=__doc__
    )
    sub = parser.add_subparsers(dest="command", required=True)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--seeds", default="5000-5003", help="evaluation seeds")
    common.add_argument("--episodes", type=int, default=10, help="episodes per seed")
    common.add_argument("--pattern", default=None, help="call pattern (default: set's)")
    common.add_argument(
        "--set",
        nargs="*",
        default=[],
        help="Hydra overrides of env=reschedule (env=reschedule_dynamic: dynamic)",
    )
    common.add_argument("--train-seed", type=int, default=0)
    common.add_argument(
        "--policy-kwargs", default="", help="JSON: extra kwargs of the policy class"
    )
    common.add_argument("--tag", default="")
    h = sub.add_parser("headroom", parents=[common], help="greedy vs reference")
    h.add_argument("configs", nargs="+")
    h.add_argument("--restarts", type=int, default=SearchSettings.restarts)
    h.add_argument("--rounds", type=int, default=SearchSettings.rounds)
    t = sub.add_parser("train", parents=[common], help="a learning curve")
    t.add_argument("config")
    t.add_argument("--steps", type=int, default=262_144)
    t.add_argument("--chunk", type=int, default=65_536)
    x = sub.add_parser("transfer", parents=[common], help="zero-shot and fine-tuned")
    x.add_argument("--train", nargs="*", default=[])
    x.add_argument("--checkpoint", type=Path, default=None, help="start from it")
    x.add_argument("--test", nargs="+", required=True)
    x.add_argument("--steps", type=int, default=131_072, help="per training config")
    x.add_argument("--rounds", type=int, default=1, help="passes over --train")
    x.add_argument("--finetune", type=int, default=65_536)
    x.add_argument("--chunk", type=int, default=32_768)
    r = sub.add_parser("table", help="held-out table (Markdown) from train logs")
    r.add_argument("logs", nargs="+", type=Path, help="train logs (JSON lines)")
    r.add_argument("--headroom", nargs="*", type=Path, default=[])
    r.add_argument("--min-steps", type=int, default=0, help="skip shorter runs")
    r.add_argument("--json", action="store_true", help="rows as JSON lines too")
    r.add_argument(
        "--show-overrides", action="store_true", help="name each row's overrides"
    )
    f = sub.add_parser(
        "federation-table", help="federated runs over training seeds (Markdown)"
    )
    f.add_argument("metrics", nargs="+", type=Path, help="federations' metrics.jsonl")
    f.add_argument("--transfer", nargs="*", type=Path, default=[], help="transfer logs")
    f.add_argument("--json", action="store_true", help="rows as JSON lines too")
    args = parser.parse_args(argv)
    if args.command == "federation-table":
        return _federation_table(args)
    if args.command == "transfer" and not args.train and args.checkpoint is None:
        parser.error("transfer: give --train configs, --checkpoint, or both")
    if args.command == "table":
        return _table(args)
    common_kwargs = json.loads(args.policy_kwargs) if args.policy_kwargs else {}
    if common_kwargs:  # lab hook: extra keyword arguments of the network's policy
        for name, spec in list(NETWORKS.items()):
            NETWORKS[name] = _with_kwargs(spec, common_kwargs)
    {"headroom": _headroom, "train": _train, "transfer": _transfer}[args.command](args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
