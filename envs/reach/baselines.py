"""Heuristic policies with SB3's ``predict`` interface, for the evaluation harness.

Each works on one observation or a batch (B leading rows) and returns ``(actions,
None)`` like ``BasePolicy.predict``. Model-based baselines read the state of a
:class:`~envs.reach.core.ReachCore` whose environments correspond, in order, to the
rows of the batch (for a single Gymnasium env: ``env.unwrapped.core``).

* :class:`KeepPlacement`: always stop (the do-nothing reference).
* :class:`RandomValid`: a uniformly random valid action, stop included.
* :class:`Greedy`: the single move that most lowers the modelled latency; stop when
  none lowers it.
* :class:`Rebalancer`: descheduler-like; move a pod off the most utilised node to the
  least utilised one that fits, while that narrows the spread.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from envs.reach.core import ReachCore

Observation = np.ndarray | Mapping[str, np.ndarray]


def _batch_shape(obs: Observation, action_masks: np.ndarray | None) -> tuple[int, bool]:
    """(rows, batched): every observation of this env is 1-D per environment."""
    if action_masks is not None:
        masks = np.asarray(action_masks)
        return (masks.shape[0], True) if masks.ndim == 2 else (1, False)
    first = next(iter(obs.values())) if isinstance(obs, Mapping) else obs
    arr = np.asarray(first)
    return (arr.shape[0], True) if arr.ndim == 2 else (1, False)


def _answer(actions: np.ndarray, batched: bool) -> tuple[np.ndarray, None]:
    actions = actions.astype(np.int64)
    return (actions if batched else actions.reshape(())), None


class KeepPlacement:
    """Always stop: keeps the initial placement.

    Args:
        n_actions: size of the Discrete action space (stop is the last action).
    """

    def __init__(self, n_actions: int) -> None:
        self.stop = n_actions - 1

    def predict(
        self,
        observation: Observation,
        state: Any = None,
        episode_start: np.ndarray | None = None,
        deterministic: bool = True,
        action_masks: np.ndarray | None = None,
    ) -> tuple[np.ndarray, None]:
        """Stop in every environment."""
        rows, batched = _batch_shape(observation, action_masks)
        return _answer(np.full(rows, self.stop), batched)


class RandomValid:
    """A uniformly random action among the valid ones (needs ``action_masks``).

    Args:
        seed: seed of the policy's own generator.
    """

    def __init__(self, seed: int | None = None) -> None:
        self.rng = np.random.default_rng(seed)

    def predict(
        self,
        observation: Observation,
        state: Any = None,
        episode_start: np.ndarray | None = None,
        deterministic: bool = True,
        action_masks: np.ndarray | None = None,
    ) -> tuple[np.ndarray, None]:
        """Draw one valid action per environment."""
        if action_masks is None:
            raise ValueError(
                "RandomValid.predict: expected action_masks (env.action_masks() or "
                "info['action_mask']), got None"
            )
        masks = np.atleast_2d(np.asarray(action_masks, dtype=bool))
        # Gumbel-free trick: the argmax of uniform noise on valid entries is uniform.
        noise = self.rng.random(masks.shape)
        actions = np.where(masks, noise, -1.0).argmax(axis=1)
        return _answer(actions, np.asarray(action_masks).ndim == 2)


class Greedy:
    """One-step lookahead on the model: the move that most lowers mean latency.

    Args:
        core: the core whose environments the observations come from.
        min_gain: a move must lower latency by more than this (ms), else stop.
    """

    def __init__(self, core: ReachCore, min_gain: float = 1e-6) -> None:
        self.core = core
        self.min_gain = min_gain

    def predict(
        self,
        observation: Observation,
        state: Any = None,
        episode_start: np.ndarray | None = None,
        deterministic: bool = True,
        action_masks: np.ndarray | None = None,
    ) -> tuple[np.ndarray, None]:
        """Evaluate every valid move of every environment in the core."""
        rows, batched = _batch_shape(observation, action_masks)
        if rows != self.core.num_envs:
            raise ValueError(
                f"Greedy.predict: expected {self.core.num_envs} observations (one per "
                f"environment of the core), got {rows}"
            )
        return _answer(self.core.greedy_actions(self.min_gain), batched)


class Rebalancer:
    """Descheduler-like: relieve the most utilised node while the spread narrows.

    Utilisation of a node is the larger of its requested CPU and memory fractions.
    Each step moves one movable pod (largest CPU request first) from the most
    utilised edge/cloud node to the least utilised node that accepts it, if that
    leaves the target below the source's utilisation minus ``tolerance``.

    Args:
        core: the core whose environments the observations come from.
        tolerance: minimal utilisation gap (fraction) worth a move.
    """

    def __init__(self, core: ReachCore, tolerance: float = 0.1) -> None:
        self.core = core
        self.tolerance = tolerance
        services = core.config.services
        slots = [s for s in services for _ in range(s.max_replica)]
        self._cpu = np.array([s.cpu for s in slots])
        self._mem = np.array([s.memory for s in slots])
        self._worker = np.array([n.layer != "client" for n in core.config.nodes.nodes])

    def _choose(self, index: int) -> int:
        core = self.core
        lay = core.layout
        stop = lay.n_actions - 1
        res = core.node_resources(index)
        with np.errstate(divide="ignore", invalid="ignore"):
            cpu = 1.0 - res["cpu_free"] / res["cpu_capacity"]
            mem = 1.0 - res["memory_free"] / res["memory_capacity"]
        util = np.nan_to_num(np.maximum(cpu, mem), nan=1.0)
        nodes = core.pod_nodes(index)
        mask = core.mask[index]
        order = np.argsort(-np.where(self._worker, util, -np.inf))
        for src in order[: int(self._worker.sum())]:
            pods = np.flatnonzero(nodes == src)
            pods = pods[np.argsort(-self._cpu[pods], kind="stable")]
            targets = np.argsort(np.where(self._worker, util, np.inf), kind="stable")
            for dst in targets:
                if dst == src or not self._worker[dst]:
                    continue
                for pod in pods:
                    action = int(dst) * lay.max_pods + int(pod)
                    if not mask[action]:
                        continue
                    gain_c = self._cpu[pod] / res["cpu_capacity"][dst]
                    gain_m = self._mem[pod] / res["memory_capacity"][dst]
                    after = max(cpu[dst] + gain_c, mem[dst] + gain_m)
                    if after < util[src] - self.tolerance:
                        return action
            return stop  # the most utilised node cannot be relieved: done
        return stop

    def predict(
        self,
        observation: Observation,
        state: Any = None,
        episode_start: np.ndarray | None = None,
        deterministic: bool = True,
        action_masks: np.ndarray | None = None,
    ) -> tuple[np.ndarray, None]:
        """One rebalancing move (or stop) per environment of the core."""
        rows, batched = _batch_shape(observation, action_masks)
        if rows != self.core.num_envs:
            raise ValueError(
                f"Rebalancer.predict: expected {self.core.num_envs} observations (one "
                f"per environment of the core), got {rows}"
            )
        return _answer(np.array([self._choose(i) for i in range(rows)]), batched)


BASELINES = ("keep", "random", "greedy", "rebalance")
"""Names accepted by :func:`make_baseline`."""


def make_baseline(
    name: str, core: ReachCore, seed: int | None = None
) -> KeepPlacement | RandomValid | Greedy | Rebalancer:
    """Build a baseline by name for the environments of ``core``."""
    if name == "keep":
        return KeepPlacement(core.layout.n_actions)
    if name == "random":
        return RandomValid(seed)
    if name == "greedy":
        return Greedy(core)
    if name == "rebalance":
        return Rebalancer(core)
    raise ValueError(f"name: expected one of {', '.join(BASELINES)}, got {name!r}")
