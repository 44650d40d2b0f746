"""The one error type for bad configuration, naming the field and what was expected."""

from __future__ import annotations


class ConfigError(ValueError):
    """A configuration value is missing, malformed or impossible.

    The message reads ``<field>: expected <what>`` so a user can find and fix it.
    """

    def __init__(self, field: str, expected: str) -> None:
        super().__init__(f"{field}: expected {expected}")
        self.field = field
        self.expected = expected
