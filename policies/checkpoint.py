"""Atomic checkpoints of a policy that ``MaskablePPO.load`` opens, with metadata beside.

A checkpoint is ``<name>.zip`` (SB3's format) plus ``<name>.json`` (round, config,
metrics). Both are written to a temp file in the same folder and renamed into place,
so a reader (the policy server, a resumed run) never sees half a file.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

from sb3_contrib import MaskablePPO

from policies.evaluation import atomic_write_text


def save_checkpoint(
    model: MaskablePPO, path: str | Path, metadata: dict[str, Any] | None = None
) -> Path:
    """Write ``model`` to ``path`` (``.zip``) and ``metadata`` beside, atomically.

    The metadata file is written first and the model last, so a complete model zip
    always has its metadata beside it.
    """
    path = Path(path)
    if path.suffix != ".zip":
        path = path.with_suffix(".zip")
    path.parent.mkdir(parents=True, exist_ok=True)
    if metadata is not None:
        atomic_write_text(
            path.with_suffix(".json"), json.dumps(metadata, indent=2, default=str)
        )
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=".zip")
    os.close(fd)
    try:
        model.save(tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def load_checkpoint(path: str | Path, device: str = "cpu") -> MaskablePPO:
    """Open a checkpoint written by :func:`save_checkpoint` or ``model.save``."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"checkpoint: no file at {path}")
    return MaskablePPO.load(path, device=device)


def load_metadata(path: str | Path) -> dict[str, Any]:
    """The metadata beside a checkpoint (empty if there is none)."""
    meta = Path(path).with_suffix(".json")
    return json.loads(meta.read_text()) if meta.exists() else {}
