"""The migrator's own ``/metrics`` (Prometheus) and ``/healthz`` on a small server."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.exposition import CONTENT_TYPE_LATEST


class Telemetry:
    """Metrics of one migrator process and the health verdict.

    ``/healthz`` answers 503 once nothing happened for ``stale_after`` seconds: no
    finished cycle (:meth:`beat`) and no progress inside one (:meth:`progress`, which
    the waits of a migration call), so a long but healthy migration is never
    mistaken for a hung loop and restarted by a liveness probe.

    Args:
        mode: ``dry-run`` or ``live`` (exported as an info gauge).
        stale_after: seconds without a cycle or progress before ``/healthz`` is 503.
    """

    def __init__(self, mode: str, stale_after: float) -> None:
        self.registry = CollectorRegistry()
        self.decisions = Counter(
            "hooks_migrator_decisions_total", "Policy answers by outcome.",
            ["outcome"], registry=self.registry,
        )  # fmt: skip
        self.migrations = Counter(
            "hooks_migrator_migrations_total", "Migrations by outcome.",
            ["outcome"], registry=self.registry,
        )  # fmt: skip
        self.latency = Gauge(
            "hooks_migrator_latency_ms", "Last measured application latency.",
            registry=self.registry,
        )  # fmt: skip
        self.step_seconds = Histogram(
            "hooks_migrator_step_seconds", "Decision + action time per step.",
            buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120),
            registry=self.registry,
        )  # fmt: skip
        self.last_cycle = Gauge(
            "hooks_migrator_last_cycle_timestamp_seconds", "End of the last cycle.",
            registry=self.registry,
        )  # fmt: skip
        info = Gauge(
            "hooks_migrator_mode_info", "1 for the actuator mode.", ["mode"],
            registry=self.registry,
        )  # fmt: skip
        info.labels(mode=mode).set(1)
        self.mode = mode
        self.stale_after = stale_after
        self._beat = time.time()
        self.server: ThreadingHTTPServer | None = None

    def beat(self) -> None:
        """A cycle finished."""
        self._beat = time.time()
        self.last_cycle.set(self._beat)

    def progress(self) -> None:
        """Alive inside a cycle (a wait polled, a step of a migration done)."""
        self._beat = time.time()

    def healthy(self) -> bool:
        """A cycle finished or progressed within ``stale_after`` seconds."""
        return time.time() - self._beat <= self.stale_after

    def serve(self, host: str, port: int) -> int:
        """Serve in a daemon thread; returns the bound port."""
        telemetry = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                if self.path.startswith("/metrics"):
                    body, code = generate_latest(telemetry.registry), 200
                    ctype = CONTENT_TYPE_LATEST
                elif self.path.startswith("/healthz"):
                    ok = telemetry.healthy()
                    body = json.dumps(
                        {"status": "ok" if ok else "stale", "mode": telemetry.mode}
                    ).encode()
                    code, ctype = (200 if ok else 503), "application/json"
                else:
                    body, code, ctype = b"not found\n", 404, "text/plain"
                self.send_response(code)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.server = ThreadingHTTPServer((host, port), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return int(self.server.server_address[1])

    def close(self) -> None:
        """Stop serving."""
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
