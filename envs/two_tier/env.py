"""Two-tier request scheduling across a multi-cloud continuum (Gymnasium env)."""

from __future__ import annotations

import operator
from typing import Any

import gymnasium as gym
import numpy as np

from envs.config import ScenarioConfig
from envs.two_tier.config import RewardConfig, TwoTierEnvConfig
from envs.two_tier.core import TwoTierCore


class TwoTierSchedulingEnv(gym.Env[np.ndarray, np.int64]):
    """Route each arriving request to a region, then to a node in that region.

    ## Description
    Regions of several cloud providers, each with edge and cloud node pools, receive
    requests from their users (a non-homogeneous Poisson process shaped by a diurnal
    profile and real Azure trace burstiness). For every request from a *controlled*
    region, **tier 1, the load balancer**, picks the serving region and **tier 2, the
    scheduler**, picks the node there. The node queues it FCFS for its earliest-free
    core; latency, queueing, SLO, cost, energy and carbon follow from real RTTs, prices
    and hourly carbon intensities. Regions the agent does not control serve their own
    traffic with a background heuristic, so they are loaded, dynamic neighbours.

    *Design: one core, a phase per tier.* ``config.learn`` selects which tier the agent
    plays; the other is one of :mod:`envs.two_tier.heuristics`, resolved inside the
    simulator. With ``learn=both`` a request takes two steps, an LB step (phase
    one-hot ``[1, 0]``, region actions valid) then a scheduler step (``[0, 1]``, node
    actions valid), so one policy network learns both decisions, its phase input
    telling which. This keeps a
    single simulator for the three ablation arms (learned LB + heuristic scheduler, the
    reverse, both learned), and a given trained policy can play either tier by being
    called on the phase it was trained for.

    ## Action Space
    ``Discrete(A)``: ``A = R`` (LB), ``N_max`` (scheduler, node index inside the
    region, padded to the largest region) or ``max(R, N_max)`` (both). Invalid actions
    are masked: ``action_masks()`` (sb3-contrib) and ``info["action_mask"]``. A masked
    action still taken (an unmasked policy) is replaced by the tier's heuristic and
    costs ``invalid_action_penalty``; ``info["invalid_action"]`` says so.

    | decision  | valid when                                                        |
    |-----------|-------------------------------------------------------------------|
    | region q  | q can serve the type, and is on the origin's continent if required |
    | node i    | exists, has the CPU class and memory, and is not saturated (unless |
    |           | every capable node of the region is)                               |

    ## Observation Space
    ``Box(-1, obs_clip, (D,), float32)``, layout in :mod:`envs.two_tier.layout`: phase,
    request type and scalars, origin id (optional), per-region features (RTT,
    transfer, best completion, utilisation, cost, carbon, validity) and per-node
    features of the view region (wait, execution, utilisation, cost, carbon, edge).
    Shapes are equal for every controlled region of a scenario (padding + masks).

    ## Rewards
    At the step that places a request: ``-(w_lat L/SLO + w_q W/SLO + w_slo [L > SLO]
    + w_cost C/C_ref + w_carbon G/G_ref)``
    (:class:`~envs.two_tier.config.RewardConfig`); an LB step of ``learn=both`` gives
    0. ``info`` holds every raw component each step.

    ## Starting State
    Queues empty, then ``warmup`` of simulated time with every region served by the
    background heuristic; the hour of 2023 is uniform (or ``start_hour``), each
    region's burst trace starts at a uniform offset.

    ## Episode End
    No termination (serving is a continuing task); truncation after ``episode_length``
    decisions through ``max_episode_steps`` of the registration.

    ## Arguments
    ``scenario`` (name, YAML path or :class:`~envs.config.ScenarioConfig`), ``region``
    (the controlled region id, or ``None`` for all), ``config``
    (:class:`~envs.two_tier.config.TwoTierEnvConfig`), ``reward``
    (:class:`~envs.two_tier.config.RewardConfig`).

    ## Version History
    * v0: first version.
    """

    metadata = {"render_modes": []}  # noqa: RUF012 (Gymnasium declares it so)

    def __init__(
        self,
        scenario: str | ScenarioConfig = "small",
        region: str | None = None,
        config: TwoTierEnvConfig | None = None,
        reward: RewardConfig | None = None,
        render_mode: str | None = None,
    ) -> None:
        self.core = TwoTierCore(
            scenario,
            num_envs=1,
            controlled=None if region is None else [region],
            config=config,
            reward=reward,
            auto_truncate=False,
        )
        self.region = region
        self.observation_space = self.core.single_observation_space
        self.action_space = self.core.single_action_space
        self.render_mode = render_mode
        self._action = np.zeros(1, dtype=np.int64)

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        """Start an episode; the simulator's stream is drawn from ``self.np_random``."""
        super().reset(seed=seed)
        self.core.set_streams(0, self.np_random)
        self.core.reset_one(0)
        info = {
            "action_mask": self.core.mask[0].copy(),
            "phase": self.core.step_info(0)["phase"],
        }
        return self.core.obs[0].copy(), info

    def step(
        self, action: int | np.integer
    ) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        """Take the pending decision; simulate up to the next one."""
        try:  # ints, numpy integers, 0-d integer arrays; never a truncated float
            a = operator.index(action)
        except TypeError:
            raise ValueError(
                f"action: expected an integer of {self.action_space}, got {action!r}"
            ) from None
        if not 0 <= a < self.core.single_action_space.n:
            raise ValueError(
                f"action {a} is outside the action space {self.action_space}"
            )
        self._action[0] = a
        out = self.core.step(self._action)
        info = self.core.step_info(0)
        info["action_mask"] = self.core.mask[0].copy()
        return out.obs[0].copy(), float(out.reward[0]), False, False, info

    def action_masks(self) -> np.ndarray:
        """Valid actions of the pending decision (never all false)."""
        return np.array(self.core.mask[0], dtype=bool)
