"""OpenStack placement for the scheduler tier (``openstacksdk``), dry-run by default.

Capacity comes from the placement service (inventories and usages: hypervisor
detail lost ``vcpus``/``memory_mb`` at compute microversion 2.88): free =
(total - reserved) x allocation_ratio - used. :func:`plan_server` turns the policy's
choice of a pool into a :class:`~hooks.actions.PlaceServer` that lands on a host of
the aggregate hosting that pool: through the aggregate's own availability zone, or
through the flavor's ``aggregate_instance_extra_specs`` (Nova's
AggregateInstanceExtraSpecsFilter); anything else is refused rather than booted
somewhere else. :class:`ServerPlacer` creates the Neutron port, boots on it, and
deletes the server and the port if the boot fails (each clean-up step is tried
even if another fails, and the original error is the one raised).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import openstack
import yaml
from keystoneauth1 import exceptions as ksa_exc
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

EXTRA_SPEC_SCOPE = "aggregate_instance_extra_specs"
"""Flavor extra-spec prefix AggregateInstanceExtraSpecsFilter matches against
aggregate metadata (``aggregate_instance_extra_specs:<key>=<value>``)."""
DEFAULT_ZONE = "nova"
"""Nova's ``default_availability_zone``: where hosts in no zoned aggregate live."""


@dataclass(frozen=True)
class Capacity:
    """Free resources of one compute node (placement resource provider)."""

    vcpus: float
    memory_mb: float
    disk_gb: float


def clouds_yaml_files(environ: Mapping[str, str]) -> list[Path]:
    """Where the SDK looks for ``clouds.yaml``, in its order of precedence."""
    home = Path(environ.get("HOME", "~")).expanduser()
    config = Path(environ.get("XDG_CONFIG_HOME") or home / ".config")
    files = [Path(environ["OS_CLIENT_CONFIG_FILE"])] if environ.get(
        "OS_CLIENT_CONFIG_FILE") else []  # fmt: skip
    files += [Path.cwd() / "clouds.yaml", config / "openstack" / "clouds.yaml",
              Path("/etc/openstack/clouds.yaml")]  # fmt: skip
    return files


def _cloud_entry(name: str, files: Sequence[Path]) -> Path | None:
    """The first ``clouds.yaml`` of ``files`` that defines cloud ``name``."""
    for path in files:
        try:
            data = yaml.safe_load(path.read_text())
        except (OSError, yaml.YAMLError):
            continue
        clouds = data.get("clouds") if isinstance(data, dict) else None
        if isinstance(clouds, dict) and name in clouds:
            return path
    return None


def find_credentials(
    cfg: OpenStackConfig,
    environ: Mapping[str, str],
    files: Sequence[Path] | None = None,
) -> str | None:
    """A ``clouds.yaml`` entry that exists, or ``OS_AUTH_URL`` (None: dry-run only).

    ``OS_CLOUD`` (or ``openstack.cloud``) only names an entry: it counts when a
    ``clouds.yaml`` of the SDK's search path defines that cloud.
    """
    name = cfg.cloud or environ.get("OS_CLOUD", "")
    if name:
        looked = files if files is not None else clouds_yaml_files(environ)
        path = _cloud_entry(name, looked)
        if path is not None:
            return f"clouds.yaml entry {name} ({path})"
        log.warning("openstack: cloud %r is named but no clouds.yaml defines it "
                    "(looked in %s)", name, ", ".join(map(str, looked)))  # fmt: skip
    if environ.get("OS_AUTH_URL"):
        return "OS_* variables"
    return None


def connect(cfg: OpenStackConfig) -> Any:
    """A connection from ``clouds.yaml``/``OS_*`` (the SDK's own loader)."""
    return openstack.connect(cloud=cfg.cloud or os.environ.get("OS_CLOUD"))


