"""Every input error of the simulator has one message form: where, expected, got."""

from __future__ import annotations

import pytest

from envs.errors import ConfigError
from envs.reach.errors import ReachConfigError, ReachPayloadError


@pytest.mark.parametrize("got", [None, 0, "7s", [1, 2]])
def test_every_error_builds_the_same_message(got: object) -> None:
    """``<where>: expected <what>, got <repr>`` whoever raises it."""
    tail = f"expected a time such as '7ms', got {got!r}"
    assert str(ConfigError("scenario.slo", "a time such as '7ms'", got)) == (
        f"scenario.slo: {tail}"
    )
    assert str(
        ReachConfigError("services.json", "gateway.cpu", "a time such as '7ms'", got)
    ) == (f"services.json: gateway.cpu: {tail}")
    assert str(ReachPayloadError("cluster_state.n1", "a time such as '7ms'", got)) == (
        f"cluster_state.n1: {tail}"
    )


def test_without_a_value_only_the_expectation_is_named() -> None:
    assert (
        str(ConfigError("env.warmup", "a duration"))
        == "env.warmup: expected a duration"
    )
    assert str(ReachConfigError("7-21", "", "a folder")) == "7-21: expected a folder"
    assert str(ReachPayloadError("body", "an object")) == "body: expected an object"
