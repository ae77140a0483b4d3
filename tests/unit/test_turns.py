import re
import uuid

import pytest

from relay.deadline import Deadline
from relay.dify import RELAY_MODES, Answer, ConversationNotFound, Delta, Ping, Started
from relay.sessions import InMemorySessionStore, Session
from relay.turns import TurnService
from relay.widget import ChatRequest

TTL = 1000
SOURCES = [{"title": "Guide", "snippet": "..."}]


class FakeDify:
    """Answers like a Dify chat app: a new conversation id on a first turn, the same one after."""

    def __init__(self):
        self.questions = []
        self.calls = []
        self.known = set()
        self.mode_lookups = 0
        self.stopped = []

    def app_mode(self, deadline):
        self.mode_lookups += 1
        return "advanced-chat"

    def ask(self, question, *, app_mode, deadline, streaming=False):
        self.questions.append(question)
        self.calls.append((app_mode, streaming))
        conversation = question.conversation_id
        if conversation and conversation not in self.known:
            raise ConversationNotFound()
        conversation = conversation or str(uuid.uuid4())
        self.known.add(conversation)
        return Answer(f"answer {len(self.questions)}", conversation, str(uuid.uuid4()), RELAY_MODES[app_mode])

    def stream(self, question, *, app_mode, deadline):
        answer = self.ask(question, app_mode=app_mode, deadline=deadline, streaming=True)
        self.streams_closed_early = True
        yield Ping()
        yield Started(answer.conversation_id, answer.message_id, "task-1")
        for word in answer.text.split(" "):
            yield Delta(word + " ")
        self.streams_closed_early = False
        yield Answer(answer.text, answer.conversation_id, answer.message_id, answer.mode, sources=SOURCES)

    def stop_run(self, task_id, *, app_mode, user):
        self.stopped.append((task_id, app_mode, user))


class CountingStore(InMemorySessionStore):
    def __init__(self):
        super().__init__()
        self.saves = 0

    def save(self, session, *, new=False):
        self.saves += 1
        super().save(session, new=new)


class Clock:
    now = 10_000.0

    def __call__(self):
        return self.now


@pytest.fixture
def dify():
    return FakeDify()


@pytest.fixture
def store():
    return CountingStore()


@pytest.fixture
def clock():
    return Clock()


@pytest.fixture
def turns(dify, store, clock):
    return TurnService(dify, store, session_ttl_seconds=TTL, clock=clock)


def ask(turns, message="hello", session_id=None, user=None, inputs=None):
    request = ChatRequest(message=message, session_id=session_id, user=user, inputs=inputs or {})
    return turns.take_turn(request, deadline=Deadline(10)).to_json()


def test_first_turn_creates_an_unguessable_session_and_a_new_conversation(turns, dify, store):
    first, second = ask(turns), ask(turns)
    assert re.fullmatch(r"[A-Za-z0-9_-]{32}", first["sessionId"])
    assert first["sessionId"] != second["sessionId"]
    assert dify.questions[0].conversation_id is None
    assert dify.questions[0].user == first["sessionId"]
    assert store.saves == 2


def test_continued_turn_sends_the_stored_conversation_and_user(turns, dify, store):
    first = ask(turns, user="visitor-1")
    second = ask(turns, session_id=first["sessionId"], user="someone-else")
    assert second["conversationId"] == first["conversationId"]
    assert dify.questions[1].conversation_id == first["conversationId"]
    assert dify.questions[1].user == "visitor-1"
    assert store.saves == 1  # nothing changed on the continued turn


def test_widget_may_bring_its_own_session_id(turns, dify):
    answer = ask(turns, session_id="widget-chosen-id")
    assert answer["sessionId"] == "widget-chosen-id"
    assert dify.questions[0].conversation_id is None  # never the session id


def test_forgotten_conversation_is_restarted_once_and_remembered(turns, dify):
    first = ask(turns)
    dify.known.clear()
    second = ask(turns, session_id=first["sessionId"])
    third = ask(turns, session_id=first["sessionId"])
    assert [q.conversation_id for q in dify.questions[1:3]] == [first["conversationId"], None]
    assert second["conversationId"] not in (None, first["conversationId"])
    assert third["conversationId"] == second["conversationId"]


