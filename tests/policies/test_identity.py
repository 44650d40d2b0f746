"""The identity input: a cluster's one-hot id reaches training and evaluation alike."""

from __future__ import annotations

import re
from types import SimpleNamespace

import numpy as np
import pytest

from envs.reach.config import RescheduleConfig
from policies.config import PolicyConfig, TrainConfig
from policies.identity import with_identity
from policies.local import LocalTrainer
from policies.runs import evaluate, make_training_env

CLUSTERS = ["a", "b", "c"]


def run_cfg(slots: int) -> SimpleNamespace:
    return SimpleNamespace(
        env="reschedule",
        reschedule=RescheduleConfig(),
        policy=PolicyConfig(
            net_arch=[16], n_envs=2, n_steps=64, batch_size=64, identity_slots=slots
        ),
        train=TrainConfig(eval_episodes=2),
        federation=SimpleNamespace(regions=CLUSTERS),
    )


def test_training_env_appends_the_one_hot_and_forwards_masks() -> None:
    cfg = run_cfg(slots=3)
    plain = make_training_env(run_cfg(slots=0), None, n_envs=2, seed=0)
    tagged = make_training_env(cfg, None, n_envs=2, seed=0)
    obs = tagged.reset()
    assert obs.shape[1] == plain.observation_space.shape[0] + 3
    np.testing.assert_array_equal(
        obs[:, -3:], [[1, 0, 0], [1, 0, 0]]
    )  # unknown -> slot 0
    masks = np.stack(tagged.env_method("action_masks"))
    assert masks.shape == (2, tagged.action_space.n) and masks.any(axis=1).all()
    stepped, _, _, _ = tagged.step(masks.argmax(axis=1))
    assert tagged.observation_space.contains(stepped[0])


def test_policy_trained_with_identity_is_evaluated_with_it() -> None:
    cfg = run_cfg(slots=3)
    trainer = LocalTrainer(make_training_env(cfg, None, 2, 0), cfg.policy, seed=0)
    trainer.fit(None, steps=128)
    results = evaluate(trainer.model, cfg, None, seeds=[1, 2])
    assert len(results) == 2 and all(
        np.isfinite(r["latency_after_ms"]) for r in results
    )


def test_identity_index_is_checked() -> None:
    with pytest.raises(
        ValueError, match=re.escape("identity: expected an index in [0, 3), got 3")
    ):
        with_identity(np.zeros(4), identity=3, slots=3)
