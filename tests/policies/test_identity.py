"""The identity input: a cluster's one-hot id reaches training and evaluation alike."""

from __future__ import annotations

import re
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest

from envs.reach.config import RescheduleConfig
from envs.reach.formats import packaged_cluster
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


class Recorder:
    """Delegates to a policy (or picks the first valid action) and keeps its inputs."""

    def __init__(self, policy: Any = None) -> None:
        self.policy = policy
        self.observations: list[np.ndarray] = []
        self.masks: list[np.ndarray | None] = []

    def predict(
        self,
        observation: np.ndarray,
        state: Any = None,
        episode_start: Any = None,
        deterministic: bool = True,
        action_masks: np.ndarray | None = None,
    ) -> tuple[np.ndarray, Any]:
        self.observations.append(np.array(observation, copy=True))
        self.masks.append(None if action_masks is None else action_masks.copy())
        if self.policy is not None:
            return self.policy.predict(
                observation, deterministic=deterministic, action_masks=action_masks
            )
        assert action_masks is not None
        return action_masks.argmax(axis=1), None


def test_policy_trained_with_identity_is_evaluated_with_it() -> None:
    """The trained model receives its cluster's one-hot after the env's observation."""
    cluster = str(packaged_cluster())
    cfg = run_cfg(slots=3)
    cfg.federation.regions = ["a", cluster, "c"]  # the evaluated cluster is slot 1
    trainer = LocalTrainer(make_training_env(cfg, cluster, 2, 0), cfg.policy, seed=0)
    trainer.fit(None, steps=128)
    recorder = Recorder(trainer.model)
    results = evaluate(recorder, cfg, cluster, seeds=[1, 2])
    assert len(results) == 2
    width = trainer.model.observation_space.shape[0]
    for obs, masks in zip(recorder.observations, recorder.masks, strict=True):
        assert obs.shape == (2, width)
        np.testing.assert_array_equal(obs[:, -3:], [[0, 1, 0], [0, 1, 0]])
        assert masks is not None and masks.shape == (2, trainer.model.action_space.n)


def test_identity_is_appended_and_nothing_else_changes() -> None:
    """Same seeds and actions: the tagged observations are the plain ones + one-hot."""
    plain, tagged = Recorder(), Recorder()
    evaluate(plain, run_cfg(slots=0), None, seeds=[3, 4])
    evaluate(tagged, run_cfg(slots=3), None, seeds=[3, 4])
    assert len(plain.observations) == len(tagged.observations) > 10
    for bare, tag in zip(plain.observations, tagged.observations, strict=True):
        np.testing.assert_array_equal(tag[:, :-3], bare)
        np.testing.assert_array_equal(tag[:, -3:], [[1, 0, 0], [1, 0, 0]])  # None: 0
    for bare_mask, tag_mask in zip(plain.masks, tagged.masks, strict=True):
        np.testing.assert_array_equal(tag_mask, bare_mask)


def test_identity_index_is_checked() -> None:
    with pytest.raises(
        ValueError, match=re.escape("identity: expected an index in [0, 3), got 3")
    ):
        with_identity(np.zeros(4), identity=3, slots=3)
