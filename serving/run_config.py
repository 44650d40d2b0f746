"""The typed run config a checkpoint was trained with, from its metadata.

Two writers exist: ``scripts.train`` stores the nested ``RunConfig`` as a plain dict,
the federation stores its flat Flower run-config keys (``two-tier.learn``, lists and
optionals as JSON text; see ``fl_server.config``). Both are read here into the same
:class:`conf.schema.RunConfig` so serving rebuilds exactly the training environment.
"""

from __future__ import annotations

import dataclasses
import json
import types
import typing
from collections.abc import Mapping
from typing import Any, Union

from omegaconf import OmegaConf

from conf.schema import RunConfig

_NOT_SERVED = ("paths",)  # folders of the training run; they may hold interpolations


def _json_typed(tp: Any) -> bool:
    """Whether the flat format carries values of ``tp`` as JSON text."""
    origin = typing.get_origin(tp)
    return origin in (list, dict, tuple, Union, types.UnionType) or tp is Any


def _flat_schema(cls: type, prefix: str = "", path: str = "") -> dict[str, tuple]:
    """Flat key -> (nested attribute path, leaf type) for every leaf of ``cls``."""
    hints = typing.get_type_hints(cls)
    out: dict[str, tuple] = {}
    for f in dataclasses.fields(cls):
        tp = hints[f.name]
        key = prefix + f.name.replace("_", "-")
        attr = f"{path}{f.name}"
        if isinstance(tp, type) and dataclasses.is_dataclass(tp):
            out.update(_flat_schema(tp, key + ".", attr + "."))
        else:
            out[key] = (attr, tp)
    return out


_FLAT = _flat_schema(RunConfig)


def _unflatten(flat: Mapping[str, Any]) -> dict[str, Any]:
    nested: dict[str, Any] = {}
    for key, value in flat.items():
        if key not in _FLAT:
            raise ValueError(
                f"metadata config.{key}: expected a RunConfig key such as "
                "'two-tier.learn' (was the checkpoint written by another version?)"
            )
        attr, tp = _FLAT[key]
        if _json_typed(tp) and isinstance(value, str):
            try:
                value = json.loads(value)
            except json.JSONDecodeError as err:
                raise ValueError(
                    f"metadata config.{key}: expected JSON text, got {value!r} "
                    f"({err.msg})"
                ) from None
        node = nested
        *parents, leaf = attr.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    return nested


def is_flat(config: Mapping[str, Any]) -> bool:
    """Whether ``config`` is the federation's flat key form."""
    return any("." in key for key in config)


def run_config_from_metadata(metadata: Mapping[str, Any]) -> RunConfig:
    """Rebuild the typed training config from a checkpoint's metadata.

    Raises:
        ValueError: no ``config`` entry, or one that does not fit the schema (the
            message names the key).
    """
    raw = metadata.get("config")
    if not isinstance(raw, Mapping) or not raw:
        raise ValueError(
            "metadata config: expected the training run's config (a JSON object) in "
            "the checkpoint's .json file; write checkpoints with "
            "policies.checkpoint.save_checkpoint(model, path, {'config': ...})"
        )
    nested = _unflatten(raw) if is_flat(raw) else dict(raw)
    for key in _NOT_SERVED:
        nested.pop(key, None)
    try:
        merged = OmegaConf.merge(OmegaConf.structured(RunConfig), nested)
        cfg = OmegaConf.to_object(merged)
    except Exception as err:  # OmegaConf raises several classes, all name full_key
        raise ValueError(f"metadata config: {' '.join(str(err).split())}") from err
    if not isinstance(cfg, RunConfig):
        raise ValueError("metadata config: expected a RunConfig")
    return cfg
