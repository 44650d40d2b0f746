"""Run the services of ``docker-compose.yaml`` as plain processes on 127.0.0.1.

No container engine runs here, so the compose model (as ``docker compose config``
resolves it) is translated service by service into what its container would run:

* the command: our image's entry point (``python -m scripts.entrypoint <role> ...``)
  or, for Prometheus, the ``prometheus`` binary with the service's flags;
* the environment: the Dockerfile's runtime ``ENV``, then the service's own;
* paths: volumes, secrets and tmpfs mounts become folders under a temporary root
  (named volumes shared between services, as in Compose), ``/app`` is the checkout,
  configuration files (bind-mounted, or the image's ``deploy/**.yaml`` named in a
  command) are read through copies with the rewrites below applied;
* network: each service's network namespace (its own, or ``network_mode:
  service:X``) gets free loopback ports for the ports it ``expose``s; ``host:port``
  of a service (or ``localhost``/``127.0.0.1`` of the same namespace), a bare
  exposed port number and ``0.0.0.0`` are rewritten accordingly;
* start order: ``depends_on`` conditions (completed, healthy through the service's
  own health-check command, started).

What cannot be the same is said where it differs: users, read-only root file systems
and dropped capabilities are not enforced, and the numba cache is the checkout's.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fl_server.launch.processes import Managed, free_port, pump

from .conftest import ROOT, tool
from .test_dockerfile import stages

OUR_IMAGE_PREFIX = "federated-rl-multicloud"
IMAGE_WORKDIR = "/app"
KEPT = ("PATH", "LANG", "LC_ALL", "TZ")
"""Host variables a local process keeps (the venv goes first on PATH)."""


def resolve(files: list[Path], variables: dict[str, str]) -> dict[str, Any]:
    """The compose model, interpolated with ``variables`` (and nothing of ours)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MIGRATOR_",
           "DEMO_", "FRL_"))}  # fmt: skip
    env.update(variables)
    args = [tool("docker-compose")]
    for file in files:
        args += ["-f", str(file)]
    done = subprocess.run([*args, "config", "--format", "json"], capture_output=True,
                          text=True, check=True, cwd=ROOT, env=env)  # fmt: skip
    model: dict[str, Any] = json.loads(done.stdout)
    return model


def image_env() -> dict[str, str]:
    """The runtime stage's ``ENV`` (``$PATH`` references dropped)."""
    runtime = stages((ROOT / "Dockerfile").read_text())["runtime"]
    text = " ".join(rest for word, rest in runtime if word == "ENV")
    return {k: v for k, v in re.findall(r"(\w+)=(\S+)", text) if "$" not in v}


