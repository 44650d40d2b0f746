"""In-process checks of the pieces: fast observations, network, configs, guard layer."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

import httpx
import numpy as np
import pytest
from sb3_contrib.common.maskable.utils import get_action_masks

from envs import TwoTierCore
from policies.checkpoint import load_checkpoint, load_metadata
from policies.runs import make_training_env
from serving.app import ENDPOINTS, create_app
from serving.errors import ServingError
from serving.metrics import ServingMetrics
from serving.model_store import ModelStore
from serving.network import PolicyNetwork
from serving.run_config import run_config_from_metadata
from serving.settings import ServeSettings
from serving.two_tier_obs import LiveObservationBatch
from tests.serving.helpers import (
    TINY_POLICY,
    observable,
    run_config,
    train_checkpoint,
    two_tier_request,
)


@pytest.mark.parametrize("load_input", [False, True])
@pytest.mark.parametrize("phase", ["lb", "scheduler"])
def test_batched_observations_equal_the_envs_observe(
    phase: str, load_input: bool
) -> None:
    """The vectorised writer gives TwoTierCore.observe's observation and mask."""
    cfg = run_config("two_tier", two_tier={"load_input": load_input})
    batch = LiveObservationBatch(TwoTierCore(cfg.scenario, 128, None, cfg.two_tier))
    reference = TwoTierCore(cfg.scenario, 1, None, cfg.two_tier)
    world = reference.world
    rng = np.random.default_rng(7)
    requests = [two_tier_request(world, rng, rates=load_input) for _ in range(100)]
    for r in requests:  # the API hands the builder parsed datetimes
        from datetime import datetime

        r["time"] = datetime.fromisoformat(r["time"])
    regions = [str(rng.choice(world.region_ids)) for _ in requests]
    selected = regions if phase == "scheduler" else None
    obs, mask, _ = batch.build(requests, selected)
    for i, r in enumerate(requests):
        plain = {**r, "time": r["time"].isoformat()}
        want_obs, want_mask = reference.observe(
            0, observable(plain, selected and regions[i])
        )
        np.testing.assert_array_equal(obs[i], want_obs)
        np.testing.assert_array_equal(mask[i], want_mask)


def test_region_rates_are_required_by_a_load_reading_policy() -> None:
    cfg = run_config("two_tier", two_tier={"load_input": True})
    batch = LiveObservationBatch(TwoTierCore(cfg.scenario, 8, None, cfg.two_tier))
    world = batch.core.world
    rng = np.random.default_rng(8)
    good = [two_tier_request(world, rng, rates=True) for _ in range(3)]
    for r in good:
        r["time"] = None
    assert batch.build(good)[0].shape[0] == 3
    cases = {
        "requests[1].region_rates: expected the regions' arrival rates": None,
        "requests[1].region_rates.mars: expected one of": {"mars": 1.0},
    }
    for message, rates in cases.items():
        bad = dict(good[1])
        if rates is None:
            del bad["region_rates"]
        else:
            bad["region_rates"] = rates
        with pytest.raises(ServingError, match=re.escape(message)) as caught:
            batch.build([good[0], bad, good[2]], prefix="requests")
        assert caught.value.status == 422


@pytest.mark.parametrize("engine", ["numpy", "torch"])
def test_network_equals_predict(checkpoints: dict[str, Path], engine: str) -> None:
    model = load_checkpoint(checkpoints["both"])
    cfg = run_config_from_metadata(load_metadata(checkpoints["both"]))
    core = TwoTierCore(cfg.scenario, 256, None, cfg.two_tier)
    core.reset(seed=0)
    rng = np.random.default_rng(0)
    for _ in range(20):  # states of a running simulation, both phases
        core.step(np.array([rng.choice(np.flatnonzero(m)) for m in core.mask]))
    network = PolicyNetwork(model, engine=engine)
    assert network.engine == engine
    choices = network.decide(core.obs, core.mask)
    expected, _ = model.predict(core.obs, action_masks=core.mask, deterministic=True)
    np.testing.assert_array_equal(choices.actions, expected)
    assert core.mask[np.arange(256), choices.actions].all()
    np.testing.assert_allclose(choices.probabilities.sum(axis=1), 1.0, atol=1e-5)
    assert (choices.probabilities[~core.mask] == 0).all()


def test_sampling_only_picks_allowed_actions(checkpoints: dict[str, Path]) -> None:
    model = load_checkpoint(checkpoints["both"])
    obs = np.zeros((2000, model.observation_space.shape[0]), dtype=np.float32)
    masks = np.zeros((2000, model.action_space.n), dtype=bool)
    masks[:, [1, 3]] = True
    for engine in ("numpy", "torch"):
        network = PolicyNetwork(model, deterministic=False, seed=1, engine=engine)
        actions = network.decide(obs, masks).actions
        assert set(actions.tolist()) == {1, 3}


def test_flat_federation_config_reads_like_the_nested_one() -> None:
    """The federation's flat run-config keys rebuild the same RunConfig."""
    fl_config = pytest.importorskip("fl_server.config")
    cfg = run_config("reschedule", two_tier={"learn": "lb"})
    flat = fl_config.to_run_config(cfg)
    assert run_config_from_metadata({"config": flat}) == cfg


