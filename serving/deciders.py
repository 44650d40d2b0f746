"""Deciders: a request body in, the policy's masked decision out, per env kind.

A decider owns the environment machinery that turns a live state into exactly the
observation and mask the policy was trained on (the env's own code), and a
:class:`~serving.network.PolicyNetwork`. It is used from one thread at a time (the
server's event loop), so its scratch buffers need no locks.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np
from gymnasium import spaces

from conf.schema import RunConfig
from envs import Tier, TwoTierCore
from envs.reach.env import ReachRescheduleEnv
from envs.reach.errors import ReachPayloadError
from envs.reach.observation import reach_observation
from envs.reach.payload import Decision
from serving.errors import ServingError
from serving.network import Choices, PolicyNetwork
from serving.two_tier_obs import LiveObservationBatch, LiveRequest

log = logging.getLogger(__name__)

ROUTE, SCHEDULE, GET_ACTION = "route", "schedule", "get_action"


class PolicyMismatchError(ValueError):
    """The checkpoint's network does not fit the env its own config builds."""


def _space_summary(space: spaces.Space[Any]) -> object:
    if isinstance(space, spaces.Dict):
        return {k: _space_summary(v) for k, v in space.spaces.items()}
    return getattr(space, "shape", None)


def check_spaces(
    network: PolicyNetwork, observation: spaces.Space[Any], n_actions: int
) -> None:
    """Refuse a network whose input or output size differs from the env's.

    Raises:
        PolicyMismatchError: naming both shapes, so a wrong config or a checkpoint of
            another topology is caught at load time, not on the first request.
    """
    ours, theirs = (
        _space_summary(network.observation_space),
        _space_summary(observation),
    )
    if ours != theirs:
        raise PolicyMismatchError(
            f"observation: the policy takes {ours} but its config builds {theirs}"
        )
    if network.n_actions != n_actions:
        raise PolicyMismatchError(
            f"actions: the policy has {network.n_actions} but its config builds "
            f"{n_actions}"
        )


def _masked_choice() -> ServingError:
    return ServingError(
        503,
        "policy",
        "a policy whose outputs are finite (it chose a masked action; reload a "
        "healthy checkpoint)",
    )


def _checked(choices: Choices, masks: np.ndarray) -> Choices:
    """Guarantee no masked action leaves the service (a NaN-weight policy could)."""
    rows = np.arange(len(choices.actions))
    if not masks[rows, choices.actions].all():
        raise _masked_choice()
    return choices


# ---------------------------------------------------------------- REACH rescheduling


@dataclass(frozen=True)
class RescheduleAnswer:
    """REACH's decision plus what metrics and logs want to know."""

    decision: Decision
    probability: float


