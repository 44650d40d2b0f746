"""The FastAPI app: REACH's ``/get_action``, two-tier ``/v1/*``, probes and metrics.

FastAPI publishes the schema (``/openapi.json``, ``/docs``) and serves the probes.
The decision endpoints are :class:`~serving.handlers.DecisionHandlers`: FastAPI
routes call them, and :class:`~serving.middleware.GuardMiddleware` calls the same
functions directly for ``POST`` requests, skipping FastAPI's routing and dependency
machinery (about a third of a single decision's CPU time). Handlers decide inline on
the event loop: a decision takes tens of microseconds, less than a hop to a thread
pool, and one thread at a time is what lets deciders reuse their buffers.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
from collections.abc import AsyncIterator, Callable
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, TypeAdapter
from starlette.exceptions import HTTPException as StarletteHTTPException

from serving import schemas as S
from serving.deciders import GET_ACTION, ROUTE, SCHEDULE
from serving.errors import ServingError, validation_errors
from serving.handlers import (
    PATHS,
    ROUTE_BATCH_PATH,
    SCHEDULE_BATCH_PATH,
    Answer,
    DecisionHandlers,
)
from serving.metrics import ServingMetrics
from serving.middleware import GuardMiddleware
from serving.model_store import ModelStore
from serving.settings import ServeSettings

log = logging.getLogger(__name__)

ENDPOINTS = frozenset(
    {
        *PATHS.values(),
        ROUTE_BATCH_PATH,
        SCHEDULE_BATCH_PATH,
        "/healthz",
        "/readyz",
        "/metrics",
    }
)
REQUEST_SCHEMAS: tuple[Any, ...] = (
    S.GetActionRequest,
    S.RouteRequest,
    S.ScheduleRequest,
    S.RouteBatchRequest,
    S.ScheduleBatchRequest,
)
_ALL_ERRORS = (400, 401, 409, 413, 422, 503)
_DECISIONS: tuple[tuple[str, str, Any, type[BaseModel], str, str], ...] = (
    (
        PATHS[GET_ACTION],
        "get_action",
        S.GetActionRequest,
        S.GetActionResponse,
        "REACH pod-migrator: the next pod move, or stop",
        "REACH",
    ),
    (
        PATHS[ROUTE],
        "route",
        S.RouteRequest,
        S.RouteResponse,
        "Load balancer: the region to serve a request",
        "two-tier",
    ),
    (
        ROUTE_BATCH_PATH,
        "route_batch",
        S.RouteBatchRequest,
        S.RouteBatchResponse,
        "Load balancer: many routing decisions in one call",
        "two-tier",
    ),
    (
        PATHS[SCHEDULE],
        "schedule",
        S.ScheduleRequest,
        S.ScheduleResponse,
        "Scheduler: the node of a region to serve a request",
        "two-tier",
    ),
    (
        SCHEDULE_BATCH_PATH,
        "schedule_batch",
        S.ScheduleBatchRequest,
        S.ScheduleBatchResponse,
        "Scheduler: many scheduling decisions in one call",
        "two-tier",
    ),
)


def _body_spec(schema: Any) -> dict[str, Any]:
    ref = {"$ref": f"#/components/schemas/{schema.__name__}"}
    return {
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": ref}},
        }
    }


def _errors(*codes: int) -> dict[int | str, dict[str, Any]]:
    text = {
        400: "Malformed: not JSON, or a field of the wrong type (/get_action).",
        401: "Missing or wrong API key.",
        409: "The loaded policy does not take this decision.",
        413: "Body or batch too large.",
        422: "Well-formed, but not servable (unknown names, out-of-range values).",
        503: "No policy loaded yet.",
    }
    out: dict[int | str, dict[str, Any]] = {}
    for code in codes:
        model = S.ValidationErrorBody if code == 422 else S.ErrorBody
        out[code] = {"model": model, "description": text[code]}
    return out


def _add_error_handlers(app: FastAPI) -> None:
    async def serving_error(request: Request, err: Exception) -> Response:
        assert isinstance(err, ServingError)
        detailed = request.url.path != PATHS[GET_ACTION]
        return JSONResponse(err.body(detailed), status_code=err.status)

    async def request_invalid(request: Request, err: Exception) -> Response:
        assert isinstance(err, RequestValidationError)
        wrapped = ServingError.invalid(validation_errors(err.errors()))
        return await serving_error(request, wrapped)

    async def http_error(_: Request, err: Exception) -> Response:
        assert isinstance(err, StarletteHTTPException)
        return JSONResponse(
            {"status": "error", "message": str(err.detail)},
            status_code=err.status_code,
            headers=err.headers,
        )

    app.add_exception_handler(ServingError, serving_error)
    app.add_exception_handler(RequestValidationError, request_invalid)
    app.add_exception_handler(StarletteHTTPException, http_error)


def _add_decision_routes(app: FastAPI, handlers: DecisionHandlers) -> None:
    def endpoint(handler: Callable[[bytes], Answer]) -> Any:
        async def decide(request: Request) -> Response:
            return JSONResponse(handler(await request.body()))

        return decide

    for path, name, request, response, summary, tag in _DECISIONS:
        app.add_api_route(
            path,
            endpoint(handlers.table[path]),
            methods=["POST"],
            name=name,
            response_model=response,
            responses=_errors(*_ALL_ERRORS),
            openapi_extra=_body_spec(request),
            summary=summary,
            tags=[tag],
        )


def _add_probe_routes(app: FastAPI, store: ModelStore, metrics: ServingMetrics) -> None:
    @app.get("/healthz", response_model=S.Health, tags=["operations"])
    async def healthz() -> Response:
        return JSONResponse({"status": "ok"})

    @app.get(
        "/readyz",
        response_model=S.Ready,
        responses=_errors(503),
        tags=["operations"],
    )
    async def readyz() -> Response:
        policy = store.current
        if policy is None:
            raise ServingError(
                503, "policy", f"a loaded checkpoint (waiting for {store.path})"
            )
        return JSONResponse({"status": "ready", **policy.describe()})

    @app.get(
        "/metrics",
        response_class=Response,
        responses={200: {"content": {"text/plain": {}}, "description": "Prometheus"}},
        tags=["operations"],
    )
    async def prometheus() -> Response:
        return Response(metrics.exposition(), media_type=metrics.content_type)


def _install_openapi(app: FastAPI) -> None:
    """Publish the request schemas the handlers parse themselves."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(
                title=app.title,
                version=app.version,
                summary=app.summary,
                routes=app.routes,
            )
            components = schema.setdefault("components", {}).setdefault("schemas", {})
            for request in REQUEST_SCHEMAS:
                spec = TypeAdapter(request).json_schema(
                    ref_template="#/components/schemas/{model}"
                )
                for name, sub in spec.pop("$defs", {}).items():
                    components.setdefault(name, sub)
                components.setdefault(request.__name__, spec)
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def create_app(
    store: ModelStore, settings: ServeSettings, metrics: ServingMetrics
) -> FastAPI:
    """The decision service around ``store``'s current policy.

    Args:
        store: holds (and reloads) the policy; its watcher runs with the app.
        settings: limits and security.
        metrics: the Prometheus registry ``/metrics`` exposes.
    """

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        # Everything loaded so far (torch, numba, the policy) lives for the whole
        # process: keep it out of the collector's scans, which otherwise cost
        # milliseconds per batch call.
        gc.collect()
        gc.freeze()
        watcher = asyncio.create_task(store.watch(), name="checkpoint-watcher")
        try:
            yield
        finally:
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watcher

    app = FastAPI(
        title="federated-rl-multicloud policy server",
        version="1",
        summary="Decisions of the trained global policy (REACH rescheduling, "
        "two-tier routing and scheduling).",
        lifespan=lifespan,
        docs_url="/docs",
        redoc_url=None,
    )
    handlers = DecisionHandlers(store, settings, metrics)
    _add_error_handlers(app)
    _add_decision_routes(app, handlers)
    _add_probe_routes(app, store, metrics)
    _install_openapi(app)
    app.add_middleware(
        GuardMiddleware,  # type: ignore[arg-type]
        metrics=metrics,
        max_body_bytes=settings.max_body_bytes,
        api_key=settings.api_key,
        fast_lane=handlers.table,
    )
    return app
