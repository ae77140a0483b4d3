"""The Dify simulator behaves like Dify's Service API, checked over real loopback HTTP."""

import contextlib
import json
import threading
import time
import uuid
from dataclasses import dataclass
from typing import Any

import pytest
import urllib3
from urllib3.exceptions import ProtocolError

from local.dify_simulator import App, DifySimulator, Fault

USER = "visitor-1"
SOURCE = {
    "position": 1,
    "dataset_name": "Docs",
    "document_name": "faq.md",
    "content": "Opening hours",
    "score": 0.9,
}


def make_apps() -> dict[str, App]:
    return {
        "chat": App(mode="chat", sources=[SOURCE]),
        "chatflow": App(mode="advanced-chat", required_inputs=("topic",), optional_inputs=("page",)),
        "agent-chat": App(mode="agent-chat", ping_every=2),
        "agent": App(mode="agent", sources=[SOURCE]),
        "completion": App(mode="completion"),
        "workflow": App(mode="workflow", answer_output="result"),
        "failing-workflow": App(mode="workflow", fail_workflow=True),
        "moderated": App(mode="chat", moderated_replacement="[removed by moderation]"),
        "quiet": App(mode="chat", suggested_after_answer=False),
        "legacy-quiet": App(mode="chat", suggested_after_answer=False, release="legacy"),
        "chat-with-topic": App(mode="chat", required_inputs=("topic",)),
        "legacy-chat-with-topic": App(mode="chat", required_inputs=("topic",), release="legacy"),
        "slow": App(mode="chat", stream_chunk_chars=2, stream_delay=0.05, ping_every=0),
        "media": App(mode="chat", speech_to_text=True, text_to_speech=True, image_upload=True, image_limit=1),
        "legacy-media": App(
            mode="chat", speech_to_text=True, text_to_speech=True, image_upload=True, release="legacy"
        ),
    }


@pytest.fixture
def sim(dify_server):
    dify_server.reset(make_apps())
    return dify_server


# ---------------------------------------------------------------- helpers


HTTP = urllib3.PoolManager(retries=False, timeout=urllib3.Timeout(connect=2, read=5))


@dataclass
class Reply:
    status: int
    headers: Any
    raw: bytes

    @property
    def content_type(self) -> str:
        return self.headers.get("content-type", "").split(";")[0]

    def json(self) -> Any:
        return json.loads(self.raw)

    def events(self) -> list[dict]:
        return parse_sse(self.raw)


def headers_for(key: str | None, content_type: str = "application/json") -> dict[str, str]:
    return {"Content-Type": content_type} | ({"Authorization": f"Bearer {key}"} if key is not None else {})


def call(
    sim: DifySimulator,
    method: str,
    path: str,
    body: Any = None,
    key: str | None = "chat",
    content_type: str = "application/json",
) -> Reply:
    data = json.dumps(body) if isinstance(body, dict) else body
    response = HTTP.request(method, sim.url + path, body=data, headers=headers_for(key, content_type))
    return Reply(response.status, response.headers, response.data)


def send(sim: DifySimulator, route: str = "/chat-messages", key: str = "chat", **fields: Any) -> Reply:
    """POST a generation request with valid defaults that `fields` override (None drops a field)."""
    body = {"inputs": {}, "query": "hello", "user": USER} | fields
    return call(sim, "POST", route, {k: v for k, v in body.items() if v is not None}, key)


def open_stream(sim: DifySimulator, key: str = "chat") -> urllib3.BaseHTTPResponse:
    """A streaming chat request whose body is read chunk by chunk (one SSE event per chunk)."""
    body = json.dumps({"inputs": {}, "query": "hello", "user": USER, "response_mode": "streaming"})
    return HTTP.request(
        "POST", sim.url + "/chat-messages", body=body, headers=headers_for(key), preload_content=False
    )


def parse_sse(raw: bytes) -> list[dict]:
    """Events of an SSE body; a bare `event: ping` becomes {"event": "ping"}."""
    events = []
    for block in map(str.strip, raw.decode().split("\n\n")):
        if block.startswith("data: "):
            events.append(json.loads(block.removeprefix("data: ")))
        elif block == "event: ping":
            events.append({"event": "ping"})
    return events


def joined(events: list[dict], name: str) -> str:
    return "".join(event["answer"] for event in events if event["event"] == name)


