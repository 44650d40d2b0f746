"""The SuperNode launcher: Flower's own entry point, only its loop sleeps capped."""

from __future__ import annotations

import subprocess
import sys
import types

import pytest

from fl_clients import supernode
from fl_clients.supernode import CappedSleeps, cap_loop_sleeps


class RecordingClock:
    def __init__(self) -> None:
        self.slept: list[float] = []

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)

    def monotonic(self) -> float:
        return 42.0


def test_sleeps_are_capped_and_everything_else_passes_through() -> None:
    clock = RecordingClock()
    capped = CappedSleeps(0.2, clock)  # type: ignore[arg-type]
    capped.sleep(3)
    capped.sleep(0.05)
    assert clock.slept == [0.2, 0.05]
    assert capped.monotonic() == 42.0


@pytest.mark.parametrize("cap", [0.0, -1.0, float("nan")])
def test_a_cap_that_is_not_positive_is_refused(cap: float) -> None:
    with pytest.raises(ValueError, match="--poll-interval: expected seconds > 0"):
        CappedSleeps(cap)


def test_a_flower_loop_that_no_longer_sleeps_through_time_is_refused() -> None:
    changed = types.ModuleType("flwr.supernode.changed_loop")
    with pytest.raises(RuntimeError, match=r"engine\.node_poll_s=0"):
        cap_loop_sleeps(0.2, changed)


def test_the_installed_flower_loop_gets_capped(monkeypatch: pytest.MonkeyPatch) -> None:
    loop = supernode.start_client_internal
    monkeypatch.setattr(loop, "time", loop.time)  # restored after the test
    cap_loop_sleeps(0.2)
    assert isinstance(loop.time, CappedSleeps)
    assert loop.time.cap == 0.2


def test_other_arguments_reach_flower_supernode() -> None:
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "fl_clients.supernode",
            "--poll-interval",
            "0.2",
            "--help",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert "--superlink" in done.stdout and "--isolation" in done.stdout
