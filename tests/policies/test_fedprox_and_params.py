"""FedProx's proximal term and the federated parameters: maths checked by hand."""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch

from envs import TwoTierEnvConfig, make_region_vec_env
from policies.config import PolicyConfig
from policies.factory import build_model
from policies.fedprox import proximal_penalty, proximal_term
from policies.local import LocalTrainer
from policies.params import (
    WeightsMismatchError,
    federated_names,
    flatten,
    get_weights,
    set_weights,
)

SMALL = PolicyConfig(net_arch=[16, 16], n_envs=4, n_steps=32, batch_size=64, n_epochs=2)


def vec_env(seed: int = 0):
    return make_region_vec_env(
        "small",
        "us-east",
        n_envs=4,
        seed=seed,
        config=TwoTierEnvConfig(episode_length=64),
    )


def test_proximal_gradient_matches_the_formula() -> None:
    model = build_model(vec_env(), SMALL, seed=0)
    policy = model.policy
    obs = torch.as_tensor(
        np.random.default_rng(0).random(
            (8, policy.observation_space.shape[0]), dtype=np.float32
        )
    )
    mu = 0.37

    def loss() -> torch.Tensor:
        values = policy.predict_values(obs)
        logits = policy.action_net(
            policy.mlp_extractor.forward_actor(policy.extract_features(obs))
        )
        return values.pow(2).mean() + logits.sin().sum()

    with proximal_term(policy, mu) as anchor:
        with torch.no_grad():  # move away from the anchor (the "global" weights)
            for p in policy.parameters():
                p.add_(0.05 * torch.randn_like(p))
        policy.zero_grad()
        loss().backward()
        with_term = {n: p.grad.detach().clone() for n, p in policy.named_parameters()}
        drift = {
            n: (p.detach() - anchor[n]).numpy() for n, p in policy.named_parameters()
        }
        penalty = proximal_penalty(policy, anchor, mu)
    policy.zero_grad()
    loss().backward()  # hooks removed: the plain gradient
    for name, p in policy.named_parameters():
        expected = (
            p.grad.numpy() + mu * drift[name]
        )  # d/dw (mu/2)||w - w0||^2 = mu (w - w0)
        np.testing.assert_allclose(
            with_term[name].numpy(), expected, rtol=1e-5, atol=1e-6
        )
    assert penalty == pytest.approx(
        0.5 * mu * sum(float((d**2).sum()) for d in drift.values()), rel=1e-5
    )


def test_mu_zero_is_exactly_plain_maskable_ppo() -> None:
    plain = build_model(vec_env(seed=3), SMALL, seed=3)
    plain.learn(total_timesteps=256)
    trainer = LocalTrainer(vec_env(seed=3), SMALL, seed=3)
    result = trainer.fit(None, steps=256, proximal_mu=0.0)
    expected = get_weights(plain.policy)
    assert list(result.weights) == list(expected)
    for name in expected:
        assert np.array_equal(result.weights[name], expected[name]), name


def test_a_seeded_round_does_not_depend_on_what_ran_before() -> None:
    def two_rounds(between) -> dict[str, np.ndarray]:
        trainer = LocalTrainer(vec_env(seed=5), SMALL, seed=5)
        start = get_weights(trainer.model.policy)
        first = trainer.fit(start, steps=256, seed=11).weights
        between(trainer)
        return trainer.fit(first, steps=256, seed=12).weights

    def other_work(trainer: LocalTrainer) -> None:
        """What a shared process does between two rounds of one region."""
        LocalTrainer(vec_env(seed=6), SMALL, seed=6).fit(None, steps=256)
        torch.rand(3)
        np.random.rand()
        for _ in range(7):  # the env moved on
            trainer.env.step(trainer.env.action_masks().argmax(axis=1))

    expected = two_rounds(lambda trainer: None)
    again = two_rounds(other_work)
    for name in expected:
        assert np.array_equal(again[name], expected[name]), name


def test_proximal_term_keeps_local_weights_near_the_global_ones() -> None:
    distances, terms = {}, {}
    for mu in (0.0, 5.0):
        trainer = LocalTrainer(vec_env(seed=4), SMALL, seed=4)
        start = get_weights(trainer.model.policy)
        result = trainer.fit(start, steps=512, proximal_mu=mu)
        distances[mu] = float(np.linalg.norm(flatten(result.weights) - flatten(start)))
        terms[mu] = result.metrics["train/proximal_term"]
        assert result.env_steps == 512
    assert 0 < distances[5.0] < distances[0.0]
    assert terms[0.0] == 0.0  # no term without mu, however far the weights moved
    assert terms[5.0] > 0.0  # the weights moved, so (mu/2)||w - w_global||^2 > 0
    assert terms[5.0] == pytest.approx(0.5 * 5.0 * distances[5.0] ** 2, rel=1e-4)


def test_weights_round_trip_in_a_fixed_named_order() -> None:
    model = build_model(vec_env(), SMALL, seed=0)
    weights = get_weights(model.policy)
    assert list(weights) == federated_names(model.policy)
    assert any(k.startswith("mlp_extractor.policy_net") for k in weights)  # actor
    assert any(k.startswith("value_net") for k in weights)  # critic
    other = build_model(vec_env(), SMALL, seed=1)
    set_weights(other.policy, weights)
    for name, value in get_weights(other.policy).items():
        assert np.array_equal(value, weights[name])


def test_strict_loading_names_the_key() -> None:
    model = build_model(vec_env(), SMALL, seed=0)
    weights = get_weights(model.policy)
    missing = dict(weights)
    del missing["value_net.bias"]
    with pytest.raises(
        WeightsMismatchError, match=re.escape("missing keys ['value_net.bias']")
    ):
        set_weights(model.policy, missing)
    extra = dict(weights) | {"optimizer.state": np.zeros(3)}
    with pytest.raises(
        WeightsMismatchError, match=re.escape("unexpected keys ['optimizer.state']")
    ):
        set_weights(model.policy, extra)
    wrong = dict(weights) | {"value_net.bias": np.zeros(2, dtype=np.float32)}
    with pytest.raises(
        WeightsMismatchError, match=re.escape("value_net.bias: expected (1,), got (2,)")
    ):
        set_weights(model.policy, wrong)
