"""The one flat form of :class:`conf.schema.RunConfig`: dotted, hyphenated scalar keys.

Flower's run config is a flat mapping of TOML scalars (bool, int, float, str), and a
checkpoint's metadata stores the same mapping. The typed config is flattened into
keys such as ``federation.local-steps``, ``strategy.proximal-mu`` and
``two-tier.episode-length``; :func:`from_flat` parses them back. The federation
(``fl_server.config``) and the policy server (``serving.run_config``) both use this
module, so there is one encoding and one set of error messages.

Encoding rules:

* scalars (bool, int, float, str) travel as they are; enums by member name;
* a field that may hold something TOML cannot carry (a list, a mapping, ``None``)
  travels as JSON text, so the parser never has to guess; a list of scalars may
  also be written the way people type it on a command line, ``"us-east,eu-central"``
  (:func:`to_readable` writes that form, e.g. in ``pyproject.toml``);
* any ``scenario.*`` key but ``scenario.name`` may travel as ``""``, meaning "the
  value of the scenario named by ``scenario.name``" (a shipped name or a YAML
  file): the scenario's structure (regions, request types: kilobytes of JSON)
  then travels by name, and the run config people read and override stays short;
* ``paths`` (Hydra interpolations) does not travel.
"""

from __future__ import annotations

import dataclasses
import json
import math
import types
import typing
from collections.abc import Mapping
from enum import Enum
from typing import Any, Union

from omegaconf import OmegaConf

from conf.schema import RunConfig

Scalar = bool | int | float | str
FlatConfig = dict[str, Scalar]

NOT_BRIDGED = ("paths",)
"""RunConfig fields that stay in Hydra (interpolations resolved by the launcher)."""

SCENARIO_NAME = "scenario.name"
"""The key naming the scenario the other ``scenario.*`` keys default to."""


# ---------------------------------------------------------------- schema walking


def _wire(name: str) -> str:
    return name.replace("_", "-")


def is_json_typed(tp: Any) -> bool:
    """Whether values of type ``tp`` travel as JSON text (list, dict, optional)."""
    origin = typing.get_origin(tp)
    if origin in (list, dict, tuple):
        return True
    if origin in (Union, types.UnionType):
        return True
    return tp is Any


def _leaves(cls: type, prefix: str = "") -> dict[str, tuple[str, Any]]:
    """Flat key -> (attribute path, type) for every leaf field of dataclass ``cls``."""
    hints = typing.get_type_hints(cls)
    out: dict[str, tuple[str, Any]] = {}
    for f in dataclasses.fields(cls):
        if not prefix and f.name in NOT_BRIDGED:
            continue
        tp = hints[f.name]
        key = f"{prefix}{_wire(f.name)}"
        if dataclasses.is_dataclass(tp) and isinstance(tp, type):
            for sub, (path, sub_tp) in _leaves(tp, key + ".").items():
                out[sub] = (f"{f.name}.{path}", sub_tp)
        else:
            out[key] = (f.name, tp)
    return out


SCHEMA = _leaves(RunConfig)
"""Every flat key of :class:`RunConfig` -> (attribute path, type), in schema order."""


# ---------------------------------------------------------------- RunConfig -> flat


def _plain(value: Any) -> Any:
    """Enums by name, dataclasses as dicts, recursively (JSON-ready)."""
    if isinstance(value, Enum):
        return value.name
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {
            f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)
        }
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    return value


def _lookup(cfg: Any, path: str) -> Any:
    for part in path.split("."):
        cfg = getattr(cfg, part)
    return cfg


def to_flat(cfg: RunConfig) -> FlatConfig:
    """Flatten ``cfg`` into flat keys (see the module docstring); complete and exact."""
    if not isinstance(cfg, RunConfig):
        raise TypeError(f"to_flat: expected a RunConfig, got {type(cfg).__name__}")
    flat: FlatConfig = {}
    for key, (path, tp) in SCHEMA.items():
        value = _plain(_lookup(cfg, path))
        if is_json_typed(tp):
            flat[key] = json.dumps(value, separators=(",", ":"))
        elif isinstance(value, bool | int | float | str):
            flat[key] = value
        else:
            raise TypeError(
                f"{key}: expected a bool, int, float or str, got {type(value).__name__}"
            )
    return flat


def _toml_value(value: Scalar) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        text = repr(value)
        return text if any(c in text for c in ".en") else text + ".0"
    if value.startswith(("[", "{")) and "'" not in value and "\n" not in value:
        return f"'{value}'"  # JSON text as a TOML literal string: no escaping
    return json.dumps(value)  # a TOML basic string: JSON escapes are valid TOML


def to_toml(flat: Mapping[str, Scalar]) -> str:
    """The flat config as TOML lines (``flwr run --run-config <file.toml>``)."""
    return "".join(f"{key} = {_toml_value(value)}\n" for key, value in flat.items())


