"""POST /v1/chat/stream: the streaming function, invoked in-process with API Gateway events, against the Dify
simulator on loopback and moto."""

from __future__ import annotations

import copy
import importlib
import json
import threading
import time

import pytest

from local.apigw import LambdaContext, load_event
from local.dify_simulator import App, Fault
from relay import sse
from tests.conftest import DIFY_KEY
from tests.integration.conftest import ORIGIN, set_origin
from tests.support import check_schema

LONG_QUESTION = "Tell me everything about the opening hours of every branch, in detail. " * 3


class Stream:
    def __init__(self, module):
        self.module = module

    def open(self, body, *, origin=ORIGIN, headers=None, timeout_ms=30_000):
        event = copy.deepcopy(load_event("chat_stream.json"))
        event["body"] = body if isinstance(body, str) else json.dumps(body)
        set_origin(event, origin)
        event["headers"].update(headers or {})
        return self.module.handle(event, LambdaContext(timeout_ms))

    def events(self, body, **options):
        response = self.open(body, **options)
        assert response.status == 200, b"".join(response.body)
        return [(e.name, json.loads(e.data)) for e in sse.parse(response.body) if e.data]


@pytest.fixture
def make_stream(relay_env, monkeypatch):
    def build(**overrides) -> Stream:
        for name, value in overrides.items():
            monkeypatch.setenv(name, value)
        import stream_app

        return Stream(importlib.reload(stream_app))

    return build


@pytest.fixture
def stream(make_stream) -> Stream:
    return make_stream()


def turns_asked(simulator) -> int:
    return sum(1 for r in simulator.requests if r.path.endswith("/chat-messages"))


def app(simulator, **options) -> App:
    simulator.reset({DIFY_KEY: App(**options)})
    return simulator.apps[DIFY_KEY]


def test_a_streamed_answer_starts_grows_and_ends_with_what_the_json_route_answers(stream, simulator):
    app(simulator, mode="agent-chat", sources=[{"document_name": "Hours", "content": "9 to 5", "score": 0.9}])
    events = stream.events({"message": "When are you open?"})
    names = [name for name, _ in events]
    assert names[0] == "start" and names[-2:] == ["sources", "end"]
    assert names.count("delta") > 1
    start, end = events[0][1], events[-1][1]
    assert set(start) == {"sessionId", "conversationId", "messageId", "taskId"}
    assert end["answer"] == "".join(data["text"] for name, data in events if name == "delta")
    assert end["answer"].startswith("Turn 1: you said 'When are you open?'")
    assert (end["sessionId"], end["conversationId"]) == (start["sessionId"], start["conversationId"])
    assert end["sources"][0]["title"] == "Hours" and "usage" in end
    documented = {
        "start": "StreamStart",
        "delta": "StreamText",
        "sources": "StreamSources",
        "end": "ChatAnswer",
    }
    for name, data in events:
        check_schema(documented[name], data)
    # The next turn continues the same conversation.
    again = stream.events({"message": "And on Sunday?", "sessionId": start["sessionId"]})
    assert again[-1][1]["conversationId"] == start["conversationId"]
    assert again[-1][1]["answer"].startswith("Turn 2:")


def test_nothing_of_difys_raw_metadata_reaches_the_widget(stream, simulator):
    app(simulator, mode="advanced-chat")
    response = stream.open({"message": "hello"})
    raw = b"".join(response.body).decode()
    for dify_only in ("workflow_run_id", "node_started", "retriever_resources", "created_at", '"event"'):
        assert dify_only not in raw


def test_moderation_replaces_the_answer_streamed_so_far(stream, simulator):
    app(simulator, mode="chat", moderated_replacement="[removed by moderation]")
    events = stream.events({"message": "something rude"})
    replaced = [data["text"] for name, data in events if name == "replace"]
    assert replaced == ["[removed by moderation]"]
    assert events[-1][1]["answer"] == "[removed by moderation]"


def test_an_answer_longer_than_the_gateway_deadline_arrives_whole(make_stream, make_relay, simulator):
    # The JSON route must answer within the gateway's timeout; a streamed turn only within STREAM_MAX_SECONDS.
    app(simulator, mode="agent-chat", stream_chunk_chars=16, stream_delay=0.15)
    overrides = {"GATEWAY_TIMEOUT_MS": "1500", "DEADLINE_MARGIN_MS": "200", "DIFY_APP_MODE": "agent"}
    assert make_relay(**overrides).chat({"message": LONG_QUESTION}).status == 504
    started = time.monotonic()
    events = make_stream(**overrides).events({"message": LONG_QUESTION})
    assert time.monotonic() - started > 1.5
    assert events[-1][0] == "end"
    assert events[-1][1]["answer"] == f"Turn 1: you said '{LONG_QUESTION}'"


