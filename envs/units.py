"""Parsing of quantities with units in scenario configs (``"12ms"``, ``"32KB"``).

Values carry their unit so that a config cannot silently mean milliseconds in one place
and seconds in another; anything unparsable raises :class:`envs.errors.ConfigError`
naming the field. Results are SI: seconds and bytes.

This is the grammar of *our* files (scenarios, env settings). REACH's config sets are
parsed by :mod:`envs.reach.units` instead, on purpose: that is REACH's file format,
whose strings must give exactly the numbers REACH's parser gives (milliseconds,
millicores, ``M`` = 1/1024 ``G``, megabit bandwidth), so REACH configs run unchanged
and its kernels stay in REACH's units. Merging the two would change one of the formats.
"""

from __future__ import annotations

import math
import re

from envs.errors import ConfigError

_NUMBER = r"(?P<value>[0-9]+(?:\.[0-9]+)?(?:[eE][-+]?[0-9]+)?)"
_DURATION = re.compile(_NUMBER + r"\s*(?P<unit>us|ms|s|min|h)$")
_SIZE = re.compile(_NUMBER + r"\s*(?P<unit>B|KB|MB|GB)$")

_SECONDS = {"us": 1e-6, "ms": 1e-3, "s": 1.0, "min": 60.0, "h": 3600.0}
_BYTES = {"B": 1.0, "KB": 1e3, "MB": 1e6, "GB": 1e9}


def parse_duration(text: object, field: str) -> float:
    """Seconds from a string like ``"12ms"`` (units: us, ms, s, min, h)."""
    match = _DURATION.match(text.strip()) if isinstance(text, str) else None
    if match is None:
        raise ConfigError(
            field,
            f"a duration such as '12ms' or '1.5s' (units us|ms|s|min|h), got {text!r}",
        )
    value = float(match["value"]) * _SECONDS[match["unit"]]
    if not math.isfinite(value):
        raise ConfigError(field, f"a finite duration, got {text!r}")
    return value


def parse_size(text: object, field: str) -> float:
    """Bytes from a string like ``"32KB"`` (decimal units: B, KB, MB, GB)."""
    match = _SIZE.match(text.strip()) if isinstance(text, str) else None
    if match is None:
        raise ConfigError(
            field, f"a size such as '32KB' or '2MB' (units B|KB|MB|GB), got {text!r}"
        )
    return float(match["value"]) * _BYTES[match["unit"]]
