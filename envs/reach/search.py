"""Offline near-optimal reference: iterated best-improvement search over placements.

Not a policy. It answers "how good a placement exists from this start?", so that a
policy's latency reduction can be read against the best one found, not only against
one-step greedy. It may evaluate many thousands of moves per start state.

The search runs on a scratch :class:`~envs.reach.core.ReachCore` (the env's own fast
latency model, the same masks: resource fit, persistent and client pods, client
targets, ``pod_deployable`` of a payload state), so every placement it reaches is one
the env can reach by valid moves. Each round runs ``restarts`` descents in parallel:
each applies a few random valid moves (a kick) to a base placement, then moves the
pod that lowers latency most until no move does (best improvement, as the
:class:`~envs.reach.baselines.Greedy` baseline). Round 0 starts from the initial
placement and its row 0 has no kick, so that row *is* greedy's episode and the
result is never worse than greedy; later rounds kick the best placement found so far
(iterated local search).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from envs.reach.config import RescheduleConfig
from envs.reach.core import ReachCore
from envs.rng import seed_streams

_NO_LIMIT = 1 << 30
"""Move cap of the scratch core: the search path is not an episode."""


@dataclass(frozen=True)
class SearchSettings:
    """Budget of :func:`search_placement`."""

    restarts: int = 32
    """Descents run in parallel per round."""
    rounds: int = 8
    """Rounds; round 0 kicks the initial placement, later ones the best so far."""
    max_kick: int = 4
    """Each descent starts with 1..max_kick random valid moves (row 0 of round 0:
    none)."""
    seed: int = 0
    """Seed of the kicks."""
    min_gain: float = 1e-6
    """A descent move must lower latency by more than this (ms), as greedy's."""

    def __post_init__(self) -> None:
        """Fail fast on a budget that cannot search, naming the field."""
        for name in ("restarts", "rounds", "max_kick"):
            if getattr(self, name) < 1:
                raise ValueError(
                    f"SearchSettings.{name}: expected >= 1, got {getattr(self, name)!r}"
                )
        if self.min_gain < 0:
            raise ValueError(
                f"SearchSettings.min_gain: expected >= 0, got {self.min_gain!r}"
            )


@dataclass(frozen=True)
class SearchResult:
    """What the search found from one start state."""

    start_ms: float
    """Latency of the initial placement."""
    greedy_ms: float
    """Latency where one-step greedy stops."""
    greedy_moves: int
    """Moves greedy takes to get there."""
    best_ms: float
    """Lowest latency found."""
    best_pod_nodes: np.ndarray
    """Node index of every pod slot in the best placement (-1 = empty slot)."""
    displaced: int
    """Pods the best placement has on other nodes than the start (replicas of one
    service are interchangeable): a lower bound on the moves it needs."""
    evaluations: int
    """Candidate moves evaluated by the model."""


def scratch_core(core: ReachCore, rows: int) -> ReachCore:
    """A core on ``core``'s config whose rows accept copies of ``core``'s rows.

    No move cap, no events, no QoS stop: a search explores placements of one frozen
    cluster state.
    """
    settings = dataclasses.replace(
        core.settings,
        max_moves=_NO_LIMIT,
        stop_at_qos=False,
        failure_prob=0.0,
        degradation_prob=0.0,
        surge_prob=0.0,
    )
    scratch = ReachCore(core.config, settings, rows, autoreset=False)
    if (scratch.layout.df_size, scratch.layout.di_size) != (
        core.layout.df_size,
        core.layout.di_size,
    ):  # pragma: no cover - the settings replaced above do not change the layout
        raise RuntimeError("scratch core: the state layout differs from the source's")
    return scratch


def copy_state(src: ReachCore, index: int, dst: ReachCore, rows: np.ndarray) -> None:
    """Give ``dst``'s ``rows`` the full state of ``src``'s environment ``index``."""
    dst.fd[rows] = src.fd[index]
    dst.idn[rows] = src.idn[index]
    dst.allow[rows] = src.allow[index]
    dst.mask[rows] = src.mask[index]
    dst.obs[rows] = src.obs[index]


def displaced_pods(core: ReachCore, start: np.ndarray, end: np.ndarray) -> int:
    """Pods on other nodes in ``end`` than in ``start``, replicas interchangeable."""
    moved = 0
    first = 0
    for service in core.config.services:
        a = start[first : first + service.max_replica]
        b = end[first : first + service.max_replica]
        a, b = a[a >= 0], b[b >= 0]
        common = np.intersect1d(a, b)
        kept = sum(
            min(int((a == n).sum()), int((b == n).sum())) for n in common.tolist()
        )
        moved += len(b) - kept
        first += service.max_replica
    return moved


