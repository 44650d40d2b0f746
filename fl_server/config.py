"""The one bridge from Hydra to Flower: ``RunConfig`` <-> flat run-config keys.

Flower's run config is a flat mapping of TOML scalars (bool, int, float, str). The
typed :class:`conf.schema.RunConfig` is flattened into dotted, hyphenated keys
(``federation.local-steps``, ``strategy.proximal-mu``, ``two-tier.episode-length``),
submitted with ``flwr run --run-config <file.toml>`` (Deployment Engine) or bound into
the apps (in-process Simulation Engine, whose ``context.run_config`` is empty), and
parsed back into the same ``RunConfig`` inside each app by :func:`from_run_config`.
Nobody reads ``context.run_config[...]`` anywhere else.

Encoding rules:

* scalars (bool, int, float, str) travel as they are; enums by member name;
* a field that may hold something TOML cannot carry (a list, a mapping, ``None``)
  always travels as JSON text, so the parser never has to guess;
* ``paths`` (Hydra interpolations) does not travel: its one use, the run folder, is
  resolved into ``federation.output-dir`` by the launcher.

``python -m fl_server.config [overrides...]`` prints the ``[tool.flwr.app.config]``
section of ``pyproject.toml`` (every key must be there for ``flwr run`` to accept an
override of it).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import sys
import types
import typing
from collections.abc import Mapping
from enum import Enum
from pathlib import Path
from typing import Any, Union

from omegaconf import OmegaConf

import conf.schema
from conf.schema import RunConfig

Scalar = bool | int | float | str
FlatConfig = dict[str, Scalar]

NOT_BRIDGED = ("paths",)
"""RunConfig fields that stay in Hydra (interpolations resolved by the launcher)."""

RESUME_INVARIANT_PREFIXES = ("engine.",)
RESUME_INVARIANT_KEYS = frozenset(
    {
        "task",
        "federation.rounds",
        "federation.resume",
        "federation.round-timeout-s",
        "federation.output-dir",
        "federation.eval-every",
        "federation.client-eval",
        "federation.client-eval-seeds",
        "federation.min-nodes",
    }
)
"""Keys a resumed run may change (budget, bookkeeping, engine); all others must match
the interrupted run's, or resuming would mix two experiments."""


# ---------------------------------------------------------------- schema walking


def _wire(name: str) -> str:
    return name.replace("_", "-")


def _is_json_typed(tp: Any) -> bool:
    """Whether values of type ``tp`` travel as JSON text (list, dict, optional)."""
    origin = typing.get_origin(tp)
    if origin in (list, dict, tuple):
        return True
    if origin in (Union, types.UnionType):
        return True
    return tp is Any


def _leaves(cls: type, prefix: str = "") -> dict[str, tuple[str, Any]]:
    """Wire key -> (attribute path, type) for every leaf field of dataclass ``cls``."""
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


_SCHEMA = _leaves(RunConfig)


def run_config_keys() -> list[str]:
    """Every run-config key of :class:`RunConfig`, in schema order."""
    return list(_SCHEMA)


# ---------------------------------------------------------------- RunConfig -> Flower


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


def to_run_config(cfg: RunConfig) -> FlatConfig:
    """Flatten ``cfg`` into Flower run-config keys (see the module docstring)."""
    if not isinstance(cfg, RunConfig):
        raise TypeError(
            f"to_run_config: expected a RunConfig, got {type(cfg).__name__}"
        )
    flat: FlatConfig = {}
    for key, (path, tp) in _SCHEMA.items():
        value = _plain(_lookup(cfg, path))
        if _is_json_typed(tp):
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


def pyproject_section(cfg: RunConfig) -> str:
    """The ``[tool.flwr.app.config]`` section holding every key with its default."""
    header = (
        "# Generated by `python -m fl_server.config`: every RunConfig field as a\n"
        "# Flower run-config key (flwr run only overrides keys listed here).\n"
    )
    return header + "[tool.flwr.app.config]\n" + to_toml(to_run_config(cfg))


# ---------------------------------------------------------------- Flower -> RunConfig


def _decode(key: str, tp: Any, value: Any) -> Any:
    if not _is_json_typed(tp):
        return value
    if not isinstance(value, str):
        raise ValueError(f"run config {key}: expected JSON text, got {value!r}")
    try:
        return json.loads(value)
    except json.JSONDecodeError as err:
        raise ValueError(
            f"run config {key}: expected JSON text, got {value!r} ({err.msg})"
        ) from None


