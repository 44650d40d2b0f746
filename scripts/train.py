"""Train one (non-federated) agent: ``python -m scripts.train env=two_tier ...``.

Shows progress (steps, episode return, fps), saves a checkpoint that
``MaskablePPO.load`` opens (``policy.zip`` in the run folder), evaluates it and the
baselines on held-out seeds and writes ``results.csv`` (one row per policy x
evaluation seed, with ``train_seed`` = ``seed``, the seed of the training, and
``eval_seed``), ``latency_quantiles.csv`` (two-tier) or ``episodes.csv``
(rescheduling) and the resolved config.
Hydra overrides select everything: ``scenario=default reward=carbon
policy.n_envs=16 train.total_steps=500000 train.region=null``.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any

import hydra
import numpy as np
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf
from stable_baselines3.common.callbacks import BaseCallback

import conf.schema  # noqa: F401  (registers the typed schema)
from conf.schema import RunConfig
from policies.checkpoint import save_checkpoint
from policies.evaluation import atomic_write_text
from policies.local import LocalTrainer
from policies.records import episode_rows, seed_rows, sketch_rows, write_tidy_csv
from policies.runs import SCORE, baseline_names, evaluate_detailed, make_training_env

FIRST = ("policy", "scenario", "region", "train_seed", "eval_seed", "env_steps")
"""Identity columns of ``results.csv`` and its companions."""

log = logging.getLogger("train")


class Progress(BaseCallback):
    """Logs steps, mean episode return of the window, and fps every ``every`` steps."""

    def __init__(self, every: int) -> None:
        super().__init__()
        self.every = every
        self.returns: list[float] = []
        self.next_log = every
        self.start = time.perf_counter()

    def _on_step(self) -> bool:
        self.returns += [
            i["episode"]["r"] for i in self.locals["infos"] if "episode" in i
        ]
        if self.num_timesteps >= self.next_log:
            fps = self.num_timesteps / (time.perf_counter() - self.start)
            mean = np.mean(self.returns) if self.returns else float("nan")
            log.info(
                "steps %9d | episode return %9.2f | fps %6.0f",
                self.num_timesteps,
                mean,
                fps,
            )
            self.returns.clear()
            self.next_log += self.every
        return True


def run(cfg: RunConfig, out_dir: Path) -> dict[str, Any]:
    """Train, checkpoint, evaluate; returns the learned policy's mean metrics."""
    tc = cfg.train
    env = make_training_env(cfg, tc.region, cfg.policy.n_envs, cfg.seed)
    trainer = LocalTrainer(env, cfg.policy, seed=cfg.seed)
    log.info(
        "training %s on %s (region %s) for %d steps",
        cfg.env,
        cfg.scenario.name,
        tc.region,
        tc.total_steps,
    )
    trainer.model.learn(total_timesteps=tc.total_steps, callback=Progress(tc.log_every))
    path = save_checkpoint(
        trainer.model,
        out_dir / "policy.zip",
        {
            "config": OmegaConf.to_container(OmegaConf.structured(cfg)),
            "steps": trainer.model.num_timesteps,
        },
    )
    log.info("checkpoint: %s", path)
    rows: list[dict[str, Any]] = []
    sketches: list[dict[str, Any]] = []
    episodes: list[dict[str, Any]] = []
    names = tc.baselines if tc.baselines is not None else list(baseline_names(cfg))
    policies: dict[str, Any] = {"learned": trainer.model} | {n: n for n in names}
    for name, policy in policies.items():
        results = evaluate_detailed(policy, cfg, tc.region, list(tc.eval_seeds))
        identity = {
            "policy": name,
            "scenario": cfg.scenario.name,
            "region": tc.region,
            "train_seed": cfg.seed,
            "env_steps": int(trainer.model.num_timesteps),
        }
        rows += seed_rows(results, **identity)
        sketches += sketch_rows(results, **identity)
        episodes += episode_rows(results, **identity)
    write_tidy_csv(out_dir / "results.csv", rows, FIRST)
    if sketches:
        write_tidy_csv(
            out_dir / "latency_quantiles.csv", sketches, (*FIRST, "request_type")
        )
    if episodes:
        write_tidy_csv(out_dir / "episodes.csv", episodes, (*FIRST, "episode"))
    config = OmegaConf.to_container(OmegaConf.structured(cfg))
    atomic_write_text(
        out_dir / "results.config.json", json.dumps(config, indent=2, default=str)
    )
    score = SCORE[cfg.env]
    by_policy: dict[str, list[float]] = {}
    for row in rows:
        by_policy.setdefault(row["policy"], []).append(row[score])
    for name, values in by_policy.items():
        log.info("%-14s %s %9.3f", name, score, float(np.mean(values)))
    return {name: float(np.mean(values)) for name, values in by_policy.items()}


@hydra.main(config_path="../conf", config_name="config", version_base="1.3")
def main(cfg: DictConfig) -> None:
    """Hydra entry point."""
    run_cfg = OmegaConf.to_object(cfg)
    assert isinstance(run_cfg, RunConfig)
    run(run_cfg, Path(HydraConfig.get().runtime.output_dir))


if __name__ == "__main__":
    main()