def translate(obj: str) -> Callable[[BaseException], HookError | None]:
    """Map SDK (and keystoneauth: the login, the transport) exceptions to hook errors.

    A ``find_*(ignore_missing=False)`` that matched nothing raises a not-found
    without a status: it is the 404 it stands for (permanent), not a lost answer.
    """

    def convert(exc: BaseException) -> HookError | None:
        if isinstance(exc, os_exc.HttpException):
            status = exc.status_code
            if status is None and isinstance(exc, os_exc.NotFoundException):
                status = 404
            retry_after = (exc.response.headers.get("Retry-After")
                           if exc.response is not None else None)  # fmt: skip
            return classify(obj, status, exc.details or str(exc), retry_after)
        if isinstance(exc, ksa_exc.HttpError):  # e.g. Keystone's 401 at login
            wait = getattr(exc, "retry_after", None)
            return classify(obj, exc.http_status, exc.message or str(exc),
                            str(wait) if wait else None)  # fmt: skip
        if isinstance(exc, os_exc.ResourceTimeout | os_exc.SDKException | OSError
                      | ksa_exc.ConnectionError):  # fmt: skip
            return classify(obj, None, str(exc))
        if isinstance(exc, ksa_exc.ClientException):  # no endpoint, bad auth options
            return PermanentHookError(obj, None, f"{type(exc).__name__}: {exc}")
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


@dataclass(frozen=True)
class PlacementState:
    """What :func:`plan_server` needs to know, read once."""

    aggregates: list[Any]
    capacity: Mapping[str, Capacity]
    flavor_extra_specs: Mapping[str, str] = field(default_factory=dict)
    flavor_vcpus: float = 0.0
    """vCPUs of the configured flavor (what a host must have free)."""
    flavor_memory_mb: float = 0.0
    """RAM of the configured flavor, MB."""


def read_placement(conn: Any, cfg: OpenStackConfig) -> PlacementState:
    """Aggregates, placement capacity, the configured flavor's size and extra specs."""
    flavor = conn.compute.find_flavor(
        cfg.flavor, ignore_missing=False, get_extra_specs=True
    )
    return PlacementState(
        list(conn.compute.aggregates()),
        placement_capacity(conn),
        dict(flavor.extra_specs or {}),
        float(flavor.vcpus or 0),
        float(flavor.ram or 0),
    )


def _zone_hosts(zone: str, aggregates: list[Any], known: set[str]) -> set[str]:
    """Every host Nova may pick for ``availability_zone=zone``."""
    hosts = {h for a in aggregates if a.availability_zone == zone
             for h in a.hosts or []}  # fmt: skip
    if zone == DEFAULT_ZONE:  # hosts in no zoned aggregate are in the default zone
        zoned = {h for a in aggregates if a.availability_zone for h in a.hosts or []}
        hosts |= known - zoned
    return hosts


