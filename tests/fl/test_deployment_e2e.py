"""Flower's Deployment Engine for real on 127.0.0.1: a SuperLink, SuperNodes, faults.

Every process is started by :class:`fl_server.launch.Deployment` on free ports, with
Flower's home in the run folder, and stopped by PID by the ``deployments`` fixture
(which also checks that nothing is left). Budgets are tiny: these test plumbing and
fault handling; learning is tested elsewhere.
"""

from __future__ import annotations

import http.client
import json
import os
import signal
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from sb3_contrib import MaskablePPO

from conf.schema import RunConfig
from fl_server.config import to_run_config
from fl_server.launch import Deployment, check_app, free_port, prepare
from fl_server.launch.certificates import make_node_key
from fl_server.launch.processes import BIN
from policies.params import flatten, get_weights

from .conftest import descendants, fedavg_replay

pytestmark = [pytest.mark.slow, pytest.mark.e2e]

REGIONS = ["us-east", "eu-central", "asia-east"]


def rows_of(folder: Path) -> list[dict]:
    return [
        json.loads(line) for line in (folder / "metrics.jsonl").read_text().splitlines()
    ]


def wait_for_round(
    folder: Path, done: int, deployment: Deployment, timeout: float = 300
) -> int:
    """Block until ``state.json`` commits round ``done`` (or later); that round."""
    deadline = time.monotonic() + timeout
    state = folder / "state.json"
    while time.monotonic() < deadline:
        if state.exists():
            last = int(json.loads(state.read_text())["last_round"])
            if last >= done:
                return last
        deployment._check_daemons()
        time.sleep(0.2)
    raise TimeoutError(f"round {done} not committed in {timeout} s")


def launch(
    deployments: Callable[..., Deployment],
    cfg: RunConfig,
    out: Path,
    app_dir: Path,
    regions: list[str] = REGIONS,
    **options: object,
) -> tuple[Deployment, int]:
    check_app(app_dir, to_run_config(cfg))
    deployment = deployments(out, regions, **options)
    deployment.start()
    run_id = deployment.submit(app_dir, out / "run_config.toml")
    return deployment, run_id


def global_weights(folder: Path) -> np.ndarray:
    return flatten(get_weights(MaskablePPO.load(folder / "global_policy.zip").policy))


def test_three_supernodes_two_rounds(
    deployments: Callable[..., Deployment],
    tiny_cfg: Callable[..., RunConfig],
    app_dir: Path,
    tmp_path: Path,
) -> None:
    cfg = prepare(tiny_cfg("engine=deployment"), tmp_path / "run")
    out = Path(cfg.federation.output_dir)
    deployment, run_id = launch(deployments, cfg, out, app_dir)
    wait_for_round(out, 1, deployment)
    after_one = global_weights(out)
    deployments.watch()  # type: ignore[attr-defined]  (serverapp, superexec, ...)
    assert deployment.wait(run_id, timeout=600) == "finished:completed"

    assert json.loads((out / "global_policy.json").read_text())["round"] == 2
    # each checkpoint is the FedAvg of what the three SuperNodes' clients learned
    np.testing.assert_allclose(after_one, fedavg_replay(cfg, 1), rtol=0, atol=1e-5)
    np.testing.assert_allclose(
        global_weights(out), fedavg_replay(cfg, 2), rtol=0, atol=1e-5
    )
    rows = rows_of(out)
    for server_round in (1, 2):
        for phase in ("train", "client-eval"):
            regions = sorted(
                r["region"]
                for r in rows
                if r["round"] == server_round and r["phase"] == phase
            )
            assert regions == sorted(REGIONS), (server_round, phase)
    assert (out / "flwr" / "config.toml").exists()  # Flower's home is the run's
    deployments.watch()  # type: ignore[attr-defined]
    deployment.stop()
    assert deployments.left() == []  # type: ignore[attr-defined]


