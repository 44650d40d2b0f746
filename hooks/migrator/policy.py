"""The policy server, over HTTP only: REACH's ``POST /get_action``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from hooks.errors import PermanentHookError, RetryPolicy, with_retries
from hooks.httpjson import post_json, translate

POLICY_API_KEY_ENV = "POLICY_API_KEY"
"""Environment variable holding the policy server's key (sent as ``X-API-Key``);
kept out of config files and logs like the server's own ``SERVING_API_KEY``."""


@dataclass(frozen=True)
class Decision:
    """The policy's answer."""

    pod_name: str
    target_node: str
    is_stop: bool


class PolicyClient:
    """POSTs REACH payloads; 5xx/timeouts retried, 4xx surfaced with the message."""

    def __init__(
        self,
        url: str,
        timeout: float,
        retry: RetryPolicy,
        api_key: str | None = None,
    ) -> None:
        self.url = url
        self.timeout = timeout
        self.retry = retry
        self.api_key = api_key

    def _post(self, payload: dict[str, Any]) -> Any:
        return post_json(self.url, payload, self.timeout, self.api_key)

    def get_action(self, payload: dict[str, Any]) -> Decision:
        """One decision for one cluster state.

        Raises:
            HookError: the server refused the state (4xx) or stayed unreachable.
        """
        data = with_retries(
            lambda: self._post(payload), translate(f"policy {self.url}"), self.retry
        )
        return parse_decision(data, f"policy {self.url}")


_FIELDS = (("pod_name", str, "a string"), ("target_node", str, "a string"),
           ("is_stop", bool, "a JSON boolean (true or false)"))  # fmt: skip


def parse_decision(data: Any, obj: str) -> Decision:
    """REACH's answer, each field of its JSON type (``"false"`` is not a stop flag).

    Raises:
        PermanentHookError: naming the field, what it should be and what came.
    """
    if not isinstance(data, dict):
        raise PermanentHookError(obj, 200, f"expected a JSON object, got {data!r:.80}")
    for name, kind, what in _FIELDS:
        if name not in data:
            raise PermanentHookError(
                obj, 200, f"{name}: expected {what} in the answer, got no such field"
            )
        if not isinstance(data[name], kind):
            got = f"{data[name]!r:.80}"
            raise PermanentHookError(obj, 200, f"{name}: expected {what}, got {got}")
    decision = Decision(data["pod_name"], data["target_node"], data["is_stop"])
    if not decision.is_stop and not (decision.pod_name and decision.target_node):
        raise PermanentHookError(
            obj, 200, "pod_name, target_node: expected both for a move (is_stop false)"
        )
    return decision
