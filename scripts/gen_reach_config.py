"""Write a valid REACH config set of any size: ``python -m scripts.gen_reach_config``.

Usage: ``python -m scripts.gen_reach_config --nodes 100 --pods 300 --out <root>``.
Writes ``<root>/<nodes>-<pods>/{nodes,services}.json`` and
``<root>/<pattern>_call_patterns.json`` (REACH's layout), then validates the result
with the strict loader.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from envs.reach.errors import ReachConfigError
from envs.reach.formats import load_reach_config
from envs.reach.generator import generate, write_config
from envs.reach.model import PATTERNS


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m scripts.gen_reach_config", description=__doc__
    )
    parser.add_argument("--nodes", type=int, required=True, help="total nodes (>= 3)")
    parser.add_argument(
        "--pods", type=int, required=True, help="total pod slots (>= 2)"
    )
    parser.add_argument("--out", type=Path, required=True, help="config root folder")
    parser.add_argument(
        "--pattern",
        action="append",
        choices=PATTERNS,
        help="call pattern to write (repeatable; default: all three)",
    )
    parser.add_argument("--seed", type=int, default=0, help="same seed, same files")
    parser.add_argument(
        "--endpoints", type=int, default=2, help="endpoints per pattern"
    )
    args = parser.parse_args(argv)
    try:
        generated = generate(
            args.nodes,
            args.pods,
            seed=args.seed,
            patterns=tuple(args.pattern or PATTERNS),
            endpoints=args.endpoints,
        )
    except ValueError as err:
        parser.error(str(err))
    folder = write_config(generated, args.out)
    try:
        for pattern in generated.call_patterns:
            load_reach_config(folder, pattern)
    except ReachConfigError as err:  # a generator bug, never a user error
        print(f"generated config does not validate: {err}", file=sys.stderr)
        return 1
    print(folder)
    for pattern in generated.call_patterns:
        print(Path(args.out) / f"{pattern}_call_patterns.json")
    return 0


if __name__ == "__main__":
    sys.exit(main())
