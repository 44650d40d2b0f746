r"""Whether one policy's carbon front dominates the others' points, as JSON.

    python -m scripts.carbon_front \
        --points docs/quality/data/two_tier/carbon-front-default.jsonl \
                 docs/quality/data/two_tier/carbon-front-default-high.jsonl \
        --candidate learned --objectives p95_all --objectives slo \
        --objectives p95_all,slo

``--points``: JSON or JSON-lines files of ``scripts.benchmarks.carbon_bound``
reports, one per carbon weight (``carbon_weight`` in each), on one protocol
(checked). Each ``--objectives`` is one set of latency objectives judged with carbon
(``p95_all``, ``slo``, ``p95_types``); one JSON object per set. ``--candidate``
repeated judges several policies as one front (a rule at several settings). Exit 2
on bad input.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from analysis.carbon_front import OBJECTIVES, dominance, front_points
from scripts.plot_carbon_bound import read_reports


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="carbon_front", description=__doc__)
    parser.add_argument("--points", type=Path, nargs="+", required=True)
    parser.add_argument(
        "--candidate", action="append", default=[],
        help="the policy judged (default learned); repeated: one front of several",
    )  # fmt: skip
    parser.add_argument(
        "--objectives", action="append", default=[],
        help=f"comma-separated, of {', '.join(OBJECTIVES)}; repeatable",
    )  # fmt: skip
    args = parser.parse_args(argv)
    sets = [[o for o in text.split(",") if o] for text in args.objectives] or [
        ["p95_all"]
    ]
    try:
        reports = [r for path in args.points for r in read_reports(path)]
        points = front_points(reports)
        for objectives in sets:
            judged = args.candidate or ["learned"]
            print(json.dumps(dominance(points, judged, objectives)))
    except KeyError as exc:
        print(f"carbon_front: a report lacks {exc} (not a carbon_bound report?)",
              file=sys.stderr)  # fmt: skip
        return 2
    except (OSError, ValueError) as exc:
        print(f"carbon_front: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