class _Search:
    """The rounds of one search on a scratch core."""

    def __init__(self, core: ReachCore, settings: SearchSettings) -> None:
        self.scratch = scratch_core(core, settings.restarts)
        self.settings = settings
        self.rng = np.random.default_rng(settings.seed)
        self.stop = self.scratch.layout.n_actions - 1
        self.evaluations = 0

    def kick(self, kicks: np.ndarray) -> None:
        """Row r makes ``kicks[r]`` uniformly random valid moves."""
        s = self.scratch
        for k in range(int(kicks.max(initial=0))):
            moves = s.mask[:, : self.stop]
            noise = np.where(moves, self.rng.random(moves.shape), -1.0)
            acts = noise.argmax(axis=1)
            acts[(kicks <= k) | ~moves.any(axis=1)] = self.stop
            s.step(acts)

    def descend(self) -> np.ndarray:
        """Best-improvement moves in every row until none helps; moves per row."""
        s = self.scratch
        active = np.ones(s.num_envs, dtype=bool)
        moves = np.zeros(s.num_envs, dtype=np.int64)
        while True:
            acts = s.greedy_actions(self.settings.min_gain)
            self.evaluations += int(s.mask[active, : self.stop].sum())
            active &= acts != self.stop
            if not active.any():
                return moves
            acts[~active] = self.stop
            s.step(acts)
            moves += active

    def latencies(self) -> np.ndarray:
        """Current latency of every row."""
        return np.array([self.scratch.latency(r) for r in range(self.scratch.num_envs)])


def search_placement(
    core: ReachCore, index: int, settings: SearchSettings | None = None
) -> SearchResult:
    """Search the best placement reachable from environment ``index``'s state.

    ``core`` is left untouched. Events (failures, surges) are frozen: the reference
    is for the cluster as it is now.
    """
    settings = settings or SearchSettings()
    search = _Search(core, settings)
    s = search.scratch
    rows = np.arange(s.num_envs)
    copy_state(core, index, s, rows)
    start_nodes = s.pod_nodes(0)
    start_ms = s.latency(0)
    best = ReachCore(s.config, s.settings, 1, autoreset=False)
    copy_state(s, 0, best, np.zeros(1, dtype=np.int64))
    best_ms = start_ms
    greedy_ms, greedy_moves = start_ms, 0
    for round_ in range(settings.rounds):
        if round_:
            copy_state(best, 0, s, rows)
        kicks = search.rng.integers(1, settings.max_kick + 1, s.num_envs)
        if round_ == 0:
            kicks[0] = 0
        search.kick(kicks)
        moves = search.descend()
        found = search.latencies()
        if round_ == 0:
            greedy_ms, greedy_moves = float(found[0]), int(moves[0])
        winner = int(found.argmin())
        if found[winner] < best_ms:
            best_ms = float(found[winner])
            copy_state(s, winner, best, np.zeros(1, dtype=np.int64))
    best_nodes = best.pod_nodes(0)
    return SearchResult(
        start_ms=start_ms,
        greedy_ms=greedy_ms,
        greedy_moves=greedy_moves,
        best_ms=best_ms,
        best_pod_nodes=best_nodes,
        displaced=displaced_pods(core, start_nodes, best_nodes),
        evaluations=search.evaluations,
    )


def evaluate_reference(
    settings: RescheduleConfig,
    seeds: Sequence[int],
    episodes: int,
    search: SearchSettings | None = None,
) -> list[dict[str, float]]:
    """Per seed, the reference and greedy on the evaluation harness's episodes.

    The start states are those :func:`policies.evaluation.evaluate_reschedule` gives
    every policy for these seeds (the same streams; with no events a policy's moves
    draw no random numbers, so episode k starts from the same cluster for all).
    Metrics mirror the harness: reduction = ``100 * (1 - mean(after) / mean(before))``.

    Raises:
        ValueError: ``settings`` with events (the episode's start states would then
            depend on the policy's moves).
    """
    if settings.events:
        raise ValueError(
            "settings: expected no in-episode events (failure_prob, degradation_prob, "
            "surge_prob all 0) for an offline reference, got "
            f"{settings.failure_prob}, {settings.degradation_prob}, "
            f"{settings.surge_prob}"
        )
    core = ReachCore.from_settings(settings, num_envs=len(seeds), autoreset=True)
    for i, seed in enumerate(seeds):
        core.reset_env(i, seed_streams(np.random.default_rng(seed), 1)[0])
    found: list[list[SearchResult]] = [[] for _ in seeds]
    stop = np.full(len(seeds), core.layout.n_actions - 1)
    for _ in range(episodes):
        for i in range(len(seeds)):
            found[i].append(search_placement(core, i, search))
        core.step(stop)  # keep the placement: every environment starts its next episode
    rows = []
    for seed, results in zip(seeds, found, strict=True):
        before = np.mean([r.start_ms for r in results])
        greedy = np.mean([r.greedy_ms for r in results])
        best = np.mean([r.best_ms for r in results])
        rows.append(
            {
                "seed": float(seed),
                "episodes": float(len(results)),
                "latency_before_ms": float(before),
                "greedy_after_ms": float(greedy),
                "reference_after_ms": float(best),
                "greedy_reduction_pct": float(100.0 * (1.0 - greedy / before)),
                "reference_reduction_pct": float(100.0 * (1.0 - best / before)),
                "greedy_moves": float(np.mean([r.greedy_moves for r in results])),
                "reference_displaced": float(np.mean([r.displaced for r in results])),
                "evaluations": float(np.mean([r.evaluations for r in results])),
            }
        )
    return rows
