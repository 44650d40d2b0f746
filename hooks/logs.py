"""The hooks' CLIs log alike: one format, and a bad ``--log-level`` is exit 2."""

from __future__ import annotations

import argparse
import logging

FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def setup_logging(parser: argparse.ArgumentParser, level: str) -> None:
    """Log at ``level`` to stderr; an unknown level is a usage error (exit 2)."""
    if not isinstance(logging.getLevelName(level.upper()), int):
        parser.error(
            f"--log-level: expected debug, info, warning or error, got {level!r}"
        )
    logging.basicConfig(level=level.upper(), format=FORMAT)
