"""The Dify client against canned HTTP responses: stream assembly rules, answers and mode detection."""

import io
import json
from unittest.mock import patch

import pytest
import urllib3
from hypothesis import given, settings
from hypothesis import strategies as st

from relay import sse as relay_sse
from relay.deadline import Deadline
from relay.dify import Answer, Delta, DifyClient, Ping, Question, Replaced, Started
from relay.errors import ErrorKind, RelayError
from relay.keys import StaticKeyProvider

SSE = {"Content-Type": "text/event-stream; charset=utf-8"}
JSON = {"Content-Type": "application/json"}
TASK = "5ad4cb98-f0c7-4085-b384-88c403be6290"
CONVERSATION = "45701982-8118-4bc5-8e9b-64562b4555f2"


class ChunkedBody(io.RawIOBase):
    """A response body that arrives in the given pieces, one per read."""

    def __init__(self, chunks):
        self.chunks = list(chunks)

    def readable(self):
        return True

    def readinto(self, buffer):
        if not self.chunks:
            return 0
        chunk = self.chunks.pop(0)
        buffer[: len(chunk)] = chunk
        return len(chunk)


class CannedHttp:
    def __init__(self, *responses):
        self.responses = list(responses)
        self.requests = []

    def request(self, method, url, body=None, headers=None, **kwargs):
        self.requests.append((method, url, json.loads(body) if body else None))
        status, headers, chunks = self.responses.pop(0)
        return urllib3.HTTPResponse(
            body=io.BufferedReader(ChunkedBody(chunks), buffer_size=1),
            headers=headers,
            status=status,
            preload_content=kwargs.get("preload_content") is not False,
        )


def sse(*events):
    return b"".join(b"data: " + json.dumps(e).encode() + b"\n\n" for e in events)


def event(name, **fields):
    return {"event": name, "task_id": TASK, "conversation_id": CONVERSATION, "message_id": "m1", **fields}


def client(*responses, **options):
    http = CannedHttp(*responses)
    return DifyClient(
        "http://dify.test/v1", StaticKeyProvider("k"), http=http, connect_timeout=1, read_timeout=1, **options
    ), http


def ask(dify, mode="agent-chat", streaming=True):
    return dify.ask(Question(query="q", user="u"), app_mode=mode, deadline=Deadline(5), streaming=streaming)


def stream_reply(*events, chunks=None):
    body = sse(*events)
    return (200, SSE, chunks or [body])


END = event(
    "message_end", metadata={"usage": {"prompt_tokens": 3, "completion_tokens": 4, "total_tokens": 7}}
)


def test_agent_deltas_are_joined_and_usage_kept():
    dify, http = client(
        stream_reply(
            event("agent_thought", thought="thinking"),
            event("agent_message", answer="Hel"),
            {"event": "ping"},
            event("tts_message", audio="..."),
            event("agent_message", answer="lo"),
            END,
        )
    )
    answer = ask(dify)
    assert (answer.text, answer.task_id, answer.conversation_id, answer.mode) == (
        "Hello",
        TASK,
        CONVERSATION,
        "agent",
    )
    assert answer.usage == {"promptTokens": 3, "completionTokens": 4, "totalTokens": 7}
    assert http.requests[0][2]["response_mode"] == "streaming"


def test_new_agent_closing_message_is_the_whole_answer_not_more_text():
    dify, _ = client(
        stream_reply(
            event("agent_message", answer="Hel"),
            event("agent_message", answer="lo"),
            event("message", answer="Hello"),
            END,
        )
    )
    assert ask(dify, mode="agent").text == "Hello"


def test_message_replace_replaces_the_text_so_far():
    dify, _ = client(
        stream_reply(event("message", answer="bad "), event("message_replace", answer="[moderated]"), END)
    )
    assert ask(dify, mode="chat").text == "[moderated]"


def finished(status):
    return event("workflow_finished", data={"status": status, "outputs": {}})


