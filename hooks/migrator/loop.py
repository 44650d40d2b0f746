"""The decision loop: state -> policy -> plan -> actuator -> time series.

``plan`` is pure and the same in both modes. Dry-run applies each planned move to
a virtual copy of the state, so one ``once`` episode yields the whole plan the
policy would carry out; live re-reads the cluster after each move.
"""

from __future__ import annotations

import collections
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from hooks.actions import MigratePod
from hooks.config import HooksConfig
from hooks.errors import HookError, RetryPolicy
from hooks.kubernetes.client import KubeApi
from hooks.kubernetes.migration import (
    GuardRailError,
    MigrationFailed,
    MigrationResult,
    PodMigrator,
    Timeouts,
)
from hooks.kubernetes.state import ClusterView, reach_payload
from hooks.migrator.policy import Decision, PolicyClient
from hooks.migrator.telemetry import Telemetry
from hooks.migrator.timeseries import Row, TimeSeries
from hooks.mode import Actuator, Mode

log = logging.getLogger(__name__)

HEARTBEAT_CHUNK = 5.0
"""Longest single sleep of the loop: longer waits are cut into such chunks, each
followed by a progress report, so ``/healthz`` stays fresh while the loop waits."""
POLICY_RETRY = RetryPolicy(attempts=3, base_delay=0.5)
"""Retries of a policy request (the CLI's client)."""


def _worst_call(attempts: int, timeout: float, retry: RetryPolicy) -> float:
    """Seconds one retried request may take (every try times out, longest backoffs)."""
    backoffs = sum(
        min(retry.max_delay, retry.base_delay * 2**k) * (1 + retry.jitter)
        for k in range(attempts - 1)
    )
    return float(attempts * timeout + backoffs)


def health_window(cfg: HooksConfig) -> float:
    """Seconds without progress after which ``/healthz`` reports the loop stale.

    The loop reports progress after every API call of a wait, every watch event,
    every step of a migration and every sleep chunk, so the longest quiet stretch
    of a healthy loop is one blocking call: a Kubernetes request with all its
    retries, a policy request with its retries, a Prometheus query, a watch chunk,
    or a sleep chunk. The window is twice the longest of them (and at least REACH's
    ``max(60 s, 20 x POLLING_PERIOD)``): a liveness probe then never restarts a
    migrator in the middle of a migration that is merely slow.
    """
    k8s, mig, prom = cfg.kubernetes, cfg.migrator, cfg.prometheus
    kube_retry = RetryPolicy(attempts=k8s.retry_attempts,
                             base_delay=k8s.retry_base_delay)  # fmt: skip
    quiet = max(
        _worst_call(k8s.retry_attempts, k8s.request_timeout, kube_retry),
        _worst_call(POLICY_RETRY.attempts, mig.policy_timeout, POLICY_RETRY),
        3 * prom.timeout + 1.5,  # the adapter's urllib3 retries (2, backoff 0.5)
        Timeouts().watch_chunk + 5.0,  # a watch request's own timeout
        min(mig.polling_period, HEARTBEAT_CHUNK),
        HEARTBEAT_CHUNK,
    )
    return max(60.0, 20 * mig.polling_period, 2 * quiet)


def plan(view: ClusterView, namespace: str, decision: Decision) -> list[MigratePod]:
    """The actions for one policy answer (empty for a stop).

    Raises:
        GuardRailError: the answer names a pod that is not in the state.
    """
    if decision.is_stop:
        return []
    pod = view.pod(namespace, decision.pod_name)
    if pod is None:
        raise GuardRailError(
            f"Pod {namespace}/{decision.pod_name}",
            "the policy named a pod that is not in the state it was sent",
        )
    return [MigratePod(namespace, pod.name, decision.target_node, pod.node)]


