"""Run a federation: ``python -m scripts.federate [hydra overrides]``.

``engine=simulation`` (default) runs the apps on Flower's Simulation Engine in this
process: one virtual SuperNode per region (Ray). ``engine=deployment`` runs them for
real on loopback: it starts ``flower-superlink`` and one ``flower-supernode`` per
region (``--node-config "region='...'"``) on free 127.0.0.1 ports, submits the run
with ``flwr run``, streams its logs, waits for the end and stops every process it
started, by PID (also on Ctrl-C or failure). ``engine.tls=true`` serves the SuperLink
over TLS with certificates generated into the run folder; ``engine.node_auth=true``
admits only SuperNodes whose EC keys were registered (``flwr supernode register``).

Everything lands in the run folder (``federation.output_dir`` or Hydra's): metrics,
checkpoints, ``run_config.toml`` (the flattened config, what ``flwr run`` received),
Flower's home (``flwr/``: ``config.toml``, installed app bundles), certificates and
keys (``tls/``) and every process's log (``logs/``). Examples::

    python -m scripts.federate strategy=fedprox federation.rounds=10
    python -m scripts.federate engine=deployment engine.tls=true engine.node_auth=true
    python -m scripts.federate -m strategy=fedavg,fedprox,local,centralized
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import json
import logging
import os
import re
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
import tomllib
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import FrameType
from typing import Any, TextIO

import hydra
import numpy as np
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

import conf.schema  # noqa: F401  (registers the typed schema)
from conf.schema import EngineName, Isolation, RunConfig
from fl_server.config import regions_of, to_run_config, to_toml, with_common_padding

log = logging.getLogger("federate")

PROJECT_ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
CONNECTION = "local-deployment"
FLWR_ENV = {
    "FLWR_DISABLE_UPDATE_CHECK": "1",
    "FLWR_DISABLE_RUNTIME_DEPENDENCY_INSTALLATION": "1",
    "PYTHONUNBUFFERED": "1",
}
"""Set for every Flower process: no update check online, and no ``uv sync`` of the
app's dependencies (it would pull a multi-GB CUDA torch)."""


# ================================================================ common


def prepare(cfg: RunConfig, out: Path) -> RunConfig:
    """Fix the run folder into the config (absolute) and write the flat config there."""
    out = out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    cfg = replace(cfg, federation=replace(cfg.federation, output_dir=str(out)))
    regions_of(cfg)  # fail here, naming the field, rather than inside an app
    cfg = with_common_padding(cfg)
    (out / "run_config.toml").write_text(to_toml(to_run_config(cfg)))
    return cfg


def flower_env(home: Path) -> dict[str, str]:
    """The environment of Flower processes: FLWR_HOME in the run folder, never ~."""
    home.mkdir(parents=True, exist_ok=True)
    path = os.pathsep.join([str(BIN), os.environ.get("PATH", "")])
    return {**os.environ, **FLWR_ENV, "FLWR_HOME": str(home), "PATH": path}


def run(cfg: RunConfig, out: Path) -> Path:
    """Run the federation on ``cfg.engine`` into ``out``; returns the run folder."""
    cfg = prepare(cfg, out)
    folder = Path(cfg.federation.output_dir)
    log.info(
        "%s federation: %s, %d regions, %d rounds x %d local steps -> %s",
        cfg.engine.name.name,
        cfg.strategy.name.name,
        len(regions_of(cfg)),
        cfg.federation.rounds,
        cfg.federation.local_steps,
        folder,
    )
    if cfg.engine.name == EngineName.simulation:
        run_simulation_engine(cfg)
    else:
        run_deployment_engine(cfg)
    return folder


SUMMARY_COLUMNS = {
    "mean_reward": [  # two-tier
        ("mean_reward", "reward", "{:>10.3f}"),
        ("latency_p95_ms", "p95 ms", "{:>10.1f}"),
        ("slo_violation_rate", "SLO viol", "{:>10.3f}"),
        ("cost_usd_per_1k", "USD/1k", "{:>10.4f}"),
        ("carbon_g_per_1k", "gCO2/1k", "{:>10.3f}"),
    ],
    "latency_reduction_pct": [  # rescheduling
        ("latency_reduction_pct", "lat red %", "{:>10.2f}"),
        ("latency_after_ms", "after ms", "{:>10.1f}"),
        ("migrations", "moves", "{:>10.2f}"),
        ("invalid_actions", "invalid", "{:>10.2f}"),
    ],
}
"""Columns of the final table per env kind, keyed (and ranked) by its headline score."""


