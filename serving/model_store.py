"""The served policy: load a checkpoint, watch the file, swap new versions atomically.

A :class:`LoadedPolicy` is immutable once built: a request takes the current one at
its start and finishes with it, so replacing :attr:`ModelStore.current` (one
reference assignment on the event loop's thread) never drops or mixes a request.
New files are loaded and smoke-tested in a worker thread while the old policy keeps
serving; a file that fails to load, does not fit its own config or produces
non-finite outputs is logged and counted, and the old policy stays.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sb3_contrib import MaskablePPO

from serving.deciders import Decider, RescheduleDecider, TwoTierDecider
from serving.metrics import ServingMetrics
from serving.network import PolicyNetwork
from serving.run_config import run_config_from_metadata
from serving.settings import ServeSettings

log = logging.getLogger(__name__)

Signature = tuple[tuple[int, int, int], tuple[int, int, int] | None]
"""(inode, size, mtime) of the ``.zip`` and of the ``.json`` beside it."""

_SETTLE_S = 0.2  # a file still changing after this is being written: retry later


class ModelLoadError(RuntimeError):
    """A checkpoint cannot be served; the message says which file and why."""


@dataclass(frozen=True)
class LoadedPolicy:
    """One loaded checkpoint and everything derived from it."""

    version: str
    """``round-<k>@<sha256[:12]>`` (or just the hash): what answers report."""
    sha256: str
    path: Path
    env: str
    decider: Decider
    metadata: dict[str, Any] = field(repr=False)
    loaded_at: float = field(default_factory=time.time)

    def describe(self) -> dict[str, Any]:
        """The ``/readyz`` view of this policy."""
        return {
            "policy_version": self.version,
            "env": self.env,
            "checkpoint": str(self.path),
            "loaded_at": self.loaded_at,
            "round": self.metadata.get("round"),
            "endpoints": sorted(self.decider.endpoints),
            **self.decider.describe(),
        }


def _stat(path: Path) -> tuple[int, int, int] | None:
    try:
        st = path.stat()
    except OSError:
        return None
    return (st.st_ino, st.st_size, st.st_mtime_ns)


def signature(path: Path) -> Signature | None:
    """What changes when a checkpoint is rewritten (None: no model file)."""
    zip_stat = _stat(path)
    if zip_stat is None:
        return None
    return (zip_stat, _stat(path.with_suffix(".json")))


def read_checkpoint(path: Path) -> tuple[bytes, str]:
    """The model file's bytes and their SHA-256 (read once: hash and model agree)."""
    try:
        data = path.read_bytes()
    except OSError as err:
        raise ModelLoadError(f"{path}: cannot read the checkpoint ({err})") from err
    return data, hashlib.sha256(data).hexdigest()


def load_policy(
    path: Path, settings: ServeSettings, data: bytes | None = None
) -> LoadedPolicy:
    """Load, check and smoke-test a checkpoint (slow: run it off the event loop).

    Raises:
        ModelLoadError: naming the file and the reason.
    """
    if data is None:
        data, sha = read_checkpoint(path)
    else:
        sha = hashlib.sha256(data).hexdigest()
    meta_path = path.with_suffix(".json")
    try:
        metadata = json.loads(meta_path.read_text()) if meta_path.exists() else {}
        cfg = run_config_from_metadata(metadata)
    except (OSError, ValueError) as err:
        raise ModelLoadError(f"{meta_path}: {err}") from err
    try:
        model = MaskablePPO.load(io.BytesIO(data), device="cpu")
    except Exception as err:  # a truncated zip raises zipfile, pickle or torch errors
        raise ModelLoadError(
            f"{path}: not a MaskablePPO checkpoint ({type(err).__name__}: {err})"
        ) from err
    network = PolicyNetwork(model, settings.deterministic, settings.seed)
    decider: Decider
    try:
        if cfg.env == "reschedule":
            decider = RescheduleDecider(cfg, network, settings.strict_deployable)
        elif cfg.env == "two_tier":
            decider = TwoTierDecider(cfg, network, settings.max_batch)
        else:
            raise ValueError(f"env: expected two_tier or reschedule, got {cfg.env!r}")
        decider.smoke_test()
    except Exception as err:  # env config errors, space mismatches, bad weights
        raise ModelLoadError(f"{path}: {type(err).__name__}: {err}") from err
    round_ = metadata.get("round")
    version = f"round-{round_}@{sha[:12]}" if round_ is not None else sha[:12]
    return LoadedPolicy(version, sha, path, cfg.env, decider, metadata)


class ModelStore:
    """Holds the current policy and replaces it when its checkpoint file changes.

    Args:
        settings: the checkpoint path, reload interval and decision settings.
        metrics: where loads, reloads and the model version are reported.
    """

    def __init__(self, settings: ServeSettings, metrics: ServingMetrics) -> None:
        self.settings = settings
        self.path = Path(settings.checkpoint)
        self.metrics = metrics
        self.current: LoadedPolicy | None = None
        self._signature: Signature | None = None
        self._failed: Signature | None = None
        self._missing_logged = False

    def load_initial(self) -> None:
        """Load the checkpoint now (startup), raising :class:`ModelLoadError`."""
        sig = signature(self.path)
        if sig is None:
            raise ModelLoadError(f"{self.path}: no checkpoint file")
        self._swap(load_policy(self.path, self.settings), sig)

    def _swap(self, policy: LoadedPolicy, sig: Signature) -> None:
        old = self.current
        self.current = policy
        self._signature = sig
        self._failed = None
        self.metrics.model_loaded(policy.version, policy.env, policy.loaded_at)
        log.info(
            "serving policy %s (%s) from %s%s",
            policy.version,
            policy.env,
            policy.path,
            f", replacing {old.version}" if old else "",
        )

    async def check(self) -> bool:
        """Load the checkpoint if its file changed; True when a new policy serves."""
        sig = signature(self.path)
        if sig is None:
            if not self._missing_logged:
                log.warning("checkpoint %s is missing; still serving", self.path)
                self._missing_logged = True
            return False
        self._missing_logged = False
        if sig in (self._signature, self._failed):
            return False
        await asyncio.sleep(_SETTLE_S)
        if signature(self.path) != sig:
            return False  # still being written (a non-atomic copy): next poll
        try:
            data, sha = await asyncio.to_thread(read_checkpoint, self.path)
            if self.current is not None and sha == self.current.sha256:
                self._signature = sig  # touched or rewritten unchanged
                return False
            policy = await asyncio.to_thread(
                load_policy, self.path, self.settings, data
            )
        except ModelLoadError as err:
            self._failed = sig
            self.metrics.reload_failed()
            kept = self.current.version if self.current else "nothing"
            log.error("reload refused, still serving %s: %s", kept, err)
            return False
        self._swap(policy, sig)
        self.metrics.reload_succeeded()
        return True

    async def watch(self) -> None:
        """Poll the checkpoint every ``reload_interval_s`` until cancelled."""
        interval = self.settings.reload_interval_s
        if interval <= 0:
            return
        while True:
            await asyncio.sleep(interval)
            try:
                await self.check()
            except asyncio.CancelledError:
                raise
            except Exception:  # never let the watcher die: the server keeps serving
                log.exception("checkpoint watcher: unexpected error")