class RateLimit:
    """At most ``limit`` events per ``interval`` seconds (0 = unlimited)."""

    def __init__(
        self, limit: int, interval: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.limit, self.interval, self.clock = limit, interval, clock
        self.times: collections.deque[float] = collections.deque()

    def wait_time(self) -> float:
        """Seconds until one more event is allowed."""
        now = self.clock()
        while self.times and now - self.times[0] >= self.interval:
            self.times.popleft()
        if self.limit <= 0 or len(self.times) < self.limit:
            return 0.0
        return self.interval - (now - self.times[0])

    def record(self) -> None:
        """One event happened now."""
        self.times.append(self.clock())


@dataclass
class StepResult:
    """What one step did."""

    stop: bool
    moved: bool
    refused: bool = False
    """A guard rail refused the move."""
    failed: bool = False
    """The move started but was settled without completing (see the row)."""


class MigratorLoop:
    """REACH's pod-migrator modes over the hooks' parts."""

    def __init__(
        self,
        cfg: HooksConfig,
        api: KubeApi,
        actuator: Actuator,
        policy: PolicyClient,
        measure: Callable[[], float | None],
        series: TimeSeries,
        telemetry: Telemetry,
        sleep: Callable[[float], None] | None = None,
        preflight: Callable[[MigratePod, ClusterView], object] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.cfg = cfg
        self.api = api
        self.actuator = actuator
        self.policy = policy
        self.measure = measure
        self.series = series
        self.telemetry = telemetry
        self._stop = threading.Event()
        self.sleep: Callable[[float], object] = sleep or self._stop.wait
        """Waits (polls, rate limit): by default cut short by :meth:`stop`."""
        self.preflight = preflight
        self.clock = clock
        self.rate = RateLimit(
            cfg.migrator.max_migrations_per_interval, cfg.migrator.rate_interval,
            clock,
        )  # fmt: skip
        self.virtual: ClusterView | None = None
        self.failures = 0
        """Failed moves in a row (monitor backs off exponentially)."""
        self.retry_at = float("-inf")
        """Clock time before which monitor takes no step after a failure."""
        self.acted = False
        """The last step got as far as acting (an error then counts as a failure;
        an error while only reading or asking the policy does not)."""

    @property
    def stopping(self) -> bool:
        """A stop was asked for (a signal): finish the current step, then end."""
        return self._stop.is_set()

    def stop(self) -> None:
        """End after the current step; cuts any wait short."""
        self._stop.set()

    @property
    def mode(self) -> str:
        """``dry-run`` or ``live``."""
        return self.actuator.mode.value

    def pause(self, seconds: float) -> None:
        """Wait ``seconds`` in chunks, reporting progress after each (stoppable)."""
        remaining = seconds
        while remaining > 0 and not self.stopping:
            chunk = min(remaining, HEARTBEAT_CHUNK)
            self.sleep(chunk)
            remaining -= chunk
            self.telemetry.progress()

    # ------------------------------------------------------------ parts
    def reconcile(self, migrator: PodMigrator) -> None:
        """Finish or undo what a crashed run left (live only)."""
        for result in migrator.reconcile(self.cfg.kubernetes.namespace):
            self.series.record(
                Row("reconciled", target_pod=result.source, new_pod=result.replacement,
                    target_node=result.node, migration_id=result.migration_id,
                    outcome=result.outcome, mode=self.mode)
            )  # fmt: skip

    def wait_all_ready(self) -> bool:
        """Every app pod Running and Ready (REACH's ``waitForPodReady``)."""
        k8s, mig = self.cfg.kubernetes, self.cfg.migrator
        for _ in range(max(1, mig.max_pod_waiting_retries)):
            view = ClusterView.read(self.api)
            self.telemetry.progress()
            pods = view.app_pods(k8s.namespace, k8s.app_label)
            if pods and all(p.ready for p in pods):
                return True
            if self.stopping:
                return False
            self.pause(mig.polling_period)
        return False

    def state(self) -> ClusterView:
        """The live cluster, or (dry-run, after a planned move) the virtual one."""
        if self.virtual is not None:
            return self.virtual
        return ClusterView.read(self.api)

    def latency(self) -> float | None:
        """The application latency in ms, if a source is configured."""
        try:
            value = self.measure()
        except HookError as err:
            log.warning("latency not measured: %s", err)
            return None
        if value is not None:
            self.telemetry.latency.set(value)
        return value

    # ------------------------------------------------------------ one step
    def step(self, latency: float | None) -> StepResult:
        """Ask the policy once and carry out its answer.

        A refused move (a guard rail) is recorded and ends the step with
        ``refused``: the same state would get the same answer again.
        """
        k8s = self.cfg.kubernetes
        self.acted = False
        wait = self.rate.wait_time()
        if wait > 0:  # before deciding: a decision must not wait to be carried out
            log.warning("rate limit: %d migrations per %.0f s; waiting %.1f s",
                        self.rate.limit, self.rate.interval, wait)  # fmt: skip
            self.pause(wait)
            if self.stopping:
                return StepResult(stop=True, moved=False)
        started = time.monotonic()
        view = self.state()
        payload = reach_payload(view, k8s.namespace, k8s.app_label, k8s.node_selector)
        try:
            decision = self.policy.get_action(payload)
        except HookError as err:
            self.telemetry.decisions.labels(outcome="error").inc()
            self.series.record(Row("error", latency, outcome=str(err), mode=self.mode))
            raise
        outcome = "stop" if decision.is_stop else "move"
        self.telemetry.decisions.labels(outcome=outcome).inc()
        extra = {"payload": payload, "decision": decision.__dict__}
        if decision.is_stop:
            self.series.record(Row("stop", latency, mode=self.mode), extra)
            return StepResult(stop=True, moved=False)
        current = view.pod(k8s.namespace, decision.pod_name)
        row = {
            "current_node": current.node if current else "",
            "target_node": decision.target_node,
            "target_pod": decision.pod_name,
            "mode": self.mode,
        }
        try:
            actions = plan(view, k8s.namespace, decision)
            self.acted = bool(actions)
            results = [self._act(action, view) for action in actions]
        except GuardRailError as err:
            self.telemetry.migrations.labels(outcome="refused").inc()
            self.series.record(
                Row("refused", latency, outcome=err.reason, **row), extra
            )
            log.warning("%s", err)
            return StepResult(stop=False, moved=False, refused=True)
        except MigrationFailed as err:
            self.telemetry.migrations.labels(outcome="failed").inc()
            self.series.record(
                Row("rollback", latency, outcome=err.reason, **row), extra
            )
            return StepResult(stop=False, moved=False, failed=True)
        except HookError as err:
            self.telemetry.migrations.labels(outcome="failed").inc()
            self.series.record(Row("error", latency, outcome=str(err), **row), extra)
            raise
        for new_pod, mid, out in results:
            self.telemetry.migrations.labels(outcome=out).inc()
            self.series.record(
                Row("rescheduling", latency, new_pod=new_pod, migration_id=mid,
                    outcome=out, **row), extra,
            )  # fmt: skip
        self.telemetry.step_seconds.observe(time.monotonic() - started)
        return StepResult(stop=False, moved=bool(actions))

    def _act(self, action: MigratePod, view: ClusterView) -> tuple[str, str, str]:
        """Apply one move: (new pod, migration id, outcome)."""
        if self.actuator.mode is not Mode.LIVE and self.preflight is not None:
            self.preflight(action, view)  # reads only: what live would refuse
        # counted before it starts: a move that fails or is rolled back disturbed
        # the workload all the same, and must not let the next one start at once
        self.rate.record()
        result = self.actuator.apply(action)
        if isinstance(result, MigrationResult):
            return result.replacement, result.migration_id, result.outcome
        # dry-run: the virtual cluster moves instead
        self.virtual = view.with_move(action.namespace, action.pod, action.target_node)
        return action.pod, "", "planned"

    # ------------------------------------------------------------ modes
    def run_once(self) -> int:
        """One episode: until a stop, ``MAX_STEP`` steps, a refusal or a failure.

        Returns 1 if a move failed (it was settled), else 0.
        """
        mig = self.cfg.migrator
        self.virtual = None
        self.series.record(Row("experiment_start", mode=self.mode))
        moves, failed = 0, False
        for _ in range(mig.max_step):
            if self.stopping:
                break
            if self.actuator.mode is Mode.LIVE and not self.wait_all_ready():
                self.series.record(
                    Row("error", outcome="pods not Ready", mode=self.mode)
                )
                return 1
            result = self.step(self.latency())
            self.telemetry.beat()
            moves += result.moved
            failed = failed or result.failed
            if result.stop or result.refused or result.failed:
                break
        self.series.record(Row("latency", self.latency(), mode=self.mode))
        log.info("episode done: %d move(s)%s", moves, ", one failed" if failed else "")
        return 1 if failed else 0

    def _failed(self) -> None:
        """One more failure in a row: no step before the back-off has passed."""
        mig = self.cfg.migrator
        self.failures += 1
        delay = min(
            mig.failure_backoff_max, mig.failure_backoff * 2 ** (self.failures - 1)
        )
        self.retry_at = self.clock() + delay
        log.warning("%d failed step(s) in a row: next step in %.0f s at the earliest",
                    self.failures, delay)  # fmt: skip

    def run_monitor(self) -> int:
        """Poll the latency; act once whenever it is above ``QOS_THRESHOLD``.

        A failed move, or an error while acting, backs off exponentially
        (``failure_backoff``, doubling up to ``failure_backoff_max``): a target that
        never becomes Ready does not turn into an endless create -> wait -> delete
        cycle. Errors before acting (the policy server not ready yet, a read that
        failed) change nothing and are simply tried again at the next poll.
        """
        mig = self.cfg.migrator
        deadline = self.clock() + mig.stop_after if mig.stop_after else None
        while not self.stopping and (deadline is None or self.clock() < deadline):
            latency = self.latency()
            self.series.record(Row("latency", latency, mode=self.mode))
            self.virtual = None  # each trigger looks at the live cluster again
            due = self.clock() >= self.retry_at
            if latency is not None and latency > mig.qos_threshold and due:
                if self.actuator.mode is not Mode.LIVE or self.wait_all_ready():
                    try:
                        result = self.step(latency)
                    except HookError as err:
                        log.error("step failed: %s", err)
                        if self.acted:
                            self._failed()
                    else:
                        if result.failed:
                            self._failed()
                        elif result.moved:
                            self.failures = 0
            self.telemetry.beat()
            self.pause(mig.polling_period)
        return 0
