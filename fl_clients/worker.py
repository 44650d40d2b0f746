"""Warm ClientApp executor of a SuperNode started with ``--isolation process``.

Flower 1.42 runs every message in a fresh ``flwr-clientapp`` process (with either
isolation mode, the ``flower-superexec`` poller launches one per task): each round
pays the imports of torch, SB3 and flwr (about 4 s here) and the rebuild of the
region's env and learner. Shortening the poller's 1 s sleep
(``FLWR_SUPEREXEC_TASK_POLL_INTERVAL=0.05``) does not help: 3 regions x 4,096
steps still paid 22 s of overhead per round on two loaded cores, against about 1 s
with this worker (``tests/fl/test_worker_canary.py`` pins the internals it uses).
This executor does the same job in one long-lived process: it claims the
SuperNode's pending ClientApp tasks through the Runtime API (``AcquireTask``), runs
this project's ClientApp in-process and pushes the reply and the updated context
back, exactly like ``flwr-clientapp``. Torch is
imported once and the learner cache of :mod:`fl_clients.trainer` stays warm.

It only runs the app it was started with: a task whose app bundle (FAB) carries a
different ClientApp reference or different ``fl_clients`` sources is refused with an
error reply, so a stale worker never trains with old code.

    python -m fl_clients.worker --runtime-api-address 127.0.0.1:9094 --insecure

Built on the pieces ``flwr-clientapp`` itself uses (the Runtime API client, the object
pull helpers, ``flwr.supernode.runtime.run_clientapp``), which are internal to Flower:
pinned to flwr 1.42.
"""

from __future__ import annotations

import argparse
import io
import logging
import signal
import sys
import threading
import time
import tomllib
import zipfile
from pathlib import Path
from types import FrameType

import httpx
from flwr.app import Context, Error, Message
from flwr.clientapp import ClientApp
from flwr.common.constant import ErrorCode, SubStatus
from flwr.common.serde import context_from_proto, fab_from_proto, run_from_proto
from flwr.proto.node_pb2 import Node  # type: ignore[attr-defined]
from flwr.proto.runtime_pb2 import (  # type: ignore[attr-defined]
    AcquireTaskRequest,
    PullAppMessagesRequest,
    PullTaskInputRequest,
    SendTaskHeartbeatRequest,
)
from flwr.supercore.constant import TaskType
from flwr.supercore.fab import Fab
from flwr.supercore.inflatable.inflatable_protobuf_utils import (
    make_confirm_message_received_fn_protobuf,
    make_pull_object_fn_protobuf,
)
from flwr.supercore.inflatable.inflatable_utils import (
    pull_and_inflate_object_from_tree,
)
from flwr.supercore.interceptors import (
    RuntimeTokenHttpInterceptor,
    RuntimeVersionHttpInterceptor,
)
from flwr.supercore.retry import make_simple_http_retry_invoker
from flwr.supercore.runtime import RuntimeHttpClient
from flwr.supercore.task_identity import TaskIdentity
from flwr.supernode.runtime.run_clientapp import push_message, push_task_output

log = logging.getLogger("fl_clients.worker")

APP_REF = "fl_clients.client_app:app"
PROJECT_DIR = Path(__file__).resolve().parents[1]
APP_PACKAGES = ("fl_clients", "fl_server")


class StaleAppError(RuntimeError):
    """The submitted app is not the one this worker runs."""


def loaded_sources() -> dict[str, bytes]:
    """Source of every app module this process has imported, by FAB path.

    Read once, right after the imports: that is the code the worker runs, whatever
    happens to the files later.
    """
    sources: dict[str, bytes] = {}
    for module in list(sys.modules.values()):
        path = Path(getattr(module, "__file__", None) or "/").resolve()
        if path.suffix == ".py" and path.is_relative_to(PROJECT_DIR):
            name = path.relative_to(PROJECT_DIR).as_posix()
            if name.startswith(tuple(f"{p}/" for p in APP_PACKAGES)):
                sources[name] = path.read_bytes()
    return sources


