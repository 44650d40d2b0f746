"""Typed hook settings: ``conf/hooks/*.yaml`` first, then environment variables.

The YAML files hold the defaults a deployment ships; the environment overrides them
under REACH's pod-migrator names (``NAMESPACE``, ``APP_LABEL``, ``POLLING_PERIOD``,
``MAX_STEP``, ``QOS_THRESHOLD``, ``PROMETHEUS_ADDR``, ``KUBECONFIG``, ...) or
``HOOKS_*`` for settings REACH does not have. A bad value fails with the full key.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from omegaconf import OmegaConf
from omegaconf.errors import ConfigKeyError

CONF_DIR = Path(__file__).resolve().parent.parent / "conf" / "hooks"
"""Where the shipped YAML files live (``conf`` is package data)."""
SECTIONS = ("kubernetes", "migrator", "prometheus", "openstack", "scaler")

_GO_DURATION = re.compile(r"(?:(\d+(?:\.\d+)?)(h|ms|us|µs|ns|m|s))")
_UNITS = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 1e-3, "us": 1e-6, "µs": 1e-6,
          "ns": 1e-9}  # fmt: skip


def parse_duration(text: str, name: str) -> float:
    """Seconds from a Go duration (``1s``, ``500ms``, ``1m30s``) or a plain number."""
    value = text.strip()
    try:
        return float(value)
    except ValueError:
        pass
    parts = _GO_DURATION.findall(value)
    if not parts or "".join(n + u for n, u in parts) != value:
        raise ValueError(
            f"{name}: expected a duration such as '1s', '500ms' or '1m30s', "
            f"got {text!r}"
        )
    return sum(float(n) * _UNITS[u] for n, u in parts)


class RunMode(enum.Enum):
    """``once``: one episode; ``monitor``: act whenever latency crosses the QoS."""

    once = "once"
    monitor = "monitor"


class NodeForm(enum.Enum):
    """Where node availability comes from in Prometheus."""

    node_exporter = "node_exporter"
    """Measured use: idle CPU seconds and ``MemAvailable`` (needs instance mapping)."""
    kube_state_metrics = "kube_state_metrics"
    """Requests view (REACH's semantics): allocatable minus requests, by ``node``."""


class InstanceMap(enum.Enum):
    """How a node-exporter ``instance`` label becomes a node name."""

    uname = "uname"
    """Join with ``node_uname_info{nodename}``."""
    strip_port = "strip_port"
    """``host:9100`` -> ``host`` (relabelled targets)."""
    identity = "identity"
    """``instance`` already is the node name."""


@dataclass
class KubernetesConfig:
    """Which cluster, namespace and workload the hooks act on."""

    namespace: str = ""
    """Namespace of the application (required: the guard rails refuse ``""``)."""
    app_label: str = ""
    """Label selector of the application's pods, e.g. ``deployment=mubench``
    (required)."""
    kubeconfig: str = ""
    """Kubeconfig file; ``""`` = ``$KUBECONFIG``, ``~/.kube/config`` or in-cluster."""
    context: str = ""
    """Kubeconfig context (``""`` = current)."""
    node_selector: str = ""
    """Label selector of the nodes sent to the policy (``""`` = every node); the
    policy answers 422 for nodes it was not trained on."""
    request_timeout: float = 10.0
    """Seconds per API request."""
    retry_attempts: int = 5
    """Tries per API request on 409/429/5xx/timeouts."""
    retry_base_delay: float = 0.2
    """First backoff, seconds (doubles each retry, jittered ±20 %)."""


@dataclass
class MigratorConfig:
    """``python -m hooks.migrator``: REACH's pod-migrator loop and its guard rails."""

    mode: RunMode = RunMode.once
    """``once`` or ``monitor``."""
    policy_url: str = "http://localhost:5000/get_action"
    """The policy server's ``/get_action`` (REACH hard-codes this URL)."""
    policy_timeout: float = 10.0
    """Seconds per policy request (REACH: 10 s)."""
    polling_period: float = 1.0
    """Seconds between monitor polls and readiness checks (``POLLING_PERIOD``)."""
    max_step: int = 10
    """Most moves in one episode (``MAX_STEP``)."""
    qos_threshold: float = 250.0
    """Latency in ms above which ``monitor`` acts (``QOS_THRESHOLD``)."""
    max_pod_waiting_retries: int = 100
    """Polls waiting for every app pod to be Ready before a decision."""
    ready_timeout: float = 120.0
    """Seconds the replacement pod may take to become Ready before rollback."""
    handover_timeout: float = 60.0
    """Seconds for the ReplicaSet to adopt the replacement and shed the old pod."""
    max_migrations_per_interval: int = 5
    """At most this many migrations per ``rate_interval`` (0 = no limit)."""
    rate_interval: float = 60.0
    """Window of the migration rate limit, seconds (a failed move counts too)."""
    failure_backoff: float = 30.0
    """``monitor``: seconds without a step after a failed move or an error; doubles
    with each failure in a row, up to ``failure_backoff_max``."""
    failure_backoff_max: float = 600.0
    """Longest back-off after failures, seconds."""
    min_pod_age: float = 0.0
    """Never move a pod younger than this, seconds."""
    reach_cordon_mode: bool = False
    """REACH's paper protocol (cordon every other node, replicas +1, deletion cost):
    blocks scheduling cluster-wide; only to reproduce the paper."""
    output: str = "outputs/migrator/timeseries.csv"
    """Time series (CSV; a ``.jsonl`` twin is written beside it)."""
    plan_file: str = "outputs/migrator/plan.jsonl"
    """Every action, dry-run or live, one JSON line each."""
    metrics_host: str = "127.0.0.1"
    """Interface of ``/metrics`` and ``/healthz``."""
    metrics_port: int = 9877
    """Port of ``/metrics`` and ``/healthz`` (0 = a free one, logged)."""
    latency_query: str = ""
    """PromQL giving the application latency in ms (``""``: use
    ``entry_service_url``; neither: latency is not measured)."""
    entry_service_url: str = ""
    """REACH's ``ENTRY_SERVICE_URL``: JSON ``{"service_calling_latency": ms}``."""
    stop_after: float = 0.0
    """``monitor`` only: stop after this many seconds (0 = run until signalled)."""


@dataclass
class PrometheusConfig:
    """Where the metrics are and which forms they take."""

    url: str = "http://127.0.0.1:9090"
    """Prometheus base URL (``PROMETHEUS_ADDR``)."""
    timeout: float = 10.0
    """Seconds per query."""
    node_form: NodeForm = NodeForm.kube_state_metrics
    """``kube_state_metrics`` (requests, REACH) or ``node_exporter`` (measured)."""
    instance_map: InstanceMap = InstanceMap.uname
    """node-exporter ``instance`` -> node name."""
    window: str = "1m"
    """Range of ``rate()``."""
    request_metric: str = "http_requests_total"
    """Counter of served requests, labelled by ``service``."""
    latency_metric: str = "http_request_duration_seconds"
    """Histogram base name (``_bucket``/``_sum``/``_count``), labelled by
    ``service`` and ``node``."""
    service_label: str = "service"
    """Label naming the service on the traffic metrics."""
    node_label: str = "node"
    """Label naming the node on the traffic metrics."""
    arrival_metric: str = "frl_requests_total"
    """Counter of arriving two-tier requests, labelled by ``type_label`` and
    ``origin_label`` (the scaler's request mix)."""
    type_label: str = "request_type"
    """Label naming the two-tier request type on ``arrival_metric``."""
    origin_label: str = "origin"
    """Label naming the region a request comes from on ``arrival_metric``."""
    queue_wait_metric: str = "frl_node_queue_wait_seconds"
    """Gauge: seconds until a core of the node is free, labelled by ``node_label``
    with the Kubernetes node name (the two-tier state's ``queue_wait_s``)."""


@dataclass
class OpenStackConfig:
    """Where new servers go and what they boot."""

    cloud: str = ""
    """``clouds.yaml`` entry (``""`` = ``OS_*`` variables)."""
    project: str = ""
    """Project name for logs and plan records."""
    image: str = ""
    """Image id (Nova's imageRef; a name is not looked up in Glance)."""
    flavor: str = ""
    """Flavor name or id."""
    network: str = ""
    """Network name or id the server's port is created on."""
    pool_metadata_key: str = "frl-pool"
    """Aggregate metadata key naming the scheduler-tier pool it hosts."""
    scheduler_hints: dict[str, Any] = field(default_factory=dict)
    """Hints added to every server (``group``, ``different_host``, ...)."""
    wait_timeout: float = 300.0
    """Seconds a server may take to become ACTIVE before rollback."""
    plan_file: str = "outputs/openstack/plan.jsonl"
    """``python -m hooks.openstack``: every placement, dry-run or live, one JSON
    line each."""


class Split(enum.Enum):
    """How the scaler turns the policy's answers into traffic shares."""

    probabilities = "probabilities"
    """Each alternative gets its probability's share (the policy's expected split;
    live routing decides request by request as the queues change)."""
    decisions = "decisions"
    """The whole stream goes where the policy's (deterministic) answer says."""


@dataclass
class ScalerConfig:
    """``python -m hooks.scaler``: pool replicas from the two-tier scheduler."""

    mode: RunMode = RunMode.once
    """``once`` (one cycle) or ``monitor`` (a cycle every ``interval``)."""
    policy_url: str = "http://localhost:5000"
    """Base URL of a two-tier policy server (``/v1/route/batch``,
    ``/v1/schedule/batch``); ``POLICY_API_KEY`` is sent as ``X-API-Key``."""
    policy_timeout: float = 10.0
    """Seconds per policy request."""
    interval: float = 60.0
    """``monitor``: seconds between cycles."""
    stop_after: float = 0.0
    """``monitor``: stop after this many seconds (0 = until signalled)."""
    pools: dict[str, str] = field(default_factory=dict)
    """Pool (``<region>/<pool>``, the scenario's node names without ``-<i>``) ->
    Deployment name in ``kubernetes.namespace`` (required)."""
    per_replica_rps: float = 50.0
    """Requests per second one replica of a pool serves."""
    min_replicas: int = 1
    """Fewest replicas of a pool."""
    max_replicas: int = 20
    """Most replicas of a pool."""
    max_step: int = 2
    """Most replicas added or removed per pool and cycle."""
    split: Split = Split.probabilities
    """``probabilities`` or ``decisions`` (see :class:`Split`)."""
    min_share: float = 0.01
    """Regions routed less than this share are not asked about (fewer requests)."""
    region_label: str = "topology.frl.dev/region"
    """Node label giving the scenario region of a Kubernetes node."""
    node_label: str = "topology.frl.dev/two-tier-node"
    """Node label giving the node's scenario name within its region (``cloud-1``):
    the scenario node is ``<region>/<name>``."""
    hpa_backoff: float = 300.0
    """Seconds to leave a Deployment an HPA scales alone after warning."""
    output: str = "outputs/scaler/cycles.jsonl"
    """One JSON line per cycle: the mix, the shares, the replicas, the outcomes."""
    plan_file: str = "outputs/scaler/plan.jsonl"
    """Every action, dry-run or live, one JSON line each."""


@dataclass
class HooksConfig:
    """All hook settings."""

    kubernetes: KubernetesConfig = field(default_factory=KubernetesConfig)
    migrator: MigratorConfig = field(default_factory=MigratorConfig)
    prometheus: PrometheusConfig = field(default_factory=PrometheusConfig)
    openstack: OpenStackConfig = field(default_factory=OpenStackConfig)
    scaler: ScalerConfig = field(default_factory=ScalerConfig)


def _float(name: str) -> Callable[[str], float]:
    def convert(text: str) -> float:
        try:
            return float(text)
        except ValueError:
            raise ValueError(f"{name}: expected a number, got {text!r}") from None

    return convert


def _int(name: str) -> Callable[[str], int]:
    def convert(text: str) -> int:
        try:
            return int(text)
        except ValueError:
            raise ValueError(f"{name}: expected an integer, got {text!r}") from None

    return convert


def _bool(name: str) -> Callable[[str], bool]:
    def convert(text: str) -> bool:
        lowered = text.strip().lower()
        if lowered in {"1", "true", "yes", "on"}:
            return True
        if lowered in {"0", "false", "no", "off", ""}:
            return False
        raise ValueError(f"{name}: expected true or false, got {text!r}")

    return convert


def _pairs(name: str) -> Callable[[str], dict[str, str]]:
    def convert(text: str) -> dict[str, str]:
        out = {}
        for item in filter(None, (i.strip() for i in text.split(","))):
            key, sep, value = item.partition("=")
            if not sep or not key.strip() or not value.strip():
                raise ValueError(
                    f"{name}: expected pool=deployment[,pool=deployment...], "
                    f"got {item!r}"
                )
            out[key.strip()] = value.strip()
        return out

    return convert


def _duration(name: str) -> Callable[[str], float]:
    return lambda text: parse_duration(text, name)


def _choice(name: str, kind: type[enum.Enum]) -> Callable[[str], Any]:
    def convert(text: str) -> Any:
        try:
            return kind(text.strip())
        except ValueError:
            allowed = ", ".join(str(m.value) for m in kind)
            raise ValueError(
                f"{name}: expected one of {allowed}, got {text!r}"
            ) from None

    return convert


ENV_OVERRIDES: dict[str, tuple[str, str, Callable[[str], Any]]] = {
    # REACH's pod-migrator names (config.go)
    "NAMESPACE": ("kubernetes", "namespace", str),
    "APP_LABEL": ("kubernetes", "app_label", str),
    "KUBECONFIG": ("kubernetes", "kubeconfig", str),
    "POLLING_PERIOD": ("migrator", "polling_period", _duration("POLLING_PERIOD")),
    "MAX_STEP": ("migrator", "max_step", _int("MAX_STEP")),
    "QOS_THRESHOLD": ("migrator", "qos_threshold", _float("QOS_THRESHOLD")),
    "MAX_POD_WAITING_RETRIES": (
        "migrator", "max_pod_waiting_retries", _int("MAX_POD_WAITING_RETRIES"),
    ),
    "ENTRY_SERVICE_URL": ("migrator", "entry_service_url", str),
    "PROMETHEUS_ADDR": ("prometheus", "url", str),
    # ours
    "POLICY_URL": ("migrator", "policy_url", str),
    "HOOKS_MODE": ("migrator", "mode", _choice("HOOKS_MODE", RunMode)),
    "HOOKS_OUTPUT": ("migrator", "output", str),
    "HOOKS_PLAN_FILE": ("migrator", "plan_file", str),
    "HOOKS_METRICS_PORT": ("migrator", "metrics_port", _int("HOOKS_METRICS_PORT")),
    "HOOKS_LATENCY_QUERY": ("migrator", "latency_query", str),
    "HOOKS_READY_TIMEOUT": (
        "migrator",
        "ready_timeout",
        _duration("HOOKS_READY_TIMEOUT"),
    ),
    "HOOKS_HANDOVER_TIMEOUT": (
        "migrator", "handover_timeout", _duration("HOOKS_HANDOVER_TIMEOUT"),
    ),
    "HOOKS_MAX_MIGRATIONS": (
        "migrator", "max_migrations_per_interval", _int("HOOKS_MAX_MIGRATIONS"),
    ),
    "HOOKS_REACH_CORDON_MODE": (
        "migrator", "reach_cordon_mode", _bool("HOOKS_REACH_CORDON_MODE"),
    ),
    "HOOKS_STOP_AFTER": ("migrator", "stop_after", _duration("HOOKS_STOP_AFTER")),
    "HOOKS_MIN_POD_AGE": ("migrator", "min_pod_age", _duration("HOOKS_MIN_POD_AGE")),
    "HOOKS_METRICS_HOST": ("migrator", "metrics_host", str),
    "HOOKS_RATE_INTERVAL": (
        "migrator", "rate_interval", _duration("HOOKS_RATE_INTERVAL"),
    ),
    "HOOKS_FAILURE_BACKOFF": (
        "migrator", "failure_backoff", _duration("HOOKS_FAILURE_BACKOFF"),
    ),
    "HOOKS_NODE_FORM": (
        "prometheus", "node_form", _choice("HOOKS_NODE_FORM", NodeForm),
    ),
    "HOOKS_INSTANCE_MAP": (
        "prometheus", "instance_map", _choice("HOOKS_INSTANCE_MAP", InstanceMap),
    ),
    "HOOKS_NODE_SELECTOR": ("kubernetes", "node_selector", str),
    "HOOKS_KUBE_CONTEXT": ("kubernetes", "context", str),
    "HOOKS_RETRY_BASE_DELAY": (
        "kubernetes", "retry_base_delay", _float("HOOKS_RETRY_BASE_DELAY"),
    ),
    "OS_CLOUD": ("openstack", "cloud", str),
    # python -m hooks.scaler
    "HOOKS_SCALER_MODE": ("scaler", "mode", _choice("HOOKS_SCALER_MODE", RunMode)),
    "HOOKS_SCALER_POLICY_URL": ("scaler", "policy_url", str),
    "HOOKS_SCALER_POOLS": ("scaler", "pools", _pairs("HOOKS_SCALER_POOLS")),
    "HOOKS_SCALER_INTERVAL": (
        "scaler", "interval", _duration("HOOKS_SCALER_INTERVAL"),
    ),
    "HOOKS_SCALER_STOP_AFTER": (
        "scaler", "stop_after", _duration("HOOKS_SCALER_STOP_AFTER"),
    ),
    "HOOKS_SCALER_PER_REPLICA_RPS": (
        "scaler", "per_replica_rps", _float("HOOKS_SCALER_PER_REPLICA_RPS"),
    ),
    "HOOKS_SCALER_OUTPUT": ("scaler", "output", str),
    "HOOKS_SCALER_PLAN_FILE": ("scaler", "plan_file", str),
    "HOOKS_OPENSTACK_PLAN_FILE": ("openstack", "plan_file", str),
}  # fmt: skip
"""Environment variable -> (section, field, parser)."""


def _merge(merged: Any, path: Path, section: str | None) -> Any:
    """``merged`` with the YAML file ``path`` (under ``section``) laid over it.

    Raises:
        ValueError: the file cannot be read, is not YAML, or names a setting that
            does not exist (each naming the file).
    """
    try:
        loaded = OmegaConf.load(path)
    except OSError as err:
        raise ValueError(f"{path}: expected a readable YAML file ({err})") from None
    except yaml.YAMLError as err:
        raise ValueError(f"{path}: expected YAML ({err})") from None
    try:
        return OmegaConf.merge(merged, {section: loaded} if section else loaded)
    except ConfigKeyError as err:
        raise ValueError(f"{path}: no such setting ({err.msg})") from None


def load_config(
    environ: Mapping[str, str], *extra: Path, conf_dir: Path = CONF_DIR
) -> HooksConfig:
    """Defaults <- ``conf_dir/<section>.yaml`` <- ``extra`` YAML files <- ``environ``.

    Raises:
        omegaconf.errors.ValidationError: a YAML value of the wrong type (the message
            names the full key).
        ValueError: an environment variable that does not parse (names it), or a
            YAML file that cannot be read, parsed or merged (names it).
    """
    merged = OmegaConf.structured(HooksConfig)
    for section in SECTIONS:
        path = conf_dir / f"{section}.yaml"
        if path.is_file():
            merged = _merge(merged, path, section)
    for path in extra:
        merged = _merge(merged, path, None)
    cfg = OmegaConf.to_object(merged)
    assert isinstance(cfg, HooksConfig)
    for variable, (section, name, parse) in ENV_OVERRIDES.items():
        if variable in environ:
            setattr(getattr(cfg, section), name, parse(environ[variable]))
    return cfg
