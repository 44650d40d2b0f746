"""The same config and training seed give byte-identical result CSVs (both env kinds).

Two runs of one config into two folders, in one process: every local round reseeds
its generators, replies are aggregated in region order, and the CSVs hold no wall
times or node ids, so the files must match byte for byte.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from conf.schema import RunConfig
from envs.reach.formats import packaged_cluster
from envs.reach.generator import generate, write_config
from fl_server.config import compose
from scripts.federate import run

pytestmark = pytest.mark.slow

TINY = (
    "federation=tiny",
    "federation.client_eval=false",
    "engine.ray_cpus=2",
    "train.eval_seeds=[1000,1001]",
)


def twice(cfg: RunConfig, tmp_path: Path) -> tuple[Path, Path]:
    return run(cfg, tmp_path / "a"), run(cfg, tmp_path / "b")


def same_bytes(a: Path, b: Path, names: tuple[str, ...]) -> None:
    for name in names:
        first, second = (a / name).read_bytes(), (b / name).read_bytes()
        assert len(first.splitlines()) > 2, name
        assert first == second, f"{name} differs between two runs of one config"


def test_two_tier_runs_of_one_config_write_identical_csvs(tmp_path: Path) -> None:
    cfg = compose([*TINY, "train.eval_decisions=200", "train.baselines=[random,latency]",
                   "seed=3"])  # fmt: skip
    a, b = twice(cfg, tmp_path)
    same_bytes(a, b, ("metrics.csv", "latency_quantiles.csv"))
    assert b"train_seed" in (a / "metrics.csv").read_bytes().splitlines()[0]


def test_rescheduling_runs_of_one_config_write_identical_csvs(
    tmp_path: Path,
) -> None:
    small = write_config(
        generate(6, 12, seed=0, patterns=("aggregator_sequential",)), tmp_path
    )
    cfg = compose(
        [*TINY, "env=reschedule", "train.eval_episodes=2",
         "train.baselines=[keep,greedy]", "seed=3",
         f"federation.regions=[{packaged_cluster()},{small}]"]
    )  # fmt: skip
    a, b = twice(cfg, tmp_path)
    same_bytes(a, b, ("metrics.csv", "episodes.csv"))


def test_another_training_seed_gives_other_numbers(tmp_path: Path) -> None:
    base = [*TINY, "train.eval_decisions=200", "train.baselines=[latency]"]
    a = run(compose([*base, "seed=3"]), tmp_path / "a")
    b = run(compose([*base, "seed=4"]), tmp_path / "b")
    assert (a / "metrics.csv").read_bytes() != (b / "metrics.csv").read_bytes()
