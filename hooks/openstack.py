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
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import openstack
from openstack import exceptions as os_exc

from hooks.actions import PlaceServer
from hooks.config import OpenStackConfig
from hooks.errors import (
    HookError,
    PermanentHookError,
    RefusedError,
    RetryPolicy,
    TransientHookError,
    classify,
    with_retries,
)
from hooks.mode import DryRunActuator, LiveActuator, make_actuator, resolve_mode

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


def translate(obj: str) -> Callable[[BaseException], HookError | None]:
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
        RefusedError: no aggregate hosts the pool, or none of its hosts fits.
    """
    key = cfg.pool_metadata_key
    chosen = [a for a in aggregates if (a.metadata or {}).get(key) == pool]
    if not chosen:
        raise RefusedError(
            f"Server {cfg.project}/{name}",
            f"expected an aggregate with metadata {key}={pool}, found none",
        )
    aggregate = chosen[0]
    hosts = [
        h for h in aggregate.hosts or []
        if h in capacity and capacity[h].vcpus >= vcpus
        and capacity[h].memory_mb >= memory_mb
    ]  # fmt: skip
    if not hosts:
        raise RefusedError(
            f"Server {cfg.project}/{name}",
            f"expected a host of aggregate {aggregate.name} with {vcpus:g} vCPU and "
            f"{memory_mb:g} MB free (placement), found none",
        )
    return PlaceServer(
        project=cfg.project, name=name, image=cfg.image, flavor=cfg.flavor,
        network=cfg.network, availability_zone=aggregate.availability_zone,
        aggregate=aggregate.name, scheduler_hints=dict(cfg.scheduler_hints),
    )  # fmt: skip


def _create_errors(obj: str) -> Callable[[BaseException], HookError | None]:
    """Create calls: only a 429 is retried (the request was refused, nothing made).

    A timeout or 5xx on a POST may have created the object, and a resend would
    make a second one, so those are surfaced (the caller cleans up by name).
    """
    convert = translate(obj)

    def classify_create(exc: BaseException) -> HookError | None:
        error = convert(exc)
        if isinstance(error, TransientHookError) and error.status != 429:
            return PermanentHookError(error.obj, error.status, error.reason)
        return error

    return classify_create


class ServerPlacer:
    """Live executor of :class:`PlaceServer`: port, server, rollback.

    Args:
        conn: an ``openstack.connection.Connection``.
        wait: seconds for ACTIVE.
        retry: for the create calls (429 only) and the lookups.
        interval: seconds between status polls.
    """

    def __init__(self, conn: Any, wait: float = 300.0, retry: RetryPolicy | None = None,
                 interval: float = 2.0) -> None:  # fmt: skip
        self.conn = conn
        self.wait = wait
        self.retry = retry or RetryPolicy(attempts=3)
        self.interval = interval

    def __call__(self, action: PlaceServer) -> Any:
        """Create the port, boot on it; on failure delete the server and the port.

        Raises:
            PermanentHookError: a refused request, or the server went to ERROR or
                was not ACTIVE in time (both deleted again).
        """
        obj = f"Server {action.target}"
        port_name = f"{action.name}-port"
        network = with_retries(
            lambda: self.conn.network.find_network(
                action.network, ignore_missing=False),
            translate(f"Network {action.network}"), self.retry,
        )  # fmt: skip
        flavor = with_retries(
            lambda: self.conn.compute.find_flavor(
                action.flavor, ignore_missing=False),
            translate(f"Flavor {action.flavor}"), self.retry,
        )  # fmt: skip
        try:
            port = with_retries(
                lambda: self.conn.network.create_port(
                    network_id=network.id, name=port_name),
                _create_errors(f"Port {action.project}/{port_name}"), self.retry,
            )  # fmt: skip
        except HookError:
            self._delete_port_named(port_name, network.id)
            raise
        server = None
        try:
            server = with_retries(
                lambda: self.conn.compute.create_server(
                    name=action.name, image_id=action.image, flavor_id=flavor.id,
                    networks=[{"port": port.id}],
                    availability_zone=action.availability_zone,
                    scheduler_hints=action.scheduler_hints or None,
                ),
                _create_errors(obj), self.retry,
            )  # fmt: skip
            active = self.conn.compute.wait_for_server(
                server, status="ACTIVE", failures=["ERROR"],
                interval=self.interval, wait=self.wait,
            )  # fmt: skip
        except (HookError, os_exc.SDKException) as err:
            log.error("%s failed (%s); deleting its server and port", obj, err)
            if server is not None:
                self.conn.compute.delete_server(server, ignore_missing=True)
            else:
                self._delete_servers_named(action.name)
            self.conn.network.delete_port(port, ignore_missing=True)
            if isinstance(err, HookError):
                raise
            raise PermanentHookError(
                obj, getattr(err, "status_code", None),
                f"{err}; the server and its port {port.id} were deleted",
            ) from err  # fmt: skip
        log.info("%s ACTIVE on port %s (az %s)", obj, port.id,
                 action.availability_zone)  # fmt: skip
        return active

    def _delete_port_named(self, name: str, network_id: str) -> None:
        """A create that failed ambiguously may still have made the port."""
        for port in self.conn.network.ports(name=name, network_id=network_id):
            self.conn.network.delete_port(port, ignore_missing=True)

    def _delete_servers_named(self, name: str) -> None:
        for server in self.conn.compute.servers(name=f"^{name}$"):
            self.conn.compute.delete_server(server, ignore_missing=True)


def placement_actuator(
    cfg: OpenStackConfig,
    environ: Mapping[str, str],
    plan_file: Path | None,
    connection: Callable[[OpenStackConfig], Any] = connect,
) -> DryRunActuator | LiveActuator:
    """The actuator for :class:`PlaceServer`, chosen once (dry-run by default).

    Live needs ``INTEGRATION_MODE=live`` and credentials (``clouds.yaml`` entry or
    ``OS_AUTH_URL``); the connection is only made in live mode.
    """
    mode = resolve_mode(environ, find_credentials(cfg, environ), "openstack")
    return make_actuator(
        mode,
        lambda: {PlaceServer: ServerPlacer(connection(cfg), cfg.wait_timeout)},
        plan_file,
    )
