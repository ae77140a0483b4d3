"""`make local` end to end: the server process, the simulator it embeds, and two turns over HTTP."""

import http.client
import json
import time
import urllib.error
import urllib.request
from contextlib import ExitStack

import pytest

from relay import sse as relay_sse
from tests.support import free_port, local_server


@pytest.fixture
def local_relay():
    with ExitStack() as servers:
        yield lambda **env: servers.enter_context(local_server(env))


def post(url, body, origin=None, route="/v1/chat"):
    headers = {"Content-Type": "application/json"} | ({"Origin": origin} if origin else {})
    request = urllib.request.Request(url + route, json.dumps(body).encode(), headers, method="POST")
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


def open_stream(url, message, session_id=None):
    host, port = url.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=10)
    body = {"message": message} | ({"sessionId": session_id} if session_id else {})
    connection.request("POST", "/v1/chat/stream", json.dumps(body), {"Content-Type": "application/json"})
    return connection, connection.getresponse()


def timed_events(response):
    """(seconds since the first, name, data) of each event as it arrives."""
    parser, first = relay_sse.SSEParser(), None
    while chunk := response.read1(65536):
        for event in parser.feed(chunk):
            first = first or time.monotonic()
            yield time.monotonic() - first, event.name, json.loads(event.data) if event.data else None


def test_make_local_streams_an_answer_as_the_simulated_app_writes_it(local_relay):
    url = local_relay(DIFY_APP_MODE="agent", SIMULATED_STREAM_DELAY="0.05")
    connection, response = open_stream(url, "Tell me about the opening hours of every branch")
    assert response.status == 200 and response.getheader("Transfer-Encoding") == "chunked"
    assert response.getheader("Content-Type").startswith("text/event-stream")
    events = list(timed_events(response))
    connection.close()
    deltas = [(at, data["text"]) for at, name, data in events if name == "delta"]
    assert len(deltas) > 5
    assert deltas[0][0] < deltas[-1][0] - 0.2  # the first words came well before the last
    assert events[-1][1] == "end"
    assert events[-1][2]["answer"] == "".join(text for _, text in deltas)


def test_a_visitor_leaving_mid_stream_stops_the_simulated_run(local_relay):
    url = local_relay(DIFY_APP_MODE="agent", SIMULATED_STREAM_DELAY="0.1")
    question = "Tell me about the opening hours of every branch, and then about the parking"
    connection, response = open_stream(url, question)
    events = timed_events(response)
    start = next(data for _, name, data in events if name == "start")
    next(data for _, name, data in events if name == "delta")
    response.close()
    connection.close()
    time.sleep(1.0)  # the relay notices at its next write, and asks Dify to stop
    with urllib.request.urlopen(f"{url}/v1/history?sessionId={start['sessionId']}", timeout=10) as reply:
        (turn,) = json.loads(reply.read())["turns"]
    assert turn["question"] == question
    assert len(turn["answer"]) < len(f"Turn 1: you said '{question}'")  # Dify stopped writing it


def test_a_refused_stream_is_the_json_envelope_and_the_server_keeps_serving(local_relay):
    url = local_relay()
    connection, response = open_stream(url, "")
    assert response.status == 400 and response.getheader("Content-Type") == "application/json"
    assert json.loads(response.read())["error"]["code"] == "invalid_request"
    connection.close()
    connection, response = open_stream(url, "Hello")
    assert [name for _, name, _ in timed_events(response)][-1] == "end"
    connection.close()


def test_make_local_serves_two_apps_that_refuse_each_others_origins_and_sessions():
    demo_port = free_port()
    demo, shop = f"http://localhost:{demo_port}", "https://shop.example"
    with local_server({"ALLOWED_ORIGINS": shop}, demo_port=demo_port) as url:
        status, sales = post(url, {"message": "Plans?"}, origin=demo, route="/v1/apps/sales/chat")
        assert status == 200 and sales["answer"].startswith("Turn 1: you said 'Plans?'")
        assert post(url, {"message": "Plans?"}, origin=shop, route="/v1/apps/sales/chat")[0] == 403
        status, default = post(url, {"message": "Orders?"}, origin=shop)
        assert status == 200 and default["answer"].startswith("Turn 1: you said 'Orders?'")
        assert post(url, {"message": "Orders?"}, origin=demo)[0] == 403
        # The sales session means nothing to the default app: a conversation of its own starts there.
        status, crossed = post(url, {"message": "Again", "sessionId": sales["sessionId"]}, origin=shop)
        assert status == 200 and crossed["answer"].startswith("Turn 1")
        assert crossed["conversationId"] != sales["conversationId"]
        status, again = post(
            url,
            {"message": "Again", "sessionId": sales["sessionId"]},
            origin=demo,
            route="/v1/apps/sales/chat",
        )
        assert status == 200 and again["answer"].startswith("Turn 2")
        with urllib.request.urlopen(f"http://127.0.0.1:{demo_port}/", timeout=10) as page:
            html = page.read().decode()
        assert html.count('src="relay-widget.js"') == 2 and 'data-app="sales"' in html
