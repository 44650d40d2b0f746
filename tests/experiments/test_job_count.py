"""The sweep's job count in the progress lines follows Hydra's own expansion."""

from __future__ import annotations

from pathlib import Path

from omegaconf import OmegaConf

from scripts.run_experiment import count_jobs


def _multirun(folder: Path, params: dict[str, str], task: list[str]) -> Path:
    hydra = {"sweeper": {"params": params}, "overrides": {"task": task}}
    OmegaConf.save(OmegaConf.create({"hydra": hydra}), folder / "multirun.yaml")
    return folder


def test_command_line_overrides_replace_the_overlays_sweep(tmp_path: Path) -> None:
    params = {"reward.carbon": "0.1,0.25,0.5,1.0", "seed": "0"}
    # experiment=... reward.carbon=0.25 seed=1,2: Hydra launches 2 jobs, not 4
    task = ["experiment=pareto_fpi_default", "reward.carbon=0.25", "seed=1,2"]
    assert count_jobs(_multirun(tmp_path, params, task)) == 2


def test_the_overlays_sweep_alone_and_with_an_extra_axis(tmp_path: Path) -> None:
    params = {"reward.carbon": "0.1,0.25,0.5,1.0", "seed": "0"}
    assert count_jobs(_multirun(tmp_path, params, ["experiment=x"])) == 4
    assert count_jobs(_multirun(tmp_path, params, ["strategy=a,b,c"])) == 12


def test_an_unreadable_sweep_folder_counts_nothing(tmp_path: Path) -> None:
    assert count_jobs(tmp_path) is None
