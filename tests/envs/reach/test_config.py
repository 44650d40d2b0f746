"""The Hydra YAML mirrors the config dataclass; bad values name the field."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest
import yaml

from envs.reach.config import RescheduleConfig

YAML = Path(__file__).resolve().parents[3] / "conf" / "env" / "reschedule.yaml"


TRAINING_SWITCHES = {"move_gains": True, "reward_unit": "qos"}
"""The env group's only departures from REACH mode: what the shipped learner needs."""


def test_yaml_mirrors_the_dataclass_defaults() -> None:
    doc = yaml.safe_load(YAML.read_text())["reschedule"]  # the env group's subtree
    defaults = {f.name: f.default for f in dataclasses.fields(RescheduleConfig)}
    assert list(doc) == list(defaults)
    assert doc == defaults | TRAINING_SWITCHES
    assert RescheduleConfig(**doc) == RescheduleConfig(**TRAINING_SWITCHES)


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("observation", "image", "RescheduleConfig.observation: expected one of 'flat', "
         "'reach', got 'image'"),
        ("failure_prob", 1.5, "RescheduleConfig.failure_prob: expected a probability in "
         "[0, 1], got 1.5"),
        ("max_moves", 0, "RescheduleConfig.max_moves: expected >= 1, got 0"),
        ("surge_max", 0.5, "RescheduleConfig.surge_max: expected a factor >= 1, got 0.5"),
    ],
)  # fmt: skip
def test_bad_values_name_the_field(field: str, value: object, message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        RescheduleConfig(**{field: value})  # type: ignore[arg-type]