class RescheduleDecider:
    """REACH's ``/get_action``: the payload on the trained axes, one move or stop.

    Args:
        cfg: the checkpoint's run config (``env == "reschedule"``).
        network: the policy.
        strict_deployable: refuse a pod with an empty ``pod_deployable`` list with a
            422; by default such a pod cannot move (REACH spec §6.4), and when no
            pod can move the answer is a stop.
    """

    kind = "reschedule"
    endpoints = frozenset({GET_ACTION})

    def __init__(
        self, cfg: RunConfig, network: PolicyNetwork, strict_deployable: bool = False
    ) -> None:
        self.env = ReachRescheduleEnv(config=cfg.reschedule)
        self.network = network
        self.strict_deployable = strict_deployable
        self._clip = not self.env.settings.reach_exact_bounds
        n_actions = int(self.env.core.single_action_space.n)
        check_spaces(network, self.env.observation_space, n_actions)

    def describe(self) -> dict[str, Any]:
        """What ``/readyz`` reports about the served topology."""
        codec = self.env.codec
        return {
            "nodes": list(codec.node_names),
            "pod_slots": codec.max_pods,
            "services": [s.name for s in codec.config.services],
        }

    def _observation(self) -> np.ndarray | dict[str, np.ndarray]:
        core = self.env.core
        space = self.env.observation_space
        if isinstance(space, spaces.Dict):
            obs = reach_observation(core, 0, space, self._clip)
            return {k: v[None] for k, v in obs.items()}
        return core.obs[:1]

    def _check_deployable(self, body: Mapping[str, Any]) -> None:
        lists = body.get("pod_deployable")
        if not self.strict_deployable or not isinstance(lists, Mapping):
            return
        for pod, nodes in lists.items():
            if isinstance(nodes, list) and not nodes:
                raise ServingError(
                    422,
                    f"pod_deployable.{pod}",
                    "at least one node name (--strict-deployable is on: leave out a "
                    "pod that may not move)",
                    nodes,
                )

    def decide(self, body: object) -> RescheduleAnswer:
        """REACH's answer to a ``/get_action`` body.

        Raises:
            ServingError: 400 for a malformed body, 422 for one that does not fit the
                trained topology (both naming the JSON path).
        """
        codec, core = self.env.codec, self.env.core
        try:
            state = codec.parse(body)  # type: ignore[arg-type]
        except ReachPayloadError as err:
            raise ServingError(
                422 if err.mismatch else 400, err.path, err.expected, message=str(err)
            ) from err
        except OverflowError as err:  # an integer beyond float range
            raise ServingError(
                400, "body", "numbers within the float range (about 1.8e308)"
            ) from err
        assert isinstance(body, Mapping)
        self._check_deployable(body)
        core.load_payload(0, state)
        mask = core.mask[:1]
        obs = self._observation()
        if isinstance(obs, np.ndarray) and not np.isfinite(obs).all():
            raise ServingError(
                422,
                "cluster_state.nodes",
                "resources within the range the policy reads (these overflow its "
                "observation)",
            )
        choices = _checked(self.network.decide(obs, mask), mask)
        action = int(choices.actions[0])
        decision = codec.decode(action, state.slot_pods, mask[0])
        return RescheduleAnswer(decision, float(choices.probabilities[0, action]))

    def smoke_test(self) -> None:
        """Decide once on a sampled cluster (a broken network fails here, not live)."""
        _, info = self.env.reset(seed=0)
        mask = info["action_mask"][None]
        choices = self.network.decide(self._observation(), mask)
        if not np.isfinite(choices.probabilities).all():
            raise PolicyMismatchError("policy: produces non-finite probabilities")
        _checked(choices, mask)


# ---------------------------------------------------------------- two-tier


class TwoTierAnswer(NamedTuple):
    """One routing or scheduling decision (a tuple: thousands per batch call)."""

    region: str
    """The serving region (route: the choice; schedule: the given region)."""
    node: str | None
    """The chosen node (schedule only)."""
    probabilities: dict[str, float]
    """Probability of every allowed alternative (region ids or node names)."""