def test_idle_sessions_expire_and_active_ones_are_renewed(turns, store, clock):
    first = ask(turns)
    clock.now += TTL * 0.6
    ask(turns, session_id=first["sessionId"])
    assert store.saves == 2  # renewed: past half its idle window
    clock.now += TTL * 0.9
    assert store.load(first["sessionId"], clock.now) is not None
    clock.now += TTL
    fresh = ask(turns, session_id=first["sessionId"])
    assert fresh["conversationId"] != first["conversationId"]


def test_expired_sessions_are_not_loaded():
    store = InMemorySessionStore()
    store.save(Session("s" * 10, "u", None, expires_at=100))
    assert store.load("s" * 10, now=99) is not None
    assert store.load("s" * 10, now=100) is None


def test_configured_app_mode_is_used_without_asking_dify(dify, store):
    turns = TurnService(dify, store, session_ttl_seconds=TTL, app_mode="agent", upstream_mode="auto")
    assert ask(turns)["mode"] == "agent"
    assert dify.mode_lookups == 0
    assert dify.calls == [("agent-chat", False)]


def test_auto_mode_routes_by_what_dify_reports(turns, dify):
    ask(turns)
    assert dify.calls == [("advanced-chat", False)]


def test_streaming_upstream_mode_streams_every_turn(dify, store):
    turns = TurnService(dify, store, session_ttl_seconds=TTL, app_mode="chat", upstream_mode="streaming")
    ask(turns)
    assert dify.calls == [("chat", True)]


def test_widget_inputs_override_server_defaults_on_every_turn(dify, store):
    turns = TurnService(
        dify, store, session_ttl_seconds=TTL, default_inputs={"topic": "billing", "lang": "en"}
    )
    first = ask(turns, inputs={"lang": "de"})
    ask(turns, session_id=first["sessionId"])
    assert dify.questions[0].inputs == {"topic": "billing", "lang": "de"}
    assert dify.questions[1].inputs == {"topic": "billing", "lang": "en"}


def test_usage_and_sources_are_reported_only_when_dify_sent_them():
    from relay.turns import TurnResult

    bare = TurnResult("s" * 10, Answer("hi", None, None, "completion")).to_json()
    assert "usage" not in bare and "sources" not in bare
    rich = TurnResult(
        "s" * 10,
        Answer("hi", None, None, "chat", usage={"totalTokens": 3}, sources=[{"title": "t", "snippet": "x"}]),
    ).to_json()
    assert rich["usage"] == {"totalTokens": 3}
    assert rich["sources"] == [{"title": "t", "snippet": "x"}]


def stream(turns, message="hello", session_id=None):
    request = ChatRequest(message=message, session_id=session_id, user=None)
    return turns.stream_turn(request, deadline=Deadline(10))


def test_a_streamed_turn_starts_with_its_ids_grows_word_by_word_and_ends_as_a_json_turn_would(turns, dify):
    events = [(event.name, event.data) for event in stream(turns, "hello")]
    names = [name for name, _ in events]
    assert names == ["ping", "start", "delta", "delta", "sources", "end"]
    start, end = events[1][1], events[-1][1]
    assert start["conversationId"] == end["conversationId"] and start["taskId"] == "task-1"
    assert "".join(data["text"] for name, data in events if name == "delta") == "answer 1 "
    assert (
        end["answer"] == "answer 1" and end["sources"] == SOURCES and end["sessionId"] == start["sessionId"]
    )
    assert ask(turns, session_id=start["sessionId"])["conversationId"] == start["conversationId"]


def test_a_visitor_who_leaves_mid_answer_stops_the_answer_and_keeps_the_conversation(turns, dify):
    events = stream(turns)
    next(events)
    start = next(events).data
    events.close()
    assert dify.streams_closed_early
    assert ask(turns, session_id=start["sessionId"])["conversationId"] == start["conversationId"]


def test_a_forgotten_conversation_restarts_before_the_stream_says_anything(turns, dify):
    first = ask(turns)
    dify.known.clear()
    events = list(stream(turns, session_id=first["sessionId"]))
    start = next(event.data for event in events if event.name == "start")
    assert start["conversationId"] not in (None, first["conversationId"])
    assert [q.conversation_id for q in dify.questions[1:]] == [first["conversationId"], None]


def test_a_stop_names_the_sessions_own_user(turns, dify):
    first = ask(turns, user="visitor-1")
    turns.stop_turn(first["sessionId"], "task-1", deadline=Deadline(5))
    assert dify.stopped == [("task-1", "advanced-chat", "visitor-1")]