def test_metadata_without_config_is_refused() -> None:
    with pytest.raises(ValueError, match=re.escape("metadata config: expected the")):
        run_config_from_metadata({"round": 3})


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (
            {"host": "0.0.0.0"},
            "--host 0.0.0.0: binding beyond loopback needs an API key",
        ),
        ({"api_key": "short"}, "SERVING_API_KEY: expected a key of at least 16"),
        ({"port": 0}, "--port: expected 1..65535, got 0"),
    ],
)
def test_unsafe_settings_are_refused(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        ServeSettings(checkpoint=Path("x.zip"), **kwargs)


def test_api_key_and_body_limit(checkpoints: dict[str, Path]) -> None:
    key = "k" * 32
    settings = ServeSettings(
        checkpoint=checkpoints["both"],
        host="::1",
        api_key=key,
        max_body_bytes=4096,
        reload_interval_s=0,
    )
    metrics = ServingMetrics(ENDPOINTS)
    store = ModelStore(settings, metrics)
    store.load_initial()
    route = {"request_type": "web", "origin": "us-east"}
    app = create_app(store, settings, metrics)
    transport = httpx.ASGITransport(app=app)

    async def check() -> None:
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
            assert (await c.get("/healthz")).status_code == 200  # probes stay open
            assert (await c.get("/readyz")).status_code == 200
            refused = await c.post("/v1/route", json=route)
            assert refused.status_code == 401
            assert refused.json()["message"].startswith("X-API-Key: expected")
            wrong = await c.post(
                "/v1/route", json=route, headers={"X-API-Key": "x" * 32}
            )
            assert wrong.status_code == 401
            assert (await c.get("/metrics")).status_code == 401
            ok = await c.post("/v1/route", json=route, headers={"X-API-Key": key})
            assert ok.status_code == 200
            bearer = {"Authorization": f"Bearer {key}"}
            assert (
                await c.post("/v1/route", json=route, headers=bearer)
            ).status_code == 200
            big = await c.post(
                "/v1/route", content=b" " * 5000, headers={"X-API-Key": key}
            )
            assert big.status_code == 413
            assert (
                big.json()["message"] == "body: expected at most 4096 bytes, got 5000"
            )

    asyncio.run(check())


def test_strict_deployable_refuses_an_empty_list(checkpoints: dict[str, Path]) -> None:
    """``--strict-deployable`` restores the 422; the default lets the pod stay."""
    from envs.reach.env import ReachRescheduleEnv
    from serving.deciders import RescheduleDecider
    from serving.errors import ServingError
    from tests.serving.helpers import reach_body

    path = checkpoints["reschedule"]
    cfg = run_config_from_metadata(load_metadata(path))
    network = PolicyNetwork(load_checkpoint(path), deterministic=True, seed=0)
    body = reach_body(
        ReachRescheduleEnv(config=cfg.reschedule), 0, np.random.default_rng(0)
    )
    pod = next(iter(body["pod_deployable"]))
    body["pod_deployable"] = {pod: []}
    lenient = RescheduleDecider(cfg, network).decide(body)
    assert lenient.decision.is_stop
    with pytest.raises(ServingError) as refused:
        RescheduleDecider(cfg, network, strict_deployable=True).decide(body)
    assert refused.value.status == 422
    assert str(refused.value).startswith(
        f"pod_deployable.{pod}: expected at least one node name"
    )


def test_api_key_from_the_variable_or_a_mounted_secret_file(tmp_path: Path) -> None:
    from serving.settings import api_key_from_environment

    secret = tmp_path / "key"
    secret.write_text("s" * 32 + "\n")
    assert api_key_from_environment({}) is None
    assert api_key_from_environment({"SERVING_API_KEY": "a" * 32}) == "a" * 32
    assert api_key_from_environment({"SERVING_API_KEY_FILE": str(secret)}) == "s" * 32
    both = {"SERVING_API_KEY": "a" * 32, "SERVING_API_KEY_FILE": str(secret)}
    assert api_key_from_environment(both) == "a" * 32  # the variable wins
    with pytest.raises(ValueError, match=r"SERVING_API_KEY_FILE: cannot read"):
        api_key_from_environment({"SERVING_API_KEY_FILE": str(tmp_path / "none")})


@pytest.mark.parametrize("network", ["greedy_mlp", "reach_scorer"])
def test_rescheduling_networks_of_the_shipped_config_serve_as_they_predict(
    tmp_path: Path, network: str
) -> None:
    """The shipped env=reschedule trains greedy_mlp: the server must load and run it.

    Its head adds ``beta * gain`` to the MLP's logits, which the numpy fast path
    cannot express: loading used to fail (``_WithGains`` has no ``policy_net``).
    """
    cfg = run_config(
        "reschedule",
        reschedule={"move_gains": True, "reward_unit": "qos"},
        policy={**TINY_POLICY, "network": network},
    )
    model = load_checkpoint(train_checkpoint(tmp_path / "p.zip", cfg, seed=0))
    network_fn = PolicyNetwork(model)
    assert network_fn.engine == "torch"
    env = make_training_env(cfg, None, 8, 3)
    obs = env.reset()
    masks = get_action_masks(env)
    choices = network_fn.decide(obs, masks)
    expected, _ = model.predict(obs, action_masks=masks, deterministic=True)
    np.testing.assert_array_equal(choices.actions, expected)
    assert masks[np.arange(len(masks)), choices.actions].all()