def check_fab(fab_content: bytes, sources: dict[str, bytes]) -> None:
    """Refuse an app bundle whose ClientApp differs from the code this process runs."""
    with zipfile.ZipFile(io.BytesIO(fab_content)) as fab:
        names = set(fab.namelist())
        config = tomllib.loads(fab.read("pyproject.toml").decode())
        ref = config["tool"]["flwr"]["app"]["components"]["clientapp"]
        if ref != APP_REF:
            raise StaleAppError(f"app clientapp: expected {APP_REF!r}, got {ref!r}")
        for name, source in sorted(sources.items()):
            if name not in names or fab.read(name) != source:
                raise StaleAppError(
                    f"{name}: the submitted app differs from this worker's code; "
                    "restart the SuperNode's worker (or engine.isolation=subprocess)"
                )


def pull_input(client: RuntimeHttpClient) -> tuple[Message, Context, Fab]:
    """The task's message, context and app bundle, from the SuperNode.

    The SuperNode offers the task before it has finished fetching the message's
    arrays from the SuperLink. ``flwr-clientapp`` starts so slowly that it never
    notices; a warm worker asks at once, and Flower's default retry would then wait
    1 s, then 2 s more. Here the retry starts at 20 ms and stays under 0.5 s.
    """
    task = client.PullTaskInput(PullTaskInputRequest())
    TaskIdentity.task_id = task.task_id  # Messages created in this task reply from it
    TaskIdentity.run_id = task.run.run_id
    TaskIdentity.node_id = task.context.node_id
    context = context_from_proto(task.context)
    run_from_proto(task.run)  # validates the run
    pulled = client.PullMessages(PullAppMessagesRequest())
    if not pulled.messages_list:
        raise RuntimeError("the SuperNode offered a task without a message")
    node = Node(node_id=context.node_id)
    tree = pulled.message_object_trees[0]
    message = pull_and_inflate_object_from_tree(
        tree,
        make_pull_object_fn_protobuf(client.PullObject, node, context.run_id),
        make_confirm_message_received_fn_protobuf(
            client.ConfirmMessageReceived, node, context.run_id
        ),
        return_type=Message,
        initial_backoff=0.02,
        backoff_cap=0.5,
    )
    message.metadata.__dict__["_message_id"] = tree.object_id  # not in its content
    return message, context, fab_from_proto(task.fab)


class _Heartbeat:
    """Keeps a claimed task alive while it runs (the SuperNode expires silent ones)."""

    def __init__(self, client: RuntimeHttpClient, every: float = 10.0) -> None:
        self._client, self._every = client, every
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(self._every):
            try:
                if not self._client.SendTaskHeartbeat(
                    SendTaskHeartbeatRequest()
                ).success:
                    log.warning(
                        "the SuperNode no longer knows this task (run stopped?)"
                    )
            except httpx.HTTPError as err:
                log.warning("task heartbeat failed: %s", err)

    def __enter__(self) -> _Heartbeat:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)


