"""Strategies from config, and their aggregation maths against numpy by hand.

Replies are real Flower ``Message``/``RecordDict`` envelopes (built with public
``Metadata``); only the envelopes are stand-ins, never the maths.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from flwr.app import (
    Array,
    ArrayRecord,
    ConfigRecord,
    Error,
    Message,
    Metadata,
    MetricRecord,
    RecordDict,
)
from flwr.serverapp.strategy import FedAvg, FedMedian, FedProx, FedTrimmedAvg

from conf.schema import RunConfig
from fl_server.limit_dual import PRICES_KEY
from fl_server.strategies import Centralized, LocalOnly, make_strategy


class RecordingSession:
    """Stand-in for FederationSession: records what the strategy reports."""

    def __init__(self, cfg: RunConfig, offset: int = 0) -> None:
        self.cfg, self.offset = cfg, offset
        self.regions = ["us-east", "eu-central", "asia-east"]
        self.train: list[tuple[int, list[Message]]] = []
        self.started: list[tuple[int, list[Message]]] = []
        self.directory = self
        self.personal: dict[int, ArrayRecord] = {}
        self.layout_digest = "0123456789abcdef"
        self.next_prices: list[float] | None = None
        self.trained_prices: list[float] | None = None

    def limit_prices(self) -> list[float] | None:
        return self.next_prices

    def refresh(self, grid: Any, timeout: float) -> None:
        """No handshake needed here."""

    def absolute(self, server_round: int) -> int:
        return self.offset + server_round

    def train_replies(self, server_round: int, replies: list[Message]) -> list[Message]:
        self.train.append((server_round, replies))
        return replies

    def round_started(self, server_round: int, messages: list[Message]) -> None:
        self.started.append((server_round, messages))

    def personal_arrays(self, node_id: int) -> ArrayRecord | None:
        return self.personal.get(node_id)


def reply(
    node: int, arrays: dict[str, np.ndarray], examples: int, **metrics: float
) -> Message:
    metadata = Metadata(
        run_id=1, message_id="", src_node_id=node, dst_node_id=0,
        reply_to_message_id=f"m{node}", group_id="1", created_at=time.time(),
        ttl=600.0, message_type="train",
    )  # fmt: skip
    content = RecordDict(
        {
            "arrays": ArrayRecord(array_dict={k: Array(v) for k, v in arrays.items()}),
            "metrics": MetricRecord(
                {"num-examples": examples, "region-index": node, **metrics}
            ),
        }
    )
    return Message(content=content, metadata=metadata)


def failure(node: int) -> Message:
    metadata = Metadata(
        run_id=1, message_id="", src_node_id=node, dst_node_id=0,
        reply_to_message_id=f"m{node}", group_id="1", created_at=time.time(),
        ttl=600.0, message_type="train",
    )  # fmt: skip
    return Message(error=Error(code=5, reason="Node Unavailable"), metadata=metadata)


RNG = np.random.default_rng(7)
UPDATES = [
    {"pi.weight": RNG.normal(size=(3, 4)).astype(np.float32), "vf.bias": RNG.normal(size=2).astype(np.float32)}
    for _ in range(3)
]  # fmt: skip
STEPS = [2048, 4096, 10240]


@pytest.mark.parametrize(
    ("name", "flower_class"),
    [("fedavg", FedAvg), ("fedprox", FedProx), ("fedmedian", FedMedian),
     ("fedtrimmedavg", FedTrimmedAvg), ("local", FedAvg), ("centralized", FedAvg)],
)  # fmt: skip
def test_each_strategy_is_flowers_own_class(
    tiny_cfg: Callable[..., RunConfig], name: str, flower_class: type
) -> None:
    cfg = tiny_cfg(f"strategy={name}")
    strategy = make_strategy(cfg, RecordingSession(cfg))  # type: ignore[arg-type]
    assert isinstance(strategy, flower_class)
    assert strategy.weighted_by_key == "num-examples"  # type: ignore[attr-defined]
    if name == "fedprox":
        assert strategy.proximal_mu == cfg.strategy.proximal_mu > 0  # type: ignore[attr-defined]
    if name == "fedtrimmedavg":
        assert strategy.beta == cfg.strategy.trimmed_beta  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (("strategy=fedprox", "strategy.proximal_mu=0"),
         "strategy.proximal_mu: expected > 0 for fedprox, got 0.0"),
        (("strategy=fedavg", "strategy.proximal_mu=0.1"),
         "strategy.proximal_mu: only fedprox sends it; got 0.1 with strategy fedavg"),
        (("strategy=fedtrimmedavg", "strategy.trimmed_beta=0.5"),
         "strategy.trimmed_beta: expected a value in [0, 0.5), got 0.5"),
        (("federation.min_nodes=0",), "federation.min_nodes: expected >= 1, got 0"),
    ],
)  # fmt: skip
def test_bad_strategy_settings_name_the_field(
    tiny_cfg: Callable[..., RunConfig], overrides: tuple[str, ...], message: str
) -> None:
    cfg = tiny_cfg(*overrides)
    with pytest.raises(ValueError, match=re.escape(message)):
        make_strategy(cfg, RecordingSession(cfg))  # type: ignore[arg-type]


def test_fedavg_is_the_env_step_weighted_mean(
    tiny_cfg: Callable[..., RunConfig],
) -> None:
    """Prepare known vectors and weights; expected = sum_k n_k w_k / sum_k n_k."""
    cfg = tiny_cfg("strategy=fedavg")
    session = RecordingSession(cfg, offset=4)
    strategy = make_strategy(cfg, session)  # type: ignore[arg-type]
    replies = [
        reply(i, UPDATES[i], STEPS[i], **{"train/fps": 10.0 * (i + 1)})
        for i in range(3)
    ]
    arrays, metrics = strategy.aggregate_train(1, replies)
    assert arrays is not None and metrics is not None
    total = sum(STEPS)
    for key in UPDATES[0]:
        expected = (
            sum(
                n * u[key].astype(np.float64)
                for n, u in zip(STEPS, UPDATES, strict=True)
            )
            / total
        )
        np.testing.assert_allclose(arrays[key].numpy(), expected, rtol=1e-6, atol=1e-6)
    assert metrics["train/fps"] == pytest.approx(
        sum(n * 10.0 * (i + 1) for i, n in enumerate(STEPS)) / total
    )
    assert "region-index" not in metrics and "num-examples" not in metrics
    assert session.train[0][0] == 5  # absolute round of a run resumed after round 4


def test_a_failed_node_is_left_out_of_the_mean_and_reported(
    tiny_cfg: Callable[..., RunConfig],
) -> None:
    cfg = tiny_cfg("strategy=fedavg")
    session = RecordingSession(cfg)
    strategy = make_strategy(cfg, session)  # type: ignore[arg-type]
    replies = [
        reply(0, UPDATES[0], STEPS[0]),
        failure(1),
        reply(2, UPDATES[2], STEPS[2]),
    ]
    arrays, _ = strategy.aggregate_train(1, replies)
    assert arrays is not None
    expected = (STEPS[0] * UPDATES[0]["vf.bias"] + STEPS[2] * UPDATES[2]["vf.bias"]) / (
        STEPS[0] + STEPS[2]
    )
    np.testing.assert_allclose(arrays["vf.bias"].numpy(), expected, rtol=1e-6)
    assert [m.has_error() for m in session.train[0][1]] == [False, True, False]


def test_fedmedian_and_fedtrimmedavg_are_coordinate_wise(
    tiny_cfg: Callable[..., RunConfig],
) -> None:
    stacked = np.stack([u["pi.weight"] for u in UPDATES])
    cfg = tiny_cfg("strategy=fedmedian")
    median, _ = make_strategy(cfg, RecordingSession(cfg)).aggregate_train(  # type: ignore[arg-type]
        1, [reply(i, UPDATES[i], STEPS[i]) for i in range(3)]
    )
    assert median is not None
    np.testing.assert_allclose(
        median["pi.weight"].numpy(), np.median(stacked, axis=0), rtol=1e-6
    )
    # 4 replies, beta 0.25: drop the lowest and highest value of each coordinate
    four = [*UPDATES, {k: v + 1.0 for k, v in UPDATES[0].items()}]
    cfg = tiny_cfg("strategy=fedtrimmedavg", "strategy.trimmed_beta=0.25")
    trimmed, _ = make_strategy(cfg, RecordingSession(cfg)).aggregate_train(  # type: ignore[arg-type]
        1, [reply(i, four[i], 1) for i in range(4)]
    )
    assert trimmed is not None
    ordered = np.sort(np.stack([u["pi.weight"] for u in four]), axis=0)
    np.testing.assert_allclose(
        trimmed["pi.weight"].numpy(), ordered[1:3].mean(axis=0), rtol=1e-6
    )


def test_local_only_aggregates_nothing(tiny_cfg: Callable[..., RunConfig]) -> None:
    cfg = tiny_cfg("strategy=local")
    session = RecordingSession(cfg)
    strategy = make_strategy(cfg, session)  # type: ignore[arg-type]
    arrays, metrics = strategy.aggregate_train(
        1, [reply(i, UPDATES[i], STEPS[i]) for i in range(3)]
    )
    assert arrays is None and metrics is not None
    assert isinstance(strategy, LocalOnly) and strategy.mode == "local"


class FakeGrid:
    """Just enough Grid for ``configure_train``: three connected nodes."""

    def get_node_ids(self) -> list[int]:
        return [11, 12, 13]


@pytest.fixture
def task_identity(monkeypatch: pytest.MonkeyPatch) -> None:
    """Server-side Messages need the task identity a running ServerApp has."""
    from flwr.supercore.task_identity import TaskIdentity  # private: test-only

    for attr, value in (("_run_id", 1), ("_node_id", 1), ("_task_id", 1)):
        monkeypatch.setattr(TaskIdentity, attr, value)


@pytest.mark.usefixtures("task_identity")
def test_configure_train_sends_round_mode_and_fedprox_mu(
    tiny_cfg: Callable[..., RunConfig],
) -> None:
    cfg = tiny_cfg("strategy=fedprox", "strategy.proximal_mu=0.05")
    session = RecordingSession(cfg, offset=2)
    strategy = make_strategy(cfg, session)  # type: ignore[arg-type]
    initial = ArrayRecord(array_dict={k: Array(v) for k, v in UPDATES[0].items()})
    messages = list(
        strategy.configure_train(
            1, initial, ConfigRecord({"local-steps": 2048}), FakeGrid()
        )
    )  # type: ignore[arg-type]
    assert sorted(m.metadata.dst_node_id for m in messages) == [11, 12, 13]
    config = messages[0].content.config_records["config"]
    assert config["server-round"] == 3 and config["mode"] == "federated"
    assert config["proximal-mu"] == 0.05 and config["local-steps"] == 2048
    assert session.started[0][0] == 3
    assert PRICES_KEY not in config  # fixed prices: nothing to send


@pytest.mark.usefixtures("task_identity")
def test_moving_limit_prices_go_out_with_train_and_evaluate_messages(
    tiny_cfg: Callable[..., RunConfig],
) -> None:
    """Train: the prices the next round trains at; evaluate: the policy's own."""
    cfg = tiny_cfg("strategy=fedavg")
    session = RecordingSession(cfg)
    session.next_prices, session.trained_prices = [3.0, 0.0], [2.0, 1.0]
    strategy = make_strategy(cfg, session)  # type: ignore[arg-type]
    initial = ArrayRecord(array_dict={k: Array(v) for k, v in UPDATES[0].items()})
    train = list(
        strategy.configure_train(
            1, initial, ConfigRecord({"local-steps": 2048}), FakeGrid()
        )
    )  # type: ignore[arg-type]
    assert all(
        m.content.config_records["config"][PRICES_KEY] == [3.0, 0.0] for m in train
    )
    evaluate = list(strategy.configure_evaluate(1, initial, ConfigRecord(), FakeGrid()))  # type: ignore[arg-type]
    assert evaluate and all(
        m.content.config_records["config"][PRICES_KEY] == [2.0, 1.0] for m in evaluate
    )


