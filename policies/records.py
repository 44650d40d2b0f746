"""Tidy result files of a run: one row per evaluation seed, written reproducibly.

Every evaluation row carries the same identity columns (:data:`IDENTITY`): the round,
the phase, the policy, the region, the *training* seed of the run and the
*evaluation* seed of the episodes, and the env steps trained so far. Three files
hold them:

* ``metrics.csv``: metrics per row (pooled and per request type);
* ``latency_quantiles.csv``: a latency quantile sketch per row and request type, fine
  enough to draw a CDF (:data:`policies.evaluation.QUANTILES`);
* ``episodes.csv``: per rescheduling episode, latency before/after, reduction, moves.

The same rows give the same bytes: rows are sorted by their identity, columns are the
identity then the metric names in sorted order, floats are written as Python's
shortest round-tripping text and missing values as empty cells. Wall-clock timings
and node ids do not belong here (they differ between identical runs).
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from policies.evaluation import (
    POOLED,
    QUANTILES,
    SeedEvaluation,
    atomic_write_text,
    quantile_column,
)

IDENTITY = (
    "round",
    "phase",
    "policy",
    "region",
    "train_seed",
    "eval_seed",
    "env_steps",
)
"""Columns that say what a row measured, first in every file, in this order."""

PHASE_ORDER = {"server-eval": 0, "client-eval": 1, "train": 2, "dropped": 3}
"""Row order within a round (unknown phases last, by name)."""

NON_DETERMINISTIC = frozenset(
    {
        "node",
        "run_id",
        "train/seconds",
        "train/fps",
        "fed/round_s",
        "fed/train_s",
    }
)
"""Columns that differ between two runs of one config (wall clock, Flower's ids)."""


def seed_rows(
    results: Sequence[SeedEvaluation], **identity: Any
) -> list[dict[str, Any]]:
    """One metrics row per evaluation seed, with the given identity columns."""
    return [{**identity, "eval_seed": r.seed, **r.metrics} for r in results]


def sketch_rows(
    results: Sequence[SeedEvaluation], **identity: Any
) -> list[dict[str, Any]]:
    """Latency sketch rows: per seed and request type (``all`` = pooled), in ms."""
    rows = []
    for result in results:
        for kind, values in result.latency_quantiles.items():
            slo = math.nan if kind == POOLED else result.slo_ms.get(kind, math.nan)
            row: dict[str, Any] = {
                **identity,
                "eval_seed": result.seed,
                "request_type": kind,
                "slo_ms": slo,
            }
            row.update(
                {
                    quantile_column(q): round(float(v), 4)
                    for q, v in zip(QUANTILES, values, strict=True)
                }
            )
            rows.append(row)
    return rows


def episode_rows(
    results: Sequence[SeedEvaluation], **identity: Any
) -> list[dict[str, Any]]:
    """One row per rescheduling episode of every seed."""
    return [
        {**identity, "eval_seed": r.seed, **episode}
        for r in results
        for episode in r.episodes
    ]


def _sort_key(row: Mapping[str, Any]) -> tuple[Any, ...]:
    phase = str(row.get("phase", ""))

    def number(name: str) -> float:
        value = row.get(name)
        return float(value) if isinstance(value, int | float) else -1.0

    return (
        number("round"),
        PHASE_ORDER.get(phase, len(PHASE_ORDER)),
        phase,
        str(row.get("policy", "")),
        str(row.get("region", "")),
        number("eval_seed"),
        str(row.get("request_type", "")),
        number("episode"),
    )


def _cell(value: Any) -> str:
    """CSV text of one value: shortest round-trip floats, empty for missing."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return str(int(value))
    if isinstance(value, float):
        return "" if not math.isfinite(value) else repr(value)
    return str(value)


def tidy_csv(
    rows: Iterable[Mapping[str, Any]],
    first: Sequence[str] = IDENTITY,
    drop: Iterable[str] = NON_DETERMINISTIC,
) -> str:
    """``rows`` as CSV text: sorted rows, ``first`` columns then the rest sorted."""
    dropped = set(drop)
    ordered = sorted(rows, key=_sort_key)
    seen = {k for row in ordered for k in row if k not in dropped}
    columns = [c for c in first if c in seen or c in IDENTITY]
    columns += sorted(seen - set(columns))
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(columns)
    for row in ordered:
        writer.writerow([_cell(row.get(c)) for c in columns])
    return buffer.getvalue()


def write_tidy_csv(
    path: Path,
    rows: Iterable[Mapping[str, Any]],
    first: Sequence[str] = IDENTITY,
    drop: Iterable[str] = NON_DETERMINISTIC,
) -> None:
    """Write :func:`tidy_csv` of ``rows`` to ``path`` atomically."""
    atomic_write_text(path, tidy_csv(rows, first, drop))


def _parse(text: str) -> Any:
    if text == "":
        return None
    try:
        number = float(text)
    except ValueError:
        return text
    return int(number) if number.is_integer() and "." not in text else number


def read_rows(path: Path) -> list[dict[str, Any]]:
    """Rows of a file written by :func:`write_tidy_csv`, numbers parsed back."""
    if not path.exists():
        return []
    with path.open(newline="", encoding="utf-8") as handle:
        return [
            {k: _parse(v) for k, v in row.items() if v != ""}
            for row in csv.DictReader(handle)
        ]