class Worker:
    """Claims and runs the ClientApp tasks of one SuperNode, one at a time.

    Args:
        address: the SuperNode's Runtime API (``flower-supernode --host/--port``).
        root_certificates: CA of a TLS Runtime API; None for ``--insecure``.
        poll: seconds between two ``AcquireTask`` calls when there is no task.
    """

    def __init__(
        self, address: str, root_certificates: bytes | None, poll: float = 0.2
    ) -> None:
        self.address, self.certificates, self.poll = address, root_certificates, poll
        self.stopping = threading.Event()
        self.app: ClientApp | None = None
        self.sources: dict[str, bytes] = {}
        self.tasks = 0
        self.busy = False
        self._invoker = make_simple_http_retry_invoker()

    def _client(self, token: str | None = None) -> RuntimeHttpClient:
        interceptors: list[object] = [RuntimeVersionHttpInterceptor("flwr-clientapp")]
        if token is not None:
            interceptors.append(RuntimeTokenHttpInterceptor(token))
        return RuntimeHttpClient.from_server_address(
            server_address=self.address,
            insecure=self.certificates is None,
            root_certificates=self.certificates,
            interceptors=interceptors,  # type: ignore[arg-type]
            retry_invoker=self._invoker,
        )

    def serve(self) -> None:
        """Claim and run tasks until :attr:`stopping` is set."""
        from fl_clients.client_app import app  # torch, SB3, numba kernels: once

        self.app, self.sources = app, loaded_sources()
        poller = self._client()
        request = AcquireTaskRequest(supported_task_types=[TaskType.CLIENT_APP.value])
        log.info("warm ClientApp worker ready on %s", self.address)
        try:
            while not self.stopping.is_set():
                try:
                    claimed = poller.AcquireTask(request)
                except httpx.HTTPError as err:
                    log.warning("SuperNode unreachable (%s); retrying", err)
                    self.stopping.wait(1.0)
                    continue
                if claimed.HasField("task") and claimed.token:
                    self.run_task(claimed.token)
                else:
                    self.stopping.wait(self.poll)
        finally:
            poller.close()

    def run_task(self, token: str) -> None:
        """What ``flwr-clientapp`` does for one task, without a new process."""
        assert self.app is not None
        client = self._client(token)
        context = None
        status, details = SubStatus.FAILED, "ClientApp task failed"
        self.busy = True
        claimed = time.perf_counter()
        try:
            with _Heartbeat(client):
                message, context, fab = pull_input(client)
                start = time.perf_counter()
                try:
                    check_fab(fab.content, self.sources)
                    reply = self.app(message=message, context=context)
                    status, details = SubStatus.COMPLETED, ""
                except Exception as err:  # the node must get an error reply
                    log.exception(
                        "ClientApp raised on %s", message.metadata.message_type
                    )
                    code = (
                        ErrorCode.LOAD_CLIENT_APP_EXCEPTION
                        if isinstance(err, StaleAppError)
                        else ErrorCode.CLIENT_APP_RAISED_EXCEPTION
                    )
                    details = f"{type(err).__name__}: {err}"
                    reply = Message(Error(code=code, reason=details), reply_to=message)
                push_message(client, reply, context)
                self.tasks += 1
                log.info(
                    "task %d (%s): input %.2f s, app and reply %.1f s",
                    self.tasks,
                    message.metadata.message_type,
                    start - claimed,
                    time.perf_counter() - start,
                )
        finally:
            self.busy = False
            push_task_output(client, context, status, details)
            client.close()

    def stop(self) -> None:
        """Stop serving: at once when idle; a task under way is abandoned (failed)."""
        self.stopping.set()
        if self.busy:
            self._invoker.max_tries = 1  # report the failure once, do not retry
            raise SystemExit("stopped during a task")


def main(argv: list[str] | None = None) -> int:
    """Entry point: serve one SuperNode until SIGTERM/SIGINT."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runtime-api-address", required=True)
    parser.add_argument("--insecure", action="store_true")
    parser.add_argument("--root-certificates", type=Path, default=None)
    parser.add_argument("--poll", type=float, default=0.2)
    args = parser.parse_args(argv)
    if args.insecure == (args.root_certificates is not None):
        parser.error("expected exactly one of --insecure and --root-certificates")
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per poll otherwise
    certificates = (
        args.root_certificates.read_bytes() if args.root_certificates else None
    )
    worker = Worker(args.runtime_api_address, certificates, poll=args.poll)

    def stop(signum: int, _frame: FrameType | None) -> None:
        log.info("signal %d: stopping", signum)
        worker.stop()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    worker.serve()
    return 0


if __name__ == "__main__":
    sys.exit(main())
