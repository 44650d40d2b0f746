"""JSON over HTTP for the policy clients: one POST, errors classified once.

Both the migrator's ``/get_action`` client and the scaler's two-tier client speak to
the policy server this way: ``X-API-Key`` when a key is set, the server's
``{"status": "error", "message"}`` body carried into the error, 5xx/timeouts
transient and 4xx permanent (:func:`hooks.errors.classify`). A 409 is permanent
here too: the policy server answers it when the loaded policy does not take that
decision (a REACH checkpoint asked to route), which no retry changes.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Callable
from typing import Any

from hooks.errors import HookError, PermanentHookError, classify


def post_json(url: str, payload: Any, timeout: float, api_key: str | None) -> Any:
    """POST ``payload`` as JSON; the decoded answer.

    Raises:
        PermanentHookError: the answer is not JSON.
        urllib.error.URLError, OSError: transport failures (see :func:`translate`).
    """
    headers = {"Content-Type": "application/json"}
    if api_key:  # a policy server started with SERVING_API_KEY
        headers["X-API-Key"] = api_key
    request = urllib.request.Request(
        url, data=json.dumps(payload).encode(), headers=headers, method="POST"
    )
    with urllib.request.urlopen(request, timeout=timeout) as response:
        text = response.read()
    try:
        return json.loads(text)
    except ValueError:
        raise PermanentHookError(
            f"policy {url}", 200, f"expected a JSON answer, got {text!r:.80}"
        ) from None


def translate(obj: str) -> Callable[[BaseException], HookError | None]:
    """Map urllib's failures for ``obj`` to hook errors (None: not ours)."""

    def convert(exc: BaseException) -> HookError | None:
        if isinstance(exc, urllib.error.HTTPError):
            try:
                message = json.loads(exc.read()).get("message", exc.reason)
            except (ValueError, AttributeError):
                message = exc.reason
            if exc.code == 409:  # not this policy's decision (see above)
                return PermanentHookError(obj, 409, str(message))
            retry_after = exc.headers.get("Retry-After") if exc.headers else None
            return classify(obj, exc.code, str(message), retry_after)
        if isinstance(exc, urllib.error.URLError | TimeoutError | OSError):
            return classify(obj, None, str(exc))
        return None

    return convert
