"""Typed loading of configs with errors that name the full path of the bad field.

OmegaConf validates a mapping against a dataclass schema but, for elements of lists,
reports only the last key (``count`` instead of ``regions[1].pools[2].count``). On
failure this module walks the data along the schema to find and name the culprit.
"""

from __future__ import annotations

import dataclasses
import typing
from typing import Any, TypeVar

from omegaconf import DictConfig, ListConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from envs.errors import ConfigError

T = TypeVar("T")


def _first_line(exc: Exception) -> str:
    return str(exc).splitlines()[0]


def _locate(cls: type, data: Any, path: str) -> tuple[str, str]:
    """(path, message) of the first field of ``data`` that ``cls`` rejects."""
    if not isinstance(data, dict | DictConfig):
        return path, f"a mapping for {cls.__name__}, got {type(data).__name__}"
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    for key in data:
        if key not in names:
            return (
                f"{path}.{key!s}",
                f"a field of {cls.__name__} ({', '.join(sorted(names))})",
            )
    for field in dataclasses.fields(cls):
        if field.name not in data:
            continue
        value = data[field.name]
        hint = hints[field.name]
        origin, args = typing.get_origin(hint), typing.get_args(hint)
        sub = f"{path}.{field.name}"
        if dataclasses.is_dataclass(hint):
            found = _locate(typing.cast(type, hint), value, sub)
            if found[0]:
                return found
            continue
        if origin is list and args and dataclasses.is_dataclass(args[0]):
            if not isinstance(value, list | ListConfig):
                return sub, f"a list, got {type(value).__name__}"
            for i, item in enumerate(value):
                found = _locate(typing.cast(type, args[0]), item, f"{sub}[{i}]")
                if found[0]:
                    return found
            continue
        try:
            OmegaConf.merge(OmegaConf.structured(cls), {field.name: value})
        except OmegaConfBaseException as exc:
            return sub, _first_line(exc)
    try:
        OmegaConf.to_object(OmegaConf.merge(OmegaConf.structured(cls), data))
    except OmegaConfBaseException as exc:
        key = getattr(exc, "full_key", "") or ""
        return (f"{path}.{key}" if key else path), _first_line(exc)
    return "", ""


def to_dataclass(cls: type[T], data: Any, root: str) -> T:
    """Validate ``data`` (mapping, DictConfig or instance) against dataclass ``cls``.

    Raises:
        ConfigError: naming ``root.<path>`` of the first bad field.
    """
    if isinstance(data, cls):
        return data
    try:
        merged = OmegaConf.merge(OmegaConf.structured(cls), data)
        obj = OmegaConf.to_object(merged)
    except OmegaConfBaseException as exc:
        plain = OmegaConf.to_container(data) if isinstance(data, DictConfig) else data
        path, message = _locate(cls, plain, root)
        raise ConfigError(
            path or root, f"a valid value ({message or _first_line(exc)})"
        ) from exc
    assert isinstance(obj, cls)
    return obj
