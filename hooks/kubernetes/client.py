"""The official client, configured once, with every call classified and retried.

Credentials are a kubeconfig (``kubeconfig`` setting, ``$KUBECONFIG`` or
``~/.kube/config``) or the in-cluster service account. Every request goes through
:meth:`KubeApi.call`, which maps ``ApiException``/urllib3 failures to
:class:`~hooks.errors.TransientHookError` (409/429/5xx/timeouts, retried with backoff
and jitter) or :class:`~hooks.errors.PermanentHookError` (403/404/422: surfaced with
the object and the Status message).
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Collection, Mapping
from pathlib import Path
from typing import Any

import urllib3
from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

from hooks.config import KubernetesConfig
from hooks.errors import (
    HookError,
    PermanentHookError,
    RetryPolicy,
    classify,
    with_retries,
)

SERVICE_ACCOUNT_TOKEN = Path("/var/run/secrets/kubernetes.io/serviceaccount/token")


def _kubeconfig_path(cfg: KubernetesConfig, environ: Mapping[str, str]) -> Path | None:
    candidates = [cfg.kubeconfig] if cfg.kubeconfig else []
    candidates += [p for p in environ.get("KUBECONFIG", "").split(os.pathsep) if p]
    candidates.append(str(Path(environ.get("HOME", "~")) / ".kube" / "config"))
    for candidate in candidates:
        path = Path(candidate).expanduser()
        if path.is_file():
            return path
    return None


def find_credentials(cfg: KubernetesConfig, environ: Mapping[str, str]) -> str | None:
    """A description of the credentials found, or None (then only dry-run)."""
    path = _kubeconfig_path(cfg, environ)
    if path is not None:
        return f"kubeconfig {path}"
    if environ.get("KUBERNETES_SERVICE_HOST") and SERVICE_ACCOUNT_TOKEN.is_file():
        return "in-cluster service account"
    return None


def make_api_client(
    cfg: KubernetesConfig, environ: Mapping[str, str]
) -> client.ApiClient:
    """An ``ApiClient`` from the kubeconfig or the in-cluster account.

    Raises:
        PermanentHookError: no credentials at all (even reads need them).
    """
    path = _kubeconfig_path(cfg, environ)
    if path is not None:
        api: client.ApiClient = config.new_client_from_config(  # type: ignore[no-untyped-call]
            config_file=str(path), context=cfg.context or None
        )
        return api
    if environ.get("KUBERNETES_SERVICE_HOST") and SERVICE_ACCOUNT_TOKEN.is_file():
        configuration = client.Configuration()
        config.load_incluster_config(client_configuration=configuration)  # type: ignore[no-untyped-call]
        return client.ApiClient(configuration)
    raise PermanentHookError(
        "kubernetes", None,
        "no credentials: expected kubernetes.kubeconfig, $KUBECONFIG, "
        "~/.kube/config or an in-cluster service account",
    )  # fmt: skip


def status_reason(exc: ApiException) -> str:
    """The Status body's ``reason: message`` (or the HTTP reason)."""
    try:
        body = json.loads(exc.body or "{}")
    except (TypeError, ValueError):
        body = {}
    if isinstance(body, dict) and body.get("message"):
        reason = body.get("reason") or exc.reason
        return f"{reason}: {body['message']}"
    return str(exc.reason or "no reason given")


def translate(obj: str) -> Callable[[BaseException], HookError | None]:
    """Map the client's exceptions for ``obj`` to hook errors."""

    def convert(exc: BaseException) -> HookError | None:
        if isinstance(exc, ApiException):
            retry_after = (exc.headers or {}).get("Retry-After")
            status = exc.status if exc.status else None
            return classify(obj, status, status_reason(exc), retry_after)
        if isinstance(exc, urllib3.exceptions.HTTPError | TimeoutError | OSError):
            return classify(obj, None, f"{type(exc).__name__}: {exc}")
        return None

    return convert


class KubeApi:
    """The API groups the hooks use, and one retrying ``call``.

    Args:
        api_client: a configured ``ApiClient``.
        retry: the retry policy for every request.
        timeout: seconds per request.
        sleep: injectable backoff sleep (tests).
    """

    def __init__(
        self,
        api_client: client.ApiClient,
        retry: RetryPolicy | None = None,
        timeout: float = 10.0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.api_client = api_client
        self.core = client.CoreV1Api(api_client)
        self.apps = client.AppsV1Api(api_client)
        self.policy = client.PolicyV1Api(api_client)
        self.autoscaling = client.AutoscalingV1Api(api_client)
        self.retry = retry or RetryPolicy()
        self.timeout = timeout
        self.sleep = sleep

    @classmethod
    def from_config(cls, cfg: KubernetesConfig, environ: Mapping[str, str]) -> KubeApi:
        """Client, retry policy and timeout from the settings."""
        policy = RetryPolicy(
            attempts=cfg.retry_attempts, base_delay=cfg.retry_base_delay
        )
        return cls(make_api_client(cfg, environ), policy, cfg.request_timeout)

    def call(
        self,
        obj: str,
        method: Callable[..., Any],
        *args: Any,
        handle: Collection[int] = (),
        **kw: Any,
    ) -> Any:
        """``method(*args, **kw)`` with the timeout, classified and retried.

        Args:
            obj: ``<Kind> <ns>/<name>`` for messages.
            method: a client method.
            *args: its positional arguments.
            handle: statuses the caller resolves itself (a 409 on a precondition
                means re-read, not resend): raised at once, never retried.
            **kw: its keyword arguments.
        """
        kw.setdefault("_request_timeout", self.timeout)
        convert = translate(obj)

        def classify_for_caller(exc: BaseException) -> HookError | None:
            error = convert(exc)
            if error is not None and error.status in handle:
                return PermanentHookError(error.obj, error.status, error.reason)
            return error

        return with_retries(
            lambda: method(*args, **kw),
            classify_for_caller,
            self.retry,
            sleep=self.sleep,
        )

    def to_dict(self, model: Any) -> Any:
        """A typed model as the JSON the API server sent."""
        return self.api_client.sanitize_for_serialization(model)  # type: ignore[no-untyped-call]
