"""Processes a launcher owns: started in their own group, logged, stopped by PID.

Everything a Flower process needs from its environment is here too: ``FLWR_HOME`` in
the run folder (never ``~``), no update check, no runtime ``uv sync`` of the app's
dependencies (it would pull a multi-GB CUDA torch).
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import IO, TextIO

log = logging.getLogger(__name__)

BIN = Path(sys.executable).parent
"""The virtual environment's scripts (``flwr``, ``flower-superlink``, ...)."""
FLWR_ENV = {
    "FLWR_DISABLE_UPDATE_CHECK": "1",
    "FLWR_DISABLE_RUNTIME_DEPENDENCY_INSTALLATION": "1",
    "PYTHONUNBUFFERED": "1",
}
"""Set for every Flower process: no update check online, and no ``uv sync`` of the
app's dependencies (it would pull a multi-GB CUDA torch)."""


def flower_env(home: Path) -> dict[str, str]:
    """The environment of Flower processes: FLWR_HOME in the run folder, never ~."""
    home.mkdir(parents=True, exist_ok=True)
    path = os.pathsep.join([str(BIN), os.environ.get("PATH", "")])
    return {**os.environ, **FLWR_ENV, "FLWR_HOME": str(home), "PATH": path}


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


def pump(stream: IO[bytes], sink: TextIO, echo: logging.Logger | None) -> None:
    """Copy a child's output to its log file (and to ``echo``), line by line."""
    for raw in iter(stream.readline, b""):
        line = raw.decode(errors="replace")
        sink.write(line)
        sink.flush()
        if echo is not None and line.strip():
            echo.info("%s", line.rstrip())
    sink.close()


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
