"""The server's dual ascent on the tail-limit prices (``reward.limit_price_lr > 0``).

The update against its formula on hand-made replies; then a real federation on
Flower's Simulation Engine: the prices each round sends, the tallies the regions
return, the prices the checkpoint and the resume keep.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sb3_contrib import MaskablePPO

from conf.schema import RunConfig
from fl_server.limit_dual import OVER_PREFIX, REQUESTS_PREFIX, LimitDual
from scripts.benchmarks.quality_two_tier import checkpoint_reward
from scripts.federate import run

TYPES = ("web", "inference", "analytics", "personal-data")


def dual(lr: float = 8.0, share: float = 0.04) -> LimitDual:
    limits = np.array([0.17, 0.23, np.inf, 0.15])
    prices = np.array([16.0, 16.0, 0.0, 2.0])
    return LimitDual(list(TYPES), limits, prices, share, lr)


def reply(requests: list[float], over: list[float]) -> dict[str, float]:
    row = {REQUESTS_PREFIX + n: r for n, r in zip(TYPES, requests, strict=True)}
    row.update({OVER_PREFIX + n: o for n, o in zip(TYPES, over, strict=True)})
    return row


def test_the_prices_move_by_the_pooled_share_over_each_limit() -> None:
    update = dual()
    row = update.update(
        3,
        [
            reply([100, 50, 10, 0], [10, 1, 5, 0]),
            reply([300, 150, 30, 20], [10, 3, 5, 8]),
        ],
    )
    web = 20 / 400  # pooled over the regions, not a mean of their shares
    inference = 4 / 200
    personal = 8 / 20
    np.testing.assert_allclose(
        update.prices,
        [
            16 + 8 * (web / 0.04 - 1),
            16 + 8 * (inference / 0.04 - 1),
            0.0,  # no limit: never priced, whatever its tally
            2 + 8 * (personal / 0.04 - 1),
        ],
    )
    assert row["round"] == 3 and row["limit/share.web"] == pytest.approx(web)
    assert row["limit/price_trained.web"] == 16.0
    assert row["limit/requests.web"] == 400


def test_a_price_never_falls_below_zero_and_an_unseen_type_keeps_its_own() -> None:
    update = dual(lr=100.0)
    row = update.update(1, [reply([1000, 0, 10, 0], [0, 0, 0, 0])])
    assert update.prices.tolist() == [0.0, 16.0, 0.0, 2.0]
    assert np.isnan(row["limit/share.inference"])


def test_a_reply_without_the_tally_is_refused_naming_the_key() -> None:
    row = reply([1, 1, 1, 1], [0, 0, 0, 0])
    del row[OVER_PREFIX + "analytics"]
    with pytest.raises(ValueError, match=r"limit/over\.analytics"):
        dual().update(1, [row])
    bad = reply([1, -1, 1, 1], [0, 0, 0, 0])
    with pytest.raises(ValueError, match=r"limit/requests\.inference"):
        dual().update(1, [bad])


def test_resume_restores_the_prices_checked() -> None:
    update = dual()
    update.restore([1.0, 2.0, 0.0, 3.0])
    assert update.as_config() == [1.0, 2.0, 0.0, 3.0]
    with pytest.raises(ValueError, match="expected 4 finite prices"):
        update.restore([1.0, 2.0])


# ------------------------------------------------------------ a real federation

DUAL = (
    "env=two_tier_fpi_wait",
    "engine=simulation",
    "engine.ray_cpus=2",
    "+reward.limit_s={web: 0.05, inference: 0.1}",
    "+reward.limit_exceeded={web: 4.0, inference: 4.0}",
    "reward.limit_price_lr=2.0",
)


def test_a_federation_moves_the_prices_by_what_the_regions_count(
    tiny_cfg: Callable[..., RunConfig], tmp_path: Path
) -> None:
    """Flower's Simulation Engine, 2 rounds then a resumed third.

    Every round's prices follow from the tallies the regions replied (recomputed here
    from the train rows); the checkpoint holds the prices its policy trained at; a
    restarted server trains round 3 at the prices round 2 left.
    """
    folder = run(tiny_cfg(*DUAL), tmp_path / "run")
    state = json.loads((folder / "state.json").read_text())
    rows = read_jsonl(folder / "metrics.jsonl")
    moved = {r["round"]: r for r in rows if r["phase"] == "limit-prices"}
    assert sorted(moved) == [1, 2]
    trained_at = [4.0, 4.0, 0.0, 0.0]
    for server_round in (1, 2):
        replies = [
            r for r in rows if r["round"] == server_round and r["phase"] == "train"
        ]
        assert len(replies) == 3
        update = LimitDual(
            list(TYPES),
            np.array([0.05, 0.1, np.inf, np.inf]),
            np.array(trained_at),
            0.05,
            2.0,
        )
        update.update(server_round, replies)
        row = moved[server_round]
        assert [row[f"limit/price_trained.{n}"] for n in TYPES] == trained_at
        want = update.as_config()
        assert [row[f"limit/price.{n}"] for n in TYPES] == pytest.approx(want)
        assert want[:2] != trained_at[:2]  # the tallies moved the limited prices
        assert all(sum(r[f"limit/requests.{n}"] for r in replies) > 0 for n in TYPES)
        trained_at = want
    assert state["limit_prices"] == pytest.approx(trained_at)
    last_trained = [moved[2][f"limit/price_trained.{n}"] for n in TYPES]
    assert state["limit_prices_trained"] == pytest.approx(last_trained)
    saved = MaskablePPO.load(folder / "global_policy.zip", device="cpu")
    np.testing.assert_allclose(
        saved.policy.action_net.limit_weights.numpy(), last_trained, rtol=1e-6
    )

    reward = checkpoint_reward(str(folder / "global_policy.zip"))
    assert reward.limit_exceeded == pytest.approx(
        {"web": last_trained[0], "inference": last_trained[1]}
    )
    assert reward.limit_price_lr == 0.0  # a rule beside it prices them, fixed

    resumed = tiny_cfg(*DUAL, "federation.rounds=3", "federation.resume=true")
    run(resumed, folder)
    rows = read_jsonl(folder / "metrics.jsonl")
    third = next(r for r in rows if r["phase"] == "limit-prices" and r["round"] == 3)
    assert [third[f"limit/price_trained.{n}"] for n in TYPES] == pytest.approx(
        trained_at
    )


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line]


def test_a_client_refuses_bad_prices_naming_the_key() -> None:
    from fl_clients.trainer import RoundPlan

    plan = RoundPlan.from_config({"limit-prices": [1.0, 0.0]}, 64)
    assert plan.limit_prices == (1.0, 0.0)
    assert RoundPlan.from_config({}, 64).limit_prices is None
    with pytest.raises(ValueError, match="limit-prices"):
        RoundPlan.from_config({"limit-prices": [1.0, -2.0]}, 64)
    with pytest.raises(ValueError, match="limit-prices"):
        RoundPlan.from_config({"limit-prices": [float("nan")]}, 64)


def test_a_client_trains_at_the_prices_sent_and_replies_its_tally(
    tiny_cfg: Callable[..., RunConfig],
) -> None:
    """The ClientApp in-process: env reward and prior at the sent prices, counts back.

    The counts are those of the env the round trained on (its core's tally), so the
    server pools exactly what each region saw.
    """
    from fl_clients import trainer
    from fl_clients.client_app import make_app
    from fl_server.config import to_run_config
    from fl_server.evaluation import ServerEvaluator

    from .test_client import context, message

    cfg = tiny_cfg(*DUAL[:1], *DUAL[3:])
    initial = dict(ServerEvaluator(cfg, ["us-east"]).initial_weights())
    sent = [9.0, 0.5, 0.0, 0.0]
    trainer.forget()
    try:
        out = make_app(to_run_config(cfg))(
            message("train", initial, **{"server-round": 1, "limit-prices": sent}),
            context("asia-east"),
        )
        assert not out.has_error(), out.error.reason if out.has_error() else ""
        learner = trainer._LEARNERS[(7, "asia-east")]
        core = learner.trainer.env.core
        assert core.limit_weights.tolist() == sent
        prior = learner.trainer.model.policy.action_net.limit_weights
        assert prior.tolist() == sent
        metrics = out.content.metric_records["metrics"]
        for k, name in enumerate(TYPES):
            assert metrics[REQUESTS_PREFIX + name] == core.limit_tally[0, k]
            assert metrics[OVER_PREFIX + name] == core.limit_tally[1, k]
        assert sum(metrics[REQUESTS_PREFIX + n] for n in TYPES) > 0
        assert not core.count_limits  # counting stops with the round
    finally:
        trainer.forget()