@dataclass
class Graph:
    """The compose file's services as processes, under ``root``."""

    model: dict[str, Any]
    root: Path
    ports: dict[tuple[str, int], int] = field(default_factory=dict)
    processes: dict[str, Managed] = field(default_factory=dict)
    skip_health: frozenset[str] = frozenset({"prometheus"})
    _threads: list[threading.Thread] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.services: dict[str, dict[str, Any]] = self.model["services"]
        for name, service in self.services.items():
            for port in service.get("expose", []):
                self.ports[(self.netns(name), int(port))] = free_port()
        self.logs = self.root / "logs"
        self.logs.mkdir(parents=True, exist_ok=True)

    # ------------------------------------------------------------ translation
    def netns(self, name: str) -> str:
        """The service whose network namespace ``name`` lives in."""
        mode = self.services[name].get("network_mode", "")
        return mode.removeprefix("service:") if mode.startswith("service:") else name

    def port(self, service: str, port: int) -> int:
        """The loopback port standing for ``service``'s ``port``."""
        return self.ports[(self.netns(service), port)]

    def volume(self, source: str) -> Path:
        path = self.root / "volumes" / source
        path.mkdir(parents=True, exist_ok=True)
        return path

    def mounts(self, name: str) -> list[tuple[str, Path]]:
        """(container path, host path) of a service, longest first."""
        service = self.services[name]
        out: list[tuple[str, Path]] = [(IMAGE_WORKDIR, ROOT)]
        for spec in service.get("tmpfs", []):
            target = spec.split(":", 1)[0]
            host = self.root / "tmpfs" / name / target.strip("/").replace("/", "_")
            host.mkdir(parents=True, exist_ok=True)
            out.append((target, host))
        for mount in service.get("volumes", []):
            if mount["type"] == "volume":
                subpath = (mount.get("volume") or {}).get("subpath", "")
                # Docker mounts an existing folder of the volume (the one-shot that
                # writes it comes first); here the path is the same folder
                out.append((mount["target"], self.volume(mount["source"]) / subpath))
            else:  # a configuration file: copied, with this service's rewrites
                copy = self.root / "binds" / name / Path(mount["source"]).name
                copy.parent.mkdir(parents=True, exist_ok=True)
                out.append((mount["target"], copy))
        for secret in service.get("secrets", []):
            source = Path(self.model["secrets"][secret["source"]]["file"])
            target = secret.get("target") or f"/run/secrets/{secret['source']}"
            out.append((target, source))
        return sorted(out, key=lambda m: len(m[0]), reverse=True)

    def rewrite(self, name: str, text: str) -> str:
        """A string of ``name``'s configuration as it reads on this host."""
        if text in {str(p) for (ns, p) in self.ports if ns == self.netns(name)}:
            return str(self.port(name, int(text)))  # a bare exposed port
        text = text.replace("0.0.0.0", "127.0.0.1")

        def address(match: re.Match[str]) -> str:
            host, port = match[1], int(match[2])
            if host in {"localhost", "127.0.0.1"}:
                key = (self.netns(name), port)
                return f"{host}:{self.ports[key]}" if key in self.ports else match[0]
            if host in self.services and (self.netns(host), port) in self.ports:
                return f"127.0.0.1:{self.port(host, port)}"
            return match[0]

        text = re.sub(r"\b([a-z][a-z0-9.-]*|127\.0\.0\.1):(\d{2,5})\b", address, text)
        for target, host in self.mounts(name):
            text = re.sub(
                rf"(?<![\w./-]){re.escape(target)}(?=[/,\]\s\"']|$)", str(host), text
            )
        return self.config_copy(name, text)

    def config_copy(self, name: str, text: str) -> str:
        """An image configuration file named in a command, as a rewritten copy.

        ``/app/deploy/**.yaml`` is read like a bind-mounted file.
        """
        path = Path(text)
        deploy = ROOT / "deploy"
        if path.suffix in {".yaml", ".yml"} and path.is_relative_to(deploy):
            copy = self.root / "binds" / name / path.name
            copy.parent.mkdir(parents=True, exist_ok=True)
            copy.write_text(self.rewrite(name, path.read_text()))
            return str(copy)
        return text

    def command(self, name: str) -> list[str]:
        service = self.services[name]
        args = [self.rewrite(name, a) for a in service.get("command") or []]
        if service["image"].startswith(OUR_IMAGE_PREFIX):
            return [sys.executable, "-m", "scripts.entrypoint", *args]
        if service["image"].startswith("prom/prometheus"):
            return [tool("prometheus"), *args]
        raise ValueError(f"{name}: no local stand-in for image {service['image']}")

    def environment(self, name: str) -> dict[str, str]:
        # a container sees the image's and the service's variables, not the host's
        env = {k: os.environ[k] for k in KEPT if k in os.environ}
        base = image_env()
        base.pop("NUMBA_CACHE_DIR", None)  # the checkout's cache is warm
        for key, value in {
            **base,
            **(self.services[name].get("environment") or {}),
        }.items():
            env[key] = self.rewrite(name, str(value))
        env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env["PATH"]])
        env["PYTHONPATH"] = str(ROOT)
        return env

    def copy_binds(self, name: str) -> None:
        for mount in self.services[name].get("volumes", []):
            if mount["type"] == "bind":
                copy = self.root / "binds" / name / Path(mount["source"]).name
                copy.write_text(self.rewrite(name, Path(mount["source"]).read_text()))

    # ------------------------------------------------------------ running
    def start(self, name: str) -> Managed:
        self.copy_binds(name)
        popen = subprocess.Popen(
            self.command(name), cwd=ROOT, env=self.environment(name),
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
        managed = Managed(name, popen, self.logs / f"{name}.log")
        self.processes[name] = managed
        thread = threading.Thread(
            target=pump,
            args=(popen.stdout, managed.log_path.open("a", encoding="utf-8"), None),
            daemon=True,
        )
        thread.start()
        self._threads.append(thread)
        return managed

    def healthy(self, name: str) -> bool:
        test = self.services[name]["healthcheck"]["test"]
        assert test[0] == "CMD", test
        args = [self.rewrite(name, a) for a in test[1:]]
        if args[0] == "python":
            args[0] = sys.executable
        done = subprocess.run(args, cwd=ROOT, env=self.environment(name),
                              capture_output=True, timeout=30, check=False)  # fmt: skip
        return done.returncode == 0

    def wait_for(self, name: str, condition: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        managed = self.processes[name]
        while time.monotonic() < deadline:
            if condition == "service_started":
                return
            if condition == "service_completed_successfully":
                code = managed.popen.poll()
                if code is not None:
                    assert code == 0, f"{name} exited {code}: {self.log(name)[-3000:]}"
                    return
            elif condition == "service_healthy":
                if not managed.alive():
                    raise AssertionError(f"{name} died: {self.log(name)[-3000:]}")
                if name in self.skip_health or self.healthy(name):
                    return
            time.sleep(0.5)
        raise TimeoutError(f"{name}: not {condition} after {timeout} s")

    def closure(self, names: set[str]) -> set[str]:
        """``names`` and everything they depend on."""
        todo, out = list(names), set()
        while todo:
            name = todo.pop()
            if name not in out:
                out.add(name)
                todo += list(self.services[name].get("depends_on", {}))
        return out

    def up(self, timeout: float = 300.0, only: set[str] | None = None) -> None:
        """Start the services (``only`` these and their dependencies) in order."""
        wanted = self.closure(only) if only else set(self.services)
        started: set[str] = set()
        while started != wanted:
            ready = [
                n for n in wanted if n not in started
                and set(self.services[n].get("depends_on", {})) <= started
            ]  # fmt: skip
            assert ready, f"dependency cycle among {wanted - started}"
            for name in sorted(ready):
                for dep, rule in self.services[name].get("depends_on", {}).items():
                    self.wait_for(dep, rule["condition"], timeout)
                self.start(name)
                started.add(name)

    def log(self, name: str) -> str:
        path = self.logs / f"{name}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def stop(self) -> None:
        """Stop every process (reverse start order), each by its own process group."""
        for name in reversed(list(self.processes)):
            self.processes[name].stop(grace=15)
        for thread in self._threads:
            thread.join(timeout=5)

    def left(self) -> list[str]:
        return [n for n, m in self.processes.items() if m.alive()]
