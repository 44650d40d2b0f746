"""The policy server, over HTTP only: REACH's ``POST /get_action``."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any

from hooks.errors import HookError, RetryPolicy, classify, with_retries

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

    def _post(self, payload: dict[str, Any]) -> dict[str, Any]:
        headers = {"Content-Type": "application/json"}
        if self.api_key:  # a policy server started with SERVING_API_KEY
            headers["X-API-Key"] = self.api_key
        request = urllib.request.Request(
            self.url, data=json.dumps(payload).encode(), headers=headers, method="POST"
        )
        with urllib.request.urlopen(request, timeout=self.timeout) as response:
            data: dict[str, Any] = json.loads(response.read())
        return data

    def _translate(self, exc: BaseException) -> HookError | None:
        if isinstance(exc, urllib.error.HTTPError):
            try:
                message = json.loads(exc.read()).get("message", exc.reason)
            except (ValueError, AttributeError):
                message = exc.reason
            return classify(f"policy {self.url}", exc.code, str(message))
        if isinstance(exc, urllib.error.URLError | TimeoutError | OSError):
            return classify(f"policy {self.url}", None, str(exc))
        return None

    def get_action(self, payload: dict[str, Any]) -> Decision:
        """One decision for one cluster state.

        Raises:
            HookError: the server refused the state (4xx) or stayed unreachable.
        """
        data = with_retries(lambda: self._post(payload), self._translate, self.retry)
        try:
            return Decision(
                str(data["pod_name"]), str(data["target_node"]), bool(data["is_stop"])
            )
        except (KeyError, TypeError) as err:
            raise HookError(
                f"policy {self.url}", 200,
                f"expected pod_name, target_node, is_stop in the answer, got {data}",
            ) from err  # fmt: skip
