"""A federated run's server-side record: rounds, metrics, checkpoints and resume.

Everything the server writes lives in the run folder (``federation.output_dir``):

* ``metrics.jsonl``: every row (round, phase, policy, region, ...) for client
  training, client and server evaluation, baselines, round timing and regions that
  dropped out; rewritten whole and atomically after every round (resume reads it);
* ``metrics.csv``: the same rows without wall-clock timings and node ids, one
  server-side evaluation row per evaluation seed, each with ``train_seed`` (the run's
  ``seed``), ``eval_seed`` and ``env_steps`` (all regions' steps so far): the same
  config and seed give the same bytes (:mod:`policies.records`);
* ``timing.csv``: round and local-training wall times, per node;
* ``latency_quantiles.csv`` (two-tier) / ``episodes.csv`` (rescheduling): latency
  sketches per evaluation seed and request type, or one row per episode, of the
  baselines (round 0) and of the learned policy at its latest evaluation;
* ``global_policy.zip`` (+ ``.json``) and ``best_policy.zip``: MaskablePPO
  checkpoints; the local-only comparison writes ``policy_<region>.zip`` instead;
* ``state.json``: the commit point, written last: the last complete round, whether
  the run is complete, and the config it belongs to. A server restarted on the
  folder resumes after that round (Flower has no resume of its own: the strategy
  always counts from round 1 and starts from ``initial_arrays``, so the session
  supplies both).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import time
from pathlib import Path
from typing import Any

import numpy as np
from flwr.app import (
    ArrayRecord,
    ConfigRecord,
    Message,
    MessageType,
    MetricRecord,
    RecordDict,
)
from flwr.serverapp import Grid

from conf.schema import RunConfig, StrategyName
from fl_server import wire
from fl_server.config import FlatConfig, digest, fingerprint, regions_of
from fl_server.evaluation import ServerEvaluator
from fl_server.grid import PollingGrid
from fl_server.limit_dual import LimitDual
from policies.evaluation import SeedEvaluation, atomic_write_text
from policies.limit_prices import limited_core, set_policy_limit_prices
from policies.params import Weights
from policies.records import (
    IDENTITY,
    episode_rows,
    read_rows,
    seed_rows,
    sketch_rows,
    write_tidy_csv,
)

log = logging.getLogger(__name__)

STATE_FILE = "state.json"
SKETCH_FILE = "latency_quantiles.csv"
EPISODE_FILE = "episodes.csv"
TIMING_COLUMNS = ("node", "run_id", "train/seconds", "train/fps", "fed/round_s",
                  "fed/train_s")  # fmt: skip
GLOBAL_CHECKPOINT = "global_policy.zip"
BEST_CHECKPOINT = "best_policy.zip"


def _clean(value: Any) -> Any:
    """JSON-safe: NaN and infinities become null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _shown(value: object) -> str:
    """A figure for the progress line; ``-`` when it was not measured (NaN)."""
    number = _number(value)
    return "-" if math.isnan(number) else f"{number:.3f}"


def _named(names: list[str], row: dict[str, Any], prefix: str) -> str:
    return ", ".join(f"{n} {row[prefix + n]:.3g}" for n in names)


def _number(value: Any) -> float:
    """A MetricRecord value as one float (lists are not expected here)."""
    if isinstance(value, list):
        raise TypeError(f"metric: expected a number, got a list {value!r}")
    return float(value)


class ResumeMismatchError(ValueError):
    """The run folder holds a run of a different config."""


# ---------------------------------------------------------------- who is who


