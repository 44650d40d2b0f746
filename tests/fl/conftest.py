"""Fixtures of the federation tests: tiny configs, Flower's home in tmp, real processes.

Every Flower process a test starts belongs to a :class:`fl_server.launch.Deployment`
whose finalizer stops it by PID, also when the test fails; the finalizer then checks
that no process of the deployment (nor any child Flower spawned) is left.
"""

from __future__ import annotations

import os
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest

from conf.schema import RunConfig
from fl_server.config import compose
from fl_server.launch import Deployment

PROJECT_ROOT = Path(__file__).resolve().parents[2]

TINY = (
    "federation=tiny",
    "train.eval_decisions=200",
    "train.eval_seeds=[1000]",
    "train.baselines=[random,latency]",
)
"""Two rounds of one rollout per region, short evaluations: plumbing, not learning."""


@pytest.fixture(scope="session")
def tiny_cfg() -> Callable[..., RunConfig]:
    """``tiny_cfg(*overrides)``: the composed tiny config (compositions are cached)."""
    cache: dict[tuple[str, ...], RunConfig] = {}

    def make(*overrides: str) -> RunConfig:
        key = (*TINY, *overrides)
        if key not in cache:
            cache[key] = compose(list(key))
        return cache[key]

    return make


@pytest.fixture(autouse=True)
def flower_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Flower's home in tmp, no update check, no runtime dependency installs."""
    home = tmp_path / "flwr-home"
    home.mkdir()
    monkeypatch.setenv("FLWR_HOME", str(home))
    monkeypatch.setenv("FLWR_DISABLE_UPDATE_CHECK", "1")
    monkeypatch.setenv("FLWR_DISABLE_RUNTIME_DEPENDENCY_INSTALLATION", "1")
    return home


@pytest.fixture
def app_dir() -> Path:
    """The Flower app ``flwr run`` submits: this project.

    ``FRL_FLOWER_APP_DIR`` may point at a staged copy of the app instead.
    """
    return Path(os.environ.get("FRL_FLOWER_APP_DIR", PROJECT_ROOT)).resolve()


def descendants(pid: int) -> set[int]:
    """Every live descendant of ``pid`` (Linux ``/proc``), found by PID."""
    found: set[int] = set()
    todo = [pid]
    while todo:
        parent = todo.pop()
        for task in Path(f"/proc/{parent}/task").glob("*"):
            children = task / "children"
            if children.exists():
                for child in children.read_text().split():
                    if int(child) not in found:
                        found.add(int(child))
                        todo.append(int(child))
    return found


def alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie counts as gone)."""
    status = Path(f"/proc/{pid}/status")
    try:
        return "\nState:\tZ" not in status.read_text()
    except FileNotFoundError:
        return False


@pytest.fixture
def deployments() -> Iterator[Callable[..., Deployment]]:
    """``deployments(out, regions, **options)`` -> a started-later Deployment.

    The finalizer stops each one and asserts that none of its processes, nor their
    descendants (``flower-superexec``, ``flwr-serverapp``, ...), survive.
    """
    made: list[Deployment] = []
    seen: set[int] = set()

    def make(out: Path, regions: list[str], **options: object) -> Deployment:
        deployment = Deployment(out, regions, **options)  # type: ignore[arg-type]
        made.append(deployment)
        return deployment

    def watch() -> None:
        for deployment in made:
            for pid in deployment.pids():
                seen.add(pid)
                seen.update(descendants(pid))

    def left() -> list[int]:
        """PIDs seen so far that still run, after waiting up to 30 s for them."""
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and any(alive(p) for p in seen):
            time.sleep(0.5)
        return sorted(p for p in seen if alive(p))

    make.watch = watch  # type: ignore[attr-defined]
    make.left = left  # type: ignore[attr-defined]
    try:
        yield make
    finally:
        watch()
        for deployment in made:
            deployment.stop()
        remaining = left()
        assert not remaining, (
            f"processes left after the deployment stopped: {remaining}"
        )


def fedavg_replay(cfg: RunConfig, rounds: int) -> np.ndarray:
    """The global policy after ``rounds`` of FedAvg, recomputed in this process.

    Local rounds are seeded by (run seed, region, round) and the optimizer state
    carries over, so each region's update can be recomputed here with the client's
    own code; FedAvg is then the env-step weighted mean, computed with numpy. A
    federation whose checkpoint equals this aggregated what its clients sent.
    """
    from flwr.app import RecordDict

    from fl_clients import trainer
    from fl_server import wire
    from fl_server.config import regions_of
    from fl_server.evaluation import ServerEvaluator
    from policies.params import flatten

    trainer.forget()
    regions = regions_of(cfg)
    weights = ServerEvaluator(cfg, regions).initial_weights()
    layout = wire.layout_of(weights)
    states = {region: RecordDict() for region in regions}
    try:
        for server_round in range(1, rounds + 1):
            plan = trainer.RoundPlan(
                server_round, cfg.federation.local_steps, 0.0, "federated"
            )
            outs = [
                trainer.train_round(
                    cfg, -1, region, plan, wire.pack(weights), states[region]
                )
                for region in regions
            ]
            steps = np.array([o.env_steps for o in outs], dtype=np.float64)
            stacked = np.stack([flatten(o.weights).astype(np.float64) for o in outs])
            mean = (steps / steps.sum()) @ stacked
            weights = _reshape(mean.astype(np.float32), layout)
    finally:
        trainer.forget()
    return flatten(weights)


def _reshape(flat: np.ndarray, layout: tuple) -> OrderedDict:
    out, start = OrderedDict(), 0
    for name, shape in layout:
        count = int(np.prod(shape))
        out[name] = flat[start : start + count].reshape(shape)
        start += count
    return out
