"""Errors for bad input: each names where, what was expected and (often) what came.

Every input error of the simulator reads ``<where>: expected <what>[, got <value>]``
(:func:`expected_message`), whether ``where`` is a config field
(:class:`ConfigError`), a REACH file and JSON path or a payload path
(:mod:`envs.reach.errors`).
"""

from __future__ import annotations

from typing import Final

MISSING: Final = object()
"""``got`` was not given (``None`` is a value a user can send)."""


def expected_message(where: str, expected: str, got: object = MISSING) -> str:
    """``<where>: expected <expected>``, then ``, got <repr(got)>`` when given."""
    message = f"{where}: expected {expected}"
    if got is not MISSING:
        message += f", got {got!r}"
    return message


class ConfigError(ValueError):
    """A configuration value is missing, malformed or impossible.

    The message reads ``<field>: expected <what>`` so a user can find and fix it.
    """

    def __init__(self, field: str, expected: str, got: object = MISSING) -> None:
        super().__init__(expected_message(field, expected, got))
        self.field = field
        self.expected = expected
