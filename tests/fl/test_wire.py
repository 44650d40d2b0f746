"""Weights travel packed: one vector, unpacked by the receiver's own layout."""

from __future__ import annotations

import re
import time
from collections import OrderedDict

import numpy as np
import pytest
from flwr.app import ArrayRecord, Message, Metadata, MetricRecord, RecordDict
from flwr.serverapp.strategy import FedAvg, FedMedian

from fl_server import wire


def weights(seed: int) -> OrderedDict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return OrderedDict(
        [
            ("mlp.0.weight", rng.normal(size=(4, 3)).astype(np.float32)),
            ("mlp.0.bias", rng.normal(size=4).astype(np.float32)),
            ("head.weight", rng.normal(size=(2, 4)).astype(np.float32)),
        ]
    )


def test_pack_unpack_round_trip_is_exact() -> None:
    original = weights(0)
    record = wire.pack(original)
    assert list(record) == [wire.ARRAY_KEY]
    back = wire.unpack(record, wire.layout_of(original))
    assert list(back) == list(original)
    for name, value in original.items():
        np.testing.assert_array_equal(back[name], value)
        assert back[name].dtype == np.float32


def test_wrong_length_named_keys_and_foreign_layout_are_refused() -> None:
    layout = wire.layout_of(weights(0))
    short = wire.pack(OrderedDict(list(weights(0).items())[:2]))
    with pytest.raises(
        ValueError, match=re.escape("arrays.policy: expected 24 parameters (mlp.0")
    ):
        wire.unpack(short, layout)
    named = ArrayRecord(numpy_ndarrays=[np.zeros(3)])
    with pytest.raises(ValueError, match="expected one packed vector 'policy'"):
        wire.unpack(named, layout)
    foreign = wire.digest(layout[::-1])
    with pytest.raises(
        ValueError, match=re.escape(f"sender's policy layout ({foreign})")
    ):
        wire.unpack(wire.pack(weights(0)), layout, foreign)


def reply(w: OrderedDict[str, np.ndarray], steps: int, node: int) -> Message:
    content = RecordDict(
        {"arrays": wire.pack(w), "metrics": MetricRecord({"num-examples": steps})}
    )
    metadata = Metadata(
        run_id=1, message_id=f"reply-{node}", src_node_id=node, dst_node_id=1,
        reply_to_message_id=f"train-{node}", group_id="1", created_at=time.time(),
        ttl=600.0, message_type="train",
    )  # fmt: skip
    return Message(content=content, metadata=metadata)


@pytest.mark.parametrize("strategy", [FedAvg(), FedMedian()], ids=["fedavg", "median"])
def test_flower_aggregates_packed_vectors_as_named_tensors(strategy: object) -> None:
    """Element-wise aggregation: packing changes nothing in the result."""
    ws, steps = [weights(s) for s in range(3)], [100, 300, 600]
    replies = [
        reply(w, n, i + 2) for i, (w, n) in enumerate(zip(ws, steps, strict=True))
    ]
    arrays, _ = strategy.aggregate_train(1, replies)  # type: ignore[attr-defined]
    result = wire.unpack(arrays, wire.layout_of(ws[0]))
    for name in ws[0]:
        stacked = np.stack([w[name] for w in ws])
        if isinstance(strategy, FedMedian):
            expected = np.median(stacked, axis=0)
        else:
            share = np.asarray(steps, dtype=np.float64) / sum(steps)
            expected = np.tensordot(share, stacked, axes=1)
        np.testing.assert_allclose(result[name], expected, rtol=1e-6, atol=1e-6)
