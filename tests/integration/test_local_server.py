"""`make local` end to end: the server process, the simulator it embeds, and two turns over HTTP."""

import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request

import pytest

from tests.support import ROOT


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def local_relay():
    processes = []

    def start(**env):
        port = free_port()
        clean = {k: v for k, v in os.environ.items() if not k.startswith(("DIFY_", "SESSIONS_", "ALLOWED_"))}
        process = subprocess.Popen(
            [sys.executable, "-m", "local.server"],
            cwd=ROOT,
            env=clean | {"PORT": str(port), "DEMO_PORT": str(free_port())} | env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        processes.append(process)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            line = process.stdout.readline()
            if "listening on" in line or not line:
                break
        assert process.poll() is None, "make local did not start"
        return f"http://127.0.0.1:{port}"

    yield start
    for process in processes:
        process.terminate()
        process.wait(timeout=10)
        process.stdout.close()


def post(url, body, origin=None):
    headers = {"Content-Type": "application/json"} | ({"Origin": origin} if origin else {})
    request = urllib.request.Request(url + "/v1/chat", json.dumps(body).encode(), headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


@pytest.mark.parametrize(
    ("env", "continues"),
    [
        ({}, True),
        ({"DIFY_APP_MODE": "agent"}, True),
        ({"SIMULATED_APP": "agent"}, True),  # New Agent, found by auto-detection
        (
            {
                "DIFY_APP_MODE": "chatflow",
                "SIMULATED_REQUIRED_INPUTS": "topic",
                "DIFY_INPUTS": '{"topic": "tea"}',
            },
            True,
        ),
        ({"DIFY_APP_MODE": "completion"}, False),
        ({"DIFY_APP_MODE": "workflow"}, False),
    ],
    ids=["chat", "agent", "new-agent", "chatflow-required-input", "completion", "workflow"],
)
def test_make_local_answers_and_continues(local_relay, env, continues):
    url = local_relay(**env)
    status, first = post(url, {"message": "Hello"})
    assert status == 200, first
    assert first["answer"].startswith("Turn 1: you said 'Hello'")
    status, second = post(url, {"message": "Again", "sessionId": first["sessionId"]})
    assert status == 200 and second["sessionId"] == first["sessionId"]
    assert second["answer"].startswith("Turn 2:" if continues else "Turn 1:")
    if "DIFY_INPUTS" in env:
        assert second["answer"].endswith("[inputs: topic=tea]")
