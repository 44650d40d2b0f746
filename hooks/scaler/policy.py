"""The two-tier policy server, over HTTP only: ``/v1/route`` and ``/v1/schedule``.

Batches (``/v1/route/batch``, ``/v1/schedule/batch``) decide many requests with one
policy version; answers are checked field by field before the scaler uses them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from hooks.errors import PermanentHookError, RetryPolicy, with_retries
from hooks.httpjson import post_json, translate

BATCH = 1024
"""Most requests per call (the server's ``--max-batch`` defaults to 4096)."""


@dataclass(frozen=True)
class Choice:
    """One decision: where it went and the policy's probability of each option."""

    region: str
    node: str | None
    """``None`` for a routing decision."""
    probabilities: Mapping[str, float]


class TwoTierClient:
    """POSTs two-tier batches; 5xx/timeouts retried, 4xx surfaced with the message.

    Args:
        base_url: the server, e.g. ``http://policy-server:8000``.
        timeout: seconds per request.
        retry: retries of transient failures.
        api_key: sent as ``X-API-Key`` when set.
    """

    def __init__(
        self, base_url: str, timeout: float, retry: RetryPolicy, api_key: str | None
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self.retry = retry
        self.api_key = api_key

    def _batch(self, path: str, requests: Sequence[Mapping[str, Any]]) -> list[Any]:
        url = f"{self.base_url}{path}"
        decisions: list[Any] = []
        for start in range(0, len(requests), BATCH):
            chunk = list(requests[start : start + BATCH])
            data = with_retries(
                lambda chunk=chunk: post_json(  # type: ignore[misc]
                    url, {"requests": chunk}, self.timeout, self.api_key
                ),
                translate(f"policy {url}"),
                self.retry,
            )
            got = data.get("decisions") if isinstance(data, dict) else None
            if not isinstance(got, list) or len(got) != len(chunk):
                raise PermanentHookError(
                    f"policy {url}", 200,
                    f"decisions: expected a list of {len(chunk)}, got {got!r:.80}",
                )  # fmt: skip
            decisions += got
        return decisions

    def route(self, requests: Sequence[Mapping[str, Any]]) -> list[Choice]:
        """The region (and the regions' probabilities) of each request."""
        url = f"{self.base_url}/v1/route/batch"
        return [
            _choice(d, f"policy {url}", f"decisions[{i}]", node=False)
            for i, d in enumerate(self._batch("/v1/route/batch", requests))
        ]

    def schedule(self, requests: Sequence[Mapping[str, Any]]) -> list[Choice]:
        """The node (and its region's nodes' probabilities) of each request."""
        url = f"{self.base_url}/v1/schedule/batch"
        return [
            _choice(d, f"policy {url}", f"decisions[{i}]", node=True)
            for i, d in enumerate(self._batch("/v1/schedule/batch", requests))
        ]


def _choice(data: Any, obj: str, where: str, node: bool) -> Choice:
    """One decision, each field of its type.

    Raises:
        PermanentHookError: naming the field.
    """

    def bad(field: str, what: str, got: Any) -> PermanentHookError:
        return PermanentHookError(obj, 200, f"{where}.{field}: expected {what}, "
                                  f"got {got!r:.80}")  # fmt: skip

    if not isinstance(data, dict):
        raise bad("", "an object", data)
    if not isinstance(data.get("region"), str):
        raise bad("region", "a string", data.get("region"))
    if node and not isinstance(data.get("node"), str):
        raise bad("node", "a string", data.get("node"))
    probabilities = data.get("probabilities")
    if not isinstance(probabilities, dict) or not all(
        isinstance(k, str) and isinstance(v, int | float) and not isinstance(v, bool)
        and 0.0 <= v <= 1.0
        for k, v in probabilities.items()
    ):  # fmt: skip
        raise bad("probabilities", "an object of probabilities in [0, 1]",
                  probabilities)  # fmt: skip
    return Choice(
        data["region"], data["node"] if node else None,
        {k: float(v) for k, v in probabilities.items()},
    )  # fmt: skip