def names(events: list[dict]) -> list[str]:
    return [event["event"] for event in events if event["event"] != "ping"]


def assert_error(reply: Reply, status: int, code: str) -> dict:
    assert reply.content_type == "application/json"
    body = reply.json()
    assert (reply.status, body["status"], body["code"]) == (status, status, code)
    assert set(body) == {"code", "message", "status"}
    return body


# ---------------------------------------------------------------- keys and routes


@pytest.mark.parametrize("key", ["nope", "", None])
def test_missing_or_unknown_key_is_unauthorized(sim, key):
    assert_error(call(sim, "GET", "/info", key=key), 401, "unauthorized")


def test_rotated_key_stops_working_and_the_new_one_reaches_the_same_app(sim):
    first = send(sim).json()
    sim.rotate_key("chat", "chat-v2")
    assert_error(send(sim), 401, "unauthorized")
    second = send(sim, key="chat-v2", conversation_id=first["conversation_id"]).json()
    assert second["answer"].startswith("Turn 2:")


def assert_plain_404(reply: Reply) -> None:
    """Werkzeug's own page: Dify's Service API leaves unmatched URLs to it (no JSON envelope)."""
    assert (reply.status, reply.content_type) == (404, "text/html")
    assert b"<title>404 Not Found</title>" in reply.raw
    assert b"The requested URL was not found on the server." in reply.raw


def test_unknown_route_is_flask_plain_404(sim):
    assert_plain_404(call(sim, "GET", "/does-not-exist"))
    assert_plain_404(call(sim, "GET", "/does-not-exist", key=None))  # before any key check


def test_the_bearer_scheme_is_case_insensitive_and_a_401_asks_for_it(sim):
    reply = HTTP.request("GET", sim.url + "/info", headers={"Authorization": "bearer chat"})
    assert reply.status == 200
    refused = HTTP.request("GET", sim.url + "/info", headers={"Authorization": "Basic chat"})
    assert_error(Reply(refused.status, refused.headers, refused.data), 401, "unauthorized")
    assert refused.headers["WWW-Authenticate"] == 'Bearer realm="api"'


def test_info_and_parameters_describe_the_app(sim):
    assert call(sim, "GET", "/info", key="chatflow").json()["mode"] == "advanced-chat"
    params = call(sim, "GET", "/parameters", key="chatflow").json()
    form = {
        item["text-input"]["variable"]: item["text-input"]["required"] for item in params["user_input_form"]
    }
    assert form == {"topic": True, "page": False}
    assert params["opening_statement"] == "Hello! How can I help?"
    assert params["suggested_questions_after_answer"] == {"enabled": True}


def test_requests_are_recorded_with_lower_case_headers(sim):
    send(sim, query="recorded")
    recorded = sim.requests[-1]
    assert (recorded.method, recorded.path) == ("POST", "/v1/chat-messages")
    assert recorded.headers["authorization"] == "Bearer chat"
    assert recorded.body["query"] == "recorded"
    sim.clear_requests()
    assert sim.requests == []


# ---------------------------------------------------------------- chat messages


def test_first_turn_starts_a_conversation_and_the_next_continues_it(sim):
    first = send(sim).json()
    assert uuid.UUID(first["conversation_id"])
    assert first["id"] == first["message_id"]
    assert first["answer"] == "Turn 1: you said 'hello'"
    assert first["metadata"]["retriever_resources"] == [SOURCE]
    assert first["metadata"]["usage"]["currency"] == "USD"
    second = send(sim, query="again", conversation_id=first["conversation_id"]).json()
    assert second["conversation_id"] == first["conversation_id"]
    assert second["answer"] == "Turn 2: you said 'again'"


@pytest.mark.parametrize("blank", ["", "   "])
def test_blank_conversation_id_starts_a_new_conversation(sim, blank):
    first = send(sim).json()
    reply = send(sim, conversation_id=blank).json()
    assert reply["answer"].startswith("Turn 1:")
    assert reply["conversation_id"] != first["conversation_id"]


