"""``python -m hooks.openstack place --name <server> --pool <pool>``: one server.

The pool is the one the scheduler tier chose; the server goes to a host of the
aggregate whose metadata ``<openstack.pool_metadata_key>=<pool>`` names it
(:func:`~hooks.openstack.placement.plan_server`), or nothing happens.

Settings: ``conf/hooks/openstack.yaml`` (section ``openstack``), ``--config`` overlays,
then the environment (``OS_CLOUD`` and the SDK's ``OS_*``,
``HOOKS_OPENSTACK_PLAN_FILE``); ``--flavor``, ``--image``, ``--network`` and
``--plan-file`` override them. It logs in and reads aggregates, placement capacity
and the flavor in both modes (a dry run refuses what placement would refuse), so
credentials are needed either way. Dry-run (the default) records the plan; live
(``INTEGRATION_MODE=live`` and credentials) creates the port and boots the server
through :func:`~hooks.openstack.placement.placement_actuator`. One JSON line on stdout
gives the outcome. Exit codes: 0 planned or created, 1 refused or failed, 2 bad
settings or arguments, an unwritable plan file, no credentials or a failed login.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import re
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from openstack import exceptions as os_exc

from hooks.config import OpenStackConfig, load_config
from hooks.errors import HookError, RefusedError, RetryPolicy, with_retries
from hooks.logs import setup_logging
from hooks.openstack.placement import (
    connect,
    find_credentials,
    placement_actuator,
    plan_server,
    read_placement,
    translate,
)

log = logging.getLogger("hooks.openstack")

READ_RETRY = RetryPolicy(attempts=3, base_delay=0.5)
"""Tries of the reads (aggregates, placement, flavor) on 429/5xx/timeouts."""
_SERVER_NAME = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?")
_OVERRIDES = (  # (setting, flag, what it must be)
    ("image", "--image", "an image id"),
    ("flavor", "--flavor", "a flavor name or id"),
    ("network", "--network", "a network name or id"),
)


def check(cfg: OpenStackConfig, name: str, pool: str) -> None:
    """Guard rails on the settings and the arguments.

    Raises:
        ValueError: naming the setting or argument and what it needs.
    """
    if not _SERVER_NAME.fullmatch(name):
        raise ValueError(
            "--name: expected 1-63 letters, digits or '-', starting and ending with "
            "a letter or digit (Nova's hostname, and the name a failed boot is "
            f"cleaned up by), got {name!r}"
        )
    if not pool.strip():
        raise ValueError(
            f"--pool: expected the pool the policy chose (aggregate metadata "
            f"{cfg.pool_metadata_key}=<pool>), got {pool!r}"
        )
    for setting, flag, what in _OVERRIDES:
        if not getattr(cfg, setting).strip():
            raise ValueError(
                f"openstack.{setting} ({flag}): expected {what}, "
                f"got {getattr(cfg, setting)!r}"
            )
    if not cfg.pool_metadata_key.strip():
        raise ValueError(
            "openstack.pool_metadata_key: expected the aggregate metadata key "
            "naming the pool (frl-pool), got ''"
        )
    if cfg.wait_timeout <= 0:
        raise ValueError(
            f"openstack.wait_timeout: expected > 0 s, got {cfg.wait_timeout}"
        )
    if not cfg.plan_file.strip():
        raise ValueError("openstack.plan_file (--plan-file): expected a path, got ''")


def _check_writable(plan_file: Path) -> None:
    """Refuse a plan file that cannot be appended to, before any read or act.

    Raises:
        ValueError: naming the setting and the path.
    """
    if plan_file.exists():
        writable = plan_file.is_file() and os.access(plan_file, os.W_OK)
    else:  # its missing folders are made at the first append
        folder = plan_file.parent
        while not folder.exists():
            folder = folder.parent
        writable = folder.is_dir() and os.access(folder, os.W_OK)
    if not writable:
        raise ValueError(
            f"openstack.plan_file (--plan-file, HOOKS_OPENSTACK_PLAN_FILE): "
            f"expected a file this user can append to, got {str(plan_file)!r}"
        )


def _parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--config", type=Path, action="append", default=[],
        help="extra YAML overlay (section openstack); repeatable",
    )  # fmt: skip
    common.add_argument("--log-level", default="info")
    parser = argparse.ArgumentParser(
        prog="python -m hooks.openstack",
        description="OpenStack placement for the scheduler tier (dry-run by default; "
        "INTEGRATION_MODE=live and credentials to act).",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="command")
    place = commands.add_parser(
        "place", parents=[common],
        help="boot one server on a host of the aggregate hosting the chosen pool",
        description="Plan (and, live, boot) one server on a host of the aggregate "
        "hosting the pool. Exit codes: 0 planned or created, 1 refused or failed, "
        "2 bad settings or arguments, no credentials or a failed login.",
    )  # fmt: skip
    place.add_argument("--name", required=True,
                       help="server name (its port is <name>-port)")  # fmt: skip
    place.add_argument(
        "--pool", required=True,
        help="the pool the policy chose: aggregate metadata "
        "<openstack.pool_metadata_key>=<pool>",
    )  # fmt: skip
    place.add_argument("--flavor", help="flavor name or id (openstack.flavor)")
    place.add_argument("--image", help="image id (openstack.image)")
    place.add_argument("--network", help="network name or id (openstack.network)")
    place.add_argument("--plan-file",
                       help="JSONL plan record (openstack.plan_file)")  # fmt: skip
    return parser


def _emit(record: dict[str, Any]) -> None:
    """The outcome, one JSON line on stdout (the logs go to stderr)."""
    print(json.dumps(record, default=str), flush=True)


def main(argv: Sequence[str] | None = None) -> int:
    """Parse, choose the actuator once, read, plan, act."""
    parser = _parser()
    args = parser.parse_args(argv)
    setup_logging(parser, args.log_level)
    connections: list[Any] = []

    def connection(cfg: OpenStackConfig) -> Any:
        """One connection for the reads and the live placer."""
        if not connections:
            connections.append(connect(cfg))
        return connections[0]

    try:
        cfg = load_config(os.environ, *args.config).openstack
        for setting, _, _ in _OVERRIDES:
            if getattr(args, setting) is not None:
                setattr(cfg, setting, getattr(args, setting))
        if args.plan_file is not None:
            cfg.plan_file = args.plan_file
        check(cfg, args.name, args.pool)
        _check_writable(Path(cfg.plan_file))
        actuator = placement_actuator(cfg, os.environ, Path(cfg.plan_file), connection)
        if find_credentials(cfg, os.environ) is None:
            raise ValueError(
                "no credentials: expected a clouds.yaml entry named by "
                "openstack.cloud / OS_CLOUD, or OS_AUTH_URL (aggregates and "
                "placement are read in dry-run too)"
            )
        conn = connection(cfg)
    except (ValueError, HookError, os_exc.SDKException) as err:
        log.error("cannot start: %s", err)
        return 2
    try:
        conn.authorize()  # the login, before any read: a clear answer if it fails
    except Exception as err:  # keystoneauth raises plain Exceptions for bad options
        log.error("cannot start: credentials: the login failed: %s: %s",
                  type(err).__name__, err)  # fmt: skip
        return 2
    mode = actuator.mode.value
    log.info("MODE %s: place Server %s/%s in pool %s (flavor %s)",
             mode, cfg.project, args.name, args.pool, cfg.flavor)  # fmt: skip
    try:
        state = with_retries(
            lambda: read_placement(conn, cfg),
            translate(f"reading aggregates, placement and flavor {cfg.flavor}"),
            READ_RETRY,
        )
        action = plan_server(
            cfg, args.name, args.pool, state.aggregates, state.capacity,
            state.flavor_vcpus, state.flavor_memory_mb, state.flavor_extra_specs,
        )  # fmt: skip
        server = actuator.apply(action)
    except OSError as err:  # the plan file (written before acting)
        log.error("failed: %s", err)
        _emit({"outcome": "failed", "mode": mode, "name": args.name,
               "pool": args.pool, "error": f"plan file: {err}"})  # fmt: skip
        return 1
    except HookError as err:
        outcome = "refused" if isinstance(err, RefusedError) else "failed"
        log.error("%s: %s", outcome, err)
        _emit({"outcome": outcome, "mode": mode, "name": args.name,
               "pool": args.pool, "error": str(err)})  # fmt: skip
        return 1
    record: dict[str, Any] = {
        "outcome": "planned" if server is None else "created",
        "mode": mode, "pool": args.pool, **action.to_json(),
    }  # fmt: skip
    if server is not None:
        record["server"] = {
            "id": server.id, "status": server.status,
            "availability_zone": server.availability_zone,
            "host": getattr(server, "compute_host", None),
        }  # fmt: skip
    _emit(record)
    return 0


if __name__ == "__main__":
    sys.exit(main())