def from_run_config(run_config: Mapping[str, Any]) -> RunConfig:
    """Parse Flower run-config keys back into the typed :class:`RunConfig`.

    Keys left out take the schema default; an unknown key, bad JSON or a value of the
    wrong type raises an error naming the key (OmegaConf's ``full_key``).
    """
    unknown = sorted(k for k in run_config if k not in _SCHEMA)
    if unknown:
        raise ValueError(
            f"run config: unknown keys {unknown}; expected RunConfig fields such as "
            "'federation.local-steps' (regenerate with `python -m fl_server.config`)"
        )
    nested: dict[str, Any] = {}
    for key, value in run_config.items():
        path, tp = _SCHEMA[key]
        node = nested
        *parents, leaf = path.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = _decode(key, tp, value)
    merged = OmegaConf.merge(OmegaConf.structured(RunConfig), nested)
    cfg = OmegaConf.to_object(merged)
    assert isinstance(cfg, RunConfig)
    return cfg


# ---------------------------------------------------------------- derived values


def regions_of(cfg: RunConfig) -> list[str]:
    """The federation's clients: ``federation.regions``, or the scenario's regions."""
    regions = list(cfg.federation.regions)
    if not regions:
        if cfg.env != "two_tier":
            raise ValueError(
                "federation.regions: expected the cluster folders of the rescheduling "
                "clients (env=reschedule has no scenario regions), got []"
            )
        regions = [r.id for r in cfg.scenario.regions]
    if len(set(regions)) != len(regions):
        raise ValueError(f"federation.regions: expected distinct names, got {regions}")
    if cfg.env == "two_tier":
        known = [r.id for r in cfg.scenario.regions]
        missing = [r for r in regions if r not in known]
        if missing:
            raise ValueError(
                f"federation.regions: {missing} not in scenario {cfg.scenario.name!r} "
                f"(regions {known})"
            )
    return regions


def with_common_padding(cfg: RunConfig) -> RunConfig:
    """Pad every rescheduling client to the largest cluster, so they share one network.

    The action space is ``max_nodes * max_pods + 1`` and the observation follows the
    same axes: clusters of different sizes can only average their policies when both
    are fixed for the whole federation. The launcher resolves them once, here, from
    the cluster folders it can see (loopback and simulation runs); in a multi-party
    deployment, where each party holds only its own cluster, set
    ``reschedule.max_nodes`` and ``reschedule.max_pods`` explicitly. A cluster larger
    than the padding fails on its client, naming both.
    """
    settings = cfg.reschedule
    if cfg.env != "reschedule" or (settings.max_nodes and settings.max_pods):
        return cfg
    from envs.reach.core import load_settings_config

    configs = [
        load_settings_config(dataclasses.replace(settings, cluster=cluster))
        for cluster in regions_of(cfg)
    ]
    padded = dataclasses.replace(
        settings,
        max_nodes=settings.max_nodes or max(len(c.nodes.nodes) for c in configs),
        max_pods=settings.max_pods or max(c.n_pods for c in configs),
    )
    return dataclasses.replace(cfg, reschedule=padded)


def fingerprint(flat: Mapping[str, Scalar]) -> dict[str, Scalar]:
    """The part of a flat config that must match for a run to be resumed."""
    return {
        k: v
        for k, v in flat.items()
        if k not in RESUME_INVARIANT_KEYS
        and not k.startswith(RESUME_INVARIANT_PREFIXES)
    }


def digest(flat: Mapping[str, Scalar]) -> str:
    """A short hash of :func:`fingerprint` (for checkpoint metadata)."""
    text = json.dumps(fingerprint(flat), sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def compose(overrides: list[str] | None = None) -> RunConfig:
    """Compose ``conf/config.yaml`` with Hydra overrides into a ``RunConfig``.

    For tools and tests outside ``@hydra.main``: ``paths`` (which needs a Hydra run)
    is left out.
    """
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir

    conf_dir = Path(conf.schema.__file__).resolve().parent
    with initialize_config_dir(config_dir=str(conf_dir), version_base="1.3"):
        raw = hydra_compose(config_name="config", overrides=list(overrides or []))
    raw = OmegaConf.masked_copy(raw, [str(k) for k in raw if k not in NOT_BRIDGED])
    cfg = OmegaConf.to_object(OmegaConf.merge(OmegaConf.structured(RunConfig), raw))
    assert isinstance(cfg, RunConfig)
    return cfg


def main(argv: list[str] | None = None) -> int:
    """Print the pyproject section for the default (or overridden) config."""
    args = sys.argv[1:] if argv is None else argv
    sys.stdout.write(pyproject_section(compose(args)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
