"""Errors of the REACH rescheduling env: each names the file, the path and the fix.

Their messages take the simulator's one form (:func:`envs.errors.expected_message`);
they are classes of their own because they carry what callers act on: the file and
JSON path of a config set, or whether a payload is malformed (HTTP 400) or does not
fit the trained topology (422).
"""

from __future__ import annotations

from envs.errors import MISSING, expected_message


class ReachConfigError(ValueError):
    """A REACH config file is malformed or describes an impossible cluster.

    The message reads ``<file>: <json path>: expected <what>, got <value>`` so a user
    can open the file, find the value and fix it. Nothing in a config is guessed: every
    problem the loader can detect raises this one class.

    Attributes:
        file: the file (or folder) the problem is in.
        path: JSON path of the value, e.g.
            ``browse.call-path[0].gateway.execution-time`` (empty for whole-file
            problems).
        expected: what a valid value looks like.
    """

    def __init__(
        self, file: str, path: str, expected: str, got: object = MISSING
    ) -> None:
        where = f"{file}: {path}" if path else file
        super().__init__(expected_message(where, expected, got))
        self.file = file
        self.path = path
        self.expected = expected


class ReachPayloadError(ValueError):
    """A ``/get_action`` payload does not parse, or does not match the trained topology.

    Attributes:
        path: JSON path inside the request body, e.g.
            ``cluster_state.nodes.n1.cpu_availability``.
        expected: what a valid value looks like.
        mismatch: True when the body is well formed but names nodes, services or pods
            the configured cluster does not have (an HTTP server answers 422), False for
            malformed bodies (400).
    """

    def __init__(
        self,
        path: str,
        expected: str,
        got: object = MISSING,
        *,
        mismatch: bool = False,
    ) -> None:
        super().__init__(expected_message(path, expected, got))
        self.path = path
        self.expected = expected
        self.mismatch = mismatch


class ReachPlacementError(RuntimeError):
    """Reset could not place every pod on a fitting node (100 attempts, as REACH)."""
