"""Pool sizes from the two-tier scheduler's decisions, via the ``scale`` subresource.

``plan_scaling`` is pure: decisions per pool -> replicas -> ``ScaleDeployment``.
:class:`Scaler` carries an action out with one PATCH of ``deployments/<n>/scale``
(never a full-object update, which would race HPA and GitOps). A Deployment an HPA
targets is left alone: a warning, then a back-off before it is looked at again.
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

    def __call__(self, action: ScaleDeployment) -> str:
        """``scaled``, ``unchanged``, ``hpa`` (left to the HPA) or ``backoff``."""
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
