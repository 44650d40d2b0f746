"""The batched rescheduling core: B environments in numpy arrays, one call per step.

:class:`ReachCore` implements :class:`envs.batched.BatchedCore`, so
:class:`envs.vec_env.BatchedVecEnv` serves it to Stable-Baselines3 unchanged, and the
single Gymnasium env (:class:`envs.reach.env.ReachRescheduleEnv`) is its ``B = 1``
view with auto-reset off.
"""

from __future__ import annotations

import operator
from typing import Any

import numpy as np
from gymnasium import spaces

from envs.batched import BatchStep
from envs.checks import check_actions, check_amounts, check_indices
from envs.reach.config import RescheduleConfig
from envs.reach.errors import ReachPlacementError
from envs.reach.formats import find_call_patterns, load_reach_config, packaged_cluster
from envs.reach.kernels import greedy_batch, refresh_env, reset_batch, step_batch
from envs.reach.layout import (
    DF_BG,
    DF_CPU_CAP,
    DF_CPU_FREE,
    DF_EP_LAT,
    DF_INFO,
    DF_LAT,
    DF_MEM_CAP,
    DF_MEM_FREE,
    DF_SCAL,
    DF_SLOW,
    DI_ISCAL,
    DI_OK,
    DI_POD_NODE,
    DI_REP,
    FF_LAT_MID,
    FF_UTIL_MID,
    HI_FIELDS,
    INFO_NAMES,
    ISC_LAST_EVENTS,
    ISC_LAST_INVALID,
    ISC_LAST_MOVES,
    ISC_LAST_STEPS,
    ISC_LAST_TERMINATED,
    ISC_PAYLOAD,
    N_IF,
    OBS_HIGH,
    SC_LAST_BEST,
    SC_LAST_END,
    SC_LAST_RETURN,
    SC_LAST_START,
    SC_LATENCY,
    SC_RPS_SCALE,
    Layout,
    build_layout,
)  # fmt: skip
from envs.reach.model import LAYERS, ReachConfig
from envs.reach.payload import PayloadState
from envs.reach.reference import ModelOptions, NodeState, Snapshot
from envs.rng import seed_streams

_INT_INFO = ("pod_slot", "source_node", "target_node", "failed_node", "degraded_node")
_BOOL_INFO = ("moved", "invalid_action", "is_stop")


def load_settings_config(settings: RescheduleConfig) -> ReachConfig:
    """Read the config set that ``settings.cluster`` and ``settings.pattern`` name."""
    cluster = settings.cluster or str(packaged_cluster())
    return load_reach_config(cluster, find_call_patterns(cluster, settings.pattern))


