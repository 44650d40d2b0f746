"""Flower's Deployment Engine on one machine: a SuperLink, a SuperNode per region.

:class:`Deployment` starts ``flower-superlink`` and one SuperNode per region
(``--node-config "region='...'"``) on free ports of one interface, optionally with TLS
and SuperNode authentication, submits runs with ``flwr run`` and follows them with
``flwr log``; it stops every process it started, by PID, also on Ctrl-C or failure.
:func:`run_deployment_engine` is the whole federation on top of it.
"""

from __future__ import annotations

import json
import logging
import signal
import ssl
import subprocess
import sys
import threading
import time
import tomllib
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from contextlib import suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from flwr.common.config import flatten_dict

from conf.schema import Isolation, RunConfig
from fl_server.config import regions_of, to_run_config
from fl_server.launch.certificates import Certificates, make_certificates, make_node_key
from fl_server.launch.processes import (
    BIN,
    Managed,
    flower_env,
    free_port,
    interrupt_on_sigterm,
    pump,
)

log = logging.getLogger(__name__)

PROJECT_ROOT = Path(__file__).resolve().parents[2]
"""The checkout the processes run in, and the default app submitted to them."""
CONNECTION = "local-deployment"
"""Name of this deployment's SuperLink in its ``config.toml``."""


def check_app(app_dir: Path, flat: Mapping[str, Any]) -> None:
    """Fail early when the app's pyproject cannot take this run config.

    ``flwr run --run-config`` only overrides keys present in ``[tool.flwr.app.config]``
    and the SuperLink rejects the others; name the missing ones and the fix.
    """
    pyproject = app_dir / "pyproject.toml"
    if not pyproject.exists():
        raise FileNotFoundError(f"engine.app_dir: no pyproject.toml in {app_dir}")
    table = tomllib.loads(pyproject.read_text())
    app = table.get("tool", {}).get("flwr", {}).get("app", {})
    missing = sorted(set(flat) - set(flatten_dict(app.get("config", {}))))
    if missing:
        raise ValueError(
            f"{pyproject} [tool.flwr.app.config]: missing {len(missing)} run-config "
            f"keys ({', '.join(missing[:6])}{', ...' if len(missing) > 6 else ''}); "
            "`python -m fl_server.config` prints the section to paste there"
        )