@pytest.mark.parametrize(
    "closing",
    [
        [finished("succeeded"), event("message_replace", answer="[moderated]"), END],  # Dify's order
        [event("message_replace", answer="[moderated]"), END, finished("succeeded")],
    ],
    ids=["workflow_finished first", "message_end first"],
)
def test_a_chatflow_answer_is_whole_in_either_order_of_its_closing_events(closing):
    dify, _ = client(stream_reply(event("message", answer="bad "), *closing))
    answer = ask(dify, mode="advanced-chat")
    assert (answer.text, answer.usage["totalTokens"]) == ("[moderated]", 7)


@pytest.mark.parametrize(
    "events",
    [
        [event("message", answer="bad "), finished("succeeded")],  # cut before moderation and message_end
        [event("message", answer="half"), finished("stopped"), END],
        [event("message", answer="half"), finished("failed"), {"event": "error", "status": 400}],
    ],
    ids=["cut after workflow_finished", "stopped", "failed"],
)
def test_a_chatflow_stream_without_its_whole_answer_is_an_error(events):
    dify, _ = client(stream_reply(*events))
    with pytest.raises(RelayError) as caught:
        ask(dify, mode="advanced-chat")
    assert caught.value.kind is ErrorKind.UPSTREAM_ERROR


def test_agent_apps_are_streamed_even_when_blocking_is_asked():
    dify, http = client(stream_reply(event("agent_message", answer="ok"), END))
    assert ask(dify, streaming=False).text == "ok"
    assert http.requests[0][2]["response_mode"] == "streaming"


@pytest.mark.parametrize(
    ("events", "kind"),
    [
        ([event("agent_message", answer="half an ans")], ErrorKind.UPSTREAM_ERROR),
        (
            [
                event("agent_message", answer="x"),
                {"event": "error", "status": 500, "code": "internal_server_error"},
            ],
            ErrorKind.UPSTREAM_ERROR,
        ),
        ([{"event": "error", "status": 400, "code": "provider_quota_exceeded"}], ErrorKind.UPSTREAM_QUOTA),
        ([event("message_end")], ErrorKind.UPSTREAM_ERROR),  # no answer text at all
    ],
)
def test_a_stream_without_a_whole_answer_is_an_error(events, kind):
    dify, _ = client(stream_reply(*events))
    with pytest.raises(RelayError) as caught:
        ask(dify)
    assert caught.value.kind is kind


def test_errors_before_the_stream_opens_are_read_as_json():
    body = json.dumps({"code": "too_many_requests", "message": "busy", "status": 429}).encode()
    dify, _ = client((429, JSON | {"Retry-After": "4"}, [body]))
    with pytest.raises(RelayError) as caught:
        ask(dify)
    assert (caught.value.kind, caught.value.retry_after) == (ErrorKind.UPSTREAM_BUSY, 4)


def test_a_non_stream_answer_to_a_stream_request_is_malformed():
    dify, _ = client((200, {"Content-Type": "text/html"}, [b"<html>gateway</html>"]))
    with pytest.raises(RelayError) as caught:
        ask(dify)
    assert caught.value.kind is ErrorKind.UPSTREAM_ERROR


def test_a_workflow_stream_answers_from_its_named_output():
    finished = {
        "event": "workflow_finished",
        "task_id": TASK,
        "data": {"status": "succeeded", "total_tokens": 9},
    }
    finished["data"]["outputs"] = {"result": "From outputs", "count": 3}
    dify, _ = client(stream_reply({"event": "text_chunk", "data": {"text": "From chunks"}}, finished))
    answer = ask(dify, mode="workflow")
    assert (answer.text, answer.conversation_id, answer.usage) == ("From outputs", None, {"totalTokens": 9})


def test_a_workflow_without_the_named_output_or_a_single_text_output_is_misconfigured():
    blocking = json.dumps({"task_id": TASK, "data": {"status": "succeeded", "outputs": {"a": "x", "b": "y"}}})
    dify, _ = client((200, JSON, [blocking.encode()]), answer_output="answer")
    with pytest.raises(RelayError) as caught:
        ask(dify, mode="workflow", streaming=False)
    assert caught.value.kind is ErrorKind.UPSTREAM_REJECTED


