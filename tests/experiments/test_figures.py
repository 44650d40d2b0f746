"""Figure conventions that a reader relies on across the figures of one paper."""

from __future__ import annotations

from analysis.figures import PALETTE, group_colour


def test_a_strategy_keeps_its_colour_whatever_else_is_plotted() -> None:
    """The probability-of-improvement plot lacks the reference row; colours must not shift."""
    everyone = ["centralized", "fedavg", "fedprox", "local"]
    without_local = ["centralized", "fedavg", "fedprox"]
    for name in without_local:
        assert group_colour(name, everyone) == group_colour(name, without_local)
    colours = {group_colour(n, everyone) for n in everyone}
    assert len(colours) == len(everyone)
    assert colours <= set(PALETTE)


def test_sweep_values_take_their_rank() -> None:
    """Groups that are not strategy names (a mu grid) are coloured by their order."""
    values = ["0.0", "0.01", "0.1"]
    assert [group_colour(v, values) for v in values] == list(PALETTE[:3])
