"""`make local` end to end: the server process, the simulator it embeds, and two turns over HTTP."""

import json
import urllib.error
import urllib.request
from contextlib import ExitStack

import pytest

from tests.support import local_server


@pytest.fixture
def local_relay():
    with ExitStack() as servers:
        yield lambda **env: servers.enter_context(local_server(env))


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


def test_a_body_over_the_local_servers_limit_is_refused_with_the_envelope(local_relay):
    url = local_relay()
    status, body = post(url, {"message": "x" * 1_100_000})
    assert (status, body["error"]["code"], body["error"]["retryable"]) == (413, "request_too_large", False)
    assert post(url, {"message": "Hello"})[0] == 200