def summary(folder: Path) -> str:
    """Table of the last evaluated round: learned policy vs baselines, same episodes."""
    metrics = folder / "metrics.jsonl"
    if not metrics.exists():
        return f"(no metrics in {folder})"
    rows = [json.loads(line) for line in metrics.read_text().splitlines() if line]
    evals = [r for r in rows if r["phase"] == "server-eval"]
    if not evals:
        return "(no server-side evaluation: federation.eval_every=0)"
    last = max(r["round"] for r in evals)
    learned = ("global", "local")
    groups: dict[str, list[dict[str, Any]]] = {}
    for row in evals:
        if row["round"] == last and row["policy"] in learned:
            groups.setdefault(f"{row['policy']} (learned)", []).append(row)
        elif row["round"] == 0 and row["policy"] not in learned:
            groups.setdefault(row["policy"], []).append(row)
    score = next((k for k in SUMMARY_COLUMNS if any(k in r for r in evals)), None)
    if score is None:
        return "(no known headline metric in the evaluation rows)"
    columns = SUMMARY_COLUMNS[score]
    regions = list(dict.fromkeys(r["region"] for g in groups.values() for r in g))

    def mean(group: list[dict[str, Any]], key: str) -> float | None:
        values = [r[key] for r in group if r.get(key) is not None]
        return float(np.mean(values)) if values else None

    head = f"{'policy':<18}" + "".join(f"{title:>10}" for _, title, _ in columns)
    lines = [
        f"Held-out evaluation, round {last}, mean over {', '.join(regions)}:",
        head,
        "-" * len(head),
    ]

    def rank(item: tuple[str, list[dict[str, Any]]]) -> float:
        value = mean(item[1], score)
        return -value if value is not None else float("inf")

    for name, group in sorted(groups.items(), key=rank):
        cells = [
            fmt.format(value)
            if (value := mean(group, key)) is not None
            else f"{'-':>10}"
            for key, _, fmt in columns
        ]
        lines.append(f"{name:<18}" + "".join(cells))
    return "\n".join(lines)


# ================================================================ Simulation Engine


def run_simulation_engine(cfg: RunConfig) -> None:
    """Flower's Simulation Engine in-process: one virtual SuperNode per region.

    ``run_simulation`` gives the apps an empty run config, so the flattened config is
    bound into both apps (the same keys ``flwr run --run-config`` would carry).
    """
    from flwr.simulation import run_simulation

    from fl_clients.client_app import make_app as make_client_app
    from fl_server.server_app import make_app as make_server_app

    flat = to_run_config(cfg)
    regions = regions_of(cfg)
    cpus = cfg.engine.ray_cpus or os.cpu_count() or 1
    os.environ.update(FLWR_ENV)
    os.environ.setdefault("RAY_DEDUP_LOGS", "0")
    os.environ["FLWR_HOME"] = str(Path(cfg.federation.output_dir) / "flwr")
    run_simulation(
        server_app=make_server_app(flat),
        client_app=make_client_app(flat),
        num_supernodes=len(regions),
        backend_config={
            "client_resources": {"num_cpus": cfg.engine.client_cpus, "num_gpus": 0.0},
            "init_args": {"num_cpus": cpus, "include_dashboard": False},
        },
    )


# ================================================================ Deployment Engine


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nobody listens on right now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


@dataclass
class Managed:
    """A process this launcher started, in its own process group (PGID == PID).

    Stopping signals the group, so the children Flower spawns (``flower-superexec``,
    ``flwr-serverapp``, ``flwr-clientapp``) go with their parent.
    """

    name: str
    popen: subprocess.Popen[bytes]
    log_path: Path

    @property
    def pid(self) -> int:
        """The process id (and process group id)."""
        return self.popen.pid

    def alive(self) -> bool:
        """Whether the process itself is still running."""
        return self.popen.poll() is None

    def signal(self, sig: int) -> None:
        """Send ``sig`` to the process group (ignored once it is gone)."""
        with suppress(ProcessLookupError, PermissionError):
            os.killpg(self.popen.pid, sig)

    def stop(self, grace: float = 10.0) -> None:
        """SIGTERM the group, then SIGKILL whatever is left after ``grace`` seconds."""
        self.signal(signal.SIGTERM)
        try:
            self.popen.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            log.warning("%s (pid %d) ignored SIGTERM; killing it", self.name, self.pid)
        self.signal(signal.SIGKILL)  # children that outlived their parent, if any
        with suppress(subprocess.TimeoutExpired):
            self.popen.wait(timeout=grace)


@dataclass
class Certificates:
    """TLS material of a run: a CA and the SuperLink's certificate, as PEM files."""

    ca: Path
    cert: Path
    key: Path


