"""Estimate the container image's venv: ``python -m scripts.image_size [--top 12]``.

No image can be built here, so the estimate adds up the installed files (each
distribution's ``RECORD``) of every package the project needs at run time, following
``[project].dependencies`` and the extras they ask for (``flwr[simulation]``), but not
the project's own extras. It reads this checkout's venv, whose torch is the same CPU
wheel the Dockerfile installs; the base image (``python:3.11-slim``, about 0.13 GB)
and the 4 MB of sources come on top.
"""

from __future__ import annotations

import argparse
import importlib.metadata as md
import re
from pathlib import Path

from packaging.requirements import Requirement

PROJECT = "federated-rl-multicloud"


def _key(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def closure(root: str = PROJECT) -> set[str]:
    """The installed distributions ``root`` needs at run time (itself included)."""
    found: dict[str, set[str]] = {}
    todo: list[tuple[str, frozenset[str]]] = [(root, frozenset())]
    while todo:
        name, extras = todo.pop()
        key = _key(name)
        if key in found and extras <= found[key]:
            continue
        try:
            dist = md.distribution(name)
        except md.PackageNotFoundError:
            continue  # a dependency for another platform or Python
        found.setdefault(key, set()).update(extras)
        for text in dist.requires or []:
            req = Requirement(text)
            wanted = req.marker is None or any(
                req.marker.evaluate({"extra": extra}) for extra in ("", *extras)
            )
            if wanted:
                todo.append((req.name, frozenset(req.extras)))
    return set(found)


def installed_bytes(name: str) -> int:
    """Bytes of the files a distribution installed."""
    dist = md.distribution(name)
    total = 0
    for file in dist.files or []:
        try:
            total += Path(str(dist.locate_file(file))).stat().st_size
        except OSError:
            pass  # listed but gone (e.g. a removed .pyc)
    return total


def main(argv: list[str] | None = None) -> int:
    """Print the largest distributions and the total."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--top", type=int, default=12)
    args = parser.parse_args(argv)
    sizes = sorted(
        ((installed_bytes(n), n) for n in closure() if n != PROJECT), reverse=True
    )
    for size, name in sizes[: args.top]:
        print(f"{size / 1e6:9.1f} MB  {name}")
    total = sum(s for s, _ in sizes)
    print(f"{total / 1e9:9.2f} GB  runtime venv ({len(sizes)} distributions)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
