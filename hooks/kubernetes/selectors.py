"""Label selectors: parse the string form once, match client-side on one list.

The state is built from one pod list for the whole cluster, so the application's
pods (``APP_LABEL``) and the nodes sent to the policy are selected here with the
API server's grammar: ``k=v``, ``k==v``, ``k!=v``, ``k in (a,b)``, ``k notin (a)``,
``k`` and ``!k``, comma = AND.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

_SET = re.compile(r"^\s*([\w./-]+)\s+(in|notin)\s+\(([^)]*)\)\s*$")
Matcher = Callable[[Mapping[str, str]], bool]


def _split(selector: str) -> list[str]:
    parts, depth, current = [], 0, ""
    for char in selector:
        depth += char == "("
        depth -= char == ")"
        if char == "," and depth == 0:
            parts.append(current)
            current = ""
        else:
            current += char
    parts.append(current)
    return [p.strip() for p in parts if p.strip()]


def _term(term: str, selector: str) -> Matcher:
    match = _SET.match(term)
    if match:
        key, op, raw = match.groups()
        values = {v.strip() for v in raw.split(",") if v.strip()}
        if op == "in":
            return lambda labels: labels.get(key) in values
        return lambda labels: labels.get(key) not in values
    for op in ("!=", "==", "="):
        if op in term:
            key, value = (s.strip() for s in term.split(op, 1))
            if not key:
                break
            if op == "!=":
                return lambda labels: labels.get(key) != value
            return lambda labels: labels.get(key) == value
    else:
        if term.startswith("!"):
            key = term[1:].strip()
            return lambda labels: key not in labels
        if re.fullmatch(r"[\w./-]+", term):
            return lambda labels: term in labels
    raise ValueError(
        f"selector: expected terms like k=v, k!=v, k in (a,b), k or !k, got "
        f"{term!r} in {selector!r}"
    )


def parse_selector(selector: str) -> Matcher:
    """A function ``labels -> bool`` for ``selector`` (``""`` matches everything)."""
    terms = [_term(t, selector) for t in _split(selector)]
    return lambda labels: all(t(labels) for t in terms)


def selector_string(label_selector: Mapping[str, Any] | None) -> str:
    """A ``V1LabelSelector`` (as JSON) in the string form the API accepts."""
    if not label_selector:
        return ""
    parts = [f"{k}={v}" for k, v in (label_selector.get("matchLabels") or {}).items()]
    for expr in label_selector.get("matchExpressions") or []:
        key, op = expr["key"], expr["operator"]
        values = ",".join(expr.get("values") or [])
        if op == "In":
            parts.append(f"{key} in ({values})")
        elif op == "NotIn":
            parts.append(f"{key} notin ({values})")
        elif op == "Exists":
            parts.append(key)
        elif op == "DoesNotExist":
            parts.append(f"!{key}")
        else:
            raise ValueError(
                f"matchExpressions.operator: expected In, NotIn, Exists or "
                f"DoesNotExist, got {op!r}"
            )
    return ",".join(parts)