class RegionDirectory:
    """Node id -> region, from a ``query`` handshake and from replies.

    Knowing it before the first round lets the log name the region of a node that
    drops out, and lets the local-only comparison hand each node its own policy.
    """

    def __init__(self, regions: list[str]) -> None:
        self.regions = regions
        self.by_node: dict[int, str] = {}
        self.grid: PollingGrid | None = None

    def sender(self, reply: Message) -> int:
        """The node a reply stands for, also when the SuperLink wrote it."""
        if self.grid is not None:
            return self.grid.sender_of(reply)
        return reply.metadata.src_node_id

    def name(self, node_id: int) -> str:
        """``region`` (node id) or ``node <id>`` when unknown."""
        region = self.by_node.get(node_id)
        return f"{region} (node {node_id})" if region else f"node {node_id}"

    def learn(self, node_id: int, region_index: float) -> str | None:
        """Record a node's region from a reply's ``region-index``."""
        index = int(region_index)
        if 0 <= index < len(self.regions):
            self.by_node[node_id] = self.regions[index]
        return self.by_node.get(node_id)

    def refresh(self, grid: Grid, timeout: float) -> None:
        """Ask every node not yet known which region it is (one ``query`` each)."""
        unknown = [n for n in grid.get_node_ids() if n not in self.by_node]
        if not unknown:
            return
        messages = [
            Message(RecordDict({"config": ConfigRecord()}), n, MessageType.QUERY)
            for n in unknown
        ]
        for reply in grid.send_and_receive(messages, timeout=timeout):
            node = self.sender(reply)
            if reply.has_error():
                log.warning(
                    "node %d did not say its region: %s", node, reply.error.reason
                )
                continue
            identity = reply.content.config_records["identity"]
            self.by_node[node] = str(identity["region"])
            log.info("node %d is region %s", node, identity["region"])


# ---------------------------------------------------------------- the session


@dataclasses.dataclass
class RoundClock:
    """Wall time of each round, and the slowest client's local training in it."""

    started: dict[int, float] = dataclasses.field(default_factory=dict)
    train_s: dict[int, float] = dataclasses.field(default_factory=dict)