def test_leaving_mid_answer_stops_the_dify_run(stream, simulator):
    app(simulator, mode="agent-chat", stream_chunk_chars=4, stream_delay=0.05)
    response = stream.open({"message": LONG_QUESTION})
    parsed = sse.parse(response.body)
    start = json.loads(next(e for e in parsed if e.name == "start").data)
    next(e for e in parsed if e.name == "delta")
    response.body.close()
    assert start["taskId"] in simulator.stopped_tasks


def test_the_stop_route_stops_the_run_of_the_visitors_own_session(stream, relay, simulator):
    app(simulator, mode="agent-chat", stream_chunk_chars=4, stream_delay=0.05)
    response = stream.open({"message": LONG_QUESTION})
    parsed = sse.parse(response.body)
    start = json.loads(next(e for e in parsed if e.name == "start").data)
    next(e for e in parsed if e.name == "delta")
    stranger = relay.request("POST", "/v1/chat/stop", body={"sessionId": "x" * 32, "taskId": start["taskId"]})
    assert stranger.status == 200 and start["taskId"] not in simulator.stopped_tasks
    stop = relay.request(
        "POST", "/v1/chat/stop", body={"sessionId": start["sessionId"], "taskId": start["taskId"]}
    )
    assert (stop.status, stop.json) == (200, {"result": "ok"})
    rest = [(e.name, json.loads(e.data)) for e in parsed if e.data]
    assert rest[-1][0] == "end"
    assert len(rest[-1][1]["answer"]) < len(LONG_QUESTION)  # Dify stopped writing


@pytest.mark.parametrize(
    ("body", "origin", "status", "code"),
    [
        ({"message": "hi"}, "https://evil.example", 403, "origin_not_allowed"),
        ({"message": ""}, ORIGIN, 400, "invalid_request"),
        ("{not json", ORIGIN, 400, "invalid_request"),
        ({"message": "x" * 4001}, ORIGIN, 413, "message_too_long"),
    ],
)
def test_a_refusal_before_the_first_event_is_a_json_error(stream, simulator, body, origin, status, code):
    app(simulator)
    response = stream.open(body, origin=origin)
    assert response.status == status
    assert response.headers["Content-Type"] == "application/json"
    assert json.loads(b"".join(response.body))["error"]["code"] == code
    response.body.close()  # what both writers do with every body, streamed or not
    assert not turns_asked(simulator)


def test_budgets_are_spent_by_streamed_turns_too(make_stream, simulator):
    app(simulator)
    stream = make_stream(RATE_LIMIT_SESSION_PER_MINUTE="1")
    session = stream.events({"message": "one"})[0][1]["sessionId"]
    refused = stream.open({"message": "two", "sessionId": session})
    assert refused.status == 429 and "Retry-After" in refused.headers


def test_a_failure_mid_answer_is_an_error_event_with_the_usual_envelope(stream, simulator):
    app(simulator, mode="agent-chat")
    simulator.inject(Fault(kind="error_event"))
    events = stream.events({"message": "hello"})
    assert events[0][0] == "start"
    name, data = events[-1]
    assert name == "error" and set(data["error"]) == {"code", "message", "retryable"}


def test_a_resent_stream_gets_the_first_answer_again_without_a_second_dify_call(stream, simulator):
    app(simulator, mode="chat")
    key = {"Idempotency-Key": "resend-0001"}
    first = stream.events({"message": "hello"}, headers=key)
    again = stream.events({"message": "hello"}, headers=key)
    assert [name for name, _ in again] == ["start", "delta", "end"]
    assert again[-1][1] == first[-1][1]
    assert turns_asked(simulator) == 1


def test_a_stream_keeps_a_quiet_connection_alive(stream, simulator):
    app(simulator, mode="agent-chat", ping_every=1)
    raw = b"".join(stream.open({"message": "hello"}).body)
    assert b": ping\n\n" in raw


def test_streams_run_side_by_side(stream, simulator):
    app(simulator, mode="chat", stream_delay=0.02)
    answers = {}

    def turn(n):
        answers[n] = stream.events({"message": f"question {n}"})[-1][1]["answer"]

    threads = [threading.Thread(target=turn, args=(n,)) for n in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert sorted(answers) == [0, 1, 2]
    assert all(f"question {n}" in answers[n] for n in answers)
