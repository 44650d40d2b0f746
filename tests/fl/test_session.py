"""The server's run folder: atomic records, checkpoints MaskablePPO opens, resume."""

from __future__ import annotations

import dataclasses
import json
import logging
import re
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from flwr.app import Error, Message, Metadata, MetricRecord, RecordDict
from sb3_contrib import MaskablePPO

from conf.schema import RunConfig
from fl_server import wire
from fl_server.config import to_run_config
from fl_server.session import FederationSession, ResumeMismatchError
from policies.params import flatten, get_weights

REGIONS = ["us-east", "eu-central", "asia-east"]


def session_for(cfg: RunConfig, out: Path, **federation: object) -> FederationSession:
    cfg = dataclasses.replace(
        cfg,
        federation=dataclasses.replace(
            cfg.federation, output_dir=str(out), **federation
        ),
    )
    return FederationSession(cfg, to_run_config(cfg), out, run_id=42)


def train_reply(node: int, region_index: int, seconds: float) -> Message:
    metadata = Metadata(
        run_id=42, message_id="", src_node_id=node, dst_node_id=0,
        reply_to_message_id=f"m{node}", group_id="1", created_at=time.time(),
        ttl=600.0, message_type="train",
    )  # fmt: skip
    metrics = MetricRecord(
        {"num-examples": 2048, "region-index": region_index, "train/seconds": seconds}
    )
    return Message(content=RecordDict({"metrics": metrics}), metadata=metadata)


def dead(node: int) -> Message:
    metadata = Metadata(
        run_id=42, message_id="", src_node_id=node, dst_node_id=0,
        reply_to_message_id=f"m{node}", group_id="1", created_at=time.time(),
        ttl=600.0, message_type="train",
    )  # fmt: skip
    return Message(error=Error(code=5, reason="Node Unavailable"), metadata=metadata)


@pytest.fixture(scope="module")
def cfg(tiny_cfg: Callable[..., RunConfig]) -> RunConfig:
    return tiny_cfg("federation.rounds=3", "train.baselines=[latency]")


def shifted(session: FederationSession, by: float) -> dict[str, np.ndarray]:
    return {k: v + by for k, v in session.weights.items()}


def test_a_round_is_recorded_checkpointed_and_committed(
    cfg: RunConfig, tmp_path: Path
) -> None:
    session = session_for(cfg, tmp_path)
    session.end_of_round(0, session.initial_arrays)  # baselines + initial policy
    session.round_started(1, [])
    session.train_replies(1, [train_reply(5, 0, 3.0), train_reply(6, 1, 4.5)])
    new = shifted(session, 0.01)
    session.end_of_round(1, wire.pack(new))

    state = json.loads((tmp_path / "state.json").read_text())
    assert state["last_round"] == 1 and state["rounds"] == 3
    model = MaskablePPO.load(tmp_path / "global_policy.zip")  # what serving opens
    np.testing.assert_allclose(
        flatten(get_weights(model.policy)), flatten(new), rtol=1e-6
    )
    assert json.loads((tmp_path / "global_policy.json").read_text())["round"] == 1
    rows = [
        json.loads(line)
        for line in (tmp_path / "metrics.jsonl").read_text().splitlines()
    ]
    evals = {
        (r["round"], r["policy"], r["region"])
        for r in rows
        if r["phase"] == "server-eval"
    }
    assert {(0, "latency", g) for g in REGIONS} | {
        (1, "global", g) for g in REGIONS
    } <= evals
    trained = [(r["region"], r["node"]) for r in rows if r["phase"] == "train"]
    assert trained == [("us-east", 5), ("eu-central", 6)]
    timing = next(r for r in rows if r["phase"] == "round")
    assert timing["fed/train_s"] == 4.5 and timing["fed/round_s"] > 0
    assert (
        (tmp_path / "metrics.csv").read_text().startswith("round,phase,policy,region")
    )
    assert not list(tmp_path.glob(".*"))  # no temp file left behind


def test_a_restarted_server_resumes_after_the_last_complete_round(
    cfg: RunConfig, tmp_path: Path
) -> None:
    first = session_for(cfg, tmp_path)
    first.end_of_round(0, first.initial_arrays)
    after_one = shifted(first, 0.02)
    first.end_of_round(1, wire.pack(after_one))
    first.rows.append(
        {"round": 2, "phase": "train", "policy": "local-update", "region": "us-east"}
    )
    first._flush()  # round 2 half done when the server died: rows written, no commit

    second = session_for(cfg, tmp_path)
    assert second.offset == 1 and second.remaining == 2 and second.absolute(1) == 2
    np.testing.assert_allclose(flatten(second.weights), flatten(after_one), rtol=1e-6)
    assert max(r["round"] for r in second.rows) == 1  # the uncommitted round is dropped
    assert second.end_of_round(0, second.initial_arrays) is None  # baselines not redone


