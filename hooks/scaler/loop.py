"""One scaling cycle: live two-tier state -> policy (HTTP) -> pool shares -> replicas.

1. **State**: one node list and one pod list (``ClusterView``) give each scenario
   node's busy cores; Prometheus gives each node's queue wait and the request mix
   (arrivals per second by type and origin). Together: the ``nodes`` map of the
   two-tier API (:func:`~hooks.kubernetes.state.two_tier_nodes`).
2. **Decisions**: ``/v1/route/batch`` splits each stream over regions (a policy
   that does not route, ``learn=scheduler``, leaves requests in their origin),
   ``/v1/schedule/batch`` splits each region's part over its nodes.
3. **Plan** (pure, the same in both modes): requests per second per pool ->
   replicas, at most ``max_step`` from the current count, within
   ``[min_replicas, max_replicas]``.
4. **Act**: each action's guard rail (an HPA owns the Deployment: warn, back off)
   is checked with reads in both modes; then the actuator logs it (dry-run) or
   PATCHes the ``scale`` subresource (live).

No measured arrivals at all (the metric is missing) plans nothing: an empty answer
must not scale every pool down to its minimum.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from hooks.actions import ScaleDeployment
from hooks.config import HooksConfig
from hooks.errors import HookError, PermanentHookError
from hooks.jsonl import append_json
from hooks.kubernetes.client import KubeApi
from hooks.kubernetes.scaler import Scaler, plan_pools
from hooks.kubernetes.state import ClusterView, two_tier_nodes
from hooks.mode import Actuator
from hooks.prometheus import PrometheusAdapter
from hooks.scaler.policy import TwoTierClient
from hooks.scaler.share import (
    pool_rates,
    region_shares,
    route_requests,
    schedule_requests,
    streams,
)

log = logging.getLogger(__name__)


def scenario_names(
    view: ClusterView, region_label: str, node_label: str
) -> dict[str, str]:
    """Kubernetes node -> scenario node ``<region>/<name>`` from the nodes' labels."""
    out = {}
    for node in view.nodes:
        region, name = node.labels.get(region_label), node.labels.get(node_label)
        if region and name:
            out[node.name] = f"{region}/{name}"
    return out


