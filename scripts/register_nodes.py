"""Register SuperNode keys with a SuperLink: ``python -m scripts.register_nodes``.

``python -m scripts.register_nodes --superlink HOST:PORT --root-certificates ca.pem
nodes/us-east.pub nodes/eu-central.pub`` runs ``flwr supernode register`` once per key
(the node is named after the file), after waiting for the SuperLink to answer. A key
registered before is left as it is, so the command can run on every start. Only a
SuperLink started with ``--enable-supernode-auth`` takes registrations.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from pathlib import Path

from scripts.submit import CONNECTION, connection_toml, flwr

log = logging.getLogger("register_nodes")

ALREADY = "already"
"""What Flower's refusal of a known key says."""


def register(key: Path) -> bool:
    """Register one key; False if it was registered before."""
    try:
        flwr(["supernode", "register", str(key), CONNECTION, "--name", key.stem])
    except RuntimeError as err:
        if ALREADY in str(err).lower():
            return False
        raise
    return True


def wait_for_superlink(timeout: float) -> None:
    """Until ``flwr supernode ls`` answers (the SuperLink may still be starting)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            flwr(["supernode", "ls", CONNECTION, "--format", "json"])
            return
        except RuntimeError as err:
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"--superlink: no answer in {timeout:.0f} s ({err})"
                ) from None
        time.sleep(1.0)


def main(argv: list[str] | None = None) -> int:
    """Write the connection, wait for the SuperLink, register every key."""
    parser = argparse.ArgumentParser(
        prog="python -m scripts.register_nodes", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--superlink", required=True, help="SuperLink HOST:PORT")
    parser.add_argument("--root-certificates", type=Path, required=True)
    parser.add_argument("--wait-timeout", type=float, default=120.0)
    parser.add_argument("keys", type=Path, nargs="+", help="public keys (.pub)")
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    home = Path(os.environ.get("FLWR_HOME") or Path.home() / ".flwr")
    try:
        missing = [str(k) for k in args.keys if not k.is_file()]
        if missing:
            raise ValueError(f"keys: expected public key files, missing {missing}")
        home.mkdir(parents=True, exist_ok=True)
        (home / "config.toml").write_text(
            connection_toml(args.superlink, args.root_certificates.resolve())
        )
        wait_for_superlink(args.wait_timeout)
        for key in args.keys:
            done = register(key)
            log.info("%s %s", key.stem, "registered" if done else "already registered")
    except (ValueError, RuntimeError, TimeoutError, OSError) as err:
        log.error("cannot register: %s", err)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
