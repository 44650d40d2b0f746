"""Prometheus adapters (``prometheus-api-client``): node availability and traffic.

Every query is an instant query built here from :class:`~hooks.config.PrometheusConfig`
and listed in ``docs/hooks.md``; results are keyed by node name (node-exporter's
``instance`` is mapped through ``node_uname_info``, by stripping the port, or taken
as is) or by service. Recording rules with the same expressions ship in
``conf/hooks/recording_rules.yaml``.
"""

from __future__ import annotations

import ast
import json
import math
import re
import urllib.request
from collections import defaultdict
from collections.abc import Mapping
from typing import Any

from prometheus_api_client import PrometheusConnect
from prometheus_api_client.exceptions import PrometheusApiClientException
from urllib3.util.retry import Retry

from hooks.config import InstanceMap, NodeForm, PrometheusConfig
from hooks.errors import HookError, classify

GIB = 1024**3
_STATUS = re.compile(r"HTTP Status Code (\d+) \((.*)\)\Z", re.S)
"""How ``prometheus-api-client`` words a non-200 answer (status, repr of the body)."""


def api_error(err: PrometheusApiClientException) -> tuple[int | None, str]:
    """The HTTP status and Prometheus's own ``errorType: error`` of a refused query.

    A 400 (``bad_data``: malformed PromQL) or 422 (``execution``) is the query's
    fault and permanent; 429/5xx are transient (:func:`~hooks.errors.classify`).
    """
    match = _STATUS.match(str(err))
    if match is None:
        return None, str(err)
    status, body = int(match[1]), match[2]
    try:
        raw = ast.literal_eval(body)
        data = json.loads(raw.decode() if isinstance(raw, bytes) else raw)
        reason = f"{data['errorType']}: {data['error']}"
    except (ValueError, SyntaxError, TypeError, KeyError, AttributeError):
        reason = body
    return status, reason


def _ksm_free(resource: str, unit: str) -> str:
    """Allocatable minus the requests of Pending/Running pods, by node.

    A node without such pods has no request series; ``or allocatable * 0`` gives it
    a zero, so it is not dropped from the difference.
    """
    allocatable = (
        f'sum by (node) (kube_node_status_allocatable{{resource="{resource}",'
        f'unit="{unit}"}})'
    )
    requested = (
        f'sum by (node) (kube_pod_container_resource_requests{{resource="{resource}",'
        f'unit="{unit}"}} * on (namespace, pod) group_left () '
        "max by (namespace, pod) "
        f'(kube_pod_status_phase{{phase=~"Pending|Running"}} == 1))'
    )
    return f"{allocatable} - ({requested} or {allocatable} * 0)"


def queries(cfg: PrometheusConfig) -> dict[str, str]:
    """Every PromQL expression the adapters send, by name."""
    w, svc, node = cfg.window, cfg.service_label, cfg.node_label
    lat = cfg.latency_metric
    return {
        "cpu_free_node_exporter": (
            f'sum by (instance) (rate(node_cpu_seconds_total{{mode="idle"}}[{w}]))'
        ),
        "memory_free_node_exporter": "node_memory_MemAvailable_bytes",
        "instance_names": "node_uname_info",
        "cpu_free_kube_state_metrics": _ksm_free("cpu", "core"),
        "memory_free_kube_state_metrics": _ksm_free("memory", "byte"),
        "request_rate": f"sum by ({svc}) (rate({cfg.request_metric}[{w}]))",
        "latency_quantile": (
            f"histogram_quantile({{q}}, sum by (le, {svc}) (rate({lat}_bucket[{w}])))"
        ),
        "latency_mean_by_node": (
            f"sum by ({svc}, {node}) (rate({lat}_sum[{w}])) / "
            f"sum by ({svc}, {node}) (rate({lat}_count[{w}]))"
        ),
        "arrival_rate": (
            f"sum by ({cfg.type_label}, {cfg.origin_label}) "
            f"(rate({cfg.arrival_metric}[{w}]))"
        ),
        "queue_wait": f"max by ({node}) ({cfg.queue_wait_metric})",
    }


