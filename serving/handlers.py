"""The decision endpoints as functions from a raw body to a JSON-ready answer.

They hold everything the endpoints do (pick the policy, parse, decide, count), so
the ASGI fast lane (:mod:`serving.middleware`) and the FastAPI routes (which publish
the schema) run exactly the same code. Errors are :class:`ServingError` s.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable
from typing import Any, TypeVar

from pydantic import TypeAdapter, ValidationError

from serving import schemas as S
from serving.deciders import GET_ACTION, ROUTE, SCHEDULE, TwoTierDecider
from serving.errors import ServingError, validation_errors
from serving.metrics import ServingMetrics
from serving.model_store import LoadedPolicy, ModelStore
from serving.settings import ServeSettings

T = TypeVar("T")

PATHS = {
    GET_ACTION: "/get_action",
    ROUTE: "/v1/route",
    SCHEDULE: "/v1/schedule",
}
ROUTE_BATCH_PATH = "/v1/route/batch"
SCHEDULE_BATCH_PATH = "/v1/schedule/batch"

Answer = dict[str, Any]


def parse(adapter: TypeAdapter[T], raw: bytes) -> T:
    """Validate ``raw`` JSON; 400 if it is not JSON, 422 naming every bad field."""
    try:
        return adapter.validate_json(raw)
    except ValidationError as err:
        raise ServingError.invalid(
            validation_errors(err.errors(include_url=False))
        ) from None


class DecisionHandlers:
    """The decision endpoints around a model store.

    Args:
        store: holds the current policy.
        settings: the batch limit.
        metrics: decisions by outcome and batch sizes are counted here.
    """

    def __init__(
        self, store: ModelStore, settings: ServeSettings, metrics: ServingMetrics
    ) -> None:
        self.store = store
        self.settings = settings
        self.metrics = metrics
        self.table: dict[str, Callable[[bytes], Answer]] = {
            PATHS[GET_ACTION]: self.get_action,
            PATHS[ROUTE]: self.route,
            ROUTE_BATCH_PATH: self.route_batch,
            PATHS[SCHEDULE]: self.schedule,
            SCHEDULE_BATCH_PATH: self.schedule_batch,
        }
        """POST path -> handler."""

    def policy_for(self, endpoint: str) -> LoadedPolicy:
        """The current policy if it takes ``endpoint``'s decisions (else 503/409)."""
        policy = self.store.current
        if policy is None:
            raise ServingError(
                503, "policy", f"a loaded checkpoint (waiting for {self.store.path})"
            )
        if endpoint not in policy.decider.endpoints:
            if isinstance(policy.decider, TwoTierDecider) and endpoint != GET_ACTION:
                policy.decider.require(endpoint)  # the tier-specific 409
            served = ", ".join(PATHS[e] for e in sorted(policy.decider.endpoints))
            raise ServingError(
                409,
                "policy",
                f"a checkpoint that answers {PATHS[endpoint]} (the loaded one is a "
                f"{policy.env} policy answering {served})",
            )
        return policy

    def _two_tier(self, endpoint: str) -> tuple[LoadedPolicy, TwoTierDecider]:
        policy = self.policy_for(endpoint)
        decider = policy.decider
        assert isinstance(decider, TwoTierDecider)
        return policy, decider

    def _check_batch(self, n: int) -> None:
        limit = self.settings.max_batch
        if n > limit:
            raise ServingError(
                413, "requests", f"at most {limit} items (--max-batch)", n
            )

    def _count(self, endpoint: str, outcomes: list[str]) -> None:
        self.metrics.batch_size.labels(endpoint).observe(len(outcomes))
        for outcome, n in Counter(outcomes).items():
            self.metrics.count_decision(endpoint, outcome, n)

    # ------------------------------------------------------------ REACH
    def get_action(self, raw: bytes) -> Answer:
        """REACH's ``/get_action``: ``{"pod_name", "target_node", "is_stop"}``."""
        policy = self.policy_for(GET_ACTION)
        try:
            body = json.loads(raw)
        except (ValueError, RecursionError) as err:
            raise ServingError(400, "body", f"valid JSON ({err})") from None
        decider = policy.decider
        assert not isinstance(decider, TwoTierDecider)
        decision = decider.decide(body).decision
        outcome = "stop" if decision.is_stop else "move"
        self.metrics.count_decision(PATHS[GET_ACTION], outcome)
        return decision.to_json()

    # ------------------------------------------------------------ two-tier
    def route(self, raw: bytes) -> Answer:
        """The region of one request, its alternatives' probabilities, the version."""
        policy, decider = self._two_tier(ROUTE)
        req = parse(S.ROUTE_REQUEST, raw)
        [answer] = decider.route([req])
        self.metrics.count_decision(PATHS[ROUTE], answer.region)
        return {
            "region": answer.region,
            "probabilities": answer.probabilities,
            "policy_version": policy.version,
        }

    def route_batch(self, raw: bytes) -> Answer:
        """The regions of many requests, in order, taken by one policy version."""
        policy, decider = self._two_tier(ROUTE)
        requests = parse(S.ROUTE_BATCH, raw)["requests"]
        self._check_batch(len(requests))
        answers = decider.route(requests, prefix="requests")
        self._count(ROUTE_BATCH_PATH, [a.region for a in answers])
        decisions = [
            {"region": a.region, "probabilities": a.probabilities} for a in answers
        ]
        return {"decisions": decisions, "policy_version": policy.version}

    def schedule(self, raw: bytes) -> Answer:
        """The node of one request in its region, with the alternatives."""
        policy, decider = self._two_tier(SCHEDULE)
        req = parse(S.SCHEDULE_REQUEST, raw)
        [answer] = decider.schedule([req], [req["region"]])
        self.metrics.count_decision(PATHS[SCHEDULE], answer.node or "")
        return {
            "region": answer.region,
            "node": answer.node,
            "probabilities": answer.probabilities,
            "policy_version": policy.version,
        }

    def schedule_batch(self, raw: bytes) -> Answer:
        """The nodes of many requests, in order, taken by one policy version."""
        policy, decider = self._two_tier(SCHEDULE)
        requests = parse(S.SCHEDULE_BATCH, raw)["requests"]
        self._check_batch(len(requests))
        regions = [r["region"] for r in requests]
        answers = decider.schedule(requests, regions, prefix="requests")
        self._count(SCHEDULE_BATCH_PATH, [a.node or "" for a in answers])
        decisions = [
            {"region": a.region, "node": a.node, "probabilities": a.probabilities}
            for a in answers
        ]
        return {"decisions": decisions, "policy_version": policy.version}
