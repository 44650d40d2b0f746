"""Prometheus metrics of the decision service, on a registry of its own.

Label values are bounded: endpoints are the known routes (anything else is
``other``), outcomes are ``move``/``stop``, region ids or node names of the served
scenario. Children are cached so the per-request cost stays at a few microseconds.
"""

from __future__ import annotations

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

LATENCY_BUCKETS = (
    0.0005, 0.001, 0.002, 0.003, 0.005, 0.0075, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0,
)  # fmt: skip
"""Seconds; dense around the 5 ms objective of a single decision."""

BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096)


class ServingMetrics:
    """The service's counters, histograms and gauges.

    Args:
        endpoints: paths reported under their own label (others: ``other``).
    """

    content_type = CONTENT_TYPE_LATEST

    def __init__(self, endpoints: frozenset[str]) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.endpoints = endpoints
        r = self.registry
        self.requests = Counter(
            "serving_requests",
            "HTTP requests answered, by endpoint and status code.",
            ["endpoint", "status"],
            registry=r,
        )
        self.latency = Histogram(
            "serving_request_duration_seconds",
            "Time from request start to the end of the response, by endpoint.",
            ["endpoint"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.decisions = Counter(
            "serving_decisions",
            "Decisions returned, by endpoint and outcome (move/stop, region, node).",
            ["endpoint", "outcome"],
            registry=r,
        )
        self.batch_size = Histogram(
            "serving_batch_size",
            "Decisions asked for per batch call.",
            ["endpoint"],
            buckets=BATCH_BUCKETS,
            registry=r,
        )
        self.model_info = Gauge(
            "serving_model_info",
            "The served policy (value 1), labelled with its version and env kind.",
            ["version", "env"],
            registry=r,
        )
        self.model_loaded_at = Gauge(
            "serving_model_loaded_timestamp_seconds",
            "Unix time at which the served policy was loaded.",
            registry=r,
        )
        self.reloads = Counter(
            "serving_model_reloads",
            "Attempts to load a changed checkpoint, by result (success/failure).",
            ["result"],
            registry=r,
        )
        self._request_children: dict[tuple[str, int], Counter] = {}
        self._latency_children: dict[str, Histogram] = {}
        self._decision_children: dict[tuple[str, str], Counter] = {}

    def endpoint_label(self, path: str) -> str:
        """``path`` if it is a known endpoint, else ``other`` (bounded labels)."""
        return path if path in self.endpoints else "other"

    def observe_request(self, endpoint: str, status: int, seconds: float) -> None:
        """Count one answered request and its duration."""
        key = (endpoint, status)
        counter = self._request_children.get(key)
        if counter is None:
            counter = self.requests.labels(endpoint, str(status))
            self._request_children[key] = counter
        counter.inc()
        hist = self._latency_children.get(endpoint)
        if hist is None:
            hist = self.latency.labels(endpoint)
            self._latency_children[endpoint] = hist
        hist.observe(seconds)

    def count_decision(self, endpoint: str, outcome: str, n: int = 1) -> None:
        """Count ``n`` decisions with ``outcome``."""
        key = (endpoint, outcome)
        counter = self._decision_children.get(key)
        if counter is None:
            counter = self.decisions.labels(endpoint, outcome)
            self._decision_children[key] = counter
        counter.inc(n)

    def model_loaded(self, version: str, env: str, loaded_at: float) -> None:
        """Report the newly served policy (the previous version's series goes)."""
        self.model_info.clear()
        self.model_info.labels(version, env).set(1)
        self.model_loaded_at.set(loaded_at)

    def reload_succeeded(self) -> None:
        """Count a successful reload."""
        self.reloads.labels("success").inc()

    def reload_failed(self) -> None:
        """Count a refused reload (the old policy kept serving)."""
        self.reloads.labels("failure").inc()

    def exposition(self) -> bytes:
        """The Prometheus text format of every metric."""
        return generate_latest(self.registry)