@pytest.mark.usefixtures("task_identity")
def test_centralized_trains_one_node_with_the_whole_budget(
    tiny_cfg: Callable[..., RunConfig],
) -> None:
    cfg = tiny_cfg("strategy=centralized")
    session = RecordingSession(cfg)
    strategy = make_strategy(cfg, session)  # type: ignore[arg-type]
    assert isinstance(strategy, Centralized)
    shared = ConfigRecord({"local-steps": 2048})
    initial = ArrayRecord(array_dict={k: Array(v) for k, v in UPDATES[0].items()})
    messages = list(strategy.configure_train(1, initial, shared, FakeGrid()))  # type: ignore[arg-type]
    assert len(messages) == 1 and session.started[0][1] == messages
    config = messages[0].content.config_records["config"]
    assert config["local-steps"] == 3 * 2048 and config["mode"] == "centralized"
    assert shared["local-steps"] == 2048  # the per-region budget is left as it was


@pytest.mark.usefixtures("task_identity")
def test_local_only_hands_each_node_its_own_policy(
    tiny_cfg: Callable[..., RunConfig],
) -> None:
    cfg = tiny_cfg("strategy=local")
    session = RecordingSession(cfg)
    own = ArrayRecord(array_dict={k: Array(v) for k, v in UPDATES[1].items()})
    session.personal[12] = own
    strategy = make_strategy(cfg, session)  # type: ignore[arg-type]
    initial = ArrayRecord(array_dict={k: Array(v) for k, v in UPDATES[0].items()})
    messages = {
        m.metadata.dst_node_id: m
        for m in strategy.configure_train(
            1, initial, ConfigRecord({"local-steps": 8}), FakeGrid()
        )  # type: ignore[arg-type]
    }
    np.testing.assert_array_equal(
        messages[12].content.array_records["arrays"]["vf.bias"].numpy(),
        UPDATES[1]["vf.bias"],
    )
    np.testing.assert_array_equal(
        messages[11].content.array_records["arrays"]["vf.bias"].numpy(),
        UPDATES[0]["vf.bias"],
    )
