"""The measured request mix, placed the way the two-tier policy would (pure).

A stream is one (request type, origin region) pair with its arrival rate. The load
balancer tier's answer splits a stream over regions, the scheduler tier's answer
splits each region's part over that region's nodes; a pool is a region's pool of
identical nodes (``us-east/cloud-spot`` for node ``us-east/cloud-spot-1``), and its
share is the sum of its nodes' parts.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from hooks.config import Split
from hooks.scaler.policy import Choice

_NODE = re.compile(r"(?P<pool>[^/]+/.+)-(?P<index>\d+)")


def pool_of(node: str) -> str:
    """``<region>/<pool>-<i>`` -> ``<region>/<pool>``.

    Raises:
        ValueError: a name not of that form.
    """
    match = _NODE.fullmatch(node)
    if match is None:
        raise ValueError(
            f"node: expected a scenario node name <region>/<pool>-<i>, got {node!r}"
        )
    return match["pool"]


@dataclass(frozen=True)
class Stream:
    """Requests of one type from one region."""

    request_type: str
    origin: str
    rate: float
    """Requests per second."""


def streams(rates: Mapping[tuple[str, str], float]) -> list[Stream]:
    """The streams with traffic, in a fixed order."""
    return [Stream(t, o, r) for (t, o), r in sorted(rates.items()) if r > 0]


def region_rates(mix: Sequence[Stream]) -> dict[str, float]:
    """Requests per second arriving at each origin region.

    The API's ``region_rates``: policies that observe region loads read them.
    """
    out: dict[str, float] = defaultdict(float)
    for s in mix:
        out[s.origin] += s.rate
    return dict(sorted(out.items()))


def route_requests(
    mix: Sequence[Stream], nodes: Mapping[str, Any]
) -> list[dict[str, Any]]:
    """One ``/v1/route`` request per stream, with the live node and region loads."""
    rates = region_rates(mix)
    return [
        {"request_type": s.request_type, "origin": s.origin, "nodes": dict(nodes),
         "region_rates": dict(rates)}
        for s in mix
    ]  # fmt: skip


def _split(choice: Choice, key: str, split: Split) -> dict[str, float]:
    """The share of each alternative of one decision."""
    if split is Split.decisions:
        return {key: 1.0}
    total = sum(choice.probabilities.values())
    if total <= 0:
        return {key: 1.0}
    return {k: v / total for k, v in choice.probabilities.items() if v > 0}


def region_shares(
    mix: Sequence[Stream], routes: Sequence[Choice] | None, split: Split
) -> list[dict[str, float]]:
    """Per stream, the share of it each region gets.

    ``routes`` None (the policy does not route: ``learn=scheduler``): every request
    is served in its origin region.
    """
    if routes is None:
        return [{s.origin: 1.0} for s in mix]
    return [_split(c, c.region, split) for c in routes]


def schedule_requests(
    mix: Sequence[Stream],
    shares: Sequence[Mapping[str, float]],
    nodes: Mapping[str, Any],
    min_share: float,
) -> list[tuple[int, dict[str, Any]]]:
    """``/v1/schedule`` requests: (stream, body) per region with >= ``min_share``."""
    rates = region_rates(mix)
    out = []
    for i, (stream, regions) in enumerate(zip(mix, shares, strict=True)):
        for region in sorted(regions):
            if regions[region] >= min_share:
                out.append((i, {"request_type": stream.request_type,
                                "origin": stream.origin, "region": region,
                                "nodes": dict(nodes),
                                "region_rates": dict(rates)}))  # fmt: skip
    return out


def pool_rates(
    mix: Sequence[Stream],
    shares: Sequence[Mapping[str, float]],
    asked: Sequence[tuple[int, Mapping[str, Any]]],
    answers: Sequence[Choice],
    split: Split,
) -> dict[str, float]:
    """Requests per second each pool is expected to serve.

    A region whose share was below ``min_share`` was not asked about: its part is
    spread over the regions that were (in proportion), so no traffic is lost.
    """
    asked_share: dict[int, float] = defaultdict(float)
    for i, body in asked:
        asked_share[i] += shares[i][body["region"]]
    out: dict[str, float] = defaultdict(float)
    for (i, body), choice in zip(asked, answers, strict=True):
        region_rate = mix[i].rate * shares[i][body["region"]] / asked_share[i]
        assert choice.node is not None
        for node, part in _split(choice, choice.node, split).items():
            out[pool_of(node)] += region_rate * part
    return dict(out)
