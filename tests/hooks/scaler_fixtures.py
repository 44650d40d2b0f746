"""Stand-ins for the scaler's inputs: a two-tier policy stub and Prometheus answers.

The policy stub answers ``/v1/route/batch`` and ``/v1/schedule/batch`` from fixed
probability tables (the answer's region/node is the most probable one, as the
deterministic server does) and keeps every request body. ``PromStub`` serves
``/api/v1/query`` with instant vectors for the arrival and queue-wait queries, so a
``python -m hooks.scaler`` process can be pointed at it.
"""

from __future__ import annotations

import json
import threading
import urllib.parse
from collections.abc import Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

ROUTE = {  # origin -> region probabilities
    "us-east": {"us-east": 0.75, "eu-central": 0.25},
    "eu-central": {"eu-central": 1.0},
}
SCHEDULE = {  # region -> node probabilities
    "us-east": {"us-east/cloud-1": 0.5, "us-east/cloud-2": 0.3,
                "us-east/edge-arm-1": 0.2},
    "eu-central": {"eu-central/cloud-1": 1.0},
}  # fmt: skip
ARRIVALS = {  # (request type, origin) -> requests/s
    ("web", "us-east"): 100.0,
    ("inference", "us-east"): 20.0,
    ("web", "eu-central"): 30.0,
}
QUEUE_WAITS = {"k-use-c1": 0.25, "k-euc-c1": 1.5}
"""Seconds, by Kubernetes node name."""


class _Server:
    """A threaded loopback HTTP server around a handler class."""

    def __init__(self, handler: type[BaseHTTPRequestHandler]) -> None:
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def __enter__(self) -> Any:
        threading.Thread(
            target=self.server.serve_forever, args=(0.05,), daemon=True
        ).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


def _reply(handler: BaseHTTPRequestHandler, status: int, body: Any) -> None:
    data = json.dumps(body).encode()
    handler.send_response(status)
    handler.send_header("Content-Type", "application/json")
    handler.send_header("Content-Length", str(len(data)))
    handler.end_headers()
    handler.wfile.write(data)


class TwoTierStub(_Server):
    """The two-tier batch endpoints from :data:`ROUTE` and :data:`SCHEDULE`.

    ``route_status`` 409 stands for a ``learn=scheduler`` policy.
    """

    def __init__(self, key: str | None = None) -> None:
        self.bodies: dict[str, list[dict[str, Any]]] = {"route": [], "schedule": []}
        self.route_status = 200
        self.keys: list[str | None] = []
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                stub.keys.append(self.headers.get("X-API-Key"))
                if key is not None and self.headers.get("X-API-Key") != key:
                    _reply(self, 401, {"status": "error", "message": "X-API-Key"})
                    return
                if self.path == "/v1/route/batch":
                    stub.bodies["route"].append(body)
                    if stub.route_status != 200:
                        _reply(
                            self,
                            stub.route_status,
                            {"status": "error", "message": "policy: learn=scheduler"},
                        )
                        return
                    decisions = [_pick(ROUTE[r["origin"]], "region")
                                 for r in body["requests"]]  # fmt: skip
                elif self.path == "/v1/schedule/batch":
                    stub.bodies["schedule"].append(body)
                    decisions = [
                        {"region": r["region"],
                         **_pick(SCHEDULE[r["region"]], "node")}
                        for r in body["requests"]
                    ]  # fmt: skip
                else:
                    _reply(self, 404, {"status": "error", "message": self.path})
                    return
                _reply(self, 200, {"decisions": decisions, "policy_version": "stub"})

        super().__init__(Handler)


def _pick(probabilities: Mapping[str, float], field: str) -> dict[str, Any]:
    best = max(sorted(probabilities), key=lambda k: probabilities[k])
    return {field: best, "probabilities": dict(probabilities)}


def vector(label_sets: Mapping[Any, float], labels: tuple[str, ...]) -> list[Any]:
    """An instant vector: one sample per key (a tuple of label values, or one)."""
    out = []
    for key, value in label_sets.items():
        values = key if isinstance(key, tuple) else (key,)
        out.append({"metric": dict(zip(labels, values, strict=True)),
                    "value": [1_700_000_000.0, repr(float(value))]})  # fmt: skip
    return out


def answer(query: str, arrivals: Mapping[tuple[str, str], float]) -> list[Any]:
    """The scaler's two queries (default metric names), anything else empty."""
    if "frl_requests_total" in query:
        return vector(arrivals, ("request_type", "origin"))
    if "frl_node_queue_wait_seconds" in query:
        return vector(QUEUE_WAITS, ("node",))
    return []


class CannedPrometheus:
    """A ``PrometheusConnect`` stand-in (in-process tests)."""

    def __init__(self, arrivals: Mapping[tuple[str, str], float] = ARRIVALS) -> None:
        self.arrivals = dict(arrivals)
        self.queries: list[str] = []

    def custom_query(self, promql: str) -> list[dict[str, Any]]:
        self.queries.append(promql)
        return answer(promql, self.arrivals)


class PromStub(_Server):
    """Prometheus's ``/api/v1/query`` over HTTP, for a scaler process."""

    def __init__(self, arrivals: Mapping[tuple[str, str], float] = ARRIVALS) -> None:
        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                query = urllib.parse.parse_qs(urllib.parse.urlsplit(self.path).query)
                result = answer(query.get("query", [""])[0], arrivals)
                _reply(self, 200, {"status": "success",
                                   "data": {"resultType": "vector", "result": result}})  # fmt: skip

        super().__init__(Handler)