def plan_server(
    cfg: OpenStackConfig,
    name: str,
    pool: str,
    aggregates: list[Any],
    capacity: Mapping[str, Capacity],
    vcpus: float,
    memory_mb: float,
    flavor_extra_specs: Mapping[str, str] | None = None,
) -> PlaceServer:
    """Where to boot ``name`` for a decision that chose ``pool`` (pure).

    The aggregate whose metadata ``<pool_metadata_key>=<pool>`` names the pool must
    be the one Nova picks from. Either the flavor carries
    ``aggregate_instance_extra_specs:<key>=<pool>`` (AggregateInstanceExtraSpecsFilter
    keeps the server on such aggregates), or the aggregate's availability zone holds
    no host outside it (the zone is then the aggregate). At least one of the
    aggregate's own hosts must have room by placement's numbers, so Nova's filters
    are asked only what can succeed. The configured scheduler hints (``group``,
    ``different_host``, ...) are passed on.

    Raises:
        RefusedError: no aggregate hosts the pool, nothing pins a server to it, or
            none of its hosts fits.
    """
    key = cfg.pool_metadata_key
    obj = f"Server {cfg.project}/{name}"
    chosen = [a for a in aggregates if (a.metadata or {}).get(key) == pool]
    if not chosen:
        raise RefusedError(
            obj, f"expected an aggregate with metadata {key}={pool}, found none"
        )
    aggregate = chosen[0]
    members = set(aggregate.hosts or [])
    spec = f"{EXTRA_SPEC_SCOPE}:{key}"
    zone = aggregate.availability_zone or None
    if (flavor_extra_specs or {}).get(spec) != pool:
        outside = (
            sorted(_zone_hosts(zone, aggregates, set(capacity)) - members)
            if zone else []
        )  # fmt: skip
        if not zone or outside:
            where = (f"its zone {zone} also holds {', '.join(outside)}" if zone
                     else "it has no availability zone")  # fmt: skip
            raise RefusedError(
                obj,
                f"expected a way to keep the server on aggregate {aggregate.name} "
                f"({where}): give flavor {cfg.flavor} the extra spec {spec}={pool} "
                "(AggregateInstanceExtraSpecsFilter) or the aggregate a zone of its "
                "own",
            )
    hosts = [
        h for h in sorted(members)
        if h in capacity and capacity[h].vcpus >= vcpus
        and capacity[h].memory_mb >= memory_mb
    ]  # fmt: skip
    if not hosts:
        raise RefusedError(
            obj,
            f"expected a host of aggregate {aggregate.name} with {vcpus:g} vCPU and "
            f"{memory_mb:g} MB free (placement), found none",
        )
    return PlaceServer(
        project=cfg.project, name=name, image=cfg.image, flavor=cfg.flavor,
        network=cfg.network, availability_zone=zone,
        aggregate=aggregate.name, scheduler_hints=dict(cfg.scheduler_hints),
    )  # fmt: skip


def _noted(err: HookError, note: str) -> HookError:
    """``err`` (same class and status) with ``note`` appended to its reason."""
    reason = f"{err.reason}; {note}"
    if isinstance(err, TransientHookError):
        return TransientHookError(err.obj, err.status, reason, err.delay)
    return PermanentHookError(err.obj, err.status, reason)


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
        except HookError as err:
            try:
                self._delete_port_named(port_name, network.id)
            except Exception as exc:  # the create's error is the one to report
                log.error("rollback: port %s not looked up or deleted: %s",
                          port_name, exc)  # fmt: skip
                note = f"clean-up failed: port {port_name} may be left ({exc})"
                raise _noted(err, note) from err
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
        except (HookError, os_exc.SDKException, ksa_exc.ClientException) as err:
            # ClientException: keystoneauth's transport (a lost connection while
            # waiting for ACTIVE), which the SDK does not wrap
            log.error("%s failed (%s); deleting its server and port", obj, err)
            left = self._roll_back(server, action.name, port)
            cleanup = (
                f"clean-up failed, left behind: {'; '.join(left)}"
                if left else f"the server and its port {port.id} were deleted"
            )  # fmt: skip
            if isinstance(err, HookError):
                raise _noted(err, cleanup) from err
            raise PermanentHookError(
                obj, getattr(err, "status_code", None), f"{err}; {cleanup}"
            ) from err
        log.info("%s ACTIVE on port %s (az %s)", obj, port.id,
                 action.availability_zone)  # fmt: skip
        return active

    def _roll_back(self, server: Any, name: str, port: Any) -> list[str]:
        """Delete the server (or any by its name) and the port; what was left.

        Every step is tried whatever the one before did: a server that cannot be
        deleted must not leak the port too, and no clean-up error replaces the
        error that made the rollback necessary.
        """
        left = []
        try:
            if server is not None:
                self.conn.compute.delete_server(server, ignore_missing=True)
            else:
                self._delete_servers_named(name)
        except Exception as exc:  # any failure: keep going, report it
            what = f"server {server.id}" if server is not None else f"server {name}"
            log.error("rollback: %s not deleted: %s", what, exc)
            left.append(f"{what} ({exc})")
        try:
            self.conn.network.delete_port(port, ignore_missing=True)
        except Exception as exc:
            log.error("rollback: port %s not deleted: %s", port.id, exc)
            left.append(f"port {port.id} ({exc})")
        return left

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
