"""``flower-supernode`` with a configurable poll interval.

Flower 1.42's SuperNode main loop (``flwr.supernode.start_client_internal``) asks the
SuperLink for a message and, when there is none, sleeps a hard-coded 3 s; while a
ClientApp works it checks for the reply every 0.5 s. Between two rounds every node
finds nothing at first (the server is still waiting for the slowest reply), so a round
starts up to 3 s late on each node, and the federation's round time pays the latest
of them: about 2-3 s per round here, a tenth of a 30 s round.

This launcher runs Flower's own ``flower-supernode`` entry point unchanged, except
that the sleeps of that one loop module are capped at ``--poll-interval`` seconds.
Idle nodes then poll the SuperLink more often (a few small requests per second per
node, only between rounds), which is what a deployment that wants short rounds asks
for. Everything else (arguments, isolation, TLS, authentication) is the stock
SuperNode:

    python -m fl_clients.supernode --poll-interval 0.2 --superlink 127.0.0.1:9092 ...

Pinned to flwr 1.42 like :mod:`fl_clients.worker`: if the loop module no longer sleeps
through its module-level ``time``, the launcher stops with an error instead of
silently polling at Flower's pace.
"""

from __future__ import annotations

import argparse
import inspect
import sys
import time
from types import ModuleType
from typing import Any

from flwr.supernode import start_client_internal
from flwr.supernode.cli import flower_supernode

from fl_server.pulls import quick_object_pulls


class CappedSleeps:
    """Stands in for the ``time`` module inside one Flower module: sleeps capped."""

    def __init__(self, cap: float, clock: ModuleType = time) -> None:
        if not cap > 0:
            raise ValueError(f"--poll-interval: expected seconds > 0, got {cap}")
        self.cap, self._clock = cap, clock

    def sleep(self, seconds: float) -> None:
        """Sleep ``seconds``, at most :attr:`cap`."""
        self._clock.sleep(min(seconds, self.cap))

    def __getattr__(self, name: str) -> Any:
        return getattr(self._clock, name)


def cap_loop_sleeps(cap: float, module: ModuleType = start_client_internal) -> None:
    """Make ``module``'s ``time.sleep`` calls wait at most ``cap`` seconds."""
    if getattr(module, "time", None) is not time or "time.sleep(" not in (
        inspect.getsource(module)
    ):
        raise RuntimeError(
            f"{module.__name__} no longer sleeps through its module-level 'time': "
            "this launcher fits flwr 1.42; run flower-supernode directly "
            "(engine.node_poll_s=0)"
        )
    module.time = CappedSleeps(cap)  # type: ignore[attr-defined]


def timestamp_logs() -> None:
    """Timestamped, plain console lines: the logs are files, read to time rounds."""
    from flwr.common.logger import update_console_handler

    update_console_handler(timestamps=True, colored=False)


def main(argv: list[str] | None = None) -> None:
    """Parse ``--poll-interval``, hand every other argument to flower-supernode."""
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        allow_abbrev=False,
        add_help=False,  # --help shows flower-supernode's own options
    )
    parser.add_argument(
        "--poll-interval",
        type=float,
        required=True,
        help="longest sleep of the SuperNode loop, in seconds (Flower: 3 s idle)",
    )
    args, rest = parser.parse_known_args(sys.argv[1:] if argv is None else argv)
    cap_loop_sleeps(args.poll_interval)
    quick_object_pulls(start_client_internal)
    timestamp_logs()
    sys.argv = ["flower-supernode", *rest]
    flower_supernode()


if __name__ == "__main__":
    main()
