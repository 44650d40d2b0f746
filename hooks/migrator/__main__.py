"""``python -m hooks.migrator [once|monitor]``: REACH's pod-migrator, safely.

Settings: ``conf/hooks/*.yaml``, then REACH's environment names (``NAMESPACE``,
``APP_LABEL``, ``POLLING_PERIOD``, ``MAX_STEP``, ``QOS_THRESHOLD``, ``POLICY_URL``,
``PROMETHEUS_ADDR``, ``KUBECONFIG``, ...). Dry-run unless ``INTEGRATION_MODE=live``
and credentials exist. Exit codes: 0 done, 1 the episode failed, 2 bad settings.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import types
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from hooks.actions import MigratePod
from hooks.config import HooksConfig, RunMode, load_config
from hooks.errors import HookError
from hooks.kubernetes.client import KubeApi, find_credentials
from hooks.kubernetes.migration import PodMigrator, Timeouts
from hooks.kubernetes.reach_protocol import CordonMigrator
from hooks.kubernetes.reach_protocol import reconcile as reconcile_cordons
from hooks.logs import setup_logging
from hooks.migrator.loop import POLICY_RETRY, MigratorLoop, health_window
from hooks.migrator.policy import POLICY_API_KEY_ENV, PolicyClient
from hooks.migrator.telemetry import Telemetry
from hooks.migrator.timeseries import TimeSeries
from hooks.mode import Mode, make_actuator, resolve_mode
from hooks.prometheus import PrometheusAdapter, entry_service_latency

log = logging.getLogger("hooks.migrator")


def check(cfg: HooksConfig) -> None:
    """Guard rails on the settings themselves.

    Raises:
        ValueError: naming the setting and what it needs.
    """
    if not cfg.kubernetes.namespace:
        raise ValueError("NAMESPACE: expected the application's namespace, got ''")
    if not cfg.kubernetes.app_label:
        raise ValueError(
            "APP_LABEL: expected a label selector such as 'app=shop', got '' "
            "(the migrator never acts on a whole namespace)"
        )
    if cfg.migrator.max_step < 1:
        raise ValueError(f"MAX_STEP: expected >= 1, got {cfg.migrator.max_step}")
    if cfg.migrator.polling_period <= 0:
        raise ValueError(
            f"POLLING_PERIOD: expected > 0, got {cfg.migrator.polling_period}"
        )


def latency_source(cfg: HooksConfig) -> Callable[[], float | None]:
    """Prometheus query, entry-service JSON, or nothing."""
    if cfg.migrator.latency_query:
        adapter = PrometheusAdapter.from_config(cfg.prometheus)
        query = cfg.migrator.latency_query
        return lambda: adapter.scalar(query)
    if cfg.migrator.entry_service_url:
        url = cfg.migrator.entry_service_url
        return lambda: entry_service_latency(url, cfg.migrator.policy_timeout)
    return lambda: None


def main(argv: Sequence[str] | None = None) -> int:
    """Parse, choose the actuator once, reconcile, run."""
    parser = argparse.ArgumentParser(prog="python -m hooks.migrator")
    parser.add_argument("mode", nargs="?", choices=[m.value for m in RunMode])
    parser.add_argument(
        "--config",
        type=Path,
        action="append",
        default=[],
        help="extra YAML overlay (sections kubernetes, migrator, ...)",
    )
    parser.add_argument("--log-level", default="info")
    args = parser.parse_args(argv)
    setup_logging(parser, args.log_level)
    try:
        cfg = load_config(os.environ, *args.config)
        if args.mode:
            cfg.migrator.mode = RunMode(args.mode)
        check(cfg)
        mode = resolve_mode(
            os.environ, find_credentials(cfg.kubernetes, os.environ), "kubernetes"
        )
        api = KubeApi.from_config(cfg.kubernetes, os.environ)
    except (ValueError, HookError) as err:
        log.error("cannot start: %s", err)
        return 2
    mig = cfg.migrator
    telemetry = Telemetry(mode.value, stale_after=health_window(cfg))
    migrator = PodMigrator(
        api,
        Timeouts(ready=mig.ready_timeout, handover=mig.handover_timeout),
        min_pod_age=mig.min_pod_age,
        progress=telemetry.progress,
    )
    executor: Callable[[MigratePod], Any] = (
        CordonMigrator(api, mig.ready_timeout, progress=telemetry.progress)
        if mig.reach_cordon_mode else migrator.migrate
    )  # fmt: skip
    actuator = make_actuator(mode, lambda: {MigratePod: executor}, Path(mig.plan_file))
    log.info(
        "MODE %s: %s migrations of %s in namespace %s (%s protocol)",
        mode.value, mig.mode.value, cfg.kubernetes.app_label,
        cfg.kubernetes.namespace,
        "REACH cordon-all" if mig.reach_cordon_mode else "adopt-and-shed",
    )  # fmt: skip
    port = telemetry.serve(mig.metrics_host, mig.metrics_port)
    log.info("metrics on http://%s:%d/metrics (stale after %.0f s without progress)",
             mig.metrics_host, port, telemetry.stale_after)  # fmt: skip
    policy = PolicyClient(
        mig.policy_url,
        mig.policy_timeout,
        POLICY_RETRY,
        api_key=os.environ.get(POLICY_API_KEY_ENV) or None,
    )
    loop = MigratorLoop(
        cfg, api, actuator, policy, latency_source(cfg), TimeSeries(Path(mig.output)),
        telemetry, preflight=None if mig.reach_cordon_mode else migrator.preflight,
    )  # fmt: skip

    def stop(signum: int, frame: types.FrameType | None) -> None:
        log.warning("signal %d: stopping after this step", signum)
        loop.stop()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    try:
        if mode is Mode.LIVE:
            loop.reconcile(migrator)
            for note in reconcile_cordons(api, cfg.kubernetes.namespace):
                log.warning("reconciled: %s", note)
        if mig.mode is RunMode.once:
            return loop.run_once()
        return loop.run_monitor()
    except HookError as err:
        log.error("stopped: %s", err)
        return 1
    finally:
        telemetry.close()


if __name__ == "__main__":
    sys.exit(main())
