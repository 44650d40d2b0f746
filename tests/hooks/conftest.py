"""Fixtures: the Kubernetes API double, a kubeconfig pointing at it, the client."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from hooks.config import KubernetesConfig
from hooks.errors import RetryPolicy
from hooks.kubernetes.client import KubeApi, make_api_client
from tests.hooks.kube_double import KubeDouble

NS = "shop"


def write_kubeconfig(path: Path, url: str) -> Path:
    """A kubeconfig for the double (the real loader reads it)."""
    path.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "double", "cluster": {"server": url}}],
                "users": [{"name": "tester", "user": {"token": "not-a-secret"}}],
                "contexts": [
                    {
                        "name": "double",
                        "context": {"cluster": "double", "user": "tester"},
                    }
                ],
                "current-context": "double",
            }
        )
    )
    return path


def small_cluster(double: KubeDouble) -> None:
    """Three worker nodes, a tainted one, and a 2-replica ``web`` Deployment."""
    double.add_node("node-a", cpu="2", memory="4Gi", labels={"zone": "a"})
    double.add_node("node-b", cpu="2", memory="4Gi", labels={"zone": "b"})
    double.add_node("node-c", cpu="1", memory="2Gi", labels={"zone": "c"})
    double.add_node(
        "node-gpu", cpu="8", memory="16Gi",
        taints=[{"key": "gpu", "value": "true", "effect": "NoSchedule"}],
    )  # fmt: skip
    double.add_deployment(NS, "web", 2, cpu="500m", memory="512Mi")


@pytest.fixture
def bare_double() -> Iterator[KubeDouble]:
    """A double with nothing in it."""
    with KubeDouble() as d:
        yield d


@pytest.fixture
def double(bare_double: KubeDouble) -> KubeDouble:
    """The small cluster, requests recorded from here on."""
    small_cluster(bare_double)
    bare_double.requests.clear()
    return bare_double


def fast_api(kubeconfig: Path, attempts: int = 4) -> KubeApi:
    """The hooks' client from a kubeconfig, with millisecond backoffs."""
    cfg = KubernetesConfig(kubeconfig=str(kubeconfig), request_timeout=5.0)
    return KubeApi(
        make_api_client(cfg, {}),
        RetryPolicy(attempts=attempts, base_delay=0.01, max_delay=0.05),
        timeout=5.0,
        sleep=lambda s: None,
    )


@pytest.fixture
def kubeconfig(bare_double: KubeDouble, tmp_path: Path) -> Path:
    return write_kubeconfig(tmp_path / "kubeconfig", bare_double.url)


@pytest.fixture
def api(kubeconfig: Path) -> KubeApi:
    return fast_api(kubeconfig)