class ScalerLoop:
    """``once`` and ``monitor`` over the scaler's parts.

    Args:
        cfg: all settings (``scaler``, ``kubernetes``).
        api: the retrying Kubernetes client.
        actuator: dry-run or live (executor: ``scaler``).
        policy: the two-tier policy client.
        prometheus: arrivals and queue waits.
        scaler: the HPA guard rail (reads) and the live executor.
        clock: wall clock for the records.
        sleep: waits between cycles (default: cut short by :meth:`stop`).
    """

    def __init__(
        self,
        cfg: HooksConfig,
        api: KubeApi,
        actuator: Actuator,
        policy: TwoTierClient,
        prometheus: PrometheusAdapter,
        scaler: Scaler,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], object] | None = None,
    ) -> None:
        self.cfg = cfg
        self.api = api
        self.actuator = actuator
        self.policy = policy
        self.prometheus = prometheus
        self.scaler = scaler
        self.clock = clock
        self._stop = threading.Event()
        self.sleep: Callable[[float], object] = sleep or self._stop.wait
        self.output = Path(cfg.scaler.output)
        self.routes = True
        """False once the server said it does not route (``learn=scheduler``)."""

    def stop(self) -> None:
        """End after the current cycle; cuts the wait short."""
        self._stop.set()

    @property
    def stopping(self) -> bool:
        """A stop was asked for."""
        return self._stop.is_set()

    # ------------------------------------------------------------ reads
    def replicas(self) -> dict[str, int]:
        """Deployment name -> ``spec.replicas`` in the namespace (one list)."""
        ns = self.cfg.kubernetes.namespace
        listed = self.api.call(
            f"DeploymentList {ns}", self.api.apps.list_namespaced_deployment, ns
        )
        data = self.api.to_dict(listed)
        return {
            d["metadata"]["name"]: int((d.get("spec") or {}).get("replicas") or 0)
            for d in data.get("items") or []
        }

    def _route(self, mix: list[Any], nodes: Mapping[str, Any]) -> list[Any] | None:
        if not self.routes:
            return None
        try:
            return self.policy.route(route_requests(mix, nodes))
        except PermanentHookError as err:
            if err.status != 409:
                raise
            self.routes = False
            log.warning("the policy does not route (%s): requests stay in their "
                        "origin region", err.reason)  # fmt: skip
            return None

    # ------------------------------------------------------------ one cycle
    def cycle(self) -> dict[str, Any]:
        """Measure, decide, plan, act; the cycle's record (also appended to file)."""
        sc, k8s = self.cfg.scaler, self.cfg.kubernetes
        view = ClusterView.read(self.api)
        names = scenario_names(view, sc.region_label, sc.node_label)
        nodes = two_tier_nodes(view, names, self.prometheus.queue_waits())
        arrivals = self.prometheus.arrival_rates()
        record: dict[str, Any] = {
            "timestamp": self.clock(), "mode": self.actuator.mode.value,
            "arrivals": {f"{t}/{o}": r for (t, o), r in sorted(arrivals.items())},
            "nodes": nodes,
        }  # fmt: skip
        if not arrivals:
            log.warning("no arrival rates measured (%s): nothing planned",
                        self.prometheus.q["arrival_rate"])  # fmt: skip
            record["outcome"] = "no-data"
            append_json(self.output, record)
            return record
        mix = streams(arrivals)
        shares = region_shares(mix, self._route(mix, nodes), sc.split)
        asked = schedule_requests(mix, shares, nodes, sc.min_share)
        answers = self.policy.schedule([body for _, body in asked]) if asked else []
        rates = pool_rates(mix, shares, asked, answers, sc.split)
        current = self.replicas()
        missing = sorted(d for d in sc.pools.values() if d not in current)
        if missing:
            log.warning("Deployments not found in %s: %s", k8s.namespace,
                        ", ".join(missing))  # fmt: skip
        actions = plan_pools(
            rates, sc.pools, current, k8s.namespace, sc.per_replica_rps,
            sc.min_replicas, sc.max_replicas, sc.max_step,
        )  # fmt: skip
        done = [self._act(action, current) for action in actions]
        record.update(
            pool_rates={p: round(r, 6) for p, r in sorted(rates.items())},
            replicas={p: current.get(d) for p, d in sorted(sc.pools.items())},
            missing=missing, actions=done, outcome="planned" if done else "steady",
        )  # fmt: skip
        append_json(self.output, record)
        return record

    def _act(
        self, action: ScaleDeployment, current: Mapping[str, int]
    ) -> dict[str, Any]:
        refused = self.scaler.preflight(action)  # reads only, in both modes
        outcome = refused or self.actuator.apply(action) or "planned"
        return {"deployment": action.name, "from": current[action.name],
                "to": action.replicas, "outcome": outcome}  # fmt: skip

    # ------------------------------------------------------------ modes
    def run_once(self) -> int:
        """One cycle; 1 if it failed (the message names the object and reason)."""
        try:
            self.cycle()
        except HookError as err:
            log.error("stopped: %s", err)
            append_json(self.output, {"timestamp": self.clock(), "outcome": "error",
                                      "error": str(err)})  # fmt: skip
            return 1
        return 0

    def run_monitor(self) -> int:
        """A cycle every ``interval`` until stopped (or ``stop_after``)."""
        sc = self.cfg.scaler
        deadline = time.monotonic() + sc.stop_after if sc.stop_after else None
        while not self.stopping and (deadline is None or time.monotonic() < deadline):
            self.run_once()
            self.sleep(sc.interval)
        return 0