@dataclass
class Deployment:
    """A SuperLink and one SuperNode per region on loopback, owned by this process.

    Use as a context manager: leaving it (normally, on an error or on Ctrl-C) stops
    every process it started, by PID.

    Args:
        out: the run folder (Flower's home, logs, certificates and keys go inside).
        regions: one SuperNode per entry, with ``--node-config "region='<name>'"``.
        host: interface of every process.
        tls: serve the SuperLink over TLS (certificates generated into ``out/tls``).
        node_auth: admit only SuperNodes whose registered EC keys sign their requests.
        isolation: ``warm`` (``--isolation process`` + :mod:`fl_clients.worker`) or
            ``subprocess`` (Flower's default: a fresh ClientApp process per message).
        node_poll_s: longest sleep of each SuperNode's loop
            (:mod:`fl_clients.supernode`); 0 = the stock ``flower-supernode`` (3 s).
        startup_timeout: longest wait for the SuperLink and SuperNodes to come up.
    """

    out: Path
    regions: Sequence[str]
    host: str = "127.0.0.1"
    tls: bool = False
    node_auth: bool = False
    isolation: Isolation = Isolation.warm
    node_poll_s: float = 0.05
    startup_timeout: float = 120.0
    processes: dict[str, Managed] = field(default_factory=dict)
    port: int = 0
    node_ports: dict[str, int] = field(default_factory=dict)
    certificates: Certificates | None = None
    _threads: list[threading.Thread] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.node_poll_s < 0:
            raise ValueError(
                f"engine.node_poll_s: expected seconds >= 0, got {self.node_poll_s}"
            )
        if self.node_auth and not self.tls:
            raise ValueError(
                "engine.node_auth: needs engine.tls=true (keys travel over TLS)"
            )
        self.out = self.out.resolve()
        self.home = self.out / "flwr"
        self.logs = self.out / "logs"
        self.env = flower_env(self.home)

    # ------------------------------------------------------------ lifecycle

    def __enter__(self) -> Deployment:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> None:
        """SuperLink, then (registered) SuperNodes; returns once all are online."""
        self.logs.mkdir(parents=True, exist_ok=True)
        self.port = free_port(self.host)
        if self.tls:
            self.certificates = make_certificates(self.out / "tls", self.host)
        self._write_flower_config()
        self._start_superlink()
        for region in self.regions:
            self.start_supernode(region)
        self.wait_for_nodes(len(self.regions))

    def stop(self) -> None:
        """Stop every process this deployment started (reverse order), by PID."""
        for name in reversed(list(self.processes)):
            managed = self.processes.pop(name)
            managed.stop()
            log.info("stopped %s (pid %d)", name, managed.pid)
        for thread in self._threads:
            thread.join(timeout=5)

    def pids(self) -> list[int]:
        """PIDs of the processes still managed."""
        return [m.pid for m in self.processes.values()]

    # ------------------------------------------------------------ processes

    def _spawn(self, name: str, command: list[str], echo: bool = False) -> Managed:
        log_path = self.logs / f"{name}.log"
        popen = subprocess.Popen(
            command,
            cwd=PROJECT_ROOT,
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # own process group: stop() reaches its children
        )
        managed = Managed(name, popen, log_path)
        self.processes[name] = managed
        sink = log_path.open("a", encoding="utf-8")
        echo_log = log.getChild(name) if echo else None
        thread = threading.Thread(
            target=pump, args=(popen.stdout, sink, echo_log), daemon=True
        )
        thread.start()
        self._threads.append(thread)
        log.info("started %s (pid %d)", name, popen.pid)
        return managed

    def _tls_args(self) -> list[str]:
        if self.certificates is None:
            return ["--insecure"]
        return ["--root-certificates", str(self.certificates.ca)]

    def _start_superlink(self) -> None:
        command = [
            str(BIN / "flower-superlink"),
            "--host", self.host,
            "--port", str(self.port),
            "--disable-runtime-dependency-installation",
        ]  # fmt: skip
        if self.certificates is None:
            command.append("--insecure")
        else:
            command += [
                "--ssl-ca-certfile", str(self.certificates.ca),
                "--ssl-certfile", str(self.certificates.cert),
                "--ssl-keyfile", str(self.certificates.key),
            ]  # fmt: skip
        if self.node_auth:
            command.append("--enable-supernode-auth")
        managed = self._spawn("superlink", command)
        self._wait_healthy(managed)

    def _wait_healthy(self, managed: Managed) -> None:
        scheme = "https" if self.certificates else "http"
        url = f"{scheme}://{self.host}:{self.port}/health"
        context = (
            ssl.create_default_context(cafile=str(self.certificates.ca))
            if self.certificates
            else None
        )
        deadline = time.monotonic() + self.startup_timeout
        while time.monotonic() < deadline:
            if not managed.alive():
                raise RuntimeError(
                    f"flower-superlink exited with {managed.popen.returncode}; "
                    f"see {managed.log_path}"
                )
            with suppress(OSError, urllib.error.URLError):
                with urllib.request.urlopen(url, timeout=2, context=context) as reply:
                    if reply.status == 200:
                        log.info("SuperLink healthy at %s", url)
                        return
            time.sleep(0.2)
        raise TimeoutError(
            f"SuperLink not healthy at {url} after {self.startup_timeout} s"
        )

    def start_supernode(self, region: str) -> Managed:
        """Start (or restart) the SuperNode of ``region`` and, if warm, its worker."""
        port = free_port(self.host)
        self.node_ports[region] = port
        launcher = (
            [sys.executable, "-m", "fl_clients.supernode",
             "--poll-interval", str(self.node_poll_s)]
            if self.node_poll_s > 0
            else [str(BIN / "flower-supernode")]
        )  # fmt: skip
        command = [
            *launcher,
            *self._tls_args(),
            "--superlink", f"{self.host}:{self.port}",
            "--host", self.host,
            "--port", str(port),
            "--node-config", f"region='{region}'",
        ]  # fmt: skip
        if self.isolation == Isolation.warm:
            command += ["--isolation", "process"]
        if self.node_auth:
            private, public = make_node_key(self.out / "keys", region)
            self.flwr(
                ["supernode", "register", str(public), CONNECTION, "--name", region]
            )
            command += ["--auth-supernode-private-key", str(private)]
        managed = self._spawn(f"supernode-{region}", command)
        if self.isolation == Isolation.warm:
            self._spawn(
                f"worker-{region}",
                [
                    sys.executable, "-m", "fl_clients.worker",
                    "--runtime-api-address", f"{self.host}:{port}",
                    "--insecure", "--poll", str(self.node_poll_s or 0.2),
                ],
            )  # fmt: skip
        return managed

    def kill_node(self, region: str, sig: int = signal.SIGKILL) -> None:
        """Kill the SuperNode of ``region`` (and its worker): a node failure."""
        for name in (f"worker-{region}", f"supernode-{region}"):
            if name in self.processes:
                managed = self.processes.pop(name)
                managed.signal(sig)
                with suppress(subprocess.TimeoutExpired):
                    managed.popen.wait(timeout=30)
                log.warning("killed %s (pid %d) with signal %d", name, managed.pid, sig)

    # ------------------------------------------------------------ Flower CLI

    def _write_flower_config(self) -> None:
        lines = [
            "[superlink]",
            f'default = "{CONNECTION}"',
            "",
            f"[superlink.{CONNECTION}]",
            f'address = "{self.host}:{self.port}"',
        ]
        if self.certificates is None:
            lines.append("insecure = true")
        else:
            lines.append(f'root-certificates = "{self.certificates.ca}"')
        (self.home / "config.toml").write_text("\n".join(lines) + "\n")

    def flwr(self, args: list[str], timeout: float = 120.0) -> str:
        """Run a ``flwr`` CLI command against this deployment; its stdout."""
        done = subprocess.run(
            [str(BIN / "flwr"), *args],
            cwd=PROJECT_ROOT,
            env=self.env,
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

    def wait_for_nodes(self, count: int) -> None:
        """Wait until ``count`` SuperNodes are online (``flwr supernode ls``)."""
        deadline = time.monotonic() + self.startup_timeout
        online = 0
        while time.monotonic() < deadline:
            for name, managed in self.processes.items():
                if name.startswith(("supernode-", "worker-")) and not managed.alive():
                    raise RuntimeError(
                        f"{name} exited with {managed.popen.returncode}; "
                        f"see {managed.log_path}"
                    )
            listing = json.loads(
                self.flwr(["supernode", "ls", CONNECTION, "--format", "json"])
            )
            online = sum(n.get("status") == "online" for n in listing.get("nodes", []))
            if online >= count:
                log.info("%d SuperNodes online", online)
                return
            time.sleep(1.0)
        raise TimeoutError(
            f"{online} of {count} SuperNodes online after {self.startup_timeout} s; "
            f"see {self.logs}"
        )

    def submit(self, app_dir: Path, run_config: Path, timeout: float = 60.0) -> int:
        """``flwr run --format json``: submit the app; its logs then stream.

        The run id comes from the CLI's JSON answer; ``flwr log --stream`` copies the
        run's logs into ``logs/flwr-run.log`` (and this process's log) until it ends.
        """
        answer = self.flwr(
            ["run", str(app_dir), CONNECTION, "--run-config", str(run_config),
             "--format", "json"],
            timeout=timeout,
        )  # fmt: skip
        try:
            reply = json.loads(answer)
            run_id = int(reply["run-id"])
        except (ValueError, KeyError, TypeError):
            raise RuntimeError(
                f"flwr run: expected a JSON answer with a 'run-id', got {answer!r}"
            ) from None
        self._spawn(
            "flwr-run",
            [str(BIN / "flwr"), "log", str(run_id), CONNECTION, "--stream"],
            echo=True,
        )
        return run_id

    def status(self, run_id: int) -> str:
        """The run's status, e.g. ``running`` or ``finished:completed``."""
        listing = json.loads(
            self.flwr(["ls", CONNECTION, "--run-id", str(run_id), "--format", "json"])
        )
        if not listing.get("runs"):
            raise RuntimeError(f"flwr ls --run-id {run_id}: no such run ({listing})")
        return str(listing["runs"][0]["status"])

    def wait(self, run_id: int, timeout: float) -> str:
        """Wait for the streaming ``flwr run`` to end; the run's final status."""
        runner = self.processes.get("flwr-run")
        deadline = time.monotonic() + timeout
        while runner is not None and runner.alive():
            if time.monotonic() > deadline:
                raise TimeoutError(f"run {run_id} still running after {timeout:.0f} s")
            self._check_daemons()
            time.sleep(0.5)
        for _ in range(60):  # the stream ends with the logs; the status follows
            status = self.status(run_id)
            if status.startswith("finished"):
                return status
            time.sleep(1.0)
        return status

    def _check_daemons(self) -> None:
        superlink = self.processes.get("superlink")
        if superlink is not None and not superlink.alive():
            raise RuntimeError(f"flower-superlink died; see {superlink.log_path}")

    def stop_run(self, run_id: int) -> None:
        """Ask the SuperLink to stop the run (``flwr stop``)."""
        with suppress(RuntimeError, subprocess.TimeoutExpired):
            self.flwr(["stop", str(run_id), CONNECTION], timeout=30)


def run_deployment_engine(cfg: RunConfig) -> None:
    """A real SuperLink and one SuperNode per region on loopback, then ``flwr run``."""
    out = Path(cfg.federation.output_dir)
    flat = to_run_config(cfg)
    app_dir = Path(cfg.engine.app_dir or PROJECT_ROOT).resolve()
    check_app(app_dir, flat)
    engine = cfg.engine
    deployment = Deployment(
        out,
        regions_of(cfg),
        host=engine.host,
        tls=engine.tls,
        node_auth=engine.node_auth,
        isolation=engine.isolation,
        node_poll_s=engine.node_poll_s,
        startup_timeout=engine.startup_timeout_s,
    )
    run_id = None
    with interrupt_on_sigterm(), deployment:
        try:
            deployment.start()
            run_id = deployment.submit(app_dir, out / "run_config.toml")
            log.info("run %d submitted; logs: %s", run_id, deployment.logs)
            budget = engine.startup_timeout_s + cfg.federation.rounds * (
                cfg.federation.round_timeout_s * 2
            )
            status = deployment.wait(run_id, timeout=budget)
        except BaseException:
            if run_id is not None:
                deployment.stop_run(run_id)
            raise
    if status != "finished:completed":
        raise RuntimeError(f"run {run_id} ended {status}; see {out / 'server.log'}")
    log.info("run %d %s", run_id, status)
