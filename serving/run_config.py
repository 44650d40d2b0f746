"""The typed run config a checkpoint was trained with, from its metadata.

Two writers exist: ``scripts.train`` stores the nested ``RunConfig`` as a plain dict,
the federation stores its flat Flower run-config keys (``two-tier.learn``, lists and
optionals as JSON text). The flat form is parsed by the project's one bridge,
:mod:`conf.flat`; both end as the same :class:`conf.schema.RunConfig`, so serving
rebuilds exactly the training environment.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from conf.flat import NOT_BRIDGED, from_flat, from_nested
from conf.schema import RunConfig

CONTEXT = "metadata config"


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
            f"{CONTEXT}: expected the training run's config (a JSON object) in "
            "the checkpoint's .json file; write checkpoints with "
            "policies.checkpoint.save_checkpoint(model, path, {'config': ...})"
        )
    if is_flat(raw):
        return from_flat(raw, CONTEXT, "was the checkpoint written by another version?")
    return from_nested({k: v for k, v in raw.items() if k not in NOT_BRIDGED}, CONTEXT)
