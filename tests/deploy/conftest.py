"""Paths and tools of the deployment tests (validators come from the dev extra)."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


SYSTEM_TOOLS = {"promtool", "prometheus"}
"""Validators from the system's packages (``make system-deps``), not the dev extra."""


def tool(name: str) -> str:
    """A validator's executable: the venv's own, else PATH; a clear failure if neither."""
    local = BIN / name
    if local.exists():
        return str(local)
    found = shutil.which(name)
    if found is None:
        source = ("`make system-deps` installs it (Debian package prometheus)"
                  if name in SYSTEM_TOOLS else "`pip install -e .[dev]` brings it")  # fmt: skip
        pytest.fail(f"{name}: not installed ({source})")
    return found
