"""Request and response bodies of the decision API (pydantic; they make the OpenAPI).

Two-tier requests are ``TypedDict`` s validated by pydantic's JSON parser straight
into dicts: half the cost of model instances, which matters at thousands of
decisions per batch. REACH's ``/get_action`` bodies are described here for the
schema, but parsed by :class:`envs.reach.payload.ReachPayloadCodec` so that the
answer and the error classes (400 malformed, 422 not the trained topology) are
exactly REACH's spec.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal, NotRequired

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, with_config
from typing_extensions import TypedDict  # pydantic needs it on Python < 3.12

_STRICT = ConfigDict(extra="forbid")

MAX_WAIT_S = 86_400.0
"""Longest queue wait accepted (a day): beyond it a node is down, not slow."""
MAX_CORES = 4096
"""Largest busy-core count accepted (the scenario's own node sizes are checked too)."""
MAX_RATE_RPS = 1e9
"""Largest region arrival rate accepted (requests/s)."""

# ---------------------------------------------------------------- REACH /get_action


class ReachNode(BaseModel):
    """A node's free resources as pod-migrator reports them."""

    node_name: str = Field(description="The node's name (equal to its key).")
    cpu_availability: float = Field(
        ge=0, allow_inf_nan=False, description="Free millicores."
    )
    memory_availability: float = Field(
        ge=0, allow_inf_nan=False, description="Free memory, GiB."
    )


class ReachPod(BaseModel):
    """A running pod and the node it is on."""

    node_name: str = Field(min_length=1)
    pod_name: str = Field(min_length=1)


class ReachService(BaseModel):
    """A service of services.json and its running pods."""

    service_name: str | None = Field(
        default=None, description="The service's name (equal to its key)."
    )
    pods: list[ReachPod]


class ReachClusterState(BaseModel):
    """Every node of the trained cluster and the app's services."""

    nodes: dict[str, ReachNode]
    services: dict[str, ReachService]


class GetActionRequest(BaseModel):
    """REACH pod-migrator's request (spec §6.1)."""

    cluster_state: ReachClusterState
    pod_deployable: dict[str, list[str]] | None = Field(
        default=None,
        description=(
            "Nodes each pod may move to (Kubernetes' fit check). Absent: the "
            "resource-fit rules of training apply. {}: nothing may move (stop)."
        ),
    )


class GetActionResponse(BaseModel):
    """REACH's answer: move ``pod_name`` to ``target_node``, or stop."""

    pod_name: str = Field(description='Pod to migrate ("" when stopping).')
    target_node: str = Field(description='Node to migrate it to ("" when stopping).')
    is_stop: bool = Field(description="True: leave the placement as it is.")


class ErrorBody(BaseModel):
    """Every error answer (REACH's field names)."""

    status: Literal["error"] = "error"
    message: str = Field(description="<field path>: expected <what>, got <value>")


class FieldError(BaseModel):
    """One invalid field."""

    field: str
    message: str


class ValidationErrorBody(ErrorBody):
    """A request whose fields do not validate; ``errors`` lists each one."""

    errors: list[FieldError]


# ---------------------------------------------------------------- two-tier


@with_config(_STRICT)
class NodeLoad(TypedDict):
    """What a node's exporter reports; nodes left out are idle."""

    queue_wait_s: NotRequired[
        Annotated[
            float,
            Field(
                ge=0,
                le=MAX_WAIT_S,
                allow_inf_nan=False,
                description="Seconds until one of its cores is free (0: a core is "
                "idle; default 0).",
            ),
        ]
    ]
    busy_cores: NotRequired[
        Annotated[
            int,
            Field(
                ge=0,
                le=MAX_CORES,
                description="Cores running a request now (default 0).",
            ),
        ]
    ]


@with_config(_STRICT)
class RouteRequest(TypedDict):
    """A pending request to route to a region."""

    request_type: Annotated[str, Field(description="A request type of the scenario.")]
    origin: Annotated[str, Field(description="Region id the request comes from.")]
    time: NotRequired[
        Annotated[
            datetime | None,
            Field(
                description="When it is decided (ISO 8601; no zone = UTC; absent or "
                "null = now)."
            ),
        ]
    ]
    nodes: NotRequired[
        Annotated[
            dict[str, NodeLoad],
            Field(
                description="Load per node name (<region>/<pool>-<i>); absent nodes "
                "are idle."
            ),
        ]
    ]
    region_rates: NotRequired[
        Annotated[
            dict[
                str,
                Annotated[float, Field(ge=0, le=MAX_RATE_RPS, allow_inf_nan=False)],
            ],
            Field(
                description="Requests per second arriving at each region now (e.g. "
                "a 1-minute rate summed by origin; regions left out have none); "
                "required by policies that observe region loads (/readyz: "
                "reads_region_rates), ignored by the others."
            ),
        ]
    ]


@with_config(_STRICT)
class ScheduleRequest(RouteRequest):
    """A request routed to ``region``, to place on one of its nodes."""

    region: Annotated[
        str, Field(description="The region chosen for it (its nodes compete).")
    ]


@with_config(_STRICT)
class RouteBatchRequest(TypedDict):
    """Many routing decisions in one call (answered in order)."""

    requests: list[RouteRequest]


@with_config(_STRICT)
class ScheduleBatchRequest(TypedDict):
    """Many scheduling decisions in one call (answered in order)."""

    requests: list[ScheduleRequest]


class RouteChoice(BaseModel):
    """One routing decision."""

    region: str = Field(description="The region chosen.")
    probabilities: dict[str, float] = Field(
        description="Policy probability of every allowed region."
    )


class ScheduleChoice(BaseModel):
    """One scheduling decision."""

    region: str
    node: str = Field(description="The node chosen (a node of ``region``).")
    probabilities: dict[str, float] = Field(
        description="Policy probability of every allowed node of the region."
    )


class RouteResponse(RouteChoice):
    """A routing decision and the policy that took it."""

    policy_version: str


class ScheduleResponse(ScheduleChoice):
    """A scheduling decision and the policy that took it."""

    policy_version: str


class RouteBatchResponse(BaseModel):
    """Decisions in request order, all taken by one policy version."""

    decisions: list[RouteChoice]
    policy_version: str


class ScheduleBatchResponse(BaseModel):
    """Decisions in request order, all taken by one policy version."""

    decisions: list[ScheduleChoice]
    policy_version: str


# ---------------------------------------------------------------- probes


class Health(BaseModel):
    """The process answers."""

    status: Literal["ok"] = "ok"


class Ready(BaseModel):
    """A policy is loaded and what it serves (plus the topology it was trained on)."""

    model_config = ConfigDict(extra="allow")

    status: Literal["ready"] = "ready"
    policy_version: str
    env: str
    checkpoint: str
    endpoints: list[str]
    loaded_at: float
    round: int | None = None


ROUTE_REQUEST: TypeAdapter[RouteRequest] = TypeAdapter(RouteRequest)
SCHEDULE_REQUEST: TypeAdapter[ScheduleRequest] = TypeAdapter(ScheduleRequest)
ROUTE_BATCH: TypeAdapter[RouteBatchRequest] = TypeAdapter(RouteBatchRequest)
SCHEDULE_BATCH: TypeAdapter[ScheduleBatchRequest] = TypeAdapter(ScheduleBatchRequest)