@pytest.mark.parametrize(
    ("owner_key", "owner_user"), [(None, None), ("chat", "someone-else"), ("moderated", USER)]
)
def test_conversation_unknown_to_this_user_and_app_is_not_found(sim, owner_key, owner_user):
    conversation_id = str(uuid.uuid4())
    if owner_key:
        conversation_id = send(sim, key=owner_key, user=owner_user).json()["conversation_id"]
    body = assert_error(send(sim, conversation_id=conversation_id), 404, "not_found")
    assert body["message"] == "Conversation Not Exists."


def test_forgotten_conversations_are_not_found(sim):
    conversation_id = send(sim).json()["conversation_id"]
    sim.forget_conversations()
    assert_error(send(sim, conversation_id=conversation_id), 404, "not_found")


def test_a_reset_simulator_serves_only_its_new_apps_and_remembers_nothing(sim):
    conversation_id = send(sim).json()["conversation_id"]
    sim.inject(Fault("error", status=503), times=None)
    sim.reset({"other": App(mode="chat")})
    assert sim.requests == []
    assert_error(send(sim, key="chat"), 401, "unauthorized")
    assert_error(send(sim, key="other", conversation_id=conversation_id), 404, "not_found")
    assert send(sim, key="other").status == 200


def test_a_request_waiting_through_a_reset_is_dropped_not_answered(sim):
    sim.inject(Fault("slow_headers", delay=0.5))
    outcome = {}

    def late():
        try:
            outcome["reply"] = send(sim)
        except ProtocolError as error:
            outcome["reply"] = error

    thread = threading.Thread(target=late)
    thread.start()
    deadline = time.monotonic() + 5
    while not sim.requests and time.monotonic() < deadline:
        time.sleep(0.01)
    sim.reset(make_apps())
    thread.join(timeout=5)
    assert isinstance(outcome["reply"], ProtocolError)
    assert sim.requests == []


def test_a_reset_cuts_a_stream_still_being_written(sim):
    chunks = open_stream(sim, key="slow").stream(1024)
    assert next(chunks).startswith(b"data: ")
    sim.reset(make_apps())
    rest = b""
    with contextlib.suppress(ProtocolError):  # the cut stream lacks its closing chunk
        for chunk in chunks:
            rest += chunk
    assert b"message_end" not in rest


@pytest.mark.parametrize(
    "fields",
    [
        {"conversation_id": "widget-session-42"},
        {"user": None},
        {"user": ""},
        {"inputs": None},
        {"inputs": "topic=x"},
        {"query": None},
        {"query": ""},
        {"response_mode": "sometimes"},
    ],
)
def test_invalid_chat_requests_are_invalid_param(sim, fields):
    assert_error(send(sim, **fields), 400, "invalid_param")


def test_only_an_absent_or_empty_user_or_query_is_refused(sim):
    """Dify refuses a falsy `user` or `query` only; it takes str() of any other user."""
    assert send(sim, query=" ", user=" ").status == 200
    assert send(sim, user=42).status == 200


@pytest.mark.parametrize(
    ("body", "content_type", "status", "code"),
    [
        (b"{not json", "application/json", 400, "bad_request"),
        (b"{}", "text/plain", 415, "unsupported_media_type"),
    ],
)
def test_unreadable_bodies_are_refused(sim, body, content_type, status, code):
    reply = call(sim, "POST", "/chat-messages", body, content_type=content_type)
    assert_error(reply, status, code)


def test_a_chat_app_checks_and_uses_every_turns_inputs(sim):
    first = send(sim, key="chat-with-topic", inputs={"topic": "billing", "ignored": "x"}).json()
    assert first["answer"] == "Turn 1: you said 'hello' [inputs: topic=billing]"
    conversation_id = first["conversation_id"]
    missing = send(sim, key="chat-with-topic", conversation_id=conversation_id)
    assert assert_error(missing, 400, "invalid_param")["message"] == "topic is required in input form"
    again = send(sim, key="chat-with-topic", inputs={"topic": "sales"}, conversation_id=conversation_id)
    assert again.json()["answer"] == "Turn 2: you said 'hello' [inputs: topic=sales]"
    assert (
        send(sim, key="chat-with-topic", inputs={"topic": ""}).status == 200
    )  # only absent or null is missing
    wrong_type = assert_error(send(sim, key="chat-with-topic", inputs={"topic": 3}), 400, "invalid_param")
    assert wrong_type["message"] == "(type 'text-input') topic in input form must be a string"


