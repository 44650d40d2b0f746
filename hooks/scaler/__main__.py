"""``python -m hooks.scaler [once|monitor]``: pool replicas from the two-tier policy.

Settings: ``conf/hooks/*.yaml`` (section ``scaler``), ``--config`` overlays, then the
environment (``NAMESPACE``, ``KUBECONFIG``, ``PROMETHEUS_ADDR``, ``HOOKS_SCALER_*``,
``POLICY_API_KEY``). Dry-run unless ``INTEGRATION_MODE=live`` and credentials exist.
Exit codes: 0 done, 1 a cycle failed (``once``), 2 bad settings.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import types
from collections.abc import Sequence
from pathlib import Path

from hooks.actions import ScaleDeployment
from hooks.config import HooksConfig, RunMode, load_config
from hooks.errors import HookError, RetryPolicy
from hooks.kubernetes.client import KubeApi, find_credentials
from hooks.kubernetes.scaler import Scaler
from hooks.logs import setup_logging
from hooks.migrator.policy import POLICY_API_KEY_ENV
from hooks.mode import make_actuator, resolve_mode
from hooks.prometheus import PrometheusAdapter
from hooks.scaler.loop import ScalerLoop
from hooks.scaler.policy import TwoTierClient
from hooks.scaler.share import pool_of

log = logging.getLogger("hooks.scaler")


def check(cfg: HooksConfig) -> None:
    """Guard rails on the settings.

    Raises:
        ValueError: naming the setting and what it needs.
    """
    sc = cfg.scaler
    if not cfg.kubernetes.namespace:
        raise ValueError("NAMESPACE: expected the pools' namespace, got ''")
    if not sc.pools:
        raise ValueError(
            "scaler.pools: expected at least one '<region>/<pool>: <Deployment>' "
            "(HOOKS_SCALER_POOLS=us-east/cloud=cloud-us-east,...), got none"
        )
    for pool in sc.pools:
        pool_of(f"{pool}-1")  # the form <region>/<pool>
    if sc.per_replica_rps <= 0:
        raise ValueError(
            f"scaler.per_replica_rps: expected > 0, got {sc.per_replica_rps}"
        )
    if not 0 <= sc.min_replicas <= sc.max_replicas:
        raise ValueError(
            "scaler.min_replicas, scaler.max_replicas: expected 0 <= min <= max, "
            f"got {sc.min_replicas}, {sc.max_replicas}"
        )
    if sc.max_step < 1:
        raise ValueError(f"scaler.max_step: expected >= 1, got {sc.max_step}")
    if sc.interval <= 0:
        raise ValueError(f"scaler.interval: expected > 0 s, got {sc.interval}")


def main(argv: Sequence[str] | None = None) -> int:
    """Parse, choose the actuator once, run."""
    parser = argparse.ArgumentParser(prog="python -m hooks.scaler")
    parser.add_argument("mode", nargs="?", choices=[m.value for m in RunMode])
    parser.add_argument(
        "--config", type=Path, action="append", default=[],
        help="extra YAML overlay (sections scaler, kubernetes, ...)",
    )  # fmt: skip
    parser.add_argument("--log-level", default="info")
    args = parser.parse_args(argv)
    setup_logging(parser, args.log_level)
    try:
        cfg = load_config(os.environ, *args.config)
        if args.mode:
            cfg.scaler.mode = RunMode(args.mode)
        check(cfg)
        mode = resolve_mode(
            os.environ, find_credentials(cfg.kubernetes, os.environ), "kubernetes"
        )
        api = KubeApi.from_config(cfg.kubernetes, os.environ)
        prometheus = PrometheusAdapter.from_config(cfg.prometheus)
    except (ValueError, HookError) as err:
        log.error("cannot start: %s", err)
        return 2
    sc = cfg.scaler
    scaler = Scaler(api, sc.hpa_backoff)
    actuator = make_actuator(
        mode, lambda: {ScaleDeployment: scaler}, Path(sc.plan_file)
    )
    log.info("MODE %s: %s scaling of %d pool(s) in namespace %s from %s",
             mode.value, sc.mode.value, len(sc.pools), cfg.kubernetes.namespace,
             sc.policy_url)  # fmt: skip
    policy = TwoTierClient(
        sc.policy_url, sc.policy_timeout, RetryPolicy(attempts=3, base_delay=0.5),
        os.environ.get(POLICY_API_KEY_ENV) or None,
    )  # fmt: skip
    loop = ScalerLoop(cfg, api, actuator, policy, prometheus, scaler)

    def stop(signum: int, frame: types.FrameType | None) -> None:
        log.warning("signal %d: stopping after this cycle", signum)
        loop.stop()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    if sc.mode is RunMode.once:
        return loop.run_once()
    return loop.run_monitor()


if __name__ == "__main__":
    sys.exit(main())
