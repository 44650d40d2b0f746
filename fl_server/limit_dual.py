"""Dual ascent on the reward's tail-limit prices between federated rounds.

The per-type latency limits of ``reward.limit_s`` are constraints: at most
``reward.limit_share`` of a type's requests over its limit. The reward charges
``reward.limit_exceeded`` per exceedance, their Lagrange multipliers. With
``reward.limit_price_lr > 0`` the server adapts them the way PPO-Lagrangian does,
from what the learners measure while they train: after each round, a type's price
moves by ``lr x (share / limit_share - 1)`` (never below 0), ``share`` being its
requests over the limit, pooled over every region's reply. A type served within its
limit grows cheaper, one breaking it dearer, so the prices settle where the
constraint binds, without a search on fixed prices.

The client reads the prices from ``limit-prices`` in the train config and replies
``limit/requests.<type>`` and ``limit/over.<type>`` (counts, not shares, so the
server pools regions of any size exactly).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

PRICES_KEY = "limit-prices"
"""Train and evaluate config: the round's prices ``[K]``, in the scenario's order."""
REQUESTS_PREFIX = "limit/requests."
OVER_PREFIX = "limit/over."


@dataclass
class LimitDual:
    """The server's prices of the tail limits and their update.

    Args:
        type_names: the scenario's request types, in order.
        limits_s: ``[K]`` limits (``inf``: none; such a type stays unpriced).
        prices: ``[K]`` starting prices (the reward's ``limit_exceeded``).
        share: the allowed share over each limit (``reward.limit_share``).
        lr: the step (``reward.limit_price_lr``).
    """

    type_names: list[str]
    limits_s: np.ndarray
    prices: np.ndarray
    share: float
    lr: float

    def update(
        self, server_round: int, replies: Iterable[Mapping[str, Any]]
    ) -> dict[str, Any]:
        """Move the prices by the round's pooled shares over the limits.

        A type no reply saw (no request of it placed) keeps its price. Returns the
        round's record: the shares measured, the requests, the prices before/after.
        """
        requests = np.zeros(len(self.type_names))
        over = np.zeros(len(self.type_names))
        for metrics in replies:
            for k, name in enumerate(self.type_names):
                requests[k] += _count(metrics, REQUESTS_PREFIX + name)
                over[k] += _count(metrics, OVER_PREFIX + name)
        limited = np.isfinite(self.limits_s)
        seen = limited & (requests > 0)
        shares = np.divide(over, requests, out=np.full_like(over, np.nan), where=seen)
        before = self.prices.copy()
        step = self.lr * (np.where(seen, shares, self.share) / self.share - 1.0)
        self.prices = np.where(limited, np.maximum(before + step, 0.0), 0.0)
        columns = {
            "limit/share.": shares,
            "limit/requests.": requests,
            "limit/price_trained.": before,
            "limit/price.": self.prices,
        }
        entry: dict[str, Any] = {"round": server_round}
        for prefix, values in columns.items():
            for name, value in zip(self.type_names, values, strict=True):
                entry[prefix + name] = float(value)
        return entry

    def as_config(self) -> list[float]:
        """The prices as the config value clients read (``PRICES_KEY``)."""
        return [float(p) for p in self.prices]

    def restore(self, prices: list[float]) -> None:
        """Resume at ``prices`` (from :meth:`as_config`), checked against the types."""
        values = np.asarray(prices, dtype=float)
        if values.shape != self.prices.shape or not np.all(np.isfinite(values)):
            raise ValueError(
                f"limit prices in the run folder: expected {len(self.type_names)} "
                f"finite prices ({', '.join(self.type_names)}), got {prices}"
            )
        self.prices = values


def _count(metrics: Mapping[str, Any], key: str) -> float:
    """A reply's count under ``key``, checked (a missing key names the client fix)."""
    if key not in metrics:
        raise ValueError(
            f"train reply: expected metric {key!r} with reward.limit_price_lr > 0 "
            "(a client of an older version, or a region that reports no tally)"
        )
    value = float(metrics[key])
    if not (value >= 0 and math.isfinite(value)):
        raise ValueError(f"train reply: {key} expected a count >= 0, got {value}")
    return value