@pytest.mark.parametrize("key", ["chatflow", "legacy-chat-with-topic"])
def test_a_chatflow_and_older_chat_apps_keep_the_first_inputs_unchecked(sim, key):
    first = send(sim, key=key, inputs={"topic": "billing"}).json()
    later = {"conversation_id": first["conversation_id"]}
    assert send(sim, key=key, **later).json()["answer"] == "Turn 2: you said 'hello' [inputs: topic=billing]"
    again = send(sim, key=key, inputs={"topic": "sales"}, **later).json()
    assert again["answer"] == "Turn 3: you said 'hello' [inputs: topic=billing]"
    assert_error(send(sim, key=key), 400, "invalid_param")  # a first turn is checked


@pytest.mark.parametrize(
    ("route", "key", "code"),
    [
        ("/chat-messages", "completion", "not_chat_app"),
        ("/chat-messages", "workflow", "not_chat_app"),
        ("/completion-messages", "chat", "app_unavailable"),
        ("/workflows/run", "chatflow", "not_workflow_app"),
        ("/messages?conversation_id=" + str(uuid.UUID(int=0)), "completion", "not_chat_app"),
    ],
)
def test_route_refuses_other_app_types(sim, route, key, code):
    reply = call(sim, "GET", route, key=key) if route.startswith("/messages") else send(sim, route, key)
    assert_error(reply, 400, code)


@pytest.mark.parametrize(
    ("key", "response_mode", "code"),
    [
        ("agent-chat", "blocking", "invalid_param"),
        ("agent-chat", None, "invalid_param"),
        ("agent", "blocking", "bad_request"),
    ],
)
def test_agent_apps_refuse_blocking(sim, key, response_mode, code):
    assert_error(send(sim, key=key, response_mode=response_mode), 400, code)


def test_new_agent_streams_when_no_response_mode_is_given(sim):
    reply = send(sim, key="agent", response_mode=None)
    assert (reply.status, reply.content_type) == (200, "text/event-stream")
    assert names(reply.events())[-1] == "message_end"


# ---------------------------------------------------------------- streaming


def test_chat_stream_is_sse_of_deltas_then_message_end(sim):
    reply = send(sim, response_mode="streaming")
    assert reply.status == 200
    assert reply.content_type == "text/event-stream"
    events = reply.events()
    assert joined(events, "message") == "Turn 1: you said 'hello'"
    assert names(events)[-1] == "message_end"
    assert events[-1]["metadata"]["usage"]["total_tokens"] > 0
    assert all(
        {"task_id", "message_id", "conversation_id", "created_at"} <= set(e) for e in events if "answer" in e
    )


def test_agent_chat_stream_has_thoughts_pings_and_message_end(sim):
    events = send(sim, key="agent-chat", response_mode="streaming").events()
    assert names(events)[0] == "agent_thought"
    assert joined(events, "agent_message") == "Turn 1: you said 'hello'"
    assert {"event": "ping"} in events
    assert names(events)[-1] == "message_end"
    assert all(event["task_id"] == events[0]["task_id"] for event in events if event["event"] != "ping")


def test_new_agent_closes_with_one_full_message_then_message_end(sim):
    events = send(sim, key="agent", response_mode="streaming").events()
    deltas = joined(events, "agent_message")
    assert names(events)[-2:] == ["message", "message_end"]
    assert events[-2]["answer"] == deltas == "Turn 1: you said 'hello'"
    assert events[-1]["metadata"]["retriever_resources"] == []


def test_chatflow_stream_ends_with_message_end_after_workflow_finished(sim):
    """Dify's advanced-chat pipeline finishes the workflow first and queues message_end after it."""
    events = send(sim, key="chatflow", inputs={"topic": "t"}, response_mode="streaming").events()
    order = names(events)
    assert order[0] == "workflow_started"
    assert order[-2:] == ["workflow_finished", "message_end"]
    assert events[-2]["data"]["status"] == "succeeded"
    assert joined(events, "message") == "Turn 1: you said 'hello' [inputs: topic=t]"


def test_moderation_replaces_the_streamed_answer_everywhere(sim):
    events = send(sim, key="moderated", response_mode="streaming").events()
    replace = next(event for event in events if event["event"] == "message_replace")
    assert replace["answer"] == "[removed by moderation]"
    history = call(
        sim, "GET", f"/messages?conversation_id={events[0]['conversation_id']}&user={USER}", key="moderated"
    )
    assert history.json()["data"][0]["answer"] == "[removed by moderation]"


