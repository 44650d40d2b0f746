"""Settings of one policy server process (what ``python -m serving`` is told)."""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

API_KEY_ENV = "SERVING_API_KEY"
"""Environment variable holding the API key (never a command-line argument, which
``ps`` shows to every user of the machine)."""

API_KEY_FILE_ENV = "SERVING_API_KEY_FILE"
"""Or a file holding it (a mounted secret), read when ``SERVING_API_KEY`` is unset."""

LOOPBACK_NAMES = frozenset({"localhost", "ip6-localhost"})


def api_key_from_environment(environ: Mapping[str, str]) -> str | None:
    """The API key: ``SERVING_API_KEY``, else ``SERVING_API_KEY_FILE``'s content.

    Raises:
        ValueError: the file is named but cannot be read (naming the variable).
    """
    if environ.get(API_KEY_ENV):
        return environ[API_KEY_ENV]
    path = environ.get(API_KEY_FILE_ENV)
    if not path:
        return None
    try:
        return Path(path).read_text().strip() or None
    except OSError as err:
        raise ValueError(f"{API_KEY_FILE_ENV}: cannot read {path} ({err})") from err


def is_loopback(host: str) -> bool:
    """Whether ``host`` only accepts connections from this machine."""
    if host in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True)
class ServeSettings:
    """How the server loads, decides, limits and protects.

    Args:
        checkpoint: the policy's ``.zip`` (its ``.json`` metadata beside it).
        host: interface to bind; loopback unless an API key protects the server.
        port: TCP port (5000 is what REACH's pod-migrator calls).
        api_key: shared secret expected in ``X-API-Key`` (or ``Authorization:
            Bearer``) on every endpoint but the probes; None disables the check.
        max_body_bytes: larger request bodies are refused with 413 before parsing.
        max_batch: most decisions one batch call may ask for (more: 413).
        reload_interval_s: how often the checkpoint file is checked for a new
            policy; 0 turns reloading off.
        deterministic: take the most probable allowed action (the default); False
            samples from the masked distribution.
        seed: seeds sampling when ``deterministic`` is False.
        strict_deployable: refuse a pod whose ``pod_deployable`` list is empty with
            a 422. Off by default: REACH's pod-migrator builds the lists from a
            resource-fit check, so in a full cluster a list is empty and that pod
            simply cannot move (REACH spec §6.4); a 422 would stall its loop.
        wait_for_checkpoint: start without a loadable checkpoint and load it once it
            appears (``/readyz`` answers 503 until then) instead of exiting.
    """

    checkpoint: Path
    host: str = "127.0.0.1"
    port: int = 5000
    api_key: str | None = None
    max_body_bytes: int = 1 << 20
    max_batch: int = 4096
    reload_interval_s: float = 1.0
    deterministic: bool = True
    seed: int = 0
    strict_deployable: bool = False
    wait_for_checkpoint: bool = False

    def __post_init__(self) -> None:
        """Refuse settings that would serve unsafely or never answer, naming them."""
        if not 0 < self.port < 65536:
            raise ValueError(f"--port: expected 1..65535, got {self.port}")
        if self.max_body_bytes < 1024:
            raise ValueError(
                f"--max-body-bytes: expected at least 1024, got {self.max_body_bytes}"
            )
        if self.max_batch < 1:
            raise ValueError(f"--max-batch: expected at least 1, got {self.max_batch}")
        if self.reload_interval_s < 0:
            raise ValueError(
                "--reload-interval: expected seconds >= 0, "
                f"got {self.reload_interval_s}"
            )
        if self.api_key is not None and len(self.api_key) < 16:
            raise ValueError(
                f"{API_KEY_ENV}: expected a key of at least 16 characters "
                "(e.g. `openssl rand -hex 32`)"
            )
        if not is_loopback(self.host) and self.api_key is None:
            raise ValueError(
                f"--host {self.host}: binding beyond loopback needs an API key; set "
                f"{API_KEY_ENV} (clients send it as X-API-Key), or keep the default "
                "127.0.0.1 behind a proxy that authenticates"
            )
