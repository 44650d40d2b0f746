r"""The carbon bound's figure from ``scripts.benchmarks.carbon_bound`` reports.

    python -m scripts.plot_carbon_bound \
        --bound docs/quality/data/two_tier/carbon-bound-default-per-type.json \
        --points docs/quality/data/two_tier/carbon-front-default.jsonl \
        --out docs/figures/carbon_bound --name default_per_type

``--bound``: a report with the frontier; ``--points``: JSON or JSON-lines files of
reports with policies, measured on the same protocol (checked).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from analysis.carbon_bound import carbon_bound_plot


def read_reports(path: Path) -> list[dict[str, Any]]:
    """One report (a JSON object) or several (JSON lines)."""
    text = path.read_text()
    try:
        return [json.loads(text)]
    except json.JSONDecodeError:
        return [json.loads(line) for line in text.splitlines() if line.strip()]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="plot_carbon_bound", description=__doc__)
    parser.add_argument("--bound", type=Path, required=True)
    parser.add_argument("--points", type=Path, nargs="*", default=[])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--name", default="carbon_bound")
    args = parser.parse_args(argv)
    try:
        (bound,) = read_reports(args.bound)
        reports = [r for path in args.points for r in read_reports(path)]
        for path in carbon_bound_plot(bound, reports, args.out, args.name):
            print(path)
    except (OSError, ValueError, KeyError) as exc:
        sys.exit(f"plot_carbon_bound: {exc}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
