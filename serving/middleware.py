"""One pure-ASGI layer in front of the app: API key, body limit, metrics, fast lane.

Pure ASGI (not Starlette's ``BaseHTTPMiddleware``) because it runs on every request
and must add microseconds, not a task and a stream per call. The body is read here,
up to the limit, so an oversized request is refused (413) before anything parses it.
``POST`` requests to a decision endpoint then go straight to its handler (the same
function the FastAPI route calls), which saves FastAPI's routing and dependency
resolution on the hot path.
"""

from __future__ import annotations

import hmac
import json
import logging
import time
from collections.abc import Awaitable, Callable, Mapping, MutableMapping
from typing import Any

from serving.errors import ServingError
from serving.metrics import ServingMetrics

log = logging.getLogger(__name__)

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

OPEN_PATHS = frozenset({"/healthz", "/readyz"})
"""Probes answer without the API key (they reveal nothing about decisions)."""

REACH_PATH = "/get_action"  # its error body is exactly REACH's two fields
_JSON = [(b"content-type", b"application/json")]


def encode(payload: object) -> bytes:
    """JSON as Starlette's JSONResponse writes it (compact, UTF-8, no NaN)."""
    return json.dumps(
        payload, ensure_ascii=False, allow_nan=False, separators=(",", ":")
    ).encode()


async def send_json(send: Send, status: int, body: bytes) -> None:
    """A complete JSON response."""
    headers = [*_JSON, (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def send_error(send: Send, status: int, message: str) -> None:
    """Answer with the service's JSON error body."""
    body = encode({"status": "error", "message": message})
    headers = [*_JSON, (b"content-length", str(len(body)).encode())]
    if status == 401:
        headers.append((b"www-authenticate", b'ApiKey header="X-API-Key"'))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


class GuardMiddleware:
    """Authenticates, bounds and times every HTTP request.

    Args:
        app: the ASGI app behind.
        metrics: request counters and latency histograms.
        max_body_bytes: larger bodies get 413 without being parsed.
        api_key: expected in ``X-API-Key`` or ``Authorization: Bearer``; None: off.
        fast_lane: ``POST`` path -> handler answering a raw body with a JSON-ready
            value (raising :class:`ServingError` for a refusal).
    """

    def __init__(
        self,
        app: ASGIApp,
        metrics: ServingMetrics,
        max_body_bytes: int,
        api_key: str | None = None,
        fast_lane: Mapping[str, Callable[[bytes], object]] | None = None,
    ) -> None:
        self.app = app
        self.fast_lane = dict(fast_lane or {})
        self.metrics = metrics
        self.max_body_bytes = max_body_bytes
        self._key = api_key.encode() if api_key else None

    def _authorized(self, scope: Scope) -> bool:
        key = self._key
        assert key is not None
        for name, value in scope["headers"]:
            if name == b"x-api-key" and hmac.compare_digest(value, key):
                return True
            if name == b"authorization" and value.startswith(b"Bearer "):
                if hmac.compare_digest(value[7:], key):
                    return True
        return False

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Check, buffer the body, call the app, count the answer."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500

        async def send_counted(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            path = scope["path"]
            if self._key is not None and path not in OPEN_PATHS:
                if not self._authorized(scope):
                    await send_error(
                        send_counted,
                        401,
                        "X-API-Key: expected the server's API key "
                        "(or Authorization: Bearer <key>)",
                    )
                    return
            body = await self._read_body(scope, receive, send_counted)
            if body is None:
                return
            handler = self.fast_lane.get(path) if scope["method"] == "POST" else None
            if handler is not None:
                await self._decide(handler, path, body, send_counted)
                return
            await self.app(scope, _replay(body, receive), send_counted)
        finally:
            endpoint = self.metrics.endpoint_label(scope["path"])
            self.metrics.observe_request(endpoint, status, time.perf_counter() - start)

    async def _decide(
        self, handler: Callable[[bytes], object], path: str, body: bytes, send: Send
    ) -> None:
        try:
            status, payload = 200, handler(body)
        except ServingError as err:
            status, payload = err.status, err.body(detailed=path != REACH_PATH)
        except Exception:  # a bug, never the client's fault: log it, answer 500
            log.exception("%s: unexpected error", path)
            status = 500
            payload = {"status": "error", "message": "internal error (logged)"}
        await send_json(send, status, encode(payload))

    async def _read_body(
        self, scope: Scope, receive: Receive, send: Send
    ) -> bytes | None:
        limit = self.max_body_bytes
        for name, value in scope["headers"]:
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    await send_error(send, 400, "Content-Length: expected an integer")
                    return None
                if declared > limit:
                    await send_error(
                        send,
                        413,
                        f"body: expected at most {limit} bytes, got {declared}",
                    )
                    return None
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return None
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                await send_error(
                    send, 413, f"body: expected at most {limit} bytes, got more"
                )
                return None
            chunks.append(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks)


def _replay(body: bytes, receive: Receive) -> Receive:
    """A ``receive`` that yields the buffered body once, then the real channel."""
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay
