"""Settings (YAML, then REACH's environment names), the mode, the error classes."""

from __future__ import annotations

import logging
import random
import re
from pathlib import Path

import pytest
from omegaconf.errors import ValidationError

from hooks.config import InstanceMap, NodeForm, RunMode, load_config, parse_duration
from hooks.errors import (
    PermanentHookError,
    RetryPolicy,
    TransientHookError,
    classify,
    with_retries,
)
from hooks.migrator.__main__ import check
from hooks.mode import Mode, resolve_mode


def test_shipped_yaml_then_reach_environment_names(tmp_path: Path) -> None:
    cfg = load_config({})
    assert cfg.migrator.mode is RunMode.once
    assert cfg.migrator.policy_url == "http://localhost:5000/get_action"
    assert cfg.kubernetes.namespace == "" and cfg.kubernetes.app_label == ""
    overlay = tmp_path / "site.yaml"
    overlay.write_text("migrator:\n  max_step: 3\nprometheus:\n  window: 5s\n")
    env = {
        "NAMESPACE": "shop",
        "APP_LABEL": "deployment=mubench",
        "POLLING_PERIOD": "1m30s",
        "MAX_STEP": "7",
        "QOS_THRESHOLD": "180.5",
        "PROMETHEUS_ADDR": "http://prom:9090",
        "POLICY_URL": "http://policy:5000/get_action",
        "HOOKS_MODE": "monitor",
        "HOOKS_NODE_FORM": "node_exporter",
        "HOOKS_INSTANCE_MAP": "strip_port",
        "HOOKS_REACH_CORDON_MODE": "yes",
    }
    cfg = load_config(env, overlay)
    assert (cfg.kubernetes.namespace, cfg.kubernetes.app_label) == (
        "shop", "deployment=mubench",
    )  # fmt: skip
    assert cfg.migrator.polling_period == 90.0
    assert cfg.migrator.max_step == 7  # the environment wins over the overlay
    assert cfg.migrator.qos_threshold == 180.5
    assert cfg.prometheus.url == "http://prom:9090"
    assert cfg.prometheus.window == "5s"  # from the overlay
    assert cfg.migrator.policy_url == "http://policy:5000/get_action"
    assert cfg.migrator.mode is RunMode.monitor
    assert cfg.prometheus.node_form is NodeForm.node_exporter
    assert cfg.prometheus.instance_map is InstanceMap.strip_port
    assert cfg.migrator.reach_cordon_mode is True


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("MAX_STEP", "ten", "MAX_STEP: expected an integer, got 'ten'"),
        ("QOS_THRESHOLD", "fast", "QOS_THRESHOLD: expected a number, got 'fast'"),
        ("POLLING_PERIOD", "1 sec", "POLLING_PERIOD: expected a duration such as "
                                    "'1s', '500ms' or '1m30s', got '1 sec'"),
        ("HOOKS_MODE", "sometimes", "HOOKS_MODE: expected one of once, monitor, "
                                    "got 'sometimes'"),
        ("HOOKS_REACH_CORDON_MODE", "maybe", "HOOKS_REACH_CORDON_MODE: expected "
                                             "true or false, got 'maybe'"),
    ],
)  # fmt: skip
def test_bad_environment_values_name_the_variable(
    variable: str, value: str, message: str
) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        load_config({variable: value})


def test_bad_yaml_values_name_the_key(tmp_path: Path) -> None:
    overlay = tmp_path / "bad.yaml"
    overlay.write_text("migrator:\n  max_step: many\n")
    with pytest.raises(ValidationError, match=r"migrator\.max_step"):
        load_config({}, overlay)


def test_go_durations() -> None:
    assert parse_duration("500ms", "X") == 0.5
    assert parse_duration("2h3m4s", "X") == 2 * 3600 + 3 * 60 + 4
    assert parse_duration("0.25", "X") == 0.25


