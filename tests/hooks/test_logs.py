"""Every hook CLI refuses an unknown ``--log-level`` as a usage error (exit 2)."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import pytest

from hooks.migrator.__main__ import main as migrator
from hooks.openstack.__main__ import main as openstack
from hooks.scaler.__main__ import main as scaler

CLIS: dict[str, tuple[Callable[[Sequence[str] | None], int], list[str]]] = {
    "migrator": (migrator, ["once"]),
    "scaler": (scaler, ["once"]),
    "openstack": (openstack, ["place", "--name", "w-1", "--pool", "edge"]),
}


@pytest.mark.parametrize("cli", sorted(CLIS))
def test_an_unknown_log_level_is_exit_2_naming_the_flag(
    cli: str, capsys: pytest.CaptureFixture[str]
) -> None:
    main, args = CLIS[cli]
    with pytest.raises(SystemExit) as stopped:
        main([*args, "--log-level", "loud"])
    assert stopped.value.code == 2
    assert "--log-level: expected debug, info, warning or error, got 'loud'" in (
        capsys.readouterr().err
    )