def test_a_killed_supernode_leaves_the_run_to_the_others(
    deployments: Callable[..., Deployment],
    tiny_cfg: Callable[..., RunConfig],
    app_dir: Path,
    tmp_path: Path,
) -> None:
    cfg = prepare(
        tiny_cfg(
            "engine=deployment", "federation.rounds=3", "federation.client_eval=false"
        ),
        tmp_path / "run",
    )
    out = Path(cfg.federation.output_dir)
    deployment, run_id = launch(deployments, cfg, out, app_dir)
    wait_for_round(out, 1, deployment)
    deployments.watch()  # type: ignore[attr-defined]
    deployment.kill_node("asia-east", signal.SIGKILL)  # mid-run: round 2 is under way
    assert deployment.wait(run_id, timeout=900) == "finished:completed"

    assert json.loads((out / "state.json").read_text())["last_round"] == 3
    assert (
        json.loads((out / "global_policy.json").read_text())["round"] == 3
    )  # no model lost
    rows = rows_of(out)
    last = sorted(
        r["region"] for r in rows if r["round"] == 3 and r["phase"] == "train"
    )
    assert last == ["eu-central", "us-east"]
    assert {r["region"] for r in rows if r["phase"] == "dropped"} == {"asia-east"}
    log = (out / "server.log").read_text()
    assert "asia-east (node" in log and "dropped out of train" in log


def test_a_killed_server_restarted_on_the_folder_resumes(
    deployments: Callable[..., Deployment],
    tiny_cfg: Callable[..., RunConfig],
    app_dir: Path,
    tmp_path: Path,
) -> None:
    cfg = prepare(
        tiny_cfg(
            "engine=deployment", "federation.rounds=3", "federation.client_eval=false"
        ),
        tmp_path / "run",
    )
    out = Path(cfg.federation.output_dir)
    first, first_run = launch(deployments, cfg, out, app_dir)
    wait_for_round(out, 1, first)
    server = [
        pid
        for pid in descendants(first.processes["superlink"].pid)
        if "flwr-serverapp"
        in Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
    ]
    assert len(server) == 1, server
    deployments.watch()  # type: ignore[attr-defined]
    os.kill(server[0], signal.SIGKILL)
    done = int(json.loads((out / "state.json").read_text())["last_round"])
    first.stop()

    second, second_run = launch(deployments, cfg, out, app_dir)
    assert second.wait(second_run, timeout=600) == "finished:completed"
    assert f"resuming {out} after round {done} of 3" in (out / "server.log").read_text()
    rows = rows_of(out)
    trained = [(r["round"], r["region"]) for r in rows if r["phase"] == "train"]
    assert sorted(trained) == sorted(
        (k, g) for k in (1, 2, 3) for g in REGIONS
    )  # once each
    runs = {r["round"]: r["run_id"] for r in rows if r["phase"] == "round"}
    assert {runs[k] for k in range(1, done + 1)} == {first_run}
    assert {runs[k] for k in range(done + 1, 4)} == {second_run}


def test_tls_and_supernode_authentication(
    deployments: Callable[..., Deployment],
    tiny_cfg: Callable[..., RunConfig],
    app_dir: Path,
    tmp_path: Path,
) -> None:
    regions = ["us-east", "eu-central"]
    cfg = prepare(
        tiny_cfg(
            "engine=deployment", "engine.tls=true", "engine.node_auth=true",
            "federation.regions=[us-east,eu-central]", "federation.rounds=1",
            "federation.client_eval=false",
        ),
        tmp_path / "run",
    )  # fmt: skip
    out = Path(cfg.federation.output_dir)
    deployment, run_id = launch(
        deployments, cfg, out, app_dir, regions, tls=True, node_auth=True
    )
    assert (out / "tls" / "ca.pem").exists() and (out / "keys" / "us-east.pub").exists()
    with pytest.raises((OSError, http.client.HTTPException, urllib.error.URLError)):
        urllib.request.urlopen(f"http://127.0.0.1:{deployment.port}/health", timeout=5)

    rogue_key, _ = make_node_key(out / "rogue", "rogue")  # never registered
    rogue = deployment._spawn(
        "supernode-rogue",
        [
            str(BIN / "flower-supernode"), "--root-certificates", str(out / "tls" / "ca.pem"),
            "--superlink", f"127.0.0.1:{deployment.port}", "--port", str(free_port()),
            "--auth-supernode-private-key", str(rogue_key), "--max-retries", "1",
        ],
    )  # fmt: skip
    try:
        rogue.popen.wait(timeout=120)
    except subprocess.TimeoutExpired:
        pytest.fail("a SuperNode with an unregistered key was not refused")
    assert rogue.popen.returncode != 0
    refusal = rogue.log_path.read_text()
    assert "Failed to activate SuperNode" in refusal, refusal[-2000:]

    assert deployment.wait(run_id, timeout=600) == "finished:completed"
    assert json.loads((out / "state.json").read_text())["last_round"] == 1
