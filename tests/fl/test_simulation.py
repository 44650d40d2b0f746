"""Flower's Simulation Engine, really run: one virtual SuperNode per region, 2 rounds."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from sb3_contrib import MaskablePPO

from conf.schema import RunConfig
from fl_server.evaluation import ServerEvaluator
from fl_server.launch import summary
from policies.params import flatten, get_weights
from scripts.federate import run, run_simulation_engine

from .conftest import fedavg_replay

REGIONS = ["us-east", "eu-central", "asia-east"]


def test_simulation_engine_trains_every_region_and_checkpoints(
    tiny_cfg: Callable[..., RunConfig], tmp_path: Path
) -> None:
    cfg = tiny_cfg("engine=simulation", "engine.ray_cpus=2")
    folder = run(cfg, tmp_path / "run")

    state = json.loads((folder / "state.json").read_text())
    assert state["last_round"] == 2
    rows = [
        json.loads(line) for line in (folder / "metrics.jsonl").read_text().splitlines()
    ]
    for server_round in (1, 2):
        trained = sorted(
            r["region"]
            for r in rows
            if r["round"] == server_round and r["phase"] == "train"
        )
        assert trained == sorted(REGIONS)
        assert all(
            r["num-examples"] == 2048
            for r in rows
            if r["round"] == server_round and r["phase"] == "train"
        )
        evaluated = sorted(
            r["region"]
            for r in rows
            if r["round"] == server_round and r["phase"] == "client-eval"
        )
        assert evaluated == sorted(REGIONS)
    assert not [r for r in rows if r["phase"] == "dropped"]

    final = flatten(get_weights(MaskablePPO.load(folder / "global_policy.zip").policy))
    initial = flatten(ServerEvaluator(cfg, REGIONS).initial_weights())
    assert np.abs(final - initial).max() > 1e-4  # the policy moved...
    # ...to exactly the FedAvg of what the clients learned (recomputed here)
    np.testing.assert_allclose(final, fedavg_replay(cfg, 2), rtol=0, atol=1e-5)
    table = summary(folder)
    assert "global (learned)" in table and "latency" in table and "random" in table


def test_simulation_clients_run_at_the_launchers_priority(
    tiny_cfg: Callable[..., RunConfig],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Ray's default worker niceness (15) starves the clients beside busy processes."""
    import flwr.simulation

    seen: dict[str, str | None] = {}

    def fake_run_simulation(**kwargs: object) -> None:
        seen["niceness"] = os.environ.get("RAY_worker_niceness")
        seen["supernodes"] = str(kwargs["num_supernodes"])

    monkeypatch.setattr(os, "environ", dict(os.environ))  # restored after the test
    os.environ.pop("RAY_worker_niceness", None)
    monkeypatch.setattr(flwr.simulation, "run_simulation", fake_run_simulation)
    cfg = tiny_cfg("engine=simulation", f"federation.output_dir={tmp_path / 'run'}")
    run_simulation_engine(cfg)
    assert seen == {"niceness": "0", "supernodes": str(len(REGIONS))}