def test_stop_ends_a_running_stream_for_the_same_user_only(sim):
    chunks = open_stream(sim, key="slow").read_chunked()
    [first] = parse_sse(next(chunks))
    stop_path = f"/chat-messages/{first['task_id']}/stop"
    assert call(sim, "POST", stop_path, {"user": "intruder"}, "slow").json() == {"result": "success"}
    assert first["task_id"] not in sim.stopped_tasks
    assert call(sim, "POST", stop_path, {"user": USER}, "slow").json() == {"result": "success"}
    assert first["task_id"] in sim.stopped_tasks
    events = [first, *parse_sse(b"".join(chunks))]
    assert names(events)[-1] == "message_end"
    partial = joined(events, "message")
    assert "Turn 1: you said 'hello'".startswith(partial) and len(partial) < len("Turn 1: you said 'hello'")


# ---------------------------------------------------------------- completion and workflow apps


def test_completion_reads_its_text_from_its_input(sim):
    reply = send(sim, "/completion-messages", "completion", inputs={"query": "translate"}).json()
    assert reply["mode"] == "completion"
    assert "conversation_id" not in reply
    assert reply["answer"].startswith("Turn 1: you said 'translate'")
    # A top-level query does not stand in for the required input.
    legacy = send(sim, "/completion-messages", "completion", inputs={}, query="translate")
    assert assert_error(legacy, 400, "invalid_param")["message"] == "query is required in input form"


def test_completion_without_text_is_invalid_param(sim):
    body = assert_error(send(sim, "/completion-messages", "completion", query=None), 400, "invalid_param")
    assert body["message"] == "query is required in input form"


def test_workflow_blocking_and_streaming_carry_outputs(sim):
    blocking = send(sim, "/workflows/run", "workflow", inputs={"query": "hi"}, query=None).json()
    assert blocking["data"]["status"] == "succeeded"
    assert blocking["data"]["outputs"] == {"result": "Turn 1: you said 'hi' [inputs: query=hi]"}
    assert blocking["workflow_run_id"] == blocking["data"]["id"]
    events = send(
        sim, "/workflows/run", "workflow", inputs={"query": "hi"}, response_mode="streaming"
    ).events()
    text = "".join(event["data"]["text"] for event in events if event["event"] == "text_chunk")
    assert names(events)[-1] == "workflow_finished"
    assert events[-1]["data"]["outputs"] == {"result": text}


def test_failed_workflow_is_http_200_with_failed_status(sim):
    reply = send(sim, "/workflows/run", "failing-workflow", inputs={"query": "hi"})
    data = reply.json()["data"]
    assert (reply.status, data["status"], data["outputs"]) == (200, "failed", {})
    assert data["error"]


# ---------------------------------------------------------------- history, feedback, suggestions, deletion


def test_messages_are_the_latest_page_oldest_first_and_first_id_pages_back(sim):
    """Dify (MessageService.pagination_by_first_id, order "asc") takes the latest `limit` messages older
    than `first_id`, then reverses them: a page reads oldest first, and its first message pages back."""
    conversation_id = send(sim, query="q1").json()["conversation_id"]
    for query in ("q2", "q3", "q4"):
        send(sim, query=query, conversation_id=conversation_id)
    path = f"/messages?conversation_id={conversation_id}&user={USER}"
    page = call(sim, "GET", path + "&limit=2").json()
    assert ([m["query"] for m in page["data"]], page["has_more"], page["limit"]) == (["q3", "q4"], True, 2)
    older = call(sim, "GET", f"{path}&limit=2&first_id={page['data'][0]['id']}").json()
    assert ([m["query"] for m in older["data"]], older["has_more"]) == (["q1", "q2"], False)
    everything = call(sim, "GET", path).json()
    assert ([m["query"] for m in everything["data"]], everything["has_more"]) == (
        ["q1", "q2", "q3", "q4"],
        False,
    )
    assert_error(call(sim, "GET", f"{path}&first_id={uuid.uuid4()}"), 404, "not_found")
    assert_error(call(sim, "GET", path + "&limit=101"), 400, "invalid_param")
    assert_error(
        call(sim, "GET", f"/messages?conversation_id={conversation_id}&user=other"), 404, "not_found"
    )