def test_app_mode_is_asked_once_and_an_unknown_mode_is_a_configuration_error():
    info = json.dumps({"name": "x", "mode": "chat"}).encode()
    dify, http = client((200, JSON, [info]))
    assert dify.app_mode(Deadline(5)) == dify.app_mode(Deadline(5)) == "chat"
    assert len(http.requests) == 1
    strange, _ = client((200, JSON, [json.dumps({"mode": "rag-pipeline"}).encode()]))
    with pytest.raises(RelayError) as caught:
        strange.app_mode(Deadline(5))
    assert caught.value.kind is ErrorKind.UPSTREAM_REJECTED


deltas = st.lists(st.text(max_size=12), min_size=1, max_size=10).filter(lambda d: "".join(d).strip())


@settings(max_examples=150, deadline=None)
@given(deltas, st.data())
def test_any_split_of_a_valid_agent_stream_gives_the_same_answer(parts, data):
    events = [event("agent_message", answer=p) for p in parts] + [{"event": "ping"}, END]
    raw = sse(*events).replace(b'data: {"event": "ping"}', b"event: ping")
    cuts = sorted(data.draw(st.sets(st.integers(1, len(raw) - 1), max_size=40)))
    chunks = [raw[a:b] for a, b in zip([0, *cuts], [*cuts, len(raw)], strict=True)]
    http = CannedHttp((200, SSE, chunks))
    dify = DifyClient(
        "http://dify.test/v1", StaticKeyProvider("k"), http=http, connect_timeout=1, read_timeout=1
    )
    reads = []
    parser_feed = relay_sse.SSEParser.feed

    def spy(self, chunk):
        reads.append(chunk)
        return parser_feed(self, chunk)

    with patch.object(relay_sse.SSEParser, "feed", spy):
        assert ask(dify).text == "".join(parts)
    assert reads == chunks  # the parser saw the stream exactly as it arrived


def stream(dify, mode="agent-chat"):
    return dify.stream(Question(query="q", user="u"), app_mode=mode, deadline=Deadline(5))


def test_a_stream_gives_its_ids_first_then_the_text_as_written_then_the_whole_answer():
    dify, _ = client(
        stream_reply(
            {"event": "ping"},
            event("message", answer="bad "),
            event("message", answer="words"),
            event("message_replace", answer="[moderated]"),
            END,
        )
    )
    parts = list(stream(dify, mode="chat"))
    assert parts[:5] == [
        Ping(),
        Started(conversation_id=CONVERSATION, message_id="m1", task_id=TASK),
        Delta("bad "),
        Delta("words"),
        Replaced("[moderated]"),
    ]
    assert isinstance(parts[5], Answer) and parts[5].text == "[moderated]" and len(parts) == 6


def test_new_agent_closing_message_replaces_nothing_when_it_matches_the_deltas():
    dify, _ = client(
        stream_reply(
            event("agent_message", answer="Hel"),
            event("agent_message", answer="lo"),
            event("message", answer="Hello"),
            END,
        )
    )
    parts = list(stream(dify, mode="agent"))
    assert parts[1:-1] == [Delta("Hel"), Delta("lo")]


def test_leaving_a_stream_before_its_end_stops_the_dify_run():
    dify, http = client(
        stream_reply(event("agent_message", answer="Hel"), event("agent_message", answer="lo"), END),
        (200, JSON, [b'{"result": "success"}']),
    )
    parts = stream(dify)
    next(parts), next(parts)  # Started, then the first words
    parts.close()
    assert http.requests[-1][:2] == ("POST", f"http://dify.test/v1/chat-messages/{TASK}/stop")
    assert http.requests[-1][2] == {"user": "u"}


def test_a_stream_read_to_its_end_stops_nothing():
    dify, http = client(stream_reply(event("agent_message", answer="ok"), END))
    assert list(stream(dify))[-1].text == "ok"
    assert len(http.requests) == 1