def entry_service_latency(url: str, timeout: float) -> float | None:
    """REACH's ``ENTRY_SERVICE_URL``: ``{"service_calling_latency": ms}``."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            data = json.loads(response.read())
    except (OSError, ValueError) as err:
        raise classify(f"entry service {url}", None, str(err)) from err
    value = data.get("service_calling_latency") if isinstance(data, dict) else None
    return float(value) if isinstance(value, int | float) else None


class PrometheusAdapter:
    """Reads the numbers the hooks need.

    Args:
        client: a ``PrometheusConnect`` (tests pass ``Retry(total=0)``).
        cfg: forms, windows and metric names.
    """

    def __init__(self, client: PrometheusConnect, cfg: PrometheusConfig) -> None:
        self.client = client
        self.cfg = cfg
        self.q = queries(cfg)

    @classmethod
    def from_config(cls, cfg: PrometheusConfig, retries: int = 2) -> PrometheusAdapter:
        """A client for ``cfg.url`` with bounded retries and the timeout.

        Raises:
            ValueError: a timeout that is not a positive number of seconds.
        """
        if not cfg.timeout > 0:
            raise ValueError(f"prometheus.timeout: expected > 0 s, got {cfg.timeout}")
        retry = Retry(total=retries, backoff_factor=0.5,
                      status_forcelist=[408, 429, 500, 502, 503, 504])  # fmt: skip
        client = PrometheusConnect(  # requests takes a float: 0.5 s stays 0.5 s
            url=cfg.url, disable_ssl=True, retry=retry, timeout=cfg.timeout
        )
        return cls(client, cfg)

    def query(self, promql: str) -> list[dict[str, Any]]:
        """An instant vector as ``[{metric, value: [ts, "str"]}]``."""
        try:
            result: list[dict[str, Any]] = self.client.custom_query(promql)
        except PrometheusApiClientException as err:
            status, reason = api_error(err)
            raise classify(f"query {promql}", status, reason) from err
        except OSError as err:
            raise classify(f"Prometheus {self.cfg.url}", None, str(err)) from err
        return result

    def by_label(self, promql: str, label: str) -> dict[str, float]:
        """``{labels[label]: value}`` (NaN dropped)."""
        out = {}
        for sample in self.query(promql):
            value = float(sample["value"][1])
            if label in sample["metric"] and not math.isnan(value):
                out[sample["metric"][label]] = value
        return out

    def scalar(self, promql: str) -> float | None:
        """The single value of a one-sample result (None if empty)."""
        result = self.query(promql)
        if not result:
            return None
        if len(result) > 1:
            raise HookError(f"query {promql}", 200,
                            f"expected one sample, got {len(result)}")  # fmt: skip
        value = float(result[0]["value"][1])
        return None if math.isnan(value) else value

    def instance_names(self) -> dict[str, str]:
        """node-exporter ``instance`` -> node name, as configured."""
        if self.cfg.instance_map is InstanceMap.uname:
            return {
                s["metric"]["instance"]: s["metric"]["nodename"]
                for s in self.query(self.q["instance_names"])
                if "instance" in s["metric"] and "nodename" in s["metric"]
            }
        return {}

    def _node_name(self, instance: str, names: Mapping[str, str]) -> str:
        if self.cfg.instance_map is InstanceMap.uname:
            return names.get(instance, instance)
        if self.cfg.instance_map is InstanceMap.strip_port:
            return instance.rsplit(":", 1)[0]
        return instance

    def node_availability(self) -> dict[str, tuple[float, float]]:
        """Node name -> (free cores, free GiB) in the configured form."""
        if self.cfg.node_form is NodeForm.kube_state_metrics:
            cpu = self.by_label(self.q["cpu_free_kube_state_metrics"], "node")
            mem = self.by_label(self.q["memory_free_kube_state_metrics"], "node")
        else:
            names = self.instance_names()
            raw_cpu = self.by_label(self.q["cpu_free_node_exporter"], "instance")
            raw_mem = self.by_label(self.q["memory_free_node_exporter"], "instance")
            cpu = {self._node_name(i, names): v for i, v in raw_cpu.items()}
            mem = {self._node_name(i, names): v for i, v in raw_mem.items()}
        missing = sorted(set(cpu) ^ set(mem))
        if missing:
            raise HookError(
                "node availability", 200,
                f"expected CPU and memory samples for every node, missing one of "
                f"them for {', '.join(missing)}",
            )  # fmt: skip
        return {n: (cpu[n], mem[n] / GIB) for n in sorted(cpu)}

    def request_rates(self) -> dict[str, float]:
        """Requests per second by service."""
        return self.by_label(self.q["request_rate"], self.cfg.service_label)

    def arrival_rates(self) -> dict[tuple[str, str], float]:
        """Two-tier requests per second by (request type, origin region)."""
        out: dict[tuple[str, str], float] = {}
        t, o = self.cfg.type_label, self.cfg.origin_label
        for sample in self.query(self.q["arrival_rate"]):
            value = float(sample["value"][1])
            labels = sample["metric"]
            if t in labels and o in labels and not math.isnan(value):
                out[(labels[t], labels[o])] = value
        return out

    def queue_waits(self) -> dict[str, float]:
        """Seconds until a core is free, by Kubernetes node (``queue_wait_s``)."""
        return self.by_label(self.q["queue_wait"], self.cfg.node_label)

    def latency_quantile(self, q: float) -> dict[str, float]:
        """The ``q`` latency quantile (seconds) by service, ``histogram_quantile``."""
        if not 0.0 <= q <= 1.0:
            raise ValueError(f"q: expected a quantile in [0, 1], got {q}")
        promql = self.q["latency_quantile"].replace("{q}", repr(q))
        return self.by_label(promql, self.cfg.service_label)

    def mean_latency_by_node(self) -> dict[str, dict[str, float]]:
        """Service -> node -> mean latency in seconds (``rate(_sum)/rate(_count)``)."""
        out: dict[str, dict[str, float]] = defaultdict(dict)
        for sample in self.query(self.q["latency_mean_by_node"]):
            value = float(sample["value"][1])
            labels = sample["metric"]
            if math.isnan(value) or self.cfg.service_label not in labels:
                continue
            out[labels[self.cfg.service_label]][labels.get(self.cfg.node_label, "")] = (
                value
            )
        return dict(out)