def test_feedback_is_stored_and_shown_in_history(sim):
    first = send(sim).json()
    path = f"/messages/{first['message_id']}/feedbacks"
    assert call(sim, "POST", path, {"rating": "like", "user": USER}).json() == {"result": "success"}
    history = call(sim, "GET", f"/messages?conversation_id={first['conversation_id']}&user={USER}").json()
    assert history["data"][0]["feedback"] == {"rating": "like"}
    assert_error(call(sim, "POST", path, {"rating": "meh", "user": USER}), 400, "invalid_param")


@pytest.mark.parametrize(
    ("message_id", "message"),
    [
        ("not-a-uuid", "The requested URL was not found"),
        ("9b2f6c1e-3d4a-4f5b-8c7d-0e1f2a3b4c5d", "Message Not Exists."),
    ],
)
def test_feedback_on_unknown_message_is_404(sim, message_id, message):
    reply = call(sim, "POST", f"/messages/{message_id}/feedbacks", {"rating": "like", "user": USER})
    if message_id == "not-a-uuid":
        assert_plain_404(reply)
    else:
        assert assert_error(reply, 404, "not_found")["message"].startswith(message)


def suggest(sim: DifySimulator, key: str) -> Reply:
    message_id = send(sim, key=key).json()["message_id"]
    return call(sim, "GET", f"/messages/{message_id}/suggested?user={USER}", key=key)


def test_suggested_questions_come_in_threes(sim):
    reply = suggest(sim, "chat").json()
    assert (reply["result"], len(reply["data"])) == ("success", 3)


def test_suggested_questions_switched_off_are_403_or_400_in_older_releases(sim):
    assert_error(suggest(sim, "quiet"), 403, "app_suggested_questions_after_answer_disabled")
    assert_error(suggest(sim, "legacy-quiet"), 400, "bad_request")


def test_delete_conversation_needs_json_and_then_forgets_it(sim):
    conversation_id = send(sim).json()["conversation_id"]
    path = f"/conversations/{conversation_id}"
    no_json = call(sim, "DELETE", path, json.dumps({"user": USER}), content_type="text/plain")
    assert no_json.status == 415
    assert_error(call(sim, "DELETE", path, {"user": "other"}), 404, "not_found")
    deleted = call(sim, "DELETE", path, {"user": USER})
    assert (deleted.status, deleted.raw) == (204, b"")
    assert_error(send(sim, conversation_id=conversation_id), 404, "not_found")


def test_older_releases_answer_a_delete_with_a_result(sim):
    sim.reset({"legacy": App(mode="chat", release="legacy")})
    conversation_id = send(sim, key="legacy").json()["conversation_id"]
    deleted = call(sim, "DELETE", f"/conversations/{conversation_id}", {"user": USER}, key="legacy")
    assert (deleted.status, deleted.json()) == (200, {"result": "success"})


# ---------------------------------------------------------------- faults


def test_error_fault_uses_the_envelope_and_headers_once(sim):
    sim.inject(Fault("error", status=429, code="too_many_requests", headers={"Retry-After": "2"}))
    limited = send(sim)
    assert_error(limited, 429, "too_many_requests")
    assert limited.headers["Retry-After"] == "2"
    assert send(sim).status == 200


def test_fault_applies_only_to_matching_paths_until_cleared(sim):
    sim.inject(Fault("error", status=503, path_contains="/parameters"), times=None)
    assert call(sim, "GET", "/info").status == 200
    assert [call(sim, "GET", "/parameters").status for _ in range(2)] == [503, 503]
    sim.clear_faults()
    assert call(sim, "GET", "/parameters").status == 200


def test_html_fault_is_an_html_error_page(sim):
    sim.inject(Fault("html", status=502))
    reply = send(sim)
    assert (reply.status, reply.content_type) == (502, "text/html")
    assert b"<html>" in reply.raw


def test_truncated_json_fault_is_200_with_unparseable_json(sim):
    sim.inject(Fault("truncated_json"))
    reply = send(sim)
    assert (reply.status, reply.content_type) == (200, "application/json")
    with pytest.raises(json.JSONDecodeError):
        reply.json()


