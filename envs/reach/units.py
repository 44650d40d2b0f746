"""REACH's value-string grammars (spec §1), parsed exactly but strictly.

The same strings give the same numbers as REACH's parser, with one change: where the
original silently returned 0 for an unknown memory suffix, every grammar here rejects
anything it does not recognise, naming the file and JSON path.

Why not :mod:`envs.units` (SI seconds and bytes, the grammar of our scenario files):
this is REACH's external format. Its strings must keep REACH's meaning (``"700M"`` is
700/1024 of a ``G``, ``"500m"`` bandwidth is megabit/s, times are milliseconds), and
the REACH kernels compute in those units so their figures compare with REACH's.

| kind | form | result |
|---|---|---|
| CPU | ``"<int>m"`` or ``"<int>"`` | cores (``"700m"`` -> 0.7) |
| memory / data size | ``"<num>M"`` or ``"<num>G"`` | GiB-like (M is divided by 1024) |
| bandwidth | ``"<int>m"`` (megabit/s) | MB/s (divided by 8) |
| utilisation | ``"<num>"`` in [0, 1] | fraction |
| time | ``"<num>ms"`` or ``"<num>s"`` | milliseconds |
"""

from __future__ import annotations

import re

from envs.reach.errors import ReachConfigError

_NUM = r"-?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)"
_CPU = re.compile(r"(-?[0-9]+)(m?)")
_MEMORY = re.compile(rf"({_NUM})([MG])")
_BANDWIDTH = re.compile(r"(-?[0-9]+)m")
_FRACTION = re.compile(_NUM)
_TIME = re.compile(rf"({_NUM})(ms|s)")


def _string(value: object, file: str, path: str, expected: str) -> str:
    if not isinstance(value, str):
        raise ReachConfigError(file, path, f"a string {expected}", value)
    return value


def _non_negative(value: float, raw: str, file: str, path: str, what: str) -> float:
    if value < 0:
        raise ReachConfigError(file, path, f"a non-negative {what}", raw)
    return value


def parse_cpu(value: object, file: str, path: str) -> float:
    """Cores from ``"700m"`` (millicores) or ``"2"`` (whole cores).

    Decimal whole-core strings such as ``"1.5"`` are rejected, as REACH's parser
    (which calls ``int()``) would; write ``"1500m"``.
    """
    expected = "CPU quantity such as '700m' or '2' (integer millicores or cores)"
    text = _string(value, file, path, expected)
    match = _CPU.fullmatch(text)
    if match is None:
        raise ReachConfigError(file, path, expected, value)
    cores = int(match[1]) / 1000.0 if match[2] else float(int(match[1]))
    return _non_negative(cores, text, file, path, "CPU quantity")


def parse_memory(value: object, file: str, path: str) -> float:
    """GiB-like float from ``"700M"`` (divided by 1024) or ``"27.68G"`` (kept)."""
    expected = "memory or data size such as '700M' or '27.68G' (units M|G)"
    text = _string(value, file, path, expected)
    match = _MEMORY.fullmatch(text)
    if match is None:
        raise ReachConfigError(file, path, expected, value)
    amount = float(match[1])
    size = amount / 1024.0 if match[2] == "M" else amount
    return _non_negative(size, text, file, path, "size")


def parse_bandwidth(value: object, file: str, path: str) -> float:
    """MB/s from a NIC capacity in megabit/s, ``"500m"`` -> 62.5; must be positive."""
    expected = "bandwidth such as '500m' (integer megabit/s, unit m)"
    text = _string(value, file, path, expected)
    match = _BANDWIDTH.fullmatch(text)
    if match is None:
        raise ReachConfigError(file, path, expected, value)
    megabits = int(match[1])
    if megabits <= 0:
        raise ReachConfigError(file, path, "a positive bandwidth", text)
    return megabits / 8.0


def parse_fraction(value: object, file: str, path: str) -> float:
    """A utilisation fraction in [0, 1] from a plain number string such as ``"0.3"``."""
    expected = "utilisation such as '0.3' (a number string in [0, 1])"
    text = _string(value, file, path, expected)
    if _FRACTION.fullmatch(text) is None:
        raise ReachConfigError(file, path, expected, value)
    fraction = _non_negative(float(text), text, file, path, "utilisation")
    if fraction > 1.0:
        raise ReachConfigError(file, path, "a utilisation of at most 1", text)
    return fraction


def parse_time(value: object, file: str, path: str) -> float:
    """Milliseconds from ``"7ms"`` or ``"0.08s"``; no other unit is accepted."""
    expected = "time such as '7ms' or '0.08s' (units ms|s)"
    text = _string(value, file, path, expected)
    match = _TIME.fullmatch(text)
    if match is None:
        raise ReachConfigError(file, path, expected, value)
    amount = float(match[1])
    millis = amount if match[2] == "ms" else amount * 1000.0
    return _non_negative(millis, text, file, path, "time")