def test_resume_refuses_another_experiment_and_names_what_differs(
    cfg: RunConfig, tmp_path: Path
) -> None:
    first = session_for(cfg, tmp_path)
    first.end_of_round(1, first.initial_arrays)
    longer = session_for(cfg, tmp_path, rounds=9)  # a bigger budget is fine
    assert longer.remaining == 8
    longer.end_of_round(0, longer.initial_arrays)  # the resumed run records its config
    written = json.loads((tmp_path / "config.json").read_text())
    assert written["federation.rounds"] == 9
    with pytest.raises(
        ResumeMismatchError, match=re.escape("(keys ['federation.local-steps'] differ)")
    ):
        session_for(cfg, tmp_path, local_steps=4096)
    with pytest.raises(
        FileExistsError,
        match=re.escape("holds a run up to round 1; set federation.resume=true"),
    ):
        session_for(cfg, tmp_path, resume=False)


def test_the_log_names_the_region_that_dropped(
    cfg: RunConfig, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    session = session_for(cfg, tmp_path, min_nodes=1)
    session.directory.by_node.update({5: "us-east", 6: "eu-central", 7: "asia-east"})
    session.round_started(2, [])
    session.sent[2] = {5, 6, 7}
    with caplog.at_level(logging.WARNING, logger="fl_server"):
        session.train_replies(2, [train_reply(5, 0, 1.0), dead(7)])
    assert (
        "round 2: asia-east (node 7) dropped out of train: Node Unavailable"
        in caplog.text
    )
    assert "round 2: eu-central (node 6) dropped out of train: no reply" in caplog.text
    dropped = [
        (r["region"], r["reason"]) for r in session.rows if r["phase"] == "dropped"
    ]
    assert [d[0] for d in dropped] == ["asia-east", "eu-central"]


def test_a_round_with_too_few_regions_stops_the_run_naming_why(
    cfg: RunConfig, tmp_path: Path
) -> None:
    session = session_for(cfg, tmp_path)  # min_nodes=2
    session.round_started(3, [])
    session.sent[3] = {5, 6}
    message = "round 3: 1 of 2 regions trained, fewer than federation.min_nodes=2"
    with pytest.raises(RuntimeError, match=re.escape(message)):
        session.train_replies(3, [train_reply(5, 0, 1.0), dead(6)])


class InnerGrid:
    """The Grid a PollingGrid wraps: ids in push order, then the replies."""

    def __init__(self, replies: list[Message]) -> None:
        self.replies = replies

    def push_messages(self, messages: list[Message]) -> list[str]:
        return [f"id{m.metadata.dst_node_id}" for m in messages]

    def pull_messages(self, message_ids: set[str]) -> list[Message]:
        return [
            r for r in self.replies if r.metadata.reply_to_message_id in message_ids
        ]


def instruction(node: int) -> Message:
    metadata = Metadata(
        run_id=42, message_id="", src_node_id=1, dst_node_id=node,
        reply_to_message_id="", group_id="2", created_at=time.time(), ttl=600.0,
        message_type="train",
    )  # fmt: skip
    return Message(content=RecordDict(), metadata=metadata)


def test_an_error_reply_written_by_the_superlink_is_pinned_on_its_node(
    cfg: RunConfig, tmp_path: Path
) -> None:
    """The SuperLink answers for a dead node with src_node_id=1.

    The message the error replies to is the only trace of which region failed.
    """
    from fl_server.grid import PollingGrid

    ok = train_reply(5, 0, 1.0)
    ok.metadata.__dict__["_reply_to_message_id"] = "id5"
    lost = dead(1)  # written by the SuperLink, not by node 7
    lost.metadata.__dict__["_reply_to_message_id"] = "id7"
    grid = PollingGrid(InnerGrid([ok, lost]), interval=0.01)  # type: ignore[arg-type]
    replies = list(grid.send_and_receive([instruction(5), instruction(7)], timeout=5))
    session = session_for(cfg, tmp_path, min_nodes=1)
    session.directory.grid = grid
    session.directory.by_node.update({5: "us-east", 7: "asia-east"})
    session.round_started(2, [instruction(5), instruction(7)])
    session.train_replies(2, replies)
    assert [
        (r["region"], r["node"]) for r in session.rows if r["phase"] == "dropped"
    ] == [("asia-east", 7)]
