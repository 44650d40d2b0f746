"""The ClientApp, called in-process with real Messages: identity, reply contract, state.

What is checked is the client's own logic: which region it is, what a reply must
carry for Flower to aggregate it, and that the local optimizer state survives a new
process through ``context.state`` (Flower's default isolation starts one per message).
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator

import numpy as np
import pytest
import torch
from flwr.app import ConfigRecord, Context, Message, Metadata, RecordDict
from flwr.serverapp.strategy.strategy_utils import validate_message_reply_consistency

from conf.schema import RunConfig
from fl_clients import trainer
from fl_clients.client_app import make_app
from fl_server import wire
from fl_server.config import to_run_config
from fl_server.evaluation import ServerEvaluator
from policies.params import flatten

REGIONS = ["us-east", "eu-central", "asia-east"]


@pytest.mark.parametrize(
    ("node_config", "expected"),
    [
        ({"region": "eu-central"}, "eu-central"),
        ({"partition-id": 2, "num-partitions": 3}, "asia-east"),
    ],
)
def test_a_client_knows_its_region(node_config: dict, expected: str) -> None:
    assert trainer.resolve_region(node_config, REGIONS) == expected


@pytest.mark.parametrize(
    ("node_config", "message"),
    [
        ({"region": "mars-1"},
         "node config region: expected one of ['us-east', 'eu-central', 'asia-east'] (federation.regions), got 'mars-1'"),
        ({"partition-id": 3, "num-partitions": 4},
         "simulation: expected one virtual SuperNode per region (3: ['us-east', 'eu-central', 'asia-east']), got partition 3 of 4"),
        ({}, "node config: expected 'region'"),
    ],
)  # fmt: skip
def test_a_client_without_a_valid_region_says_why(
    node_config: dict, message: str
) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        trainer.resolve_region(node_config, REGIONS)


def test_round_plan_checks_the_servers_keys() -> None:
    plan = trainer.RoundPlan.from_config({"server-round": 3, "local-steps": 512}, 99)
    assert plan == trainer.RoundPlan(3, 512, 0.0, "federated")
    with pytest.raises(
        ValueError,
        match=re.escape("config proximal-mu: expected a finite mu >= 0, got -1.0"),
    ):
        trainer.RoundPlan.from_config({"proximal-mu": -1.0}, 99)
    with pytest.raises(ValueError, match=re.escape("config mode: expected one of")):
        trainer.RoundPlan.from_config({"mode": "greedy"}, 99)


# ---------------------------------------------------------------- in-process app


@pytest.fixture(scope="module")
def cfg() -> RunConfig:
    from fl_server.config import compose

    return compose(
        [
            "federation=tiny",
            "train.eval_decisions=100",
            "federation.client_eval_seeds=[2000]",
        ]
    )


@pytest.fixture(scope="module")
def initial(cfg: RunConfig) -> dict[str, np.ndarray]:
    return dict(ServerEvaluator(cfg, REGIONS).initial_weights())


@pytest.fixture(autouse=True)
def fresh_cache() -> Iterator[None]:
    trainer.forget()
    yield
    trainer.forget()


def message(kind: str, weights: dict[str, np.ndarray], **config: object) -> Message:
    metadata = Metadata(
        run_id=7, message_id=f"{kind}-{time.time_ns()}", src_node_id=1, dst_node_id=21,
        reply_to_message_id="", group_id="1", created_at=time.time(), ttl=600.0,
        message_type=kind,
    )  # fmt: skip
    content = RecordDict(
        {
            "arrays": wire.pack(weights),
            "config": ConfigRecord(dict(config)),
        }
    )
    return Message(content=content, metadata=metadata)


def context(region: str) -> Context:
    return Context(
        run_id=7,
        node_id=21,
        node_config={"region": region},
        state=RecordDict(),
        run_config={},
    )


def test_train_reply_follows_the_contract(cfg: RunConfig, initial: dict) -> None:
    app = make_app(to_run_config(cfg))
    replies = []
    for region in ("us-east", "asia-east"):
        out = app(
            message("train", initial, **{"server-round": 1, "local-steps": 2048}),
            context(region),
        )
        assert not out.has_error(), out.error.reason if out.has_error() else ""
        replies.append(out.content)
    validate_message_reply_consistency(replies, "num-examples", check_arrayrecord=True)
    for content in replies:
        assert list(content.array_records) == ["arrays"] and list(
            content.metric_records
        ) == ["metrics"]
        assert not content.config_records
        metrics = content.metric_records["metrics"]
        assert metrics["num-examples"] == 2048  # env steps collected
        assert set(metrics) == {"num-examples", "region-index", *trainer.TRAIN_METRICS}
        assert list(content["arrays"].keys()) == [wire.ARRAY_KEY]
        # the policy, nothing else: one packed vector of exactly its parameters
        packed = content["arrays"][wire.ARRAY_KEY].numpy()
        assert packed.size == sum(v.size for v in initial.values())
    assert replies[0].metric_records["metrics"]["region-index"] == 0
    assert replies[1].metric_records["metrics"]["region-index"] == 2


def test_optimizer_state_survives_a_new_process_through_context_state(
    cfg: RunConfig, initial: dict
) -> None:
    app = make_app(to_run_config(cfg))
    ctx = context("eu-central")
    app(message("train", initial, **{"server-round": 1, "local-steps": 2048}), ctx)
    saved = trainer._LEARNERS[
        (7, "eu-central")
    ].trainer.model.policy.optimizer.state_dict()
    saved_state = {
        k: {n: t.clone() for n, t in v.items()} for k, v in saved["state"].items()
    }
    trainer.forget()  # what a fresh ClientApp process starts with
    learner = trainer.learner_for(cfg, 7, "eu-central", 2)
    trainer._restore_state(ctx.state, "eu-central", learner)
    restored = learner.trainer.model.policy.optimizer.state_dict()["state"]
    assert learner.stamp == 1 and learner.trainer.model.num_timesteps == 2048
    for index, tensors in saved_state.items():
        for name, tensor in tensors.items():
            torch.testing.assert_close(restored[index][name], tensor)


def test_weights_that_do_not_fit_are_refused_naming_the_layout(
    cfg: RunConfig, initial: dict
) -> None:
    """Names do not travel (one packed vector), so the length and digest are checked."""
    app = make_app(to_run_config(cfg))
    layout = wire.layout_of(initial)
    smaller = dict(list(initial.items())[:-1])  # another architecture: a tensor less
    with pytest.raises(
        ValueError,
        match=re.escape(f"arrays.policy: expected {wire.size(layout)} parameters ("),
    ):
        app(
            message("train", smaller, **{"server-round": 1, "local-steps": 2048}),
            context("us-east"),
        )
    other = wire.digest(wire.layout_of(smaller))
    with pytest.raises(
        ValueError, match=re.escape(f"the sender's policy layout ({other}) differs")
    ):
        app(
            message(
                "train",
                initial,
                **{"server-round": 1, "local-steps": 2048, "layout": other},
            ),
            context("us-east"),
        )


def test_local_only_starts_from_its_own_policy(cfg: RunConfig, initial: dict) -> None:
    app = make_app(to_run_config(cfg))
    ctx = context("us-east")
    first = app(
        message(
            "train",
            initial,
            **{"server-round": 1, "local-steps": 2048, "mode": "local"},
        ),
        ctx,
    )
    layout = wire.layout_of(initial)
    own = wire.unpack(first.content.array_records["arrays"], layout)
    np.testing.assert_array_equal(
        wire.unpack(ctx.state.array_records["policy.us-east"], layout)[
            "action_net.bias"
        ],
        own["action_net.bias"],
    )
    zeros = {
        k: np.zeros_like(v) for k, v in initial.items()
    }  # what a server might send
    second = app(
        message(
            "train", zeros, **{"server-round": 2, "local-steps": 2048, "mode": "local"}
        ),
        ctx,
    )
    after = flatten(wire.unpack(second.content.array_records["arrays"], layout))
    # one round moves the policy a little: it started from `own`, not from zeros
    assert np.linalg.norm(after - flatten(own)) < 0.2 * np.linalg.norm(after)


def test_fedprox_term_is_applied_when_the_server_sends_mu(
    cfg: RunConfig, initial: dict
) -> None:
    app = make_app(to_run_config(cfg))
    plain = app(
        message("train", initial, **{"server-round": 1, "local-steps": 2048}),
        context("us-east"),
    )
    trainer.forget()
    prox = app(
        message(
            "train",
            initial,
            **{"server-round": 1, "local-steps": 2048, "proximal-mu": 0.5},
        ),
        context("us-east"),
    )
    assert plain.content.metric_records["metrics"]["train/proximal_term"] == 0.0
    assert prox.content.metric_records["metrics"]["train/proximal_term"] > 0.0


def test_evaluate_reply_carries_decisions_and_eval_metrics(
    cfg: RunConfig, initial: dict
) -> None:
    app = make_app(to_run_config(cfg))
    out = app(message("evaluate", initial, **{"server-round": 1}), context("asia-east"))
    assert not out.content.array_records and list(out.content.metric_records) == [
        "metrics"
    ]
    metrics = out.content.metric_records["metrics"]
    assert metrics["num-examples"] == 100 and metrics["region-index"] == 2
    assert {
        "eval/mean_reward",
        "eval/latency_p95_ms",
        "eval/slo_violation_rate",
    } <= set(metrics)
