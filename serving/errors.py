"""Client errors of the decision API: each names the field path and the expectation."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

_MISSING = object()
_MAX_ECHO = 80  # characters of an offending value echoed back


def echo(value: object) -> str:
    """A short ``repr`` of a client value (long input is not reflected whole)."""
    text = repr(value)
    return text if len(text) <= _MAX_ECHO else text[: _MAX_ECHO - 3] + "..."


def field_path(loc: Sequence[str | int]) -> str:
    """``("requests", 3, "origin")`` -> ``requests[3].origin``."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out or "body"


class ServingError(Exception):
    """A request the service refuses, with the HTTP status to answer.

    Args:
        status: 400 malformed, 409 the loaded policy cannot answer this endpoint,
            413 too large, 422 well-formed but not servable, 503 no policy loaded.
        field: JSON path of the offending value (``body`` for the whole request).
        expected: what a valid value looks like.
        got: the offending value (echoed, shortened) if any.
    """

    def __init__(
        self,
        status: int,
        field: str,
        expected: str,
        got: object = _MISSING,
        *,
        message: str | None = None,
    ) -> None:
        if message is None:
            message = f"{field}: expected {expected}"
            if got is not _MISSING:
                message += f", got {echo(got)}"
        super().__init__(message)
        self.status = status
        self.field = field
        self.expected = expected
        self.message = message
        self.errors: list[dict[str, str]] = [{"field": field, "message": message}]

    @classmethod
    def invalid(cls, errors: list[dict[str, str]]) -> ServingError:
        """A body that does not validate: 400 if it is not JSON at all, else 422."""
        first = errors[0] if errors else {"field": "body", "message": "body: invalid"}
        status = (
            400 if first["message"].startswith("body: expected valid JSON") else 422
        )
        err = cls(status, first["field"], "", message=first["message"])
        err.errors = errors
        return err

    def body(self, detailed: bool = True) -> dict[str, object]:
        """The JSON error body.

        REACH's ``status`` and ``message`` (exactly these for ``/get_action``), plus
        ``errors`` listing every invalid field when ``detailed``.
        """
        out: dict[str, object] = {"status": "error", "message": self.message}
        if detailed:
            out["errors"] = self.errors
        return out


def _expected(msg: str) -> str:
    """Pydantic's message rephrased as an expectation."""
    if msg.startswith("Input should be "):
        return "expected " + msg.removeprefix("Input should be ")
    if msg == "Field required":
        return "expected a value (the field is required)"
    if msg.startswith("Extra inputs are not permitted"):
        return "expected no such field (unknown key; check its spelling)"
    if msg.startswith("Value error, "):
        return msg.removeprefix("Value error, ")
    return msg[:1].lower() + msg[1:]


def validation_errors(errors: Iterable[Mapping[str, Any]]) -> list[dict[str, str]]:
    """FastAPI / pydantic error entries as ``{"field", "message"}`` items.

    The ``body`` location prefix is dropped so paths read like the JSON the client
    sent (``requests[2].nodes.us-east/cloud-1.busy_cores``).
    """
    out = []
    for err in errors:
        loc = list(err.get("loc", ()))
        if loc and loc[0] == "body":
            loc = loc[1:]
        if err.get("type") == "json_invalid":
            path = "body"
            text = "expected valid JSON"
            ctx = err.get("ctx") or {}
            if "error" in ctx:
                text += f" ({ctx['error']})"
        else:
            path = field_path([p for p in loc if isinstance(p, str | int)])
            text = _expected(str(err.get("msg", "invalid value")))
            if "input" in err and err.get("type") != "missing":
                text += f", got {echo(err['input'])}"
        out.append({"field": path, "message": f"{path}: {text}"})
    return out
