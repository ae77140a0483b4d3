"""The streaming function's Runtime API loop against a fake Runtime API on loopback, speaking the contract AWS
documents for custom runtimes in streaming response mode."""

from __future__ import annotations

import base64
import importlib
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import SimpleNamespace

import pytest

from local.apigw import load_event
from local.dify_simulator import App
from relay import sse
from tests.conftest import DIFY_KEY

REQUEST_ID = "8476a536-e9f4-11e8-9739-2dfe598c3fcd"


class FakeRuntimeApi:
    """Hands out one event, then records what the runtime posts back: headers, chunks as they arrived (with
    the time each did), trailers."""

    def __init__(self, event: dict) -> None:
        self.event = event
        self.posts: list[dict] = []
        self.done = threading.Event()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self):
                body = json.dumps(fake.event).encode()
                self.send_response(200)
                self.send_header("Lambda-Runtime-Aws-Request-Id", REQUEST_ID)
                self.send_header("Lambda-Runtime-Deadline-Ms", str(int(time.time() * 1000) + 60_000))
                self.send_header(
                    "Lambda-Runtime-Invoked-Function-Arn", "arn:aws:lambda:us-east-1:1:function:s"
                )
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_POST(self):
                post = {
                    "path": self.path,
                    "headers": dict(self.headers.items()),
                    "chunks": [],
                    "trailers": {},
                }
                if self.headers.get("Transfer-Encoding") == "chunked":
                    while True:
                        size = int(self.rfile.readline().strip(), 16)
                        if size == 0:
                            break
                        post["chunks"].append((time.monotonic(), self.rfile.read(size)))
                        self.rfile.readline()
                    for line in iter(self.rfile.readline, b"\r\n"):
                        name, _, value = line.decode().partition(":")
                        post["trailers"][name.strip()] = value.strip()
                else:
                    post["chunks"].append(
                        (time.monotonic(), self.rfile.read(int(self.headers["Content-Length"])))
                    )
                fake.posts.append(post)
                self.send_response(202)
                self.send_header("Content-Length", "0")
                self.end_headers()
                fake.done.set()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.address = f"127.0.0.1:{self.server.server_address[1]}"

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def runtime_api():
    event = load_event("chat_stream.json")
    event["body"] = json.dumps({"message": "Where is the station?"})
    api = FakeRuntimeApi(event)
    yield api
    api.close()


def serve_once(api, handle):
    import runtime_api

    thread = threading.Thread(target=runtime_api.serve, args=(api.address, lambda: handle, 1), daemon=True)
    thread.start()
    thread.join(15)
    assert not thread.is_alive()
    return api.posts[-1]


def split_prelude(post) -> tuple[dict, bytes]:
    payload = b"".join(data for _, data in post["chunks"])
    prelude, _, body = payload.partition(b"\0" * 8)
    return json.loads(prelude), body


def test_a_streamed_turn_is_posted_as_a_chunked_http_integration_response(runtime_api, relay_env, simulator):
    simulator.reset({DIFY_KEY: App(mode="agent-chat", stream_chunk_chars=4, stream_delay=0.02)})
    import stream_app

    post = serve_once(runtime_api, importlib.reload(stream_app).handle)
    assert post["path"] == f"/2018-06-01/runtime/invocation/{REQUEST_ID}/response"
    headers = post["headers"]
    assert headers["Lambda-Runtime-Function-Response-Mode"] == "streaming"
    assert headers["Content-Type"] == "application/vnd.awslambda.http-integration-response"
    assert "Lambda-Runtime-Function-Error-Type" in headers["Trailer"]
    prelude, body = split_prelude(post)
    assert prelude["statusCode"] == 200
    assert prelude["headers"]["Content-Type"].startswith("text/event-stream")
    assert prelude["headers"]["Access-Control-Allow-Origin"] == "http://localhost:8080"
    events = [(e.name, json.loads(e.data)) for e in sse.parse([body]) if e.data]
    assert events[0][0] == "start" and events[-1][0] == "end"
    assert events[-1][1]["answer"] == "Turn 1: you said 'Where is the station?'"
    # Written as produced: the events arrived in many chunks, spread over the simulated app's writing time.
    times = [at for at, _ in post["chunks"]]
    assert len(times) > 5 and times[-1] - times[0] > 0.1
    assert post["trailers"] == {}


def test_an_error_after_the_first_byte_travels_in_the_trailers(runtime_api):
    import runtime_api as loop

    def broken():
        yield b"event: start\ndata: {}\n\n"
        raise ValueError("lost")

    post = serve_once(
        runtime_api, lambda event, context: SimpleNamespace(status=200, headers={}, body=broken())
    )
    assert post["trailers"][loop.ERROR_TYPE] == "Runtime.StreamError"
    assert json.loads(base64.b64decode(post["trailers"][loop.ERROR_BODY]))["errorType"] == "ValueError"


def test_a_handler_that_fails_outright_reports_an_invocation_error(runtime_api):
    def failing(event, context):
        raise RuntimeError("broken")

    post = serve_once(runtime_api, failing)
    assert post["path"] == f"/2018-06-01/runtime/invocation/{REQUEST_ID}/error"
    assert json.loads(post["chunks"][0][1]) == {"errorType": "RuntimeError", "errorMessage": "broken"}
