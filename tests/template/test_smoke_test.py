""".github/scripts/smoke_test.py, the deploy workflow's check, against a stand-in relay on loopback."""

import importlib.util
import json
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from tests.support import ROOT

SCRIPT = ROOT / ".github" / "scripts" / "smoke_test.py"


def load_script():
    spec = importlib.util.spec_from_file_location("smoke_test", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


smoke = load_script()


class StandIn:
    """Answers every POST with one canned status and body, and keeps what it was sent."""

    def __init__(self, status: int, body: bytes):
        self.status, self.body = status, body
        self.requests: list[tuple[str, dict, bytes]] = []
        stand_in = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                raw = self.rfile.read(int(self.headers["Content-Length"]))
                stand_in.requests.append((self.path, dict(self.headers), raw))
                self.send_response(stand_in.status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(stand_in.body)))
                self.end_headers()
                self.wfile.write(stand_in.body)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/live/v1/chat"
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def stand_in():
    servers = []

    def start(status: int, body) -> StandIn:
        raw = body if isinstance(body, bytes) else json.dumps(body).encode()
        servers.append(StandIn(status, raw))
        return servers[-1]

    yield start
    for server in servers:
        server.close()


ANSWER = {
    "answer": "Hello!",
    "sessionId": "s" * 32,
    "conversationId": None,
    "messageId": None,
    "mode": "chat",
}


@pytest.mark.parametrize(
    ("origin", "allowed", "chosen"),
    [
        ("https://shop.example.com", "https://www.example.com", "https://shop.example.com"),
        ("", "https://*.example.com, https://www.example.com/", "https://www.example.com"),
        ("", "http://localhost:8080", "http://localhost:8080"),
        ("", "https://*.example.com", None),
        ("", "", None),
    ],
)
def test_the_origin_is_the_variable_or_the_first_exact_allowed_origin(origin, allowed, chosen):
    assert smoke.choose_origin(origin, allowed) == chosen


def test_an_answer_passes_and_the_request_looks_like_a_widgets(stand_in, capsys):
    relay = stand_in(200, ANSWER)
    assert smoke.main([relay.url, "--allowed-origins", "https://www.example.com"]) == 0
    ((path, headers, raw),) = relay.requests
    assert path == "/live/v1/chat"
    assert headers["Origin"] == "https://www.example.com"
    assert headers["Content-Type"] == "application/json"
    body = json.loads(raw)
    assert body["message"].strip() and body["user"] == "dify-relay-smoke-test"
    out = capsys.readouterr().out
    assert "passed" in out and "200" in out and "Hello!" not in out  # the answer itself is not printed


@pytest.mark.parametrize(
    ("status", "body", "shown"),
    [
        (
            502,
            {"error": {"code": "upstream_rejected", "message": "not configured yet", "retryable": False}},
            "502 upstream_rejected: not configured yet",
        ),
        (
            403,
            {"error": {"code": "origin_not_allowed", "message": "no", "retryable": False}},
            "403 origin_not_allowed",
        ),
        (200, {"answer": "  ", "sessionId": "s" * 32}, "200, but without an answer"),
        (200, {"sessionId": "s" * 32}, "200, but without an answer"),
        (200, b"<html>gateway</html>", "not JSON"),
        (504, b'{"message": "Endpoint request timed out"}', "504 (no error code)"),
    ],
)
def test_anything_but_an_answer_fails(stand_in, capsys, status, body, shown):
    relay = stand_in(status, body)
    assert smoke.main([relay.url, "--origin", "https://www.example.com"]) == 1
    assert shown in capsys.readouterr().out
    assert len(relay.requests) == 1  # one message, no retries


def test_no_origin_to_send_is_its_own_failure(stand_in):
    relay = stand_in(200, ANSWER)
    assert smoke.main([relay.url, "--allowed-origins", "https://*.example.com"]) == 2
    assert relay.requests == []


def test_a_missing_or_unreachable_url_fails(stand_in):
    assert smoke.main(["None", "--origin", "https://www.example.com"]) == 1  # no ChatUrl output
    relay = stand_in(200, ANSWER)
    url = relay.url
    relay.close()
    assert smoke.main([url, "--origin", "https://www.example.com", "--timeout", "5"]) == 1
    assert smoke.main(["file:///etc/passwd", "--origin", "https://www.example.com"]) == 1


def test_the_script_runs_as_the_workflow_runs_it(stand_in):
    relay = stand_in(200, ANSWER)
    command = [
        sys.executable,
        str(SCRIPT),
        relay.url,
        "--origin",
        "",
        "--allowed-origins",
        "http://localhost:8080",
    ]
    result = subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stderr
    assert relay.requests[0][1]["Origin"] == "http://localhost:8080"