class FederationSession:
    """The server side of one run folder: resume, bookkeeping, end-of-round work.

    Args:
        cfg: the run's typed config.
        flat: the same config as Flower run-config keys (what resume compares).
        out: the run folder.
        run_id: Flower's run id (recorded with each round).
    """

    def __init__(
        self, cfg: RunConfig, flat: FlatConfig, out: Path, run_id: int
    ) -> None:
        self.cfg, self.flat, self.out, self.run_id = cfg, flat, out, run_id
        self.regions = regions_of(cfg)
        self.local_only = cfg.strategy.name == StrategyName.local
        self.directory = RegionDirectory(self.regions)
        self.evaluator = ServerEvaluator(cfg, self.regions)
        self.rows: list[dict[str, Any]] = []
        self.sketches: list[dict[str, Any]] = []
        self.episodes: list[dict[str, Any]] = []
        self.clock = RoundClock()
        self.sent: dict[int, set[int]] = {}
        self.best: float | None = None
        self.offset = 0
        self.weights: Weights = self.evaluator.initial_weights()
        self.layout = wire.layout_of(self.weights)
        self.layout_digest = wire.digest(self.layout)
        self.local_weights: dict[str, Weights] = {}
        self.limit_dual = self._limit_dual()
        self.trained_prices: list[float] | None = (
            None if self.limit_dual is None else self.limit_dual.as_config()
        )
        """The tail-limit prices the latest global policy was trained at."""
        out.mkdir(parents=True, exist_ok=True)
        self._resume()

    def _limit_dual(self) -> LimitDual | None:
        """The prices' dual ascent when ``reward.limit_price_lr > 0``, else None."""
        reward = self.cfg.reward
        if reward.limit_price_lr == 0:
            return None
        core = limited_core(self.evaluator.model.get_env())  # type: ignore[arg-type]
        if core is None:
            raise ValueError(
                "reward.limit_price_lr: moving limit prices needs a two-tier env "
                f"(env=two_tier*), got env={self.cfg.env}"
            )
        return LimitDual(
            list(core.world.type_names),
            core.limit_s.copy(),
            core.limit_weights.copy(),
            reward.limit_share,
            reward.limit_price_lr,
        )

    # ------------------------------------------------------------ resume

    def _resume(self) -> None:
        state_path = self.out / STATE_FILE
        if not state_path.exists():
            return
        state = json.loads(state_path.read_text())
        done = int(state["last_round"])
        if not self.cfg.federation.resume:
            raise FileExistsError(
                f"federation.output_dir: {self.out} holds a run up to round {done}; "
                "set federation.resume=true to continue it or choose a new folder"
            )
        theirs, ours = state["fingerprint"], fingerprint(self.flat)
        differ = sorted(
            k for k in set(theirs) | set(ours) if theirs.get(k) != ours.get(k)
        )
        if differ:
            raise ResumeMismatchError(
                f"federation.output_dir: {self.out} holds a run of another config "
                f"(keys {differ} differ); resume it with the same config or choose a "
                "new folder"
            )
        self.offset = done
        self.best = state.get("best")
        if self.limit_dual is not None:
            self.limit_dual.restore(state["limit_prices"])
            self.trained_prices = state["limit_prices_trained"]
        if self.local_only:
            for region in self.regions:
                path = self.out / f"policy_{region}.zip"
                if path.exists():
                    self.local_weights[region] = self.evaluator.load(path)
        else:
            self.weights = self.evaluator.load(self.out / GLOBAL_CHECKPOINT)
        metrics = self.out / "metrics.jsonl"
        if metrics.exists():
            rows = [
                json.loads(line) for line in metrics.read_text().splitlines() if line
            ]
            self.rows = [r for r in rows if int(r["round"]) <= done]
        self.sketches = [
            r for r in read_rows(self.out / SKETCH_FILE) if int(r["round"]) <= done
        ]
        self.episodes = [
            r for r in read_rows(self.out / EPISODE_FILE) if int(r["round"]) <= done
        ]
        log.info("resuming %s after round %d of %d", self.out, done, self.rounds)

    @property
    def rounds(self) -> int:
        """Total rounds of the run (absolute)."""
        return self.cfg.federation.rounds

    @property
    def remaining(self) -> int:
        """Rounds still to run in this server process."""
        return max(self.rounds - self.offset, 0)

    def absolute(self, server_round: int) -> int:
        """Absolute round of the strategy's (relative, from 1) round."""
        return self.offset + server_round

    @property
    def initial_arrays(self) -> ArrayRecord:
        """What the strategy starts from: the fresh or the resumed global policy."""
        return wire.pack(self.weights)

    # ------------------------------------------------------------ strategy hooks

    def round_started(self, server_round: int, messages: list[Message]) -> None:
        """A round's train messages are about to go out."""
        self.clock.started[server_round] = time.perf_counter()
        self.sent[server_round] = {m.metadata.dst_node_id for m in messages}

    def personal_arrays(self, node_id: int) -> ArrayRecord | None:
        """Local-only: the policy of the node's own region, once the server has one."""
        region = self.directory.by_node.get(node_id)
        if region is None or region not in self.local_weights:
            return None
        return wire.pack(self.local_weights[region])

    def train_replies(self, server_round: int, replies: list[Message]) -> list[Message]:
        """Record each region's training metrics; name the regions that dropped.

        Returns the replies in region order: a weighted mean is a float sum, whose
        last bits depend on the order of its terms, and replies arrive in any order.
        """
        answered: set[int] = set()
        slowest = 0.0
        for reply in replies:
            node = self.directory.sender(reply)
            answered.add(node)
            if reply.has_error():
                self._dropped(server_round, node, reply.error.reason or "error")
                continue
            metrics = dict(reply.content.metric_records["metrics"])
            region = self.directory.learn(
                node, _number(metrics.pop("region-index", -1))
            )
            slowest = max(slowest, _number(metrics.get("train/seconds", 0.0)))
            self.rows.append(
                {"round": server_round, "phase": "train", "policy": "local-update",
                 "region": region or "all", "train_seed": self.cfg.seed, "node": node,
                 **metrics}
            )  # fmt: skip
            if self.local_only and region is not None:
                self.local_weights[region] = wire.unpack(
                    reply.content.array_records["arrays"], self.layout
                )
        for node in sorted(self.sent.get(server_round, set()) - answered):
            self._dropped(
                server_round, node, "no reply before federation.round_timeout_s"
            )
        self.clock.train_s[server_round] = slowest
        self._enough(server_round, replies)
        if self.limit_dual is not None:
            self.trained_prices = self.limit_dual.as_config()
            moved = self.limit_dual.update(
                server_round,
                [
                    dict(r.content.metric_records["metrics"])
                    for r in replies
                    if not r.has_error()
                ],
            )
            self.rows.append(
                {"round": server_round, "phase": "limit-prices", "policy": "fed",
                 "region": "all", **moved}
            )  # fmt: skip
            log.info(
                "round %d: tail-limit shares %s -> prices %s",
                server_round,
                _named(self.limit_dual.type_names, moved, "limit/share."),
                _named(self.limit_dual.type_names, moved, "limit/price."),
            )
        return sorted(replies, key=self._reply_order)

    def limit_prices(self) -> list[float] | None:
        """The prices the next round trains at (None: the reward's fixed ones)."""
        return None if self.limit_dual is None else self.limit_dual.as_config()

    def _reply_order(self, reply: Message) -> tuple[int, int]:
        node = self.directory.sender(reply)
        region = self.directory.by_node.get(node)
        index = (
            self.regions.index(region) if region in self.regions else len(self.regions)
        )
        return index, node

    def _enough(self, server_round: int, replies: list[Message]) -> None:
        """Stop the run when too few regions trained: aggregating nothing is no round.

        The previous round's checkpoint stays, so the run resumes once fixed.
        """
        trained = sum(not r.has_error() for r in replies)
        sent = len(self.sent.get(server_round, set())) or len(replies)
        needed = min(self.cfg.federation.min_nodes, sent)
        if self.cfg.strategy.name == StrategyName.centralized:
            needed = 1
        if trained < needed:
            errors = [r.error.reason for r in replies if r.has_error()]
            last = errors[-1] if errors else "no reply"
            minimum = self.cfg.federation.min_nodes
            raise RuntimeError(
                f"round {server_round}: {trained} of {sent} regions trained, fewer "
                f"than federation.min_nodes={minimum} (last error: {last}); round "
                f"{server_round - 1} is checkpointed in {self.out}: fix the clients "
                "and restart to resume"
            )

    def evaluate_replies(self, server_round: int, replies: list[Message]) -> None:
        """Record each region's client-side evaluation."""
        for reply in replies:
            node = self.directory.sender(reply)
            if reply.has_error():
                self._dropped(
                    server_round, node, reply.error.reason or "error", phase="evaluate"
                )
                continue
            metrics = dict(reply.content.metric_records["metrics"])
            region = self.directory.learn(
                node, _number(metrics.pop("region-index", -1))
            )
            policy = "local" if self.local_only else "global"
            self.rows.append(
                {"round": server_round, "phase": "client-eval", "policy": policy,
                 "region": region or f"node {node}", "train_seed": self.cfg.seed,
                 "node": node, **metrics}
            )  # fmt: skip

    def _dropped(
        self, server_round: int, node: int, reason: str, phase: str = "train"
    ) -> None:
        who = self.directory.name(node)
        log.warning(
            "round %d: %s dropped out of %s: %s", server_round, who, phase, reason
        )
        self.rows.append(
            {"round": server_round, "phase": "dropped", "policy": phase,
             "region": self.directory.by_node.get(node, "unknown"),
             "train_seed": self.cfg.seed, "node": node, "reason": reason}
        )  # fmt: skip

    # ------------------------------------------------------------ end of round

    def end_of_round(
        self, relative_round: int, arrays: ArrayRecord
    ) -> MetricRecord | None:
        """Flower's ``evaluate_fn``: evaluate, checkpoint, commit the round."""
        if relative_round == 0:
            # the config this process runs (a resumed run may have more rounds)
            atomic_write_text(self.out / "config.json", json.dumps(self.flat, indent=1))
            return self._start() if self.offset == 0 else None
        server_round = self.absolute(relative_round)
        self.weights = wire.unpack(arrays, self.layout)
        if self.trained_prices is not None:  # evaluate and save it as it was trained
            set_policy_limit_prices(self.evaluator.model, self.trained_prices)
        summary = self._evaluate(server_round) if self._due(server_round) else {}
        started = self.clock.started.get(server_round)
        round_s = time.perf_counter() - started if started is not None else math.nan
        train_s = self.clock.train_s.get(server_round, math.nan)
        self.rows.append(
            {"round": server_round, "phase": "round", "policy": "fed", "region": "all",
             "fed/round_s": round_s, "fed/train_s": train_s, "run_id": self.run_id}
        )  # fmt: skip
        self._checkpoint(server_round, summary)
        self._flush()
        self._commit(server_round)
        self._progress(server_round, round_s, train_s, summary)
        return MetricRecord({k: v for k, v in summary.items() if math.isfinite(v)})

    def _due(self, server_round: int) -> bool:
        every = self.cfg.federation.eval_every
        return every > 0 and (server_round % every == 0 or server_round == self.rounds)

    def _start(self) -> MetricRecord | None:
        """Round 0 of a fresh run: the baselines and the initial policy, once."""
        if self.cfg.federation.eval_every <= 0:
            return None
        for name in self.evaluator.baseline_names():
            for region in self.regions:
                results = self.evaluator.evaluate_baseline(name, region)
                self._record(0, name, region, results)
        summary = self._evaluate(0)
        self._flush()
        return MetricRecord({k: v for k, v in summary.items() if math.isfinite(v)})

    def _evaluate(self, server_round: int) -> dict[str, float]:
        """The policy each region would deploy, on each region's held-out seeds."""
        score = self.evaluator.score
        summary: dict[str, float] = {}
        policy = "local" if self.local_only else "global"
        # the learned policy's sketches and episodes: only its latest evaluation
        self.sketches = [r for r in self.sketches if r["policy"] != policy]
        self.episodes = [r for r in self.episodes if r["policy"] != policy]
        for region in self.regions:
            local = self.local_weights.get(region) if self.local_only else None
            weights = local if local is not None else self.weights
            results = self.evaluator.evaluate(weights, region)
            self._record(server_round, policy, region, results)
            values = [r.metrics.get(score, math.nan) for r in results]
            summary[f"eval/{region}/{score}"] = (
                float(np.mean(values)) if values else math.nan
            )
        values = [v for v in summary.values() if math.isfinite(v)]
        summary[f"eval/{score}"] = float(np.mean(values)) if values else math.nan
        return summary

    def _record(
        self, server_round: int, policy: str, region: str, results: list[SeedEvaluation]
    ) -> None:
        """One server-eval row per evaluation seed, and its sketches or episodes."""
        identity = {
            "round": server_round,
            "phase": "server-eval",
            "policy": policy,
            "region": region,
            "train_seed": self.cfg.seed,
        }
        self.rows.extend(seed_rows(results, **identity))
        self.sketches.extend(sketch_rows(results, **identity))
        self.episodes.extend(episode_rows(results, **identity))

    def _metadata(self, server_round: int, summary: dict[str, float]) -> dict[str, Any]:
        return {
            "round": server_round,
            "rounds": self.rounds,
            "strategy": self.cfg.strategy.name.name,
            "regions": self.regions,
            "run_id": self.run_id,
            "config_digest": digest(self.flat),
            "metrics": {k: _clean(v) for k, v in summary.items()},
            "config": self.flat,
            **self._price_metadata(),
        }

    def _price_metadata(self) -> dict[str, Any]:
        """With moving prices, those the saved policy trained at, by type name.

        The run config holds only the starting ones; a rule evaluated beside the
        checkpoint (``--reward-from``) reads these instead.
        """
        if self.limit_dual is None or self.trained_prices is None:
            return {}
        names = self.limit_dual.type_names
        limited = np.isfinite(self.limit_dual.limits_s)
        return {
            "limit_prices": {
                name: float(price)
                for name, price, kept in zip(
                    names, self.trained_prices, limited, strict=True
                )
                if kept
            }
        }

    def _checkpoint(self, server_round: int, summary: dict[str, float]) -> None:
        meta = self._metadata(server_round, summary)
        if self.local_only:
            for region, weights in self.local_weights.items():
                self.evaluator.save(weights, self.out / f"policy_{region}.zip", meta)
            return
        self.evaluator.save(self.weights, self.out / GLOBAL_CHECKPOINT, meta)
        score = summary.get(f"eval/{self.evaluator.score}", math.nan)
        if math.isfinite(score) and (self.best is None or score > self.best):
            self.best = score
            self.evaluator.save(self.weights, self.out / BEST_CHECKPOINT, meta)

    def _env_steps(self) -> dict[int, int]:
        """Env steps trained by every region together up to each round (inclusive)."""
        per_round: dict[int, int] = {}
        for row in self.rows:
            if row["phase"] == "train" and row.get("num-examples") is not None:
                r = int(row["round"])
                per_round[r] = per_round.get(r, 0) + int(row["num-examples"])
        rounds = {int(row["round"]) for row in self.rows}
        total, out = 0, {}
        for r in sorted(rounds | set(per_round)):
            total += per_round.get(r, 0)
            out[r] = total
        return out

    def _flush(self) -> None:
        steps = self._env_steps()
        for table in (self.rows, self.sketches, self.episodes):
            for row in table:
                row["env_steps"] = steps.get(int(row["round"]), 0)
        rows = [{k: _clean(v) for k, v in row.items()} for row in self.rows]
        atomic_write_text(
            self.out / "metrics.jsonl", "".join(json.dumps(r) + "\n" for r in rows)
        )
        write_tidy_csv(
            self.out / "metrics.csv", [r for r in rows if r["phase"] != "round"]
        )
        timing = [
            {k: row.get(k) for k in ("round", "phase", "region", *TIMING_COLUMNS)}
            for row in rows
            if row["phase"] in ("round", "train")
        ]
        write_tidy_csv(self.out / "timing.csv", timing, drop=())
        if self.sketches:
            first = (*IDENTITY, "request_type", "slo_ms")
            write_tidy_csv(self.out / SKETCH_FILE, self.sketches, first)
        if self.episodes:
            write_tidy_csv(
                self.out / EPISODE_FILE, self.episodes, (*IDENTITY, "episode")
            )

    def _commit(self, server_round: int) -> None:
        state = {
            "last_round": server_round,
            "rounds": self.rounds,
            "complete": server_round >= self.rounds,
            "run_id": self.run_id,
            "best": self.best,
            "fingerprint": fingerprint(self.flat),
            **(
                {}
                if self.limit_dual is None
                else {
                    "limit_prices": self.limit_dual.as_config(),
                    "limit_prices_trained": self.trained_prices,
                }
            ),
            "updated": time.strftime("%Y-%m-%dT%H:%M:%S"),
        }
        atomic_write_text(self.out / STATE_FILE, json.dumps(state, indent=1))

    def _progress(
        self,
        server_round: int,
        round_s: float,
        train_s: float,
        summary: dict[str, float],
    ) -> None:
        trained = [
            r for r in self.rows if r["round"] == server_round and r["phase"] == "train"
        ]
        rewards = " ".join(
            f"{r['region']} {_shown(r.get('train/mean_reward', math.nan))}"
            for r in trained
        )
        score = self.evaluator.score
        evaluated = summary.get(f"eval/{score}", math.nan)
        log.info(
            "round %d/%d done in %.1f s (local training %.1f s) | train reward: %s%s",
            server_round,
            self.rounds,
            round_s,
            train_s,
            rewards or "-",
            f" | eval {score} {_shown(evaluated)}" if summary else "",
        )

    def finished(self) -> bool:
        """Whether every round of the run is complete."""
        return self.remaining == 0
