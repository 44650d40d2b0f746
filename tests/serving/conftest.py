"""Session fixtures: tiny trained checkpoints and real servers on loopback ports.

Checkpoints are trained for a few dozen steps (seconds); both long-lived servers are
started together so their start-ups overlap, and each is stopped by its own PID.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.serving.helpers import (
    TINY_POLICY,
    Server,
    run_config,
    start_server,
    stop_server,
    train_checkpoint,
    wait_ready,
)

MAX_BATCH = 64  # the two-tier server's --max-batch (the 413 test sends more)


@pytest.fixture(scope="session")
def checkpoints(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Tiny two-tier policies and a ``reschedule`` one.

    ``both``, ``both2`` and ``lb`` are plain MLPs; ``loads`` observes region loads
    and scores with the FPI prior (``env=two_tier_fpi``'s network).
    """
    folder = tmp_path_factory.mktemp("checkpoints")
    both = run_config("two_tier", two_tier={"learn": "both"})
    lb = run_config("two_tier", two_tier={"learn": "lb"})
    loads = run_config(
        "two_tier",
        two_tier={"learn": "both", "load_input": True},
        policy={**TINY_POLICY, "network": "two_tier_scorer_fpi"},
    )
    return {
        "loads": train_checkpoint(folder / "loads.zip", loads, seed=3),
        "both": train_checkpoint(folder / "both.zip", both, seed=0, round=1),
        "both2": train_checkpoint(folder / "both2.zip", both, seed=1, round=2),
        "lb": train_checkpoint(folder / "lb.zip", lb, seed=2),
        "reschedule": train_checkpoint(
            folder / "reschedule.zip", run_config("reschedule"), seed=0
        ),
    }


@pytest.fixture(scope="session")
def servers(
    checkpoints: dict[str, Path], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, Server]]:
    """A two-tier (``learn=both``) and a REACH server, started in parallel."""
    logs = tmp_path_factory.mktemp("server-logs")
    started = {
        "two_tier": start_server(
            checkpoints["both"],
            logs / "two_tier.log",
            "--max-batch",
            str(MAX_BATCH),
            wait=False,
        ),
        "reach": start_server(
            checkpoints["reschedule"], logs / "reach.log", wait=False
        ),
    }
    try:
        for server in started.values():
            wait_ready(server)
        yield started
    finally:
        for server in started.values():
            stop_server(server)


@pytest.fixture(scope="session")
def two_tier_server(servers: dict[str, Server]) -> Server:
    return servers["two_tier"]


@pytest.fixture(scope="session")
def reach_server(servers: dict[str, Server]) -> Server:
    return servers["reach"]
