"""Flower's object pulls, retried after 20 ms instead of 1 s.

In Flower 1.42 a message becomes visible (``PushMessages``) before its objects are
pushed, and a receiver that asks at once for the objects gets "not yet available";
``pull_objects`` then sleeps its default initial backoff of **1 s** (doubling, capped
at 10 s). Fast pollers (our SuperNodes, the ServerApp's reply pulls) hit that race
every round, in both directions: about a second per hop. This module re-binds
``pull_objects`` in the one Flower module that calls it, with a 20 ms initial
backoff capped at 0.5 s; everything else (tries, time limit, errors) is Flower's.
Pinned to flwr 1.42 like the other launch helpers (tests/fl/test_worker_canary.py).
"""

from __future__ import annotations

import functools
from types import ModuleType

from flwr.supercore.inflatable import inflatable_utils

INITIAL_BACKOFF_S = 0.02
BACKOFF_CAP_S = 0.5


def quick_object_pulls(module: ModuleType) -> None:
    """Make ``module``'s ``pull_objects`` retry after 20 ms (idempotent).

    Raises:
        RuntimeError: ``module`` no longer calls Flower's ``pull_objects`` by name.
    """
    current = getattr(module, "pull_objects", None)
    if getattr(current, "quick", False):
        return
    if current is not inflatable_utils.pull_objects:
        raise RuntimeError(
            f"{module.__name__} no longer calls flwr's pull_objects by name: "
            "fl_server.pulls fits flwr 1.42; update it"
        )
    quick = functools.partial(
        inflatable_utils.pull_objects,
        initial_backoff=INITIAL_BACKOFF_S,
        backoff_cap=BACKOFF_CAP_S,
    )
    quick.quick = True  # type: ignore[attr-defined]
    module.pull_objects = quick  # type: ignore[attr-defined]
