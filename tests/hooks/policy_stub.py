"""A scripted ``POST /get_action`` server on 127.0.0.1 for the loop's unit tests.

It answers a fixed list of decisions in order (then stops) and keeps every payload
it was sent. The end-to-end test uses the real policy server instead.
"""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

STOP = {"pod_name": "", "target_node": "", "is_stop": True}


class PolicyStub:
    """Answers ``answer(payload, call_index)``; records the payloads."""

    def __init__(self, answer: Callable[[dict[str, Any], int], dict[str, Any]]):
        self.answer = answer
        self.payloads: list[dict[str, Any]] = []
        self.status = 200
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                payload = json.loads(self.rfile.read(length))
                stub.payloads.append(payload)
                if stub.status != 200:
                    body = {"status": "error", "message": "scripted failure"}
                    code = stub.status
                else:
                    body = stub.answer(payload, len(stub.payloads) - 1)
                    code = 200
                data = json.dumps(body).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/get_action"

    def __enter__(self) -> PolicyStub:
        threading.Thread(
            target=self.server.serve_forever, args=(0.05,), daemon=True
        ).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


def scripted(moves: list[tuple[str, str]]) -> Callable[[dict[str, Any], int], Any]:
    """Move ``moves[i]`` = (pod, node) on call i, then stop."""

    def answer(payload: dict[str, Any], i: int) -> dict[str, Any]:
        if i < len(moves):
            pod, node = moves[i]
            return {"pod_name": pod, "target_node": node, "is_stop": False}
        return STOP

    return answer


def by_service(moves: list[tuple[str, str]]) -> Callable[[dict[str, Any], int], Any]:
    """Move a pod of ``moves[i][0]`` to node ``moves[i][1]`` on call i, then stop.

    The first pod by name that is not on that node is chosen: pod names change as
    pods are replaced, so the script names services.
    """

    def answer(payload: dict[str, Any], i: int) -> dict[str, Any]:
        if i >= len(moves):
            return STOP
        service, node = moves[i]
        pods = payload["cluster_state"]["services"][service]["pods"]
        pod = sorted(
            (p for p in pods if p["node_name"] != node), key=lambda p: p["pod_name"]
        )[0]
        return {"pod_name": pod["pod_name"], "target_node": node, "is_stop": False}

    return answer


class JsonStub:
    """``GET`` anything -> a fixed JSON body (REACH's entry-service latency)."""

    def __init__(self, body: dict[str, Any]):
        self.body = body
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                data = json.dumps(stub.body).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/latency"

    def __enter__(self) -> JsonStub:
        threading.Thread(
            target=self.server.serve_forever, args=(0.05,), daemon=True
        ).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


def free_port() -> int:
    """A port nothing listens on right now (127.0.0.1)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])
