"""The migrator's policy client sends the key a protected policy server asks for."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from hooks.errors import HookError, RetryPolicy
from hooks.migrator.policy import PolicyClient

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
