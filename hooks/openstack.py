"""OpenStack placement for the scheduler tier (``openstacksdk``), dry-run by default.

Capacity comes from the placement service (inventories and usages: hypervisor
detail lost ``vcpus``/``memory_mb`` at compute microversion 2.88): free =
(total - reserved) x allocation_ratio - used. :func:`plan_server` turns the policy's
choice of a pool into a :class:`~hooks.actions.PlaceServer` with the availability
zone of the aggregate hosting that pool and scheduler hints; :class:`ServerPlacer`
creates the Neutron port, boots on it, and deletes the server and the port if the
boot fails.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import openstack
from openstack import exceptions as os_exc

from hooks.actions import PlaceServer
from hooks.config import OpenStackConfig
from hooks.errors import (
    HookError,
    PermanentHookError,
    RetryPolicy,
    classify,
    with_retries,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Capacity:
    """Free resources of one compute node (placement resource provider)."""

    vcpus: float
    memory_mb: float
    disk_gb: float


def find_credentials(cfg: OpenStackConfig, environ: Mapping[str, str]) -> str | None:
    """``clouds.yaml`` entry or ``OS_AUTH_URL`` (None: dry-run only)."""
    if cfg.cloud or environ.get("OS_CLOUD"):
        return f"clouds.yaml entry {cfg.cloud or environ['OS_CLOUD']}"
    if environ.get("OS_AUTH_URL"):
        return "OS_* variables"
    return None


def connect(cfg: OpenStackConfig) -> Any:
    """A connection from ``clouds.yaml``/``OS_*`` (the SDK's own loader)."""
    return openstack.connect(cloud=cfg.cloud or os.environ.get("OS_CLOUD"))


def translate(obj: str) -> Any:
    """Map SDK exceptions to hook errors."""

    def convert(exc: BaseException) -> HookError | None:
        if isinstance(exc, os_exc.HttpException):
            status = exc.status_code
            retry_after = (exc.response.headers.get("Retry-After")
                           if exc.response is not None else None)  # fmt: skip
            return classify(obj, status, exc.details or str(exc), retry_after)
        if isinstance(exc, os_exc.ResourceTimeout | os_exc.SDKException | OSError):
            return classify(obj, None, str(exc))
        return None

    return convert


def placement_capacity(conn: Any) -> dict[str, Capacity]:
    """Compute node name -> free capacity, from inventories and usages."""
    out = {}
    for provider in conn.placement.resource_providers():
        inventories = {
            inv.resource_class: inv
            for inv in conn.placement.resource_provider_inventories(provider)
        }
        usages = conn.placement.fetch_resource_provider_usages(provider).usages or {}

        def free(
            rc: str, inventories: Any = inventories, usages: Any = usages
        ) -> float:
            inv = inventories.get(rc)
            if inv is None:
                return 0.0
            total = (inv.total - (inv.reserved or 0)) * (inv.allocation_ratio or 1.0)
            return float(total - (usages.get(rc) or 0))

        out[provider.name] = Capacity(free("VCPU"), free("MEMORY_MB"), free("DISK_GB"))
    return out


def plan_server(
    cfg: OpenStackConfig,
    name: str,
    pool: str,
    aggregates: list[Any],
    capacity: Mapping[str, Capacity],
    vcpus: float,
    memory_mb: float,
) -> PlaceServer:
    """Where to boot ``name`` for a decision that chose ``pool`` (pure).

    The aggregate whose metadata ``<pool_metadata_key>=<pool>`` names the pool
    gives the availability zone; at least one of its hosts must have room by
    placement's numbers, so Nova's filters are asked only what can succeed. The
    configured scheduler hints (``group``, ``different_host``, ...) are passed on.

    Raises:
        PermanentHookError: no aggregate hosts the pool, or none of its hosts fits.
    """
    key = cfg.pool_metadata_key
    chosen = [a for a in aggregates if (a.metadata or {}).get(key) == pool]
    if not chosen:
        raise PermanentHookError(
            f"Server {cfg.project}/{name}", None,
            f"expected an aggregate with metadata {key}={pool}, found none",
        )  # fmt: skip
    aggregate = chosen[0]
    hosts = [
        h for h in aggregate.hosts or []
        if h in capacity and capacity[h].vcpus >= vcpus
        and capacity[h].memory_mb >= memory_mb
    ]  # fmt: skip
    if not hosts:
        raise PermanentHookError(
            f"Server {cfg.project}/{name}", None,
            f"expected a host of aggregate {aggregate.name} with {vcpus:g} vCPU and "
            f"{memory_mb:g} MB free (placement), found none",
        )  # fmt: skip
    return PlaceServer(
        project=cfg.project, name=name, image=cfg.image, flavor=cfg.flavor,
        network=cfg.network, availability_zone=aggregate.availability_zone,
        aggregate=aggregate.name, scheduler_hints=dict(cfg.scheduler_hints),
    )  # fmt: skip


class ServerPlacer:
    """Live executor of :class:`PlaceServer`: port, server, rollback.

    Args:
        conn: an ``openstack.connection.Connection``.
        wait: seconds for ACTIVE.
        retry: for the create calls.
    """

    def __init__(self, conn: Any, wait: float = 300.0, retry: RetryPolicy | None = None,
                 interval: float = 2.0) -> None:  # fmt: skip
        self.conn = conn
        self.wait = wait
        self.retry = retry or RetryPolicy(attempts=3)
        self.interval = interval

    def __call__(self, action: PlaceServer) -> Any:
        """Create the port, boot on it; on failure delete server and port."""
        obj = f"Server {action.target}"
        network = self.conn.network.find_network(action.network, ignore_missing=False)
        flavor = self.conn.compute.find_flavor(action.flavor, ignore_missing=False)
        port = with_retries(
            lambda: self.conn.network.create_port(
                network_id=network.id, name=f"{action.name}-port"),
            translate(f"Port {action.project}/{action.name}-port"), self.retry,
        )  # fmt: skip
        server = None
        try:
            server = with_retries(
                lambda: self.conn.compute.create_server(
                    name=action.name, image_id=action.image, flavor_id=flavor.id,
                    networks=[{"port": port.id}],
                    availability_zone=action.availability_zone,
                    scheduler_hints=action.scheduler_hints or None,
                ),
                translate(obj), self.retry,
            )  # fmt: skip
            return self.conn.compute.wait_for_server(
                server, status="ACTIVE", failures=["ERROR"],
                interval=self.interval, wait=self.wait,
            )  # fmt: skip
        except (HookError, os_exc.SDKException) as err:
            log.error("%s failed (%s); rolling back", obj, err)
            if server is not None:
                self.conn.compute.delete_server(server, ignore_missing=True)
            self.conn.network.delete_port(port, ignore_missing=True)
            if isinstance(err, HookError):
                raise
            raise classify(obj, getattr(err, "status_code", None) or 500,
                           str(err)) from err  # fmt: skip
