"""The container image's entry point: ``<role> [arguments...]`` or any command.

One image runs every role; the first argument names it and the rest are passed on:

=============  ================================================================
role           runs
=============  ================================================================
``superlink``  ``flower-superlink --disable-runtime-dependency-installation ...``
``supernode``  ``python -m fl_clients.supernode --poll-interval $NODE_POLL_S
               --node-config "region='$REGION'" ...`` (the region comes from the
               environment, so one manifest serves every region; with
               ``SUPERNODE_AUTH_KEY`` also ``--auth-supernode-private-key``)
``worker``     ``python -m fl_clients.worker ...`` (warm ClientApp executor)
``submit``     ``python -m scripts.submit ...`` (``flwr run`` to a SuperLink)
``federate``   ``python -m scripts.federate ...`` (one federation, both engines)
``experiment`` ``python -m scripts.run_experiment ...`` (an experiment sweep)
``serve``      ``python -m serving ...`` (policy server)
``migrator``   ``python -m hooks.migrator ...``
``scaler``     ``python -m hooks.scaler ...`` (pool replicas from the two-tier policy)
``openstack``  ``python -m hooks.openstack ...`` (one server where the policy says)
``certs``      ``python -m scripts.make_certs ...``
``register``   ``python -m scripts.register_nodes ...`` (SuperNode keys)
=============  ================================================================

Anything else runs as given (``flwr supernode register ...``, ``python ...``).
Before that, two things a read-only container needs:

* ``SERVING_API_KEY_FILE`` (the policy server's key) and ``POLICY_API_KEY_FILE``
  (the key the migrator and the scaler send it), if the variable itself is unset,
  set it to the file's content (the ``*_FILE`` secrets convention of official
  images, for the variables in :data:`SECRETS` only: other ``*_FILE`` variables are
  paths meant as paths);
* the writable folders the environment names (``FLWR_HOME``, ``NUMBA_CACHE_DIR``,
  ``MPLCONFIGDIR``, ``TMPDIR``) are created, since an emptyDir or tmpfs starts empty.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping, MutableMapping, Sequence
from pathlib import Path

ROLES: dict[str, list[str]] = {
    "superlink": ["flower-superlink", "--disable-runtime-dependency-installation"],
    "supernode": ["python", "-m", "fl_clients.supernode"],
    "worker": ["python", "-m", "fl_clients.worker"],
    "submit": ["python", "-m", "scripts.submit"],
    "federate": ["python", "-m", "scripts.federate"],
    "experiment": ["python", "-m", "scripts.run_experiment"],
    "serve": ["python", "-m", "serving"],
    "migrator": ["python", "-m", "hooks.migrator"],
    "scaler": ["python", "-m", "hooks.scaler"],
    "openstack": ["python", "-m", "hooks.openstack"],
    "certs": ["python", "-m", "scripts.make_certs"],
    "register": ["python", "-m", "scripts.register_nodes"],
}
"""Role -> the command it starts (the role's arguments follow)."""
SECRETS = ("SERVING_API_KEY", "POLICY_API_KEY")
"""Variables that may come from a file named by ``<NAME>_FILE``."""
WRITABLE = ("FLWR_HOME", "NUMBA_CACHE_DIR", "MPLCONFIGDIR", "TMPDIR")
"""Variables naming folders that must exist before the program starts."""
DEFAULT_POLL_S = "0.2"
"""SuperNode loop's longest sleep (``engine.node_poll_s``'s default)."""


def load_secret_files(environ: MutableMapping[str, str]) -> list[str]:
    """Set each unset :data:`SECRETS` variable from ``<NAME>_FILE``; the names set.

    Raises:
        ValueError: a ``<NAME>_FILE`` naming a file that cannot be read.
    """
    loaded = []
    for name in SECRETS:
        variable = f"{name}_FILE"
        if name in environ or variable not in environ:
            continue  # an explicit value wins
        path = environ[variable]
        try:
            environ[name] = Path(path).read_text().strip()
        except OSError as err:
            raise ValueError(
                f"{variable}: expected a readable file, got {path!r} ({err.strerror})"
            ) from None
        loaded.append(name)
    return loaded


def make_writable_dirs(environ: Mapping[str, str]) -> None:
    """Create the folders the environment points at (no-op for unset ones)."""
    for variable in WRITABLE:
        if environ.get(variable):
            Path(environ[variable]).mkdir(parents=True, exist_ok=True)


def command(argv: Sequence[str], environ: Mapping[str, str]) -> list[str]:
    """The command line for ``argv`` (a role and its arguments, or any command).

    Raises:
        ValueError: no command, or a SuperNode without ``REGION``.
    """
    if not argv:
        raise ValueError(f"expected a role ({', '.join(ROLES)}) or a command, got none")
    role, *rest = argv
    if role not in ROLES:
        return list(argv)
    out = list(ROLES[role])
    if role == "supernode":
        region = environ.get("REGION", "").strip()
        if not region:
            raise ValueError(
                "REGION: expected the SuperNode's region (its --node-config), got ''"
            )
        if "'" in region:
            raise ValueError(f"REGION: expected no single quote, got {region!r}")
        poll = environ.get("NODE_POLL_S", DEFAULT_POLL_S)
        out += ["--poll-interval", poll, "--node-config", f"region='{region}'"]
        if environ.get("SUPERNODE_AUTH_KEY"):
            out += ["--auth-supernode-private-key", environ["SUPERNODE_AUTH_KEY"]]
    return out + rest


def main(argv: Sequence[str] | None = None) -> int:
    """Prepare the environment, then replace this process with the role's command."""
    args = list(sys.argv[1:] if argv is None else argv)
    if args in (["--help"], ["-h"]):
        print(__doc__)
        return 0
    try:
        load_secret_files(os.environ)
        make_writable_dirs(os.environ)
        line = command(args, os.environ)
    except (ValueError, OSError) as err:
        print(f"entrypoint: {err}", file=sys.stderr)
        return 2
    print(f"entrypoint: exec {' '.join(line)}", file=sys.stderr, flush=True)
    os.execvp(line[0], line)
    return 0  # pragma: no cover  (execvp does not return)


if __name__ == "__main__":
    sys.exit(main())
