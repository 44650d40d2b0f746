"""Typed schema of the composed Hydra config, registered with Hydra's ConfigStore.

Each package owns its dataclasses (``envs.config``, ...); this module only assembles
them into :class:`RunConfig` so that composing ``conf/config.yaml`` validates every
value (unknown key or wrong type -> an error naming the full key).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING

from envs.config import RewardConfig, ScenarioConfig, TwoTierEnvConfig
from policies.config import PolicyConfig, TrainConfig


@dataclass
class RunConfig:
    """Everything a run needs; the YAML groups fill it in."""

    task: str = "demo"
    """Name of the task; output folders are ``outputs/<task>/<timestamp>``."""
    seed: int = 0
    """Base seed of the run (environments, policies, federation)."""
    env: str = "two_tier"
    """Which decision problem: ``two_tier`` (routing + placement) or ``reschedule``."""
    scenario: ScenarioConfig = MISSING
    """The multi-cloud world of the two-tier env (``conf/scenario``)."""
    two_tier: TwoTierEnvConfig = field(default_factory=TwoTierEnvConfig)
    """The two-tier env (``conf/env/two_tier.yaml``)."""
    reward: RewardConfig = field(default_factory=RewardConfig)
    """Reward weights (``conf/reward``)."""
    policy: PolicyConfig = field(default_factory=PolicyConfig)
    """The local learner (``conf/policy``)."""
    train: TrainConfig = field(default_factory=TrainConfig)
    """A single agent's run (``conf/train``)."""
    paths: Any = None
    """Folders (``conf/paths``)."""


def register() -> None:
    """Register :class:`RunConfig` as ``run_schema`` (idempotent)."""
    ConfigStore.instance().store(name="run_schema", node=RunConfig)


register()
