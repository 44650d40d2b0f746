"""A real Prometheus on 127.0.0.1 and test exporters whose numbers are known.

Counters grow linearly in wall time from a large base (``value = base + slope *
(now - t0)`` at every scrape), so ``rate()`` over a window the samples cover is the
slope and ``histogram_quantile`` / ``rate(_sum)/rate(_count)`` follow from the
slopes alone. Gauges are constants. Prometheus is the Debian package
(``scripts/setup/system_deps.sh``), stopped by its PID.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import yaml
from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)

from tests.hooks.policy_stub import free_port

PROMETHEUS = shutil.which("prometheus")
PROMTOOL = shutil.which("promtool")
BASE = 1.0e6
"""Counters start here, far from zero, so rate() never clips at a counter start."""


@dataclass
class Series:
    """One series: a gauge (``slope`` None) or a counter growing at ``slope``/s."""

    labels: dict[str, str]
    value: float
    slope: float | None = None


@dataclass
class Histogram:
    """Per-bucket rates (not cumulative) for ``le`` bounds, plus the sum's rate."""

    labels: dict[str, str]
    bounds: list[float]
    bucket_rates: list[float]
    """Observations per second falling in each bucket (last one: above bounds[-1])."""
    sum_rate: float


@dataclass
class Family:
    name: str
    kind: str  # gauge | counter
    series: list[Series] = field(default_factory=list)


class LinearCollector:
    """Serves the families at their values for the time of the scrape."""

    def __init__(self, families: list[Family], histograms: dict[str, list[Histogram]]):
        self.families = families
        self.histograms = histograms
        self.t0 = time.time()

    def describe(self) -> Iterable[Metric]:
        return []

    def collect(self) -> Iterator[Metric]:
        elapsed = time.time() - self.t0
        for fam in self.families:
            keys = sorted({k for s in fam.series for k in s.labels})
            metric: Any
            if fam.kind == "counter":
                metric = CounterMetricFamily(fam.name, fam.name, labels=keys)
            else:
                metric = GaugeMetricFamily(fam.name, fam.name, labels=keys)
            for s in fam.series:
                value = s.value if s.slope is None else s.value + s.slope * elapsed
                metric.add_metric([s.labels.get(k, "") for k in keys], value)
            yield metric
        for name, histograms in self.histograms.items():
            keys = sorted({k for h in histograms for k in h.labels})
            metric = HistogramMetricFamily(name, name, labels=keys)
            for h in histograms:
                cumulative, buckets = 0.0, []
                for le, rate in zip(
                    [*h.bounds, float("inf")], h.bucket_rates, strict=True
                ):
                    cumulative += BASE + rate * elapsed
                    buckets.append(
                        ("+Inf" if le == float("inf") else repr(le), cumulative)
                    )
                metric.add_metric(
                    [h.labels.get(k, "") for k in keys], buckets,
                    sum_value=BASE + h.sum_rate * elapsed,
                )  # fmt: skip
            yield metric


class Exporter:
    """A prometheus_client HTTP endpoint on a free loopback port."""

    def __init__(self, collector: LinearCollector):
        self.registry = CollectorRegistry()
        self.registry.register(collector)
        self.port = free_port()
        self.server, self.thread = start_http_server(
            self.port, addr="127.0.0.1", registry=self.registry
        )

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.port}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class Prometheus:
    """``prometheus`` on 127.0.0.1 scraping ``jobs`` every second."""

    def __init__(
        self,
        folder: Path,
        jobs: dict[str, list[str]],
        rule_files: Sequence[Path] = (),
    ) -> None:
        assert PROMETHEUS is not None
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = {
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "rule_files": [str(p) for p in rule_files],
            "scrape_configs": [
                {"job_name": job, "static_configs": [{"targets": targets}]}
                for job, targets in jobs.items()
            ],
        }
        (folder / "prometheus.yml").write_text(yaml.safe_dump(config))
        self.log = folder / "prometheus.log"
        with self.log.open("wb") as out:
            self.process = subprocess.Popen(
                [PROMETHEUS, f"--config.file={folder / 'prometheus.yml'}",
                 f"--storage.tsdb.path={folder / 'data'}",
                 f"--web.listen-address=127.0.0.1:{self.port}", "--log.level=warn"],
                stdout=out, stderr=subprocess.STDOUT,
            )  # fmt: skip
        self.targets = sum(len(t) for t in jobs.values())

    def query(self, promql: str) -> list[dict[str, Any]]:
        answer = httpx.get(
            self.url + "/api/v1/query", params={"query": promql}, timeout=5
        )
        answer.raise_for_status()
        result: list[dict[str, Any]] = answer.json()["data"]["result"]
        return result

    def wait(self, ready: Callable[[], bool], what: str, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"prometheus exited:\n{self.log.read_text()}")
            try:
                if ready():
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise TimeoutError(f"prometheus: {what} not reached in {timeout} s")

    def wait_scraping(self, window: int) -> None:
        """Ready, every target ``up == 1``, and samples covering ``window`` seconds.

        ``count_over_time(up[w+1s]) >= w+1`` for every target: the window's first
        sample is within one scrape of its start, so ``rate()`` extrapolates over
        the whole window and reads the slope.
        """
        self.wait(lambda: httpx.get(self.url + "/-/ready", timeout=1).status_code == 200,
                  "/-/ready")  # fmt: skip
        self.wait(
            lambda: sum(float(s["value"][1]) for s in self.query("up")) == self.targets,
            "up == 1 for every target",
        )
        span = window + 1
        self.wait(
            lambda: (
                len(covered := self.query(f"count_over_time(up[{span}s])"))
                == self.targets
                and all(float(s["value"][1]) >= span for s in covered)
            ),
            f"{span} s of samples",
        )

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=20)