# ---------------------------------------------------------------- flat -> RunConfig


def _scalar_list(tp: Any) -> bool:
    """Whether ``tp`` is a list of scalars (a comma-separated string can carry it)."""
    args = typing.get_args(tp)
    return (
        typing.get_origin(tp) is list
        and len(args) == 1
        and args[0]
        in (
            str,
            int,
            float,
        )
    )


def to_readable(key: str, value: Scalar) -> Scalar:
    """``value`` of ``key`` as a person would type it: ``"a,b"`` for ``["a","b"]``.

    Only lists of scalars whose items hold no comma; anything else is unchanged.
    """
    if key not in SCHEMA or not _scalar_list(SCHEMA[key][1]):
        return value
    items = json.loads(str(value))
    if any("," in str(item) for item in items):
        return value
    return ",".join(str(item) for item in items)


def _decode(key: str, tp: Any, value: Any, context: str) -> Any:
    if not is_json_typed(tp):
        return value
    if not isinstance(value, str):
        raise ValueError(f"{context} {key}: expected JSON text, got {value!r}")
    if _scalar_list(tp) and not value.lstrip().startswith("["):
        return [item.strip() for item in value.split(",") if item.strip()]
    try:
        decoded = json.loads(value)
    except json.JSONDecodeError as err:
        raise ValueError(
            f"{context} {key}: expected JSON text, got {value!r} ({err.msg})"
        ) from None
    container = typing.get_origin(tp)
    if container is dict and not isinstance(decoded, dict):
        raise ValueError(f"{context} {key}: expected a JSON object, got {value!r}")
    if container in (list, tuple) and not isinstance(decoded, list):
        raise ValueError(f"{context} {key}: expected a JSON array, got {value!r}")
    return decoded


def from_scenario(key: str) -> bool:
    """Whether ``key`` may be ``""``, standing for the named scenario's value."""
    return key.startswith("scenario.") and key != SCENARIO_NAME


def _named_scenario(name: Any, context: str) -> Any:
    """The scenario ``name`` (shipped name or YAML file), loaded and typed."""
    from envs.errors import ConfigError
    from envs.scenario import load_scenario

    if not isinstance(name, str) or not name:
        raise ValueError(
            f"{context} scenario.name: expected a shipped scenario name or a YAML "
            f"file (the scenario's regions and request types come from it), got "
            f"{name!r}"
        )
    try:
        return load_scenario(name)
    except ConfigError as err:
        raise ValueError(f"{context} {err}") from None


def _nest(node: dict[str, Any], path: str, value: Any) -> None:
    *parents, leaf = path.split(".")
    for part in parents:
        node = node.setdefault(part, {})
    node[leaf] = value


def from_flat(
    flat: Mapping[str, Any],
    context: str = "run config",
    unknown_hint: str = "regenerate with `python -m fl_server.config`",
) -> RunConfig:
    """Parse flat keys back into the typed :class:`RunConfig`.

    Keys left out take the schema default; ``""`` for a ``scenario.*`` key takes
    the named scenario's value. An unknown key, bad JSON or a value of the
    wrong type raises a ``ValueError`` naming the key, prefixed by ``context``;
    ``unknown_hint`` says how to fix unknown keys.
    """
    unknown = sorted(k for k in flat if k not in SCHEMA)
    if unknown:
        raise ValueError(
            f"{context}: unknown keys {unknown}; expected RunConfig fields such as "
            f"'federation.local-steps' ({unknown_hint})"
        )
    nested: dict[str, Any] = {}
    named = [k for k, v in flat.items() if v == "" and from_scenario(k)]
    if named:
        scenario = _named_scenario(flat.get(SCENARIO_NAME), context)
    for key, value in flat.items():
        path, tp = SCHEMA[key]
        if key in named:
            value = _plain(_lookup(scenario, path.split(".", 1)[1]))
        else:
            value = _decode(key, tp, value, context)
        _nest(nested, path, value)
    return from_nested(nested, context)


def from_nested(nested: Mapping[str, Any], context: str = "run config") -> RunConfig:
    """The typed :class:`RunConfig` of a nested mapping, validated by the schema.

    Raises:
        ValueError: a value that does not fit, naming OmegaConf's ``full_key``.
    """
    try:
        merged = OmegaConf.merge(OmegaConf.structured(RunConfig), dict(nested))
        cfg = OmegaConf.to_object(merged)
    except Exception as err:  # OmegaConf raises several classes, all name full_key
        raise ValueError(f"{context}: {' '.join(str(err).split())}") from err
    if not isinstance(cfg, RunConfig):
        raise ValueError(f"{context}: expected a RunConfig")
    return cfg
