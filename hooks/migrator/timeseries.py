"""REACH's time series (CSV) plus a JSONL twin with the decision details.

The CSV keeps REACH's columns in REACH's order (``timestamp,
human_readable_timestamp, latency, current_node, target_node, target_pod,
failed_node, event``) and adds ours after them; the header is written only to an
empty file, rows are appended whole (one ``write`` each).
"""

from __future__ import annotations

import csv
import io
import time
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from hooks.jsonl import append_json, append_line

COLUMNS = (
    "timestamp", "human_readable_timestamp", "latency", "current_node",
    "target_node", "target_pod", "failed_node", "event",
    "new_pod", "migration_id", "outcome", "mode",
)  # fmt: skip
"""REACH's eight columns first, then ours."""


@dataclass(frozen=True)
class Row:
    """One event."""

    event: str
    """``latency``, ``decision``, ``rescheduling``, ``stop``, ``refused``, ``error``,
    ``reconciled``, ``experiment_start``."""
    latency: float | None = None
    current_node: str = ""
    target_node: str = ""
    target_pod: str = ""
    failed_node: str = ""
    new_pod: str = ""
    migration_id: str = ""
    outcome: str = ""
    mode: str = ""


class TimeSeries:
    """Appends rows to ``<output>.csv`` and ``<output>.jsonl``."""

    def __init__(self, csv_path: Path) -> None:
        self.csv_path = csv_path
        self.jsonl_path = csv_path.with_suffix(".jsonl")

    def record(self, row: Row, extra: dict[str, Any] | None = None) -> None:
        """Append one row to both files."""
        now = time.time()
        values = {
            "timestamp": f"{now:.3f}",
            "human_readable_timestamp": datetime.fromtimestamp(now, UTC).isoformat(),
            **asdict(row),
        }
        values["latency"] = "" if row.latency is None else f"{row.latency:.3f}"
        if not self.csv_path.exists() or self.csv_path.stat().st_size == 0:
            append_line(self.csv_path, ",".join(COLUMNS))
        buffer = io.StringIO()
        csv.writer(buffer, lineterminator="").writerow([values[c] for c in COLUMNS])
        append_line(self.csv_path, buffer.getvalue())
        append_json(
            self.jsonl_path,
            {**values, "latency": row.latency, "timestamp": now, **(extra or {})},
        )
