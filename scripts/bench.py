"""Run a benchmark and print its figures: ``python -m scripts.bench <name> [--json]``.

Each benchmark lives in ``scripts/benchmarks/<name>.py`` and exposes
``add_arguments(parser)`` (optional) and ``run(args) -> dict``. With ``--json`` the
figures are printed as one JSON object on stdout (machines read it); otherwise as a
table. Benchmarks measure; tests never time things.
"""

from __future__ import annotations

import argparse
import importlib
import json
import logging
import pkgutil
import sys

import scripts.benchmarks as benchmarks


def _available() -> list[str]:
    """Benchmark modules: those defining ``run`` (parts define ``measure``)."""
    names = sorted(m.name for m in pkgutil.iter_modules(benchmarks.__path__))
    return [
        n for n in names
        if hasattr(importlib.import_module(f"scripts.benchmarks.{n}"), "run")
    ]  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    names = _available()
    parser = argparse.ArgumentParser(
        prog="python -m scripts.bench", description=__doc__
    )
    sub = parser.add_subparsers(dest="name", required=True)
    for name in names:
        module = importlib.import_module(f"scripts.benchmarks.{name}")
        p = sub.add_parser(name, help=(module.__doc__ or "").strip().splitlines()[0])
        p.add_argument("--json", action="store_true", help="print one JSON object")
        if hasattr(module, "add_arguments"):
            module.add_arguments(p)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(message)s")
    module = importlib.import_module(f"scripts.benchmarks.{args.name}")
    figures = module.run(args)
    if args.json:
        print(json.dumps(figures))
    else:
        width = max(len(k) for k in figures)
        for key, value in figures.items():
            print(f"{key:<{width}}  {value}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
