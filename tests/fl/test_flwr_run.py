"""``flwr run .``: what a Flower user types first completes on the default config.

Flower's CLI starts its own local SuperLink in simulation mode (detached, two
simulated SuperNodes by default) and runs the app with ``[tool.flwr.app.config]``
from ``pyproject.toml``. The test then stops that SuperLink by its process id (found
by the test's own ``FLWR_HOME`` in its command line) and every descendant of it.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest
from flwr.cli.constant import LOCAL_SUPERLINK_HTTP_API_PORT

from fl_server.launch.processes import BIN, flower_env

from .conftest import alive, descendants

pytestmark = [pytest.mark.slow, pytest.mark.e2e]


def local_superlinks(home: Path) -> list[int]:
    """PIDs of the local SuperLinks ``flwr`` started for Flower home ``home``."""
    found = []
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            argv = (proc / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        text = b" ".join(argv).decode(errors="replace")
        if "flower-superlink" in text and str(home) in text:
            found.append(int(proc.name))
    return found


def stop(pids: list[int]) -> list[int]:
    """SIGTERM ``pids`` and their descendants; those still alive after 30 s."""
    family = set(pids)
    for pid in pids:
        family |= descendants(pid)
    for pid in family:
        if alive(pid):
            os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and any(alive(p) for p in family):
        time.sleep(0.5)
    return sorted(p for p in family if alive(p))


def flwr(args: list[str], env: dict[str, str], cwd: Path, timeout: float) -> str:
    done = subprocess.run(
        [str(BIN / "flwr"), *args],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout + done.stderr


def test_flwr_run_dot_completes_on_the_local_simulation(
    tmp_path: Path, app_dir: Path
) -> None:
    home = tmp_path / "flwr-home"
    out = tmp_path / "run"
    env = flower_env(home)
    with socket.socket() as probe:  # flwr would reuse another home's SuperLink there
        busy = probe.connect_ex(("127.0.0.1", int(LOCAL_SUPERLINK_HTTP_API_PORT))) == 0
    assert not busy, (
        f"127.0.0.1:{LOCAL_SUPERLINK_HTTP_API_PORT} is taken (another local Flower "
        "SuperLink?): this test needs Flower's fixed local-simulation port"
    )
    overrides = (
        f"federation.output-dir='{out}' federation.rounds=2 "
        "federation.local-steps=2048 train.eval-decisions=200"
    )
    try:
        log = flwr(
            ["run", ".", "--stream", "--run-config", overrides],
            env,
            app_dir,
            timeout=900,
        )
        runs = json.loads(flwr(["ls", "--format", "json"], env, app_dir, timeout=60))
    finally:
        left = stop(local_superlinks(home))
    assert not left, f"processes left after stopping the local SuperLink: {left}"
    assert [r["status"] for r in runs["runs"]] == ["finished:completed"], runs
    state = json.loads((out / "state.json").read_text())
    assert state["last_round"] == 2, state
    assert (out / "global_policy.zip").is_file()
    assert f"run folder: {out}" in log
