"""How policy weights travel in Flower messages: one flat vector per policy.

Flower moves a message as a tree of objects, one HTTP request per object on every
hop (server -> SuperLink -> SuperNode -> ClientApp and back): a policy sent as its
12 named tensors is about 30 objects per hop, and on two loaded cores those requests
were most of a round's overhead. Packed into one float32 vector it is a handful.
Averaging, median and trimmed mean are element-wise, so every strategy aggregates
the packed vector exactly as it would the named tensors.

Names and shapes do not travel: both sides build the same architecture, and the
receiver unpacks with its own :data:`Layout`. The vector's length and a digest of
the layout (sent by the server in each message's config, :data:`LAYOUT_KEY`) are
checked, so a policy of another architecture fails loudly, naming both layouts.
Used by the ClientApp and the ServerApp alike.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from collections.abc import Mapping

import numpy as np
from flwr.app import Array, ArrayRecord

from policies.params import Weights

ARRAY_KEY = "policy"
"""The one entry of a packed ArrayRecord."""
LAYOUT_KEY = "layout"
"""Config key carrying :func:`digest` of the sender's layout."""

Layout = tuple[tuple[str, tuple[int, ...]], ...]
"""Parameter names and shapes, in the policy's ``state_dict`` order."""


def layout_of(weights: Mapping[str, np.ndarray]) -> Layout:
    """The names and shapes of ``weights``, in order."""
    return tuple((name, tuple(int(d) for d in w.shape)) for name, w in weights.items())


def digest(layout: Layout) -> str:
    """A short fingerprint of ``layout`` (names, shapes and order)."""
    text = ";".join(f"{name}:{'x'.join(map(str, shape))}" for name, shape in layout)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def size(layout: Layout) -> int:
    """Number of parameters of ``layout``."""
    return sum(int(np.prod(shape)) for _, shape in layout)


def describe(layout: Layout, limit: int = 4) -> str:
    """``name shape, ...`` for an error message (the first ``limit`` entries)."""
    parts = [f"{name} {shape}" for name, shape in layout[:limit]]
    more = f", ... ({len(layout)} tensors)" if len(layout) > limit else ""
    return ", ".join(parts) + more


def pack(weights: Mapping[str, np.ndarray]) -> ArrayRecord:
    """``weights`` as an ArrayRecord holding one flat float32 vector."""
    flat = np.concatenate(
        [np.asarray(w, dtype=np.float32).ravel() for w in weights.values()]
    )
    return ArrayRecord(array_dict={ARRAY_KEY: Array(flat)})


def unpack(
    arrays: ArrayRecord, layout: Layout, sent_digest: str | None = None
) -> Weights:
    """The named weights of a packed ArrayRecord, shaped by the receiver's ``layout``.

    Raises:
        ValueError: not a packed record, a vector of the wrong length, or a sender
            whose layout digest differs (each naming what was expected).
    """
    if list(arrays) != [ARRAY_KEY]:
        raise ValueError(
            f"arrays: expected one packed vector {ARRAY_KEY!r} (fl_server.wire.pack), "
            f"got keys {sorted(arrays)[:5]}"
        )
    if sent_digest is not None and sent_digest != digest(layout):
        raise ValueError(
            f"arrays: the sender's policy layout ({sent_digest}) differs from this "
            f"node's ({digest(layout)}: {describe(layout)}); both sides must build "
            "the same architecture (policy.* and the env's spaces)"
        )
    flat = arrays[ARRAY_KEY].numpy().ravel()
    if flat.size != size(layout):
        raise ValueError(
            f"arrays.{ARRAY_KEY}: expected {size(layout)} parameters "
            f"({describe(layout)}), got {flat.size}"
        )
    weights: Weights = OrderedDict()
    start = 0
    for name, shape in layout:
        count = int(np.prod(shape))
        weights[name] = flat[start : start + count].reshape(shape).copy()
        start += count
    return weights
