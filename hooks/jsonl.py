"""Append-only JSONL and atomic whole-file writes (never read-modify-write)."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any


def append_line(path: Path, line: str) -> None:
    """Append one line with a single ``write`` on an ``O_APPEND`` descriptor.

    POSIX appends of one small buffer land whole, so a reader (or a crash) never
    sees half a record; the data is flushed before returning.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    data = (line.rstrip("\n") + "\n").encode("utf-8")
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)


def append_json(path: Path, record: dict[str, Any]) -> None:
    """Append one JSON object as a line."""
    append_line(path, json.dumps(record, sort_keys=False, default=str))


def write_atomic(path: Path, text: str) -> None:
    """Write a whole file via a temp file in the same folder and ``os.replace``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(text)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """All records of a JSONL file (empty list if it does not exist)."""
    if not path.exists():
        return []
    return [json.loads(s) for s in path.read_text().splitlines() if s.strip()]
