"""Pool sizes from the two-tier scheduler's decisions, via the ``scale`` subresource.

``plan_scaling`` and ``plan_pools`` are pure: demand per pool -> replicas ->
``ScaleDeployment`` (``plan_pools`` moves each pool at most ``max_step`` replicas
per cycle towards its target). :class:`Scaler` carries an action out with one PATCH
of ``deployments/<n>/scale`` (never a full-object update, which would race HPA and
GitOps). A Deployment an HPA targets is left alone: a warning, then a back-off
before it is looked at again; :meth:`Scaler.preflight` makes that check with reads
only, so a dry run reports it too.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Mapping

from hooks.actions import ScaleDeployment
from hooks.kubernetes.client import KubeApi

log = logging.getLogger(__name__)


def replicas_for(
    decisions: int, per_replica: float, minimum: int = 1, maximum: int = 100
) -> int:
    """Replicas that serve ``decisions`` per interval at ``per_replica`` each."""
    if per_replica <= 0:
        raise ValueError(f"per_replica: expected > 0, got {per_replica}")
    return max(minimum, min(maximum, math.ceil(decisions / per_replica)))


def plan_scaling(
    decisions: Mapping[str, int],
    deployments: Mapping[str, str],
    namespace: str,
    per_replica: float,
    minimum: int = 1,
    maximum: int = 100,
) -> list[ScaleDeployment]:
    """One action per pool with a Deployment: pool -> decisions -> replicas.

    Args:
        decisions: scheduler decisions per pool over the last interval.
        deployments: pool name -> Deployment name.
        namespace: where the Deployments live.
        per_replica: decisions one replica absorbs per interval.
        minimum: fewest replicas of a pool.
        maximum: most replicas of a pool.
    """
    return [
        ScaleDeployment(
            namespace,
            deployments[pool],
            replicas_for(decisions.get(pool, 0), per_replica, minimum, maximum),
        )
        for pool in sorted(deployments)
    ]


def plan_pools(
    rates: Mapping[str, float],
    deployments: Mapping[str, str],
    current: Mapping[str, int],
    namespace: str,
    per_replica_rps: float,
    minimum: int = 1,
    maximum: int = 100,
    max_step: int = 1,
) -> list[ScaleDeployment]:
    """Bounded steps towards the replicas each pool's request rate needs.

    Args:
        rates: requests per second each pool is expected to serve.
        deployments: pool -> Deployment name.
        current: Deployment name -> its replicas now (pools whose Deployment is
            missing here are left out).
        namespace: where the Deployments live.
        per_replica_rps: requests per second one replica serves.
        minimum: fewest replicas of a pool.
        maximum: most replicas of a pool.
        max_step: most replicas added or removed per pool in one plan.

    Returns:
        One action per pool whose replicas change, in pool order.
    """
    if per_replica_rps <= 0:
        raise ValueError(f"per_replica_rps: expected > 0, got {per_replica_rps}")
    if max_step < 1:
        raise ValueError(f"max_step: expected >= 1, got {max_step}")
    if not 0 <= minimum <= maximum:
        raise ValueError(
            f"min_replicas, max_replicas: expected 0 <= min <= max, got "
            f"{minimum}, {maximum}"
        )
    actions = []
    for pool in sorted(deployments):
        name = deployments[pool]
        if name not in current:
            continue
        need = math.ceil(max(0.0, rates.get(pool, 0.0)) / per_replica_rps - 1e-9)
        target = max(minimum, min(maximum, need))
        now = current[name]
        step = max(-max_step, min(max_step, target - now))
        if step:
            actions.append(ScaleDeployment(namespace, name, now + step))
    return actions


class Scaler:
    """Live executor of :class:`ScaleDeployment`.

    Args:
        api: the retrying client.
        hpa_backoff: seconds to leave an HPA-owned Deployment alone after a warning.
        clock: monotonic clock.
    """

    def __init__(
        self,
        api: KubeApi,
        hpa_backoff: float = 300.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.api = api
        self.hpa_backoff = hpa_backoff
        self.clock = clock
        self._backoff: dict[tuple[str, str], float] = {}

    def preflight(self, action: ScaleDeployment) -> str | None:
        """Reads only: ``hpa``, ``backoff`` (left alone after a warning) or None.

        ``hpa``: an HPA targets the Deployment (warned, then backed off); None: it
        may be scaled.
        """
        key = (action.namespace, action.name)
        if self._backoff.get(key, 0.0) > self.clock():
            return "backoff"
        hpas = self.api.to_dict(
            self.api.call(
                f"HorizontalPodAutoscalerList {action.namespace}",
                self.api.autoscaling.list_namespaced_horizontal_pod_autoscaler,
                action.namespace,
            )
        )
        owner = next(
            (
                h["metadata"]["name"]
                for h in hpas.get("items") or []
                if h["spec"]["scaleTargetRef"].get("kind") == "Deployment"
                and h["spec"]["scaleTargetRef"].get("name") == action.name
            ),
            None,
        )
        if owner is not None:
            self._backoff[key] = self.clock() + self.hpa_backoff
            log.warning(
                "Deployment %s is scaled by HorizontalPodAutoscaler %s: not scaling "
                "it; next look in %.0f s", action.target, owner, self.hpa_backoff,
            )  # fmt: skip
            return "hpa"
        return None

    def __call__(self, action: ScaleDeployment) -> str:
        """``scaled``, ``unchanged``, ``hpa`` (left to the HPA) or ``backoff``."""
        refused = self.preflight(action)
        if refused is not None:
            return refused
        obj = f"Deployment {action.target}"
        scale = self.api.call(
            obj, self.api.apps.read_namespaced_deployment_scale,
            action.name, action.namespace,
        )  # fmt: skip
        if scale.spec.replicas == action.replicas:
            return "unchanged"
        self.api.call(
            obj, self.api.apps.patch_namespaced_deployment_scale,
            action.name, action.namespace, {"spec": {"replicas": action.replicas}},
        )  # fmt: skip
        log.info("scaled %s from %s to %d", obj, scale.spec.replicas, action.replicas)
        return "scaled"
