"""The migrator's policy client sends the key a protected policy server asks for."""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from hooks.errors import HookError, RetryPolicy
from hooks.migrator.policy import Decision, PolicyClient, parse_decision

KEY = "k" * 32


class _KeyedPolicy(BaseHTTPRequestHandler):
    """Answers stop, but only to requests carrying ``X-API-Key: KEY`` (else 401)."""

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        if self.headers.get("X-API-Key") != KEY:
            body, status = {"status": "error", "message": "X-API-Key: expected"}, 401
        else:
            body, status = {"pod_name": "", "target_node": "", "is_stop": True}, 200
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: object) -> None:
        """Quiet."""


@pytest.fixture
def url() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _KeyedPolicy)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}/get_action"
    finally:
        server.shutdown()
        server.server_close()


def test_the_key_is_sent_and_a_missing_key_is_a_clear_refusal(url: str) -> None:
    retry = RetryPolicy(attempts=1, base_delay=0.0)
    assert PolicyClient(url, 5.0, retry, api_key=KEY).get_action({}).is_stop
    with pytest.raises(HookError, match="401"):
        PolicyClient(url, 5.0, retry).get_action({})


@pytest.mark.parametrize(
    ("answer", "message"),
    [
        ({"pod_name": "web-1", "target_node": "n", "is_stop": "false"},
         "is_stop: expected a JSON boolean (true or false), got 'false'"),
        ({"pod_name": "web-1", "target_node": "n", "is_stop": 0},
         "is_stop: expected a JSON boolean"),
        ({"pod_name": 7, "target_node": "n", "is_stop": False},
         "pod_name: expected a string, got 7"),
        ({"pod_name": "web-1", "is_stop": False},
         "target_node: expected a string in the answer, got no such field"),
        ({"pod_name": "", "target_node": "", "is_stop": False},
         "expected both for a move"),
        (["web-1", "n", False], "expected a JSON object"),
    ],
)  # fmt: skip
def test_an_answer_of_the_wrong_types_is_refused_naming_the_field(
    answer: object, message: str
) -> None:
    with pytest.raises(HookError, match=re.escape(message)):
        parse_decision(answer, "policy test")


def test_a_well_typed_answer_is_taken_as_sent() -> None:
    move = parse_decision(
        {"pod_name": "web-1", "target_node": "n", "is_stop": False}, "policy test"
    )
    assert move == Decision("web-1", "n", False)
    stop = parse_decision({"pod_name": "", "target_node": "", "is_stop": True}, "p")
    assert stop.is_stop