def make_certificates(folder: Path, host: str) -> Certificates:
    """A throw-away CA and a SuperLink certificate for ``host`` (+ localhost)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    folder.mkdir(parents=True, exist_ok=True)
    now = dt.datetime.now(dt.UTC)

    def name(text: str) -> x509.Name:
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, text)])

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(name("federated-rl-multicloud run CA"))
        .issuer_name(name("federated-rl-multicloud run CA"))
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    sans: list[x509.GeneralName] = [x509.DNSName("localhost")]
    with suppress(ValueError):
        sans.append(x509.IPAddress(ipaddress.ip_address(host)))
    sans.append(x509.IPAddress(ipaddress.ip_address("127.0.0.1")))
    cert = (
        x509.CertificateBuilder()
        .subject_name(name(host))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=30))
        .add_extension(x509.SubjectAlternativeName(sans), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    pem = serialization.Encoding.PEM
    out = Certificates(folder / "ca.pem", folder / "server.pem", folder / "server.key")
    out.ca.write_bytes(ca_cert.public_bytes(pem))
    out.cert.write_bytes(cert.public_bytes(pem))
    out.key.write_bytes(
        key.private_bytes(
            pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    out.key.chmod(0o600)
    return out


def make_node_key(folder: Path, name: str) -> tuple[Path, Path]:
    """An EC key pair of a SuperNode in OpenSSH format (what Flower loads)."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    folder.mkdir(parents=True, exist_ok=True)
    key = ec.generate_private_key(ec.SECP384R1())
    private, public = folder / name, folder / f"{name}.pub"
    private.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.OpenSSH,
            serialization.NoEncryption(),
        )
    )
    private.chmod(0o600)
    public.write_bytes(
        key.public_key().public_bytes(
            serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH
        )
    )
    return private, public


def check_app(app_dir: Path, flat: dict[str, Any]) -> None:
    """Fail early when the app's pyproject cannot take this run config.

    ``flwr run --run-config`` only overrides keys present in ``[tool.flwr.app.config]``
    and the SuperLink rejects the others; name the missing ones and the fix.
    """
    pyproject = app_dir / "pyproject.toml"
    if not pyproject.exists():
        raise FileNotFoundError(f"engine.app_dir: no pyproject.toml in {app_dir}")
    app = (
        tomllib.loads(pyproject.read_text())
        .get("tool", {})
        .get("flwr", {})
        .get("app", {})
    )

    def flat_keys(table: dict[str, Any], prefix: str = "") -> set[str]:
        keys: set[str] = set()
        for key, value in table.items():
            if isinstance(value, dict):
                keys |= flat_keys(value, f"{prefix}{key}.")
            else:
                keys.add(f"{prefix}{key}")
        return keys

    missing = sorted(set(flat) - flat_keys(app.get("config", {})))
    if missing:
        raise ValueError(
            f"{pyproject} [tool.flwr.app.config]: missing {len(missing)} run-config "
            f"keys ({', '.join(missing[:6])}{', ...' if len(missing) > 6 else ''}); "
            "`python -m fl_server.config` prints the section to paste there"
        )


def _pump(stream: TextIO | Any, sink: TextIO, echo: logging.Logger | None) -> None:
    """Copy a child's output to its log file (and to ``echo``), line by line."""
    for raw in iter(stream.readline, b""):
        line = raw.decode(errors="replace")
        sink.write(line)
        sink.flush()
        if echo is not None and line.strip():
            echo.info("%s", line.rstrip())
    sink.close()


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
    node_poll_s: float = 0.2
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
        echo_log = logging.getLogger(f"federate.{name}") if echo else None
        thread = threading.Thread(
            target=_pump, args=(popen.stdout, sink, echo_log), daemon=True
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
                    "--insecure",
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
        """``flwr run --stream``: submit the app; logs stream until the run ends."""
        log_path = self.logs / "flwr-run.log"
        start = log_path.stat().st_size if log_path.exists() else 0  # earlier launches
        managed = self._spawn(
            "flwr-run",
            [
                str(BIN / "flwr"), "run", str(app_dir), CONNECTION,
                "--run-config", str(run_config), "--stream",
            ],
            echo=True,
        )  # fmt: skip
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            text = log_path.read_bytes()[start:].decode(errors="replace")
            if match := re.search(r"Successfully started run (\d+)", text):
                return int(match.group(1))
            if not managed.alive():
                raise RuntimeError(
                    f"flwr run failed; see {managed.log_path}:\n{text[-3000:]}"
                )
            time.sleep(0.2)
        raise TimeoutError(f"flwr run did not start a run in {timeout} s")

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


@contextmanager
def interrupt_on_sigterm() -> Iterator[None]:
    """Turn SIGTERM into KeyboardInterrupt so cleanup runs as on Ctrl-C."""

    def handler(signum: int, _frame: FrameType | None) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


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


# ================================================================ entry point


def configure_logging() -> None:
    """Our progress on stderr; Flower's own console output kept to warnings."""
    logging.basicConfig(
        level=logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
        force=True,
    )
    from flwr.common.logger import console_handler  # created on flwr's first import

    console_handler.setLevel(logging.WARNING)
    logging.getLogger("alembic").setLevel(logging.WARNING)  # Flower's state DB setup
    logging.getLogger("flwr").propagate = False


@hydra.main(config_path="../conf", config_name="config", version_base="1.3")
def main(raw: DictConfig) -> None:
    """Hydra entry point."""
    configure_logging()
    cfg = OmegaConf.to_object(raw)
    assert isinstance(cfg, RunConfig)
    out = Path(cfg.federation.output_dir or HydraConfig.get().runtime.output_dir)
    folder = run(cfg, out)
    print(summary(folder))


if __name__ == "__main__":
    main()