def test_empty_answer_fault_gives_an_empty_answer(sim):
    sim.inject(Fault("empty_answer"))
    assert send(sim).json()["answer"] == ""


def test_close_fault_drops_the_connection_without_a_response(sim):
    sim.inject(Fault("close"))
    with pytest.raises(ProtocolError, match="Connection aborted"):
        send(sim)


def test_slow_headers_fault_delays_the_response(sim):
    sim.inject(Fault("slow_headers", delay=0.3))
    started = time.monotonic()
    assert send(sim).status == 200
    assert time.monotonic() - started >= 0.3


def test_stream_cut_fault_ends_the_stream_without_a_terminal_event(sim):
    sim.inject(Fault("stream_cut"))
    received = []
    with pytest.raises(ProtocolError, match="ended prematurely"):
        received.extend(open_stream(sim).read_chunked())
    events = parse_sse(b"".join(received))
    assert joined(events, "message")
    assert "message_end" not in names(events)


def test_stream_faults_leave_blocking_requests_alone(sim):
    sim.inject(Fault("stream_cut"))
    assert send(sim).status == 200
    with pytest.raises(ProtocolError):
        send(sim, response_mode="streaming")


def test_error_event_fault_ends_the_stream_with_an_error_event(sim):
    sim.inject(Fault("error_event"))
    events = send(sim, key="chatflow", inputs={"topic": "t"}, response_mode="streaming").events()
    assert names(events)[-2:] == ["workflow_finished", "error"]
    assert events[-1]["code"] == "completion_request_error"
    assert "message_end" not in names(events)


# ---------------------------------------------------------------- voice, images and speech

WAV = b"RIFF\x24\x00\x00\x00WAVEfmt " + bytes(28)
PNG = b"\x89PNG\r\n\x1a\n" + bytes(64)


def post_form(
    sim, path: str, files: list[tuple[str, str, str, bytes]], key: str = "media", **fields
) -> Reply:
    """A multipart POST: `files` as (field, filename, content type, bytes)."""
    form = [(name, value) for name, value in fields.items()] + [
        (field, (filename, data, content_type)) for field, filename, content_type, data in files
    ]
    body, content_type = urllib3.encode_multipart_formdata(form)
    return call(sim, "POST", path, body, key, content_type)


def test_audio_to_text_checks_the_feature_then_the_declared_type_and_size(sim):
    assert_error(
        post_form(sim, "/audio-to-text", [("file", "a.wav", "audio/wav", WAV)], key="chat"),
        400,
        "invalid_param",
    )
    assert_error(post_form(sim, "/audio-to-text", [], user=USER), 400, "bad_request_key_error")
    # The part's type is compared, not the bytes or the name: webm left the list in current Dify.
    assert_error(
        post_form(sim, "/audio-to-text", [("file", "a.webm", "audio/webm", WAV)]),
        415,
        "unsupported_audio_type",
    )
    assert_error(
        post_form(sim, "/audio-to-text", [("file", "a.mp3", "audio/mpeg", WAV)]),
        415,
        "unsupported_audio_type",
    )
    big = bytes(30 * 1024 * 1024 + 1)
    assert_error(
        post_form(sim, "/audio-to-text", [("file", "a.wav", "audio/wav", big)]), 413, "audio_too_large"
    )
    ok = post_form(sim, "/audio-to-text", [("file", "a.wav", "audio/wav", WAV)], user=USER)
    assert (ok.status, ok.json()) == (200, {"text": App().transcript})
    legacy = post_form(sim, "/audio-to-text", [("file", "a.webm", "audio/webm", WAV)], key="legacy-media")
    assert legacy.status == 200