class ReachCore:
    """``num_envs`` rescheduling environments advanced together.

    Args:
        config: the validated REACH config set.
        settings: env settings (padding, reward, extensions); defaults are REACH mode.
        num_envs: B, the number of environments.
        autoreset: reset finished environments inside ``step`` (the BatchedCore
            contract); the single Gymnasium env turns it off.
    """

    def __init__(
        self,
        config: ReachConfig,
        settings: RescheduleConfig | None = None,
        num_envs: int = 1,
        *,
        autoreset: bool = True,
    ) -> None:
        if num_envs < 1:
            raise ValueError(f"num_envs: expected >= 1, got {num_envs}")
        self.config = config
        self.settings = settings or RescheduleConfig()
        self.layout: Layout = build_layout(config, self.settings)
        self.num_envs = num_envs
        self.autoreset = autoreset
        self.render_mode: str | None = None  # read by SB3's VecEnv; nothing renders
        lay = self.layout
        low = np.zeros(lay.obs_dim, dtype=np.float32)
        if self.settings.move_gains:  # latency drops can be negative
            low[lay.obs_dim - lay.max_nodes * lay.max_pods :] = -OBS_HIGH
        self.single_observation_space = spaces.Box(
            low, OBS_HIGH, (lay.obs_dim,), dtype=np.float32
        )
        self.single_action_space = spaces.Discrete(lay.n_actions)
        self.fd = np.zeros((num_envs, lay.df_size), dtype=np.float64)
        self.idn = np.zeros((num_envs, lay.di_size), dtype=np.int32)
        self.allow = np.zeros((num_envs, lay.n_nodes * lay.n_pods), dtype=np.uint8)
        self.rng = seed_streams(np.random.default_rng(0), num_envs)
        self.obs = np.zeros((num_envs, lay.obs_dim), dtype=np.float32)
        self.final_obs = np.zeros_like(self.obs)
        self.mask = np.zeros((num_envs, lay.n_actions), dtype=np.bool_)
        self.reward = np.zeros(num_envs, dtype=np.float32)
        self.terminated = np.zeros(num_envs, dtype=np.bool_)
        self.truncated = np.zeros(num_envs, dtype=np.bool_)
        self._all = np.ones(num_envs, dtype=np.bool_)
        self._payload_names: dict[int, tuple[str, ...]] = {}

    @classmethod
    def from_settings(
        cls, settings: RescheduleConfig | None = None, num_envs: int = 1, **kwargs: Any
    ) -> ReachCore:
        """Load the config set named by ``settings`` and build a core on it."""
        settings = settings or RescheduleConfig()
        return cls(load_settings_config(settings), settings, num_envs, **kwargs)

    # -- BatchedCore protocol ----------------------------------------------------------
    def reset(self, seed: int | None = None) -> np.ndarray:
        """Reset every environment; ``seed`` seeds the per-environment streams."""
        source = np.random.default_rng(seed)
        self.rng[:] = seed_streams(source, self.num_envs)
        self._payload_names.clear()
        self._run_reset(self._all)
        return self.obs

    def step(self, actions: np.ndarray) -> BatchStep:
        """Apply one action per environment (auto-reset finished ones if enabled).

        Raises:
            ValueError: not ``num_envs`` integers in ``[0, A)``
                (:func:`envs.checks.check_actions`).
        """
        acts = check_actions(actions, self.num_envs, self.layout.n_actions)
        failures = step_batch(
            self.layout.sf, self.layout.si, self.fd, self.idn, self.allow, self.rng,
            acts, self.obs, self.mask, self.reward, self.terminated, self.truncated,
            self.final_obs, self.autoreset,
        )  # fmt: skip
        if failures:
            self._placement_failed()
        if self._payload_names and self.autoreset:
            for i in np.flatnonzero(self.terminated | self.truncated):
                self._payload_names.pop(int(i), None)
        return BatchStep(
            self.obs, self.reward, self.terminated, self.truncated, self.final_obs
        )

    def action_masks(self) -> np.ndarray:
        """``bool[B, A]`` valid actions per environment (stop always valid)."""
        return self.mask

    def step_info(self, index: int) -> dict[str, Any]:
        """Raw components of environment ``index``'s last step."""
        start, length = self.layout.df_spans[DF_INFO]
        values = self.fd[index, start : start + length].tolist()
        info = dict(zip(INFO_NAMES, values, strict=True))
        for name in _INT_INFO:
            info[name] = int(info[name])
        for name in _BOOL_INFO:
            info[name] = bool(info[name])
        return info

    def episode_info(self, index: int) -> dict[str, Any]:
        """Totals of the episode environment ``index`` last finished."""
        scal = self.layout.df(self.fd[index], DF_SCAL)
        iscal = self.layout.di(self.idn[index], DI_ISCAL)
        return {
            "r": float(scal[SC_LAST_RETURN]),
            "l": int(iscal[ISC_LAST_STEPS]),
            "latency_start": float(scal[SC_LAST_START]),
            "latency_end": float(scal[SC_LAST_END]),
            "latency_best": float(scal[SC_LAST_BEST]),
            "moves": int(iscal[ISC_LAST_MOVES]),
            "invalid_actions": int(iscal[ISC_LAST_INVALID]),
            "events": int(iscal[ISC_LAST_EVENTS]),
            "terminated": bool(iscal[ISC_LAST_TERMINATED]),
        }

    # -- single-environment control ----------------------------------------------------
    def reset_env(self, index: int, stream: np.ndarray) -> None:
        """Reset one environment from a given xoroshiro state (``uint64[2]``)."""
        index = self._row(index)
        self.rng[index] = stream
        self._payload_names.pop(index, None)
        which = np.zeros(self.num_envs, dtype=np.bool_)
        which[index] = True
        self._run_reset(which)

    def load_payload(self, index: int, state: PayloadState) -> None:
        """Set environment ``index`` to a live-cluster state parsed from a payload.

        Capacities are free resources plus the requests of the pods placed there;
        quantities the payload does not carry (layer latencies, background bandwidth)
        take the middle of the config's ranges, so one payload gives one observation.

        Raises:
            ValueError: a state that does not fit the config's axes (lengths, node
                indices, replicas that are not the first slots of their service,
                negative resources), naming the field; the kernels do not check.
        """
        lay = self.layout
        index = self._row(index)
        n_nodes = lay.n_nodes
        cpu_free = check_amounts("node_cpu_free", state.node_cpu_free, n_nodes)
        mem_free = check_amounts("node_memory_free", state.node_memory_free, n_nodes)
        slot_nodes = check_indices(
            "slot_nodes", state.slot_nodes, lay.n_pods, -1, n_nodes
        )
        replicas = self._check_replicas(state.replicas, slot_nodes)
        if state.deployable is not None and np.shape(state.deployable) != (
            n_nodes,
            lay.n_pods,
        ):
            raise ValueError(
                f"deployable: expected shape ({n_nodes}, {lay.n_pods}) (nodes x pod "
                f"slots), got {np.shape(state.deployable)}"
            )
        frow, irow = self.fd[index], self.idn[index]
        frow[:] = 0.0
        irow[:] = 0
        cpu_used = np.zeros(n_nodes)
        mem_used = np.zeros(n_nodes)
        slot_service = np.repeat(
            np.arange(lay.n_services), [s.max_replica for s in self.config.services]
        )
        cpu_req = np.array([s.cpu for s in self.config.services])[slot_service]
        mem_req = np.array([s.memory for s in self.config.services])[slot_service]
        placed = slot_nodes >= 0
        np.add.at(cpu_used, slot_nodes[placed], cpu_req[placed])
        np.add.at(mem_used, slot_nodes[placed], mem_req[placed])
        lay.df(frow, DF_CPU_FREE)[:] = cpu_free
        lay.df(frow, DF_MEM_FREE)[:] = mem_free
        lay.df(frow, DF_CPU_CAP)[:] = cpu_free + cpu_used
        lay.df(frow, DF_MEM_CAP)[:] = mem_free + mem_used
        bandwidth = np.array([n.bandwidth for n in self.config.nodes.nodes])
        lay.df(frow, DF_BG)[:] = self._static_float(FF_UTIL_MID) * bandwidth
        lay.df(frow, DF_SLOW)[:] = 1.0
        lay.df(frow, DF_LAT)[:] = self._static_float(FF_LAT_MID)
        lay.df(frow, DF_SCAL)[SC_RPS_SCALE] = 1.0
        lay.di(irow, DI_OK)[:] = 1
        lay.di(irow, DI_POD_NODE)[:] = slot_nodes
        lay.di(irow, DI_REP)[:] = replicas
        use_allow = state.deployable is not None
        lay.di(irow, DI_ISCAL)[ISC_PAYLOAD] = int(use_allow)
        self.allow[index] = 0
        if state.deployable is not None:
            self.allow[index] = np.asarray(state.deployable, dtype=np.uint8).reshape(-1)
        refresh_env(
            lay.sf, lay.si, self.fd, self.idn, self.allow, self.obs, self.mask, index
        )
        self._payload_names[index] = tuple(state.slot_pods)

    # -- state accessors ---------------------------------------------------------------
    def latency(self, index: int) -> float:
        """Current modelled mean end-to-end latency of environment ``index``, ms."""
        return float(self.layout.df(self.fd[index], DF_SCAL)[SC_LATENCY])

    def endpoint_latencies(self, index: int) -> np.ndarray:
        """Current latency per endpoint, ms (a copy)."""
        return self.layout.df(self.fd[index], DF_EP_LAT).copy()

    def pod_nodes(self, index: int) -> np.ndarray:
        """Node index of every pod slot (-1 = empty slot), a copy."""
        return self.layout.di(self.idn[index], DI_POD_NODE).copy()

    def replicas(self, index: int) -> np.ndarray:
        """Running replicas per service, a copy."""
        return self.layout.di(self.idn[index], DI_REP).copy()

    def node_resources(self, index: int) -> dict[str, np.ndarray]:
        """Free and total CPU (cores) and memory (GiB-like) per node, copies."""
        lay, row = self.layout, self.fd[index]
        return {
            "cpu_free": lay.df(row, DF_CPU_FREE).copy(),
            "memory_free": lay.df(row, DF_MEM_FREE).copy(),
            "cpu_capacity": lay.df(row, DF_CPU_CAP).copy(),
            "memory_capacity": lay.df(row, DF_MEM_CAP).copy(),
        }

    def node_healthy(self, index: int) -> np.ndarray:
        """Whether each node accepts pods (False after a simulated failure)."""
        return self.layout.di(self.idn[index], DI_OK).astype(bool)

    def moves(self, index: int) -> int:
        """Moves taken so far in the current episode (REACH's ``time_step``)."""
        return int(self.layout.di(self.idn[index], DI_ISCAL)[0])

    def layer_latency(self, index: int) -> np.ndarray:
        """The sampled ``3 x 3`` layer latency matrix (cloud, edge, client), ms."""
        return self.layout.df(self.fd[index], DF_LAT).reshape(3, 3).copy()

    def pod_names(self, index: int) -> tuple[str, ...]:
        """Name of every pod slot: payload names, or ``<service>-<k>`` in simulation.

        Empty slots are ``<service>_dummy`` as REACH's serving env names them.
        """
        if index in self._payload_names:
            return self._payload_names[index]
        nodes = self.layout.di(self.idn[index], DI_POD_NODE)
        names: list[str] = []
        slot = 0
        for service in self.config.services:
            for k in range(service.max_replica):
                running = nodes[slot] >= 0
                names.append(
                    f"{service.name}-{k + 1}" if running else f"{service.name}_dummy"
                )
                slot += 1
        return tuple(names)

    def snapshot(self, index: int) -> tuple[Snapshot, ModelOptions]:
        """The state of environment ``index`` for :mod:`envs.reach.reference`."""
        lay, frow = self.layout, self.fd[index]
        slow = lay.df(frow, DF_SLOW)
        background = lay.df(frow, DF_BG)
        capacity = lay.df(frow, DF_CPU_CAP)
        nodes = {
            node.name: NodeState(
                layer=node.layer,
                cpu_type=node.cpu_type,
                bandwidth=node.bandwidth,
                background=float(background[j]),
                cores=float(capacity[j]),
                slowdown=float(slow[j]),
            )
            for j, node in enumerate(self.config.nodes.nodes)
        }
        lat = lay.df(frow, DF_LAT)
        latency = {
            (src, dst): float(lat[i * 3 + j])
            for i, src in enumerate(LAYERS)
            for j, dst in enumerate(LAYERS)
            if i != j
        }
        pod_nodes = lay.di(self.idn[index], DI_POD_NODE)
        names = self.config.node_names
        placement: dict[str, list[str]] = {}
        slot = 0
        for service in self.config.services:
            hosts = [
                names[n] for n in pod_nodes[slot : slot + service.max_replica] if n >= 0
            ]
            if hosts:
                placement[service.name] = hosts
            slot += service.max_replica
        options = ModelOptions(
            queueing=self.settings.queueing,
            queue_wait_cap_ms=self.settings.queue_wait_cap_ms,
            response_transfer=self.settings.response_transfer,
            response_size_ratio=self.settings.response_size_ratio,
            rps_scale=float(lay.df(frow, DF_SCAL)[SC_RPS_SCALE]),
        )
        return Snapshot(
            nodes=nodes, layer_latency=latency, placement=placement
        ), options

    def greedy_actions(self, min_gain: float = 1e-6) -> np.ndarray:
        """Per environment, the valid move that most lowers latency (or stop)."""
        out = np.zeros(self.num_envs, dtype=np.int64)
        lay = self.layout
        greedy_batch(lay.sf, lay.si, self.fd, self.idn, self.mask, min_gain, out)
        return out

    # -- internals ---------------------------------------------------------------------
    def _row(self, index: int) -> int:
        """``index`` as a row of the batch, checked (the kernels do not check)."""
        row = operator.index(index)
        if not 0 <= row < self.num_envs:
            raise ValueError(
                f"index: expected an environment in [0, {self.num_envs}), got {row}"
            )
        return row

    def _check_replicas(self, replicas: object, slot_nodes: np.ndarray) -> np.ndarray:
        """Replicas per service, each the count of its first, occupied, slots.

        The kernels walk a service's running pods as its first ``replicas`` slots.
        """
        limits = [s.max_replica for s in self.config.services]
        counts = check_indices(
            "replicas", replicas, len(limits), 0, max(limits, default=0) + 1
        )
        first = 0
        for s, (count, limit) in enumerate(zip(counts, limits, strict=True)):
            occupied = slot_nodes[first : first + limit] >= 0
            if count > limit or not (
                occupied[:count].all() and not occupied[count:].any()
            ):
                name = self.config.services[s].name
                raise ValueError(
                    f"replicas[{s}]: expected the number of {name}'s occupied slots, "
                    f"which come first among its {limit} (slot_nodes "
                    f"{slot_nodes[first : first + limit].tolist()}), got {count}"
                )
            first += limit
        return counts

    def _static_float(self, field: int) -> np.ndarray:
        si = self.layout.si
        slot = HI_FIELDS + 2 * (N_IF + field)
        start, length = int(si[slot]), int(si[slot + 1])
        return self.layout.sf[start : start + length]

    def _run_reset(self, which: np.ndarray) -> None:
        lay = self.layout
        failures = reset_batch(
            lay.sf, lay.si, self.fd, self.idn, self.allow, self.rng, self.obs,
            self.mask, which,
        )  # fmt: skip
        if failures:
            self._placement_failed()

    def _placement_failed(self) -> None:
        raise ReachPlacementError(
            f"{self.config.folder}: could not place every pod on a fitting node in "
            "100 attempts; the nodes' cpu_availability/memory_availability are too "
            "small for the services' requests x max-replica"
        )
