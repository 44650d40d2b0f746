"""``ReachReschedule``: move one pod at a time, or stop, to cut end-to-end latency."""

from __future__ import annotations

import dataclasses
import operator
from collections.abc import Mapping
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from envs.reach.config import RescheduleConfig
from envs.reach.core import ReachCore, load_settings_config
from envs.reach.model import ReachConfig
from envs.reach.observation import reach_observation, reach_observation_space
from envs.reach.payload import Decision, ReachPayloadCodec
from envs.rng import seed_streams

ObsType = np.ndarray | dict[str, np.ndarray]


def resolve_settings(
    config: RescheduleConfig | Mapping[str, Any] | None, overrides: Mapping[str, Any]
) -> RescheduleConfig:
    """A :class:`RescheduleConfig` from a dataclass or a mapping, plus overrides."""
    if config is None:
        base = RescheduleConfig()
    elif isinstance(config, RescheduleConfig):
        base = config
    else:
        base = RescheduleConfig(**dict(config))
    return dataclasses.replace(base, **overrides) if overrides else base


class ReachRescheduleEnv(gym.Env[ObsType, np.int64]):
    """Reschedule a running microservice app on cloud-edge nodes (REACH's CEEnv).

    ## Description
    An application (services with replicas, call graphs per endpoint) runs on a
    cluster of cloud, edge and client nodes described by REACH config files. Each step
    the agent moves one pod to another node, or stops. The modelled mean end-to-end
    latency over endpoints (see :mod:`envs.reach.reference`) is what the moves should
    cut. The state lives in :class:`~envs.reach.core.ReachCore`; this class is its
    one-environment view.

    ## Action Space
    ``Discrete(N_max * P_max + 1)``, node-major as in REACH: action
    ``a < N_max * P_max`` moves pod slot ``a % P_max`` to node ``a // P_max``; the last
    action stops. ``action_masks()`` (also ``info["action_mask"]``) marks the valid
    ones: a running pod, another node, not persistent, not client-layer, a non-client
    target with free CPU and memory for the pod (or, for a live-cluster state, the
    target listed in ``pod_deployable``). Stop is always valid. A masked action moves
    nothing but still counts as a step.

    ## Observation Space
    ``observation="flat"`` (default): ``Box(0, 10, (D,), float32)``, normalised, with a
    global block (latency / QoS, SLO violations, time, rates, layer latencies), one
    row per node (layer, free and total resources, speed, health, bandwidth use, load,
    queue wait) and one row per pod slot (occupied, movable, requests, host layer,
    execution time, optional host one-hot); see :mod:`envs.reach.layout`.
    ``observation="reach"``: REACH's ``Dict`` (``Node_cpu_availability``,
    ``Node_memory_availability``, ``Pod_node_id`` and, for the ``6aa794e`` key set,
    ``Node_layer``, ``Layer_latency``, ``time_step``) in raw units.

    ## Rewards
    ``latency_before - latency_after`` (ms) of the move, minus the migration cost
    (``migration_cost``, times the moves so far when ``growing``; none on the final
    step), minus ``slo_penalty`` x the fraction of endpoints over their QoS target.
    Stop earns 0 (minus the SLO penalty). Every component is in ``info``.

    ## Starting State
    Node resources, background bandwidth and layer latencies are sampled from the
    config's ranges, replicas per service uniformly in [1, max-replica], and pods are
    placed like Kubernetes' default scheduler (or uniformly at random, as REACH).
    ``reset(options={"cluster_state": ..., "pod_deployable": ...})`` starts instead
    from exactly the body REACH's pod-migrator sends to ``POST /get_action``.

    ## Episode End
    Terminated on stop (or, with ``stop_at_qos``, once latency meets the QoS
    threshold); truncated after ``max_moves`` moves (100).

    ## Arguments
    ``gym.make("ReachReschedule-v0", **fields)`` where the keyword arguments are
    fields of :class:`~envs.reach.config.RescheduleConfig` (``cluster``, ``pattern``,
    ``observation``, ``queueing``, ...), or ``config=RescheduleConfig(...)``;
    ``reach_config`` passes an already-loaded config set.

    ## Version History
    * v0: initial version, REACH CEEnv 6aa794e semantics plus switchable extensions.
    """

    metadata: dict[str, Any] = {"render_modes": []}  # noqa: RUF012 - Gymnasium API

    def __init__(
        self,
        config: RescheduleConfig | Mapping[str, Any] | None = None,
        *,
        reach_config: ReachConfig | None = None,
        render_mode: str | None = None,
        **overrides: Any,
    ) -> None:
        self.settings = resolve_settings(config, overrides)
        self.render_mode = render_mode
        self.reach_config = reach_config or load_settings_config(self.settings)
        self.core = ReachCore(self.reach_config, self.settings, 1, autoreset=False)
        lay = self.core.layout
        self.codec = ReachPayloadCodec(self.reach_config, lay.max_nodes, lay.max_pods)
        self.action_space = spaces.Discrete(lay.n_actions)
        self.observation_space: spaces.Space[Any]
        if self.settings.observation == "reach":
            self.observation_space = reach_observation_space(self.core, self.settings)
        else:
            self.observation_space = self.core.single_observation_space
        self._actions = np.zeros(1, dtype=np.int64)

    # -- Gymnasium API -----------------------------------------------------------------
    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[ObsType, dict[str, Any]]:
        """Sample a new cluster, or load the live-cluster payload in ``options``."""
        super().reset(seed=seed)
        if options and "cluster_state" in options:
            self.core.load_payload(0, self.codec.parse(options))
        else:
            self.core.reset_env(0, seed_streams(self.np_random, 1)[0])
        info = {"action_mask": self.action_masks(), "latency": self.core.latency(0)}
        return self._observation(), info

    def step(self, action: Any) -> tuple[ObsType, float, bool, bool, dict[str, Any]]:
        """Move one pod (or stop); see the class docstring for rewards and ends."""
        # operator.index takes ints, numpy integers and 0-d integer arrays but no
        # floats; cheaper than Discrete.contains on this per-step path.
        index = operator.index(action)
        assert 0 <= index < self.core.layout.n_actions, (
            f"action: expected an integer in [0, {self.core.layout.n_actions}), "
            f"got {action!r}"
        )
        self._actions[0] = index
        out = self.core.step(self._actions)
        info = self.core.step_info(0)
        info["action_mask"] = self.action_masks()
        return (
            self._observation(),
            float(out.reward[0]),
            bool(out.terminated[0]),
            bool(out.truncated[0]),
            info,
        )

    # -- masking and serving -----------------------------------------------------------
    def action_masks(self) -> np.ndarray:
        """``bool[A]``: which actions are valid now (a copy; stop is always True)."""
        mask: np.ndarray = self.core.mask[0].copy()
        return mask

    def decision(self, action: int) -> Decision:
        """REACH's ``/get_action`` answer for ``action`` in the current state."""
        return self.codec.decode(action, self.core.pod_names(0), self.core.mask[0])

    @property
    def latency(self) -> float:
        """Current modelled mean end-to-end latency, ms."""
        return self.core.latency(0)

    # -- internals ---------------------------------------------------------------------
    def _observation(self) -> ObsType:
        if isinstance(self.observation_space, spaces.Dict):
            clip = not self.settings.reach_exact_bounds
            return reach_observation(self.core, 0, self.observation_space, clip)
        obs: np.ndarray = self.core.obs[0].copy()
        return obs