def test_files_upload_answers_201_with_the_file_and_checks_like_dify(sim):
    assert_error(post_form(sim, "/files/upload", [], user=USER), 400, "no_file_uploaded")
    two = [("file", "a.png", "image/png", PNG), ("other", "b.png", "image/png", PNG)]
    assert_error(post_form(sim, "/files/upload", two), 400, "too_many_files")
    assert_error(
        post_form(sim, "/files/upload", [("file", "", "image/png", PNG)]), 400, "filename_not_exists_error"
    )
    assert_error(
        post_form(sim, "/files/upload", [("file", "a:b.png", "image/png", PNG)]), 400, "invalid_param"
    )
    big = bytes(10 * 1024 * 1024 + 1)
    assert_error(
        post_form(sim, "/files/upload", [("file", "a.png", "image/png", big)]), 413, "file_too_large"
    )
    # The size limit is the extension's category: 15 MB for a document.
    assert post_form(sim, "/files/upload", [("file", "a.txt", "text/plain", big)]).status == 201
    reply = post_form(sim, "/files/upload", [("file", "cat.PNG", "image/png", PNG)], user=USER)
    body = reply.json()
    assert reply.status == 201
    assert {"id", "name", "size", "extension", "mime_type", "created_by", "created_at"} <= set(body)
    assert (body["name"], body["size"], body["extension"], body["mime_type"]) == (
        "cat.PNG",
        len(PNG),
        "png",
        "image/png",
    )
    assert uuid.UUID(body["id"]) and body["created_by"] != USER  # Dify's own end-user id


def upload(sim, key: str = "media", user: str = USER) -> str:
    return post_form(
        sim, "/files/upload", [("file", "cat.png", "image/png", PNG)], key=key, user=user
    ).json()["id"]


def image(file_id: str) -> dict:
    return {"type": "image", "transfer_method": "local_file", "upload_file_id": file_id}


def test_a_message_takes_only_this_users_uploads_up_to_the_apps_limit(sim):
    mine = upload(sim)
    reply = send(sim, key="media", files=[image(mine)])
    assert reply.status == 200 and reply.json()["answer"].endswith("[images: 1]")
    assert_error(send(sim, key="media", files=[image(mine), image(upload(sim))]), 400, "invalid_param")
    assert_error(
        send(sim, key="media", files=[image(upload(sim, user="someone-else"))]), 400, "invalid_param"
    )
    assert_error(send(sim, key="media", files=[image(str(uuid.uuid4()))]), 400, "invalid_param")
    # Dify 1.x checked the workspace only; and an app with uploads off ignores `files`.
    theirs = upload(sim, key="legacy-media", user="someone-else")
    assert send(sim, key="legacy-media", files=[image(theirs)]).status == 200
    plain = send(sim, key="chat", files=[image(mine)])
    assert plain.status == 200 and "[images" not in plain.json()["answer"]


def test_text_to_audio_reads_the_users_message_as_mpeg(sim):
    message = send(sim, key="media").json()["message_id"]
    reply = call(sim, "POST", "/text-to-audio", {"message_id": message, "user": USER}, "media")
    assert reply.status == 200 and reply.content_type == "audio/mpeg" and reply.raw[:2] == b"\xff\xfb"
    assert reply.headers.get("transfer-encoding") == "chunked"
    # The message is found by its id alone, whoever asks; an unknown one is a JSON null.
    theirs = call(sim, "POST", "/text-to-audio", {"message_id": message, "user": "someone-else"}, "media")
    assert (theirs.status, theirs.content_type) == (200, "audio/mpeg")
    nothing = call(sim, "POST", "/text-to-audio", {"message_id": str(uuid.uuid4()), "user": USER}, "media")
    assert (nothing.status, nothing.content_type, nothing.json()) == (200, "application/json", None)
    assert_error(call(sim, "POST", "/text-to-audio", {"user": USER}, "media"), 400, "invalid_param")
    assert_error(
        call(sim, "POST", "/text-to-audio", {"text": "hi", "user": USER}, "chat"), 400, "invalid_param"
    )


def test_parameters_show_the_media_features(sim):
    on = call(sim, "GET", "/parameters", key="media").json()
    assert on["speech_to_text"] == {"enabled": True} and on["text_to_speech"]["enabled"] is True
    upload_settings = on["file_upload"]
    assert upload_settings["enabled"] is True and upload_settings["allowed_file_types"] == ["image"]
    assert (
        "local_file" in upload_settings["allowed_file_upload_methods"]
        and upload_settings["number_limits"] == 1
    )
    assert on["system_parameters"]["image_file_size_limit"] == 10
    off = call(sim, "GET", "/parameters", key="chat").json()
    assert off["file_upload"] == {
        "image": {
            "enabled": False,
            "number_limits": 3,
            "detail": "high",
            "transfer_methods": ["remote_url", "local_file"],
        }
    }
    assert off["speech_to_text"] == {"enabled": False} and off["text_to_speech"]["enabled"] is False
