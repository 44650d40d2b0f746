"""The actuator, chosen once at start-up: dry-run unless live is asked for and possible.

``INTEGRATION_MODE=live`` alone is not enough: the hook's credentials (a kubeconfig or
the in-cluster service account; ``clouds.yaml`` or ``OS_*``) must be present too, or
the process stays in dry-run and says why. Dry-run logs ``DRY-RUN would <verb> <kind>
<ns>/<name>`` and appends the plan to a JSONL file; it sends no mutating request at
all (not even a server-side ``dryRun=All``, which is still a POST).
"""

from __future__ import annotations

import enum
import logging
import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any, Protocol

from hooks.actions import Action
from hooks.jsonl import append_json

log = logging.getLogger(__name__)

MODE_VARIABLE = "INTEGRATION_MODE"


class Mode(enum.Enum):
    """How actions are carried out."""

    DRY_RUN = "dry-run"
    LIVE = "live"


def resolve_mode(
    environ: Mapping[str, str], credentials: str | None, hook: str
) -> Mode:
    """The mode for ``hook``: live only if asked for and ``credentials`` were found.

    Args:
        environ: the process environment (``INTEGRATION_MODE``).
        credentials: a description of the credentials found (None: none).
        hook: name for the start-up line (``kubernetes``, ``openstack``).

    Raises:
        ValueError: ``INTEGRATION_MODE`` is neither ``dry-run`` nor ``live``.
    """
    asked = environ.get(MODE_VARIABLE, Mode.DRY_RUN.value).strip().lower()
    if asked not in {m.value for m in Mode}:
        raise ValueError(
            f"{MODE_VARIABLE}: expected 'dry-run' or 'live', got {asked!r}"
        )
    if asked == Mode.LIVE.value and credentials is None:
        log.warning(
            "%s hook: MODE dry-run (%s=live but no credentials found; "
            "set KUBECONFIG / run in-cluster, or clouds.yaml / OS_*)",
            hook, MODE_VARIABLE,
        )  # fmt: skip
        return Mode.DRY_RUN
    mode = Mode(asked)
    if mode is Mode.LIVE:
        log.warning("%s hook: MODE live (credentials: %s)", hook, credentials)
    else:
        log.info("%s hook: MODE dry-run (no mutating request is sent)", hook)
    return mode


class Actuator(Protocol):
    """Carries out a plan; the same plan whatever the mode."""

    mode: Mode

    def apply(self, action: Action) -> Any:
        """Carry out one action (dry-run: record it)."""
        ...


class DryRunActuator:
    """Logs and records every action; touches nothing.

    Args:
        plan_file: JSONL file each action is appended to (None: log only).
        clock: wall clock for the records.
    """

    mode = Mode.DRY_RUN

    def __init__(
        self, plan_file: Path | None = None, clock: Callable[[], float] = time.time
    ) -> None:
        self.plan_file = plan_file
        self.clock = clock
        self.planned: list[Action] = []

    def apply(self, action: Action) -> None:
        """Log ``DRY-RUN would ...`` and append the action to the plan file."""
        log.info("DRY-RUN would %s", action.describe())
        self.planned.append(action)
        if self.plan_file is not None:
            append_json(
                self.plan_file,
                {
                    "timestamp": self.clock(),
                    "mode": self.mode.value,
                    **action.to_json(),
                },
            )


class LiveActuator:
    """Dispatches each action to the executor registered for its type.

    Args:
        executors: action class -> function carrying it out.
        plan_file: the same JSONL record as dry-run, written before acting.
    """

    mode = Mode.LIVE

    def __init__(
        self,
        executors: Mapping[type[Action], Callable[[Any], Any]],
        plan_file: Path | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.executors = dict(executors)
        self.plan_file = plan_file
        self.clock = clock

    def apply(self, action: Action) -> Any:
        """Run the executor for ``action``'s type."""
        executor = self.executors.get(type(action))
        if executor is None:
            known = ", ".join(sorted(t.__name__ for t in self.executors))
            raise TypeError(
                f"action: expected one of {known}, got {type(action).__name__}"
            )
        log.info("LIVE %s", action.describe())
        if self.plan_file is not None:
            append_json(
                self.plan_file,
                {
                    "timestamp": self.clock(),
                    "mode": self.mode.value,
                    **action.to_json(),
                },
            )
        return executor(action)


def make_actuator(
    mode: Mode,
    executors: Callable[[], Mapping[type[Action], Callable[[Any], Any]]],
    plan_file: Path | None,
) -> DryRunActuator | LiveActuator:
    """The actuator for ``mode``; live executors are only built in live mode."""
    if mode is Mode.LIVE:
        return LiveActuator(executors(), plan_file)
    return DryRunActuator(plan_file)


def apply_plan(actuator: Actuator, plan: Iterable[Action]) -> list[Any]:
    """Apply actions in order; the first failure stops the rest."""
    return [actuator.apply(action) for action in plan]
