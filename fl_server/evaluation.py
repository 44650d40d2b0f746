"""Server-side evaluation and checkpoints of the global policy, on every region.

The server holds a *template* MaskablePPO built like a client's learner (same spaces,
same hyperparameters). Weights received from the federation are loaded into it
strictly to evaluate them on each region's held-out seeds (``train.eval_seeds``, the
same episodes the single-agent ``scripts.train`` reports) and to write checkpoints
that ``MaskablePPO.load`` opens. Baselines run on the same episodes; being fixed
heuristics, they are evaluated once per run folder. Results stay per evaluation seed
(the session writes one row each): averaging seeds here would turn p95/p99 into means
of per-seed percentiles and hide the spread.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from sb3_contrib import MaskablePPO

from conf.schema import RunConfig
from policies.checkpoint import load_checkpoint, save_checkpoint
from policies.config import SIZE_FREE_NETWORKS
from policies.evaluation import SeedEvaluation
from policies.factory import build_model
from policies.params import Weights, get_weights, set_weights
from policies.runs import SCORE, baseline_names, evaluate_detailed, make_training_env

log = logging.getLogger(__name__)


class ServerEvaluator:
    """Evaluates and checkpoints federated weights through one template learner.

    Args:
        cfg: the run's typed config.
        regions: the federation's regions; the first one's env gives the spaces (every
            region's env, and the centralized all-regions env, share them), except
            with a size-free network, whose regions keep their own clusters' axes:
            each then gets its own template, built on first use.
    """

    def __init__(self, cfg: RunConfig, regions: list[str]) -> None:
        self.cfg = cfg
        self.score = SCORE[cfg.env]
        env = make_training_env(cfg, regions[0], cfg.policy.n_envs, cfg.seed)
        self.model: MaskablePPO = build_model(env, cfg.policy, seed=cfg.seed)
        self._templates = {regions[0]: self.model}

    def _template(self, region: str) -> MaskablePPO:
        """The learner whose spaces fit ``region``'s env."""
        if self.cfg.policy.network not in SIZE_FREE_NETWORKS:
            return self.model
        if region not in self._templates:
            env = make_training_env(
                self.cfg, region, self.cfg.policy.n_envs, self.cfg.seed
            )
            self._templates[region] = build_model(env, self.cfg.policy, self.cfg.seed)
        return self._templates[region]

    def initial_weights(self) -> Weights:
        """The template's freshly initialised policy (seeded by ``cfg.seed``)."""
        return get_weights(self.model.policy)

    def evaluate(self, weights: Weights, region: str) -> list[SeedEvaluation]:
        """``weights`` on each of ``region``'s held-out seeds."""
        model = self._template(region)
        set_weights(model.policy, weights)
        return evaluate_detailed(
            model, self.cfg, region, list(self.cfg.train.eval_seeds)
        )

    def baseline_names(self) -> list[str]:
        """``train.baselines``, or every baseline of the env kind."""
        names = self.cfg.train.baselines
        return list(names) if names is not None else list(baseline_names(self.cfg))

    def evaluate_baseline(self, name: str, region: str) -> list[SeedEvaluation]:
        """Baseline ``name`` on each of ``region``'s held-out seeds."""
        return evaluate_detailed(
            name, self.cfg, region, list(self.cfg.train.eval_seeds)
        )

    def save(self, weights: Weights, path: Path, metadata: dict[str, Any]) -> Path:
        """Write ``weights`` as a MaskablePPO checkpoint (atomic, metadata beside)."""
        set_weights(self.model.policy, weights)
        return save_checkpoint(self.model, path, metadata)

    def load(self, path: Path) -> Weights:
        """The policy weights of a checkpoint, checked against the template."""
        weights = get_weights(
            load_checkpoint(path, device=self.cfg.policy.device).policy
        )
        set_weights(self.model.policy, weights)  # strict: keys and shapes must match
        return weights