def test_namespace_and_selector_are_required() -> None:
    cfg = load_config({})
    with pytest.raises(ValueError, match="NAMESPACE: expected the application's"):
        check(cfg)
    cfg.kubernetes.namespace = "shop"
    with pytest.raises(ValueError, match="never acts on a whole namespace"):
        check(cfg)
    cfg.kubernetes.app_label = "app=web"
    check(cfg)


def test_mode_is_dry_run_unless_live_is_asked_and_possible(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="hooks")
    assert resolve_mode({}, "kubeconfig /x", "kubernetes") is Mode.DRY_RUN
    assert "kubernetes hook: MODE dry-run" in caplog.text
    assert (
        resolve_mode({"INTEGRATION_MODE": "live"}, None, "kubernetes") is Mode.DRY_RUN
    )
    assert "live but no credentials found" in caplog.text
    assert resolve_mode({"INTEGRATION_MODE": "live"}, "kubeconfig /x", "k") is Mode.LIVE
    assert "k hook: MODE live (credentials: kubeconfig /x)" in caplog.text
    with pytest.raises(
        ValueError, match="INTEGRATION_MODE: expected 'dry-run' or 'live'"
    ):
        resolve_mode({"INTEGRATION_MODE": "yolo"}, None, "k")


@pytest.mark.parametrize(
    ("status", "transient"),
    [(409, True), (429, True), (500, True), (503, True), (None, True),
     (403, False), (404, False), (422, False), (400, False)],
)  # fmt: skip
def test_statuses_are_classified(status: int | None, transient: bool) -> None:
    error = classify("Pod ns/p", status, "why")
    assert isinstance(error, TransientHookError if transient else PermanentHookError)
    code = f"HTTP {status}" if status else "no HTTP answer"
    assert str(error) == f"Pod ns/p: {code}: why"


def test_transient_errors_are_retried_with_capped_jittered_backoff() -> None:
    policy = RetryPolicy(attempts=4, base_delay=1.0, max_delay=3.0, jitter=0.2)
    calls, sleeps = [], []

    def flaky() -> str:
        calls.append(1)
        if len(calls) < 4:
            raise classify(
                "X", 503, "busy", retry_after="2" if len(calls) == 2 else None
            )
        return "ok"

    result = with_retries(flaky, lambda e: None, policy, sleep=sleeps.append,
                          rng=random.Random(7))  # fmt: skip
    assert result == "ok"
    # expected: base * 2**k capped at 3, at least Retry-After, times U(0.8, 1.2)
    rng = random.Random(7)
    expected = [min(3.0, max(b, h)) * rng.uniform(0.8, 1.2)
                for b, h in ((1.0, 0.0), (2.0, 2.0), (3.0, 0.0))]  # fmt: skip
    assert sleeps == pytest.approx(expected)


def test_permanent_errors_are_not_retried_and_tries_are_bounded() -> None:
    calls: list[int] = []

    def forbidden() -> None:
        calls.append(1)
        raise classify("X", 403, "no")

    with pytest.raises(PermanentHookError):
        with_retries(forbidden, lambda e: None, RetryPolicy(), sleep=lambda s: None)
    assert len(calls) == 1

    def busy() -> None:
        calls.append(1)
        raise classify("X", 429, "slow down")

    calls.clear()
    with pytest.raises(TransientHookError, match="HTTP 429"):
        with_retries(
            busy, lambda e: None, RetryPolicy(attempts=3), sleep=lambda s: None
        )
    assert len(calls) == 3
    with pytest.raises(ValueError, match="attempts: expected >= 1, got 0"):
        RetryPolicy(attempts=0)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (None, "expected a readable YAML file"),
        ("openstack: [\n", "expected YAML"),
        ("openstack: {flavour: m1.small}\n", "no such setting (Key 'flavour'"),
    ],
)
def test_a_settings_file_that_cannot_be_used_is_named(
    tmp_path: Path, text: str | None, message: str
) -> None:
    """Every CLI turns ValueError into exit 2: a missing file, bad YAML or a typo."""
    overlay = tmp_path / "site.yaml"
    if text is not None:
        overlay.write_text(text)
    with pytest.raises(ValueError, match=re.escape(f"{overlay}: {message}")):
        load_config({}, overlay)