class TwoTierDecider:
    """Routing (which region) and scheduling (which node) decisions.

    A ``learn=both`` policy answers both (the phase is in its observation); a
    ``learn=lb`` policy only routes and a ``learn=scheduler`` one only schedules.

    Args:
        cfg: the checkpoint's run config (``env == "two_tier"``).
        network: the policy.
        capacity: most decisions per call (the batch limit).
    """

    kind = "two_tier"

    def __init__(self, cfg: RunConfig, network: PolicyNetwork, capacity: int) -> None:
        core = TwoTierCore(cfg.scenario, capacity, None, cfg.two_tier, cfg.reward)
        self.batch = LiveObservationBatch(core)
        self.network = network
        self.learn = Tier(cfg.two_tier.learn)
        self.endpoints = frozenset(
            {
                Tier.both: {ROUTE, SCHEDULE},
                Tier.lb: {ROUTE},
                Tier.scheduler: {SCHEDULE},
            }[self.learn]
        )
        world = core.world
        self.region_ids = world.region_ids
        self.node_names = world.node_names
        check_spaces(
            network,
            core.single_observation_space,
            int(core.single_action_space.n),
        )

    def describe(self) -> dict[str, Any]:
        """What ``/readyz`` reports about the served scenario."""
        world = self.batch.core.world
        return {
            "learn": self.learn.value,
            "scenario": world.name,
            "regions": list(world.region_ids),
            "request_types": list(world.type_names),
            "nodes": len(world.node_names),
            "reads_region_rates": self.batch.reads_region_rates,
        }

    def require(self, endpoint: str) -> None:
        """Refuse (409) a tier the loaded policy was not trained to decide."""
        if endpoint not in self.endpoints:
            tier = "lb" if endpoint == ROUTE else "scheduler"
            raise ServingError(
                409,
                "policy",
                f"a policy trained with two_tier.learn={tier} or both for "
                f"/v1/{endpoint} (the loaded one has learn={self.learn.value}; it "
                f"answers {', '.join('/v1/' + e for e in sorted(self.endpoints))})",
            )

    @staticmethod
    def _no_choice(i: int, prefix: str, field: str) -> ServingError:
        where = f"{prefix}[{i}]." if prefix else ""
        return ServingError(
            422,
            where + field,
            "a request some allowed alternative can serve (none is valid for this "
            "request type here)",
        )

    def route(
        self, requests: Sequence[LiveRequest], prefix: str = ""
    ) -> list[TwoTierAnswer]:
        """The serving region of each request (LB phase)."""
        self.require(ROUTE)
        if not requests:
            return []
        obs, masks, _ = self.batch.build(requests, None, prefix)
        n_regions = len(self.region_ids)
        allowed_rows = masks[:, :n_regions].tolist()
        for i, allowed in enumerate(allowed_rows):
            if not any(allowed):
                raise self._no_choice(i, prefix, "request_type")
        choices = self.network.decide(obs, masks)
        ids = self.region_ids
        out = []
        for action, probs, allowed in zip(
            choices.actions.tolist(),
            choices.probabilities[:, :n_regions].tolist(),
            allowed_rows,
            strict=True,
        ):
            if action >= n_regions or not allowed[action]:
                raise _masked_choice()
            out.append(
                TwoTierAnswer(
                    ids[action],
                    None,
                    {ids[q]: probs[q] for q, ok in enumerate(allowed) if ok},
                )
            )
        return out

    def schedule(
        self, requests: Sequence[LiveRequest], regions: Sequence[str], prefix: str = ""
    ) -> list[TwoTierAnswer]:
        """The node of each request inside its given region (scheduler phase)."""
        self.require(SCHEDULE)
        if not requests:
            return []
        obs, masks, selected = self.batch.build(requests, regions, prefix)
        mask_rows = masks.tolist()
        for i, allowed in enumerate(mask_rows):
            if not any(allowed):
                raise self._no_choice(i, prefix, "region")
        choices = self.network.decide(obs, masks)
        starts, sizes = self.batch.region_start, self.batch.region_size
        names = self.node_names
        out = []
        for q, action, probs, allowed in zip(
            selected.tolist(),
            choices.actions.tolist(),
            choices.probabilities.tolist(),
            mask_rows,
            strict=True,
        ):
            if not allowed[action]:
                raise _masked_choice()
            first = int(starts[q])
            out.append(
                TwoTierAnswer(
                    self.region_ids[q],
                    names[first + action],
                    {
                        names[first + i]: probs[i]
                        for i in range(int(sizes[q]))
                        if allowed[i]
                    },
                )
            )
        return out

    def smoke_test(self) -> None:
        """Decide once per served tier on an idle system (fails a broken network)."""
        world = self.batch.core.world
        idle: dict[str, Any] = {
            "request_type": world.type_names[0],
            "origin": world.region_ids[0],
            "region_rates": dict.fromkeys(world.region_ids, 0.0),
        }
        for endpoint in sorted(self.endpoints):
            sel = [world.region_ids[0]] if endpoint == SCHEDULE else None
            obs, masks, _ = self.batch.build([idle], sel)
            if not masks.any(axis=1).all():
                continue  # this type cannot be served there; nothing to check
            choices = self.network.decide(obs, masks)
            if not np.isfinite(choices.probabilities).all():
                raise PolicyMismatchError("policy: produces non-finite probabilities")
            _checked(choices, masks)


Decider = RescheduleDecider | TwoTierDecider
