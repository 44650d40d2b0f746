r"""Submit a federation to a running SuperLink: ``python -m scripts.submit ...``.

For SuperLinks and SuperNodes started elsewhere (containers, other hosts; see
``docs/deploy.md``); ``scripts.federate engine=deployment`` instead starts its own on
loopback. Steps: compose the Hydra config, fix the run folder (``--out``: where the
ServerApp writes ``global_policy.zip``, so a folder the SuperLink's host sees too),
write Flower's connection into ``$FLWR_HOME/config.toml``, wait until ``--nodes``
SuperNodes are online, ``flwr run``, then (unless ``--detach``) stream the run's logs
and exit 0 only if it ends ``finished:completed``::

    python -m scripts.submit --superlink superlink:9093 \
        --root-certificates /secrets/ca.pem --out /data/runs/demo --nodes 3 \
        env=reschedule federation.rounds=3
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from fl_server.config import compose, to_run_config
from fl_server.launch import check_app, prepare

log = logging.getLogger("submit")

CONNECTION = "deployment"
"""Name of the SuperLink connection written into ``config.toml``."""


def connection_toml(address: str, root_certificates: Path | None) -> str:
    """Flower's ``config.toml`` with one default connection to ``address``."""
    lines = [
        "[superlink]",
        f'default = "{CONNECTION}"',
        "",
        f"[superlink.{CONNECTION}]",
        f"address = {json.dumps(address)}",
    ]
    if root_certificates is None:
        lines.append("insecure = true")
    else:
        lines.append(f"root-certificates = {json.dumps(str(root_certificates))}")
    return "\n".join(lines) + "\n"


def flwr(args: list[str], timeout: float = 120.0) -> str:
    """A ``flwr`` CLI call; its stdout (raises with the output on failure)."""
    done = subprocess.run(
        ["flwr", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(
            f"flwr {' '.join(args)} failed ({done.returncode}): "
            f"{(done.stdout + done.stderr).strip()[-2000:]}"
        )
    return done.stdout


def online_nodes() -> int:
    """SuperNodes the SuperLink reports online."""
    listing: dict[str, Any] = json.loads(
        flwr(["supernode", "ls", CONNECTION, "--format", "json"])
    )
    return sum(n.get("status") == "online" for n in listing.get("nodes", []))


def wait_for_nodes(count: int, timeout: float) -> None:
    """Block until ``count`` SuperNodes are online (the SuperLink may still start)."""
    deadline = time.monotonic() + timeout
    seen, last_error = 0, ""
    while time.monotonic() < deadline:
        try:
            seen = online_nodes()
        except RuntimeError as err:  # SuperLink not up yet
            last_error = str(err)
        else:
            if seen >= count:
                log.info("%d SuperNodes online", seen)
                return
        time.sleep(1.0)
    raise TimeoutError(
        f"--nodes: expected {count} SuperNodes online, saw {seen} after {timeout:.0f} s"
        + (f" ({last_error})" if last_error and not seen else "")
    )


def run_status(run_id: int) -> str:
    """``running``, ``finished:completed``, ... of one run."""
    listing = json.loads(
        flwr(["ls", CONNECTION, "--run-id", str(run_id), "--format", "json"])
    )
    runs = listing.get("runs") or []
    if not runs:
        raise RuntimeError(f"flwr ls --run-id {run_id}: no such run ({listing})")
    return str(runs[0]["status"])


def follow(run_id: int, timeout: float) -> str:
    """Stream the run's logs to stdout until it ends; its final status."""
    subprocess.run(
        ["flwr", "log", str(run_id), CONNECTION, "--stream"],
        timeout=timeout,
        check=False,
    )
    deadline = time.monotonic() + 120
    status = run_status(run_id)
    while not status.startswith("finished") and time.monotonic() < deadline:
        time.sleep(1.0)
        status = run_status(run_id)
    return status


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """Options; everything else is a Hydra override."""
    parser = argparse.ArgumentParser(
        prog="python -m scripts.submit", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--superlink", required=True, help="SuperLink HOST:PORT")
    tls = parser.add_mutually_exclusive_group(required=True)
    tls.add_argument("--root-certificates", type=Path, help="CA of the SuperLink")
    tls.add_argument("--insecure", action="store_true", help="plain HTTP")
    parser.add_argument("--out", type=Path, required=True, help="run folder")
    parser.add_argument("--app", type=Path, default=Path.cwd(), help="Flower app")
    parser.add_argument("--nodes", type=int, default=0, help="wait for N online")
    parser.add_argument("--wait-timeout", type=float, default=300.0)
    parser.add_argument("--run-timeout", type=float, default=24 * 3600.0)
    parser.add_argument("--detach", action="store_true", help="do not follow the run")
    args, overrides = parser.parse_known_args(argv)
    bad = [o for o in overrides if o.startswith("-")]
    if bad:
        parser.error(f"unknown options {bad} (Hydra overrides look like key=value)")
    args.overrides = overrides
    return args


def main(argv: list[str] | None = None) -> int:
    """Compose, prepare, connect, submit, follow."""
    args = parse_args(argv)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    home = Path(os.environ.get("FLWR_HOME") or Path.home() / ".flwr")
    try:
        cfg = prepare(compose(["engine=deployment", *args.overrides]), args.out)
        out = Path(cfg.federation.output_dir)
        app = args.app.resolve()
        check_app(app, to_run_config(cfg))
        home.mkdir(parents=True, exist_ok=True)
        ca = None if args.insecure else args.root_certificates.resolve()
        (home / "config.toml").write_text(connection_toml(args.superlink, ca))
        if args.nodes:
            wait_for_nodes(args.nodes, args.wait_timeout)
        answer = flwr(
            ["run", str(app), CONNECTION, "--run-config", str(out / "run_config.toml"),
             "--format", "json"]
        )  # fmt: skip
        run_id = int(json.loads(answer)["run-id"])
    except (ValueError, KeyError, RuntimeError, TimeoutError, OSError) as err:
        log.error("cannot submit: %s", err)
        return 2
    log.info("run %d submitted; run folder %s", run_id, out)
    if args.detach:
        return 0
    status = follow(run_id, args.run_timeout)
    log.info("run %d %s", run_id, status)
    return 0 if status == "finished:completed" else 1


if __name__ == "__main__":
    sys.exit(main())
