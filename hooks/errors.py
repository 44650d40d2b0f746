"""Hook errors, classified once: transient ones are retried, permanent ones surface.

Kubernetes, OpenStack and Prometheus all speak HTTP, so one classification serves
them all: 409/429/5xx and timeouts are transient (bounded retries with exponential
backoff and jitter, honouring ``Retry-After``); 403/404/422 (and any other 4xx) are
permanent and carry the object and the server's reason.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

log = logging.getLogger(__name__)

T = TypeVar("T")

TRANSIENT_STATUSES = frozenset({408, 409, 425, 429, 500, 502, 503, 504})
"""HTTP statuses worth retrying: conflicts, throttling, server trouble."""


class HookError(RuntimeError):
    """Base of every hook failure.

    Attributes:
        obj: the object acted on, ``<Kind> <namespace>/<name>``.
        status: the HTTP status, or None for a transport failure.
        reason: the server's (or transport's) explanation.
    """

    def __init__(self, obj: str, status: int | None, reason: str) -> None:
        code = f"HTTP {status}" if status is not None else "no HTTP answer"
        super().__init__(f"{obj}: {code}: {reason}")
        self.obj = obj
        self.status = status
        self.reason = reason


class TransientHookError(HookError):
    """Worth retrying after ``delay`` seconds (409, 429, 5xx, timeouts)."""

    def __init__(
        self, obj: str, status: int | None, reason: str, delay: float = 0.0
    ) -> None:
        super().__init__(obj, status, reason)
        self.delay = delay


class PermanentHookError(HookError):
    """Retrying cannot help (403, 404, 422, ...): fix RBAC, the name or the body."""


class RefusedError(PermanentHookError):
    """A hook refused to act before sending anything (a guard rail, no room)."""

    def __init__(self, obj: str, reason: str) -> None:
        super().__init__(obj, None, reason)

    def __str__(self) -> str:
        return f"{self.obj}: refused: {self.reason}"


def classify(
    obj: str, status: int | None, reason: str, retry_after: str | None = None
) -> HookError:
    """The hook error for an HTTP status (None = timeout or connection failure)."""
    if status is None or status in TRANSIENT_STATUSES:
        delay = 0.0
        if retry_after:
            try:
                delay = max(0.0, float(retry_after))
            except ValueError:
                delay = 0.0
        return TransientHookError(obj, status, reason, delay)
    return PermanentHookError(obj, status, reason)


@dataclass(frozen=True)
class RetryPolicy:
    """Bounded retries: ``attempts`` tries, delays ``base * 2**k`` capped, jittered."""

    attempts: int = 5
    """Tries in total (1 = no retry)."""
    base_delay: float = 0.2
    """Seconds before the first retry."""
    max_delay: float = 5.0
    """Cap of one delay (also caps a server's ``Retry-After``)."""
    jitter: float = 0.2
    """Each delay is multiplied by uniform(1 - jitter, 1 + jitter)."""

    def __post_init__(self) -> None:
        if self.attempts < 1:
            raise ValueError(f"attempts: expected >= 1, got {self.attempts}")
        if not 0.0 <= self.jitter < 1.0:
            raise ValueError(f"jitter: expected in [0, 1), got {self.jitter}")

    def delay(self, attempt: int, hint: float, rng: random.Random) -> float:
        """Seconds to wait after failed try ``attempt`` (0-based)."""
        backoff = min(self.max_delay, self.base_delay * 2**attempt)
        wait = min(self.max_delay, max(backoff, hint))
        return float(wait * rng.uniform(1.0 - self.jitter, 1.0 + self.jitter))


def with_retries(
    call: Callable[[], T],
    translate: Callable[[BaseException], HookError | None],
    policy: RetryPolicy,
    *,
    sleep: Callable[[float], None] = time.sleep,
    rng: random.Random | None = None,
) -> T:
    """Run ``call``; retry transient failures, raise permanent ones at once.

    Args:
        call: the request.
        translate: maps a library exception to a :class:`HookError` (None: not
            ours, re-raised unchanged).
        policy: how often and how long to wait.
        sleep: injectable for tests.
        rng: jitter source (seedable for tests).

    Raises:
        PermanentHookError: at once.
        TransientHookError: when the tries run out (the last one).
    """
    rng = rng or random.Random()
    for attempt in range(policy.attempts):
        try:
            return call()
        except HookError as err:
            error: HookError = err
        except Exception as exc:
            translated = translate(exc)
            if translated is None:
                raise
            error = translated
            error.__cause__ = exc
        if isinstance(error, PermanentHookError) or attempt + 1 == policy.attempts:
            raise error
        assert isinstance(error, TransientHookError)
        wait = policy.delay(attempt, error.delay, rng)
        log.warning("retrying in %.2f s (%d/%d): %s", wait, attempt + 1,
                    policy.attempts - 1, error)  # fmt: skip
        sleep(wait)
    raise AssertionError("unreachable")  # pragma: no cover
