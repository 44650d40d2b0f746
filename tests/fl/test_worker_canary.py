"""Canary: the Flower internals the warm ClientApp worker is built on are still there.

``fl_clients.worker`` claims tasks through the SuperNode's Runtime API with pieces
``flwr-clientapp`` itself uses (13 private modules). It stays because it still wins:
re-measured with flwr 1.42's ``FLWR_SUPEREXEC_TASK_POLL_INTERVAL=0.05`` and Flower's
own per-message ClientApp processes, a round of 3 regions x 4,096 steps cost 22 s of
overhead against about 1 s warm (``python -m scripts.bench fed --isolation
subprocess``; docs/federation.md). When a Flower upgrade moves or reshapes one of
these, this test fails first, naming it, instead of a federation hanging.
"""

from __future__ import annotations

import importlib
import inspect

import flwr
import pytest

INTERNALS = [
    ("flwr.proto.runtime_pb2", "AcquireTaskRequest"),
    ("flwr.proto.runtime_pb2", "PullAppMessagesRequest"),
    ("flwr.proto.runtime_pb2", "PullTaskInputRequest"),
    ("flwr.proto.runtime_pb2", "SendTaskHeartbeatRequest"),
    ("flwr.proto.node_pb2", "Node"),
    ("flwr.supercore.constant", "TaskType"),
    ("flwr.supercore.fab", "Fab"),
    (
        "flwr.supercore.inflatable.inflatable_protobuf_utils",
        "make_pull_object_fn_protobuf",
    ),
    (
        "flwr.supercore.inflatable.inflatable_protobuf_utils",
        "make_confirm_message_received_fn_protobuf",
    ),
    ("flwr.supercore.inflatable.inflatable_utils", "pull_and_inflate_object_from_tree"),
    ("flwr.supercore.interceptors", "RuntimeTokenHttpInterceptor"),
    ("flwr.supercore.interceptors", "RuntimeVersionHttpInterceptor"),
    ("flwr.supercore.retry", "make_simple_http_retry_invoker"),
    ("flwr.supercore.runtime", "RuntimeHttpClient"),
    ("flwr.supercore.task_identity", "TaskIdentity"),
    ("flwr.supernode.runtime.run_clientapp", "push_message"),
    ("flwr.supernode.runtime.run_clientapp", "push_task_output"),
    ("flwr.common.serde", "context_from_proto"),
    ("flwr.common.serde", "fab_from_proto"),
    ("flwr.common.serde", "run_from_proto"),
]


def _hint() -> str:
    return (
        f" (flwr {flwr.__version__}): fl_clients.worker was written against flwr "
        "1.42; update it, or run the SuperNodes with engine.isolation=subprocess"
    )


@pytest.mark.parametrize(("module", "name"), INTERNALS, ids=[n for _, n in INTERNALS])
def test_worker_internals_exist(module: str, name: str) -> None:
    try:
        found = getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError) as err:
        pytest.fail(f"{module}.{name} is gone{_hint()}: {err}")
    assert found is not None


def parameters(func: object) -> set[str]:
    return set(inspect.signature(func).parameters)  # type: ignore[arg-type]


def test_worker_calls_still_take_the_arguments_it_passes() -> None:
    from flwr.proto.runtime_pb2 import AcquireTaskRequest
    from flwr.supercore.constant import TaskType
    from flwr.supercore.inflatable.inflatable_utils import (
        pull_and_inflate_object_from_tree,
    )
    from flwr.supercore.runtime import RuntimeHttpClient
    from flwr.supercore.task_identity import TaskIdentity
    from flwr.supernode.runtime.run_clientapp import push_message, push_task_output

    expected = {
        pull_and_inflate_object_from_tree: {
            "return_type",
            "initial_backoff",
            "backoff_cap",
        },
        RuntimeHttpClient.from_server_address: {
            "server_address",
            "insecure",
            "root_certificates",
            "interceptors",
            "retry_invoker",
        },
    }
    for func, names in expected.items():
        missing = names - parameters(func)
        assert not missing, f"{func.__qualname__} lost {sorted(missing)}{_hint()}"
    assert len(parameters(push_message)) >= 3, f"push_message changed{_hint()}"
    assert len(parameters(push_task_output)) >= 4, f"push_task_output changed{_hint()}"
    for method in ("AcquireTask", "PullTaskInput", "PullMessages", "PullObject",
                   "ConfirmMessageReceived", "SendTaskHeartbeat"):  # fmt: skip
        assert hasattr(RuntimeHttpClient, method), (
            f"RuntimeHttpClient.{method}{_hint()}"
        )
    assert "supported_task_types" in AcquireTaskRequest.DESCRIPTOR.fields_by_name
    assert TaskType.CLIENT_APP.value
    for field in ("task_id", "run_id", "node_id"):  # properties raise until set
        try:
            inspect.getattr_static(TaskIdentity, field)
        except AttributeError:
            pytest.fail(f"TaskIdentity.{field} is gone{_hint()}")


def test_supernode_loop_still_sleeps_through_its_module_time() -> None:
    """``fl_clients.supernode`` caps the loop's sleeps by replacing its ``time``."""
    from flwr.supernode import start_client_internal

    from fl_clients.supernode import CappedSleeps, cap_loop_sleeps

    original = start_client_internal.time
    try:
        cap_loop_sleeps(0.05)  # raises, naming the fix, when the loop changed
        capped = start_client_internal.time  # type: ignore[attr-defined]
        assert isinstance(capped, CappedSleeps) and capped.cap == 0.05
    finally:
        start_client_internal.time = original  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    "module_name",
    ["flwr.supernode.start_client_internal", "flwr.superlink.grid.http_grid"],
)
def test_object_pulls_are_rebound_with_a_short_first_backoff(module_name: str) -> None:
    """``fl_server.pulls`` re-binds Flower's ``pull_objects`` where it is called."""
    from flwr.supercore.inflatable import inflatable_utils

    from fl_server.pulls import INITIAL_BACKOFF_S, quick_object_pulls

    module = importlib.import_module(module_name)
    original = module.pull_objects
    try:
        quick_object_pulls(module)  # raises, naming the fix, when Flower changed
        quick = module.pull_objects
        assert quick.func is inflatable_utils.pull_objects
        assert quick.keywords["initial_backoff"] == INITIAL_BACKOFF_S
        assert {"initial_backoff", "backoff_cap"} <= parameters(original)
    finally:
        module.pull_objects = original
