"""The widget's companion routes: config, feedback, follow-ups, history and erasure, each resolved through the
session record, each answer valid against the checked-in OpenAPI document."""

import json
from urllib.parse import urlencode

import pytest

from local.dify_simulator import App, Fault
from relay.openapi import document
from tests.conftest import DIFY_KEY
from tests.integration.conftest import ORIGIN
from tests.support import ROOT, check_schema

NOT_A_MESSAGE = "0b6f5e6e-8a53-4e6b-9f1e-2f4a3b1c9d7e"


def ok(reply, schema: str | None, status: int = 200):
    assert reply.status == status, reply.raw_body
    assert reply.headers["access-control-allow-origin"] == ORIGIN
    if schema:
        check_schema(schema, reply.json)
    return reply.json if reply.raw_body else None


def refused(reply, status: int, code: str):
    assert (reply.status, reply.error_code) == (status, code), reply.raw_body
    check_schema("Error", reply.json)


@pytest.fixture
def chatted(relay):
    """A session with two turns."""
    first = ok(relay.chat({"message": "Hello"}), "ChatAnswer")
    second = ok(relay.chat({"message": "More", "sessionId": first["sessionId"]}), "ChatAnswer")
    return first["sessionId"], [first["messageId"], second["messageId"]]


def test_config_shows_the_welcome_and_only_allowed_inputs(make_relay, simulator):
    simulator.apps[DIFY_KEY] = App(
        mode="advanced-chat",
        name="Help desk",
        required_inputs=("topic",),
        optional_inputs=("lang",),
        opening_statement="Hi! Ask me anything.",
        suggested_questions=("How do refunds work?", "Where is my order?"),
    )
    relay = make_relay(
        DIFY_APP_MODE="auto",
        ALLOWED_INPUTS="lang",
        DIFY_INPUTS='{"topic": "x"}',
        WIDGET_BRANDING='{"title": "Help desk", "launcherLabel": "Need help?"}',
    )
    config = ok(relay.request("GET", "/v1/config"), "Config")
    assert config["name"] == "Help desk" and config["mode"] == "chatflow"
    assert config["openingStatement"] == "Hi! Ask me anything."
    assert config["starterQuestions"] == ["How do refunds work?", "Where is my order?"]
    assert config["features"] == {
        "feedback": True,
        "suggestions": True,
        "speechToText": False,
        "textToSpeech": False,
        "images": None,
    }
    assert [field["variable"] for field in config["inputs"]] == ["lang"]
    assert config["branding"] == {"title": "Help desk", "launcherLabel": "Need help?"}
    calls = len(simulator.requests)
    assert relay.request("GET", "/v1/config").json == config
    assert len(simulator.requests) == calls  # cached per container


def test_feedback_reaches_dify_with_the_sessions_user(relay, simulator, chatted):
    session, messages = chatted
    reply = relay.request(
        "POST",
        "/v1/feedback",
        body={"sessionId": session, "messageId": messages[0], "rating": "like", "content": "!"},
    )
    ok(reply, "FeedbackResult")
    [sent] = [r for r in simulator.requests if r.path.endswith("/feedbacks")]
    assert sent.path == f"/v1/messages/{messages[0]}/feedbacks"
    assert sent.body == {"rating": "like", "user": session, "content": "!"}


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({"sessionId": "unknown-session-1", "messageId": NOT_A_MESSAGE, "rating": "like"}, 404, "not_found"),
        ({"sessionId": "{session}", "messageId": NOT_A_MESSAGE, "rating": "like"}, 404, "not_found"),
        ({"sessionId": "{session}", "messageId": "../../info", "rating": "like"}, 400, "invalid_request"),
        ({"sessionId": "{session}", "messageId": "{message}", "rating": "love"}, 400, "invalid_request"),
        ({"sessionId": "{session}", "messageId": "{message}"}, 400, "invalid_request"),
        (
            {"sessionId": "{session}", "messageId": "{message}", "rating": "like", "stars": 5},
            400,
            "invalid_request",
        ),
        (
            {"sessionId": "{session}", "messageId": "{message}", "rating": "like", "content": "a\u0006"},
            400,
            "invalid_request",
        ),
    ],
)
def test_feedback_refusals(relay, chatted, body, status, code):
    session, messages = chatted
    body = json.loads(json.dumps(body).replace("{session}", session).replace("{message}", messages[0]))
    refused(relay.request("POST", "/v1/feedback", body=body), status, code)


def test_withdrawing_a_rating_never_given_leaves_no_rating(relay, simulator, chatted):
    """Found by Schemathesis: Dify refuses to withdraw a rating a message lacks (400 invalid_param)."""
    session, messages = chatted
    body = {"sessionId": session, "messageId": messages[0], "rating": None}
    assert ok(relay.request("POST", "/v1/feedback", body=body), "FeedbackResult") == {"result": "ok"}
    rated = relay.request("POST", "/v1/feedback", body=body | {"rating": "dislike"})
    assert ok(rated, "FeedbackResult") == {"result": "ok"}
    assert ok(relay.request("POST", "/v1/feedback", body=body), "FeedbackResult") == {"result": "ok"}


def test_erasing_refuses_fields_it_does_not_take(relay, chatted):
    session, _ = chatted
    refused(
        relay.request("DELETE", "/v1/session", body={"sessionId": session, "all": True}),
        400,
        "invalid_request",
    )


@pytest.mark.parametrize("release", ["current", "legacy"])  # Dify answers 403, older releases 400
def test_follow_up_questions_and_a_switched_off_feature(make_relay, simulator, release):
    relay = make_relay()
    first = relay.chat({"message": "Hi"}).json
    query = urlencode({"sessionId": first["sessionId"], "messageId": first["messageId"]})
    questions = ok(relay.request("GET", "/v1/suggested", query=query), "Suggestions")["questions"]
    assert len(questions) == 3 and all(isinstance(q, str) and q for q in questions)
    simulator.apps[DIFY_KEY] = App(mode="chat", suggested_after_answer=False, release=release)
    relay = make_relay()
    first = relay.chat({"message": "Hi"}).json
    query = urlencode({"sessionId": first["sessionId"], "messageId": first["messageId"]})
    assert ok(relay.request("GET", "/v1/suggested", query=query), "Suggestions") == {"questions": []}


def test_history_restores_the_turns_oldest_first(relay, chatted):
    session, messages = chatted
    history = ok(relay.request("GET", "/v1/history", query=urlencode({"sessionId": session})), "History")
    assert [t["question"] for t in history["turns"]] == ["Hello", "More"]
    assert [t["messageId"] for t in history["turns"]] == messages
    assert history["turns"][1]["answer"].startswith("Turn 2:")
    latest = ok(
        relay.request("GET", "/v1/history", query=urlencode({"sessionId": session, "limit": 1})), "History"
    )
    assert ([t["question"] for t in latest["turns"]], latest["hasMore"]) == (["More"], True)
    assert history["hasMore"] is False


def test_a_long_history_comes_back_whole_page_by_page_oldest_first(make_relay):
    relay = make_relay(RATE_LIMIT_SESSION_PER_MINUTE="0", RATE_LIMIT_IP_PER_MINUTE="0")
    session = relay.chat({"message": "turn 1"}).json["sessionId"]
    for number in range(2, 61):
        assert relay.chat({"message": f"turn {number}", "sessionId": session}).status == 200
    pages, before = [], None
    while before is not False:
        query = {"sessionId": session, "limit": 25} | ({"before": before} if before else {})
        page = ok(relay.request("GET", "/v1/history", query=urlencode(query)), "History")
        pages.append(page["turns"])
        before = page["hasMore"] and page["turns"][0]["messageId"]
    assert [len(p) for p in pages] == [25, 25, 10]
    turns = [turn for page in reversed(pages) for turn in page]
    assert [t["question"] for t in turns] == [f"turn {n}" for n in range(1, 61)]
    assert all(t["answer"].startswith(f"Turn {n}:") for n, t in enumerate(turns, 1))


def test_history_of_an_unknown_session_is_empty(relay, simulator):
    reply = relay.request("GET", "/v1/history", query="sessionId=never-seen-session")
    assert ok(reply, "History") == {"sessionId": "never-seen-session", "turns": [], "hasMore": False}
    assert simulator.requests == []


def test_history_before_a_turn_not_in_the_conversation_is_empty(relay, chatted):
    session, _ = chatted
    query = urlencode({"sessionId": session, "before": "9b2f6c1e-3d4a-4f5b-8c7d-0e1f2a3b4c5d"})
    assert ok(relay.request("GET", "/v1/history", query=query), "History")["turns"] == []


@pytest.mark.parametrize(
    "query",
    [
        "",
        "sessionId=bad id",
        "sessionId=valid-session-1&limit=0",
        "sessionId=valid-session-1&limit=x",
        "sessionId=valid-session-1&limit=101",
        "sessionId=valid-session-1&before=not-a-message-id",
        "sessionId=valid-session-1&before=..%2Finfo",
    ],
)
def test_history_refuses_bad_queries(relay, query):
    refused(relay.request("GET", "/v1/history", query=query), 400, "invalid_request")


def test_erasing_works_with_older_releases_that_answer_a_delete_with_200(make_relay, simulator):
    simulator.apps[DIFY_KEY] = App(mode="chat", release="legacy")
    relay = make_relay()
    session = relay.chat({"message": "Hi"}).json["sessionId"]
    assert ok(relay.request("DELETE", "/v1/session", body={"sessionId": session}), None, 204) is None
    assert [r.method for r in simulator.requests if r.path.startswith("/v1/conversations/")] == ["DELETE"]
    assert relay.chat({"message": "Hi again", "sessionId": session}).json["answer"].startswith("Turn 1:")


def test_suggestions_refused_for_another_reason_are_an_error_not_an_empty_list(make_relay, simulator):
    relay = make_relay()
    first = relay.chat({"message": "Hi"}).json
    simulator.inject(Fault("error", status=403, code="forbidden"), times=None)
    query = urlencode({"sessionId": first["sessionId"], "messageId": first["messageId"]})
    reply = relay.request("GET", "/v1/suggested", query=query)
    assert (reply.status, reply.error_code) == (502, "upstream_rejected")


def test_erasing_a_session_deletes_the_conversation_and_is_idempotent(relay, simulator, chatted, aws):
    session, _ = chatted
    conversation = next(
        r.body["conversation_id"] for r in simulator.requests if r.body and "conversation_id" in r.body
    )
    assert ok(relay.request("DELETE", "/v1/session", body={"sessionId": session}), None, 204) is None
    [deleted] = [r for r in simulator.requests if r.method == "DELETE"]
    assert deleted.path == f"/v1/conversations/{conversation}" and deleted.body == {"user": session}
    assert relay.request("GET", "/v1/history", query=f"sessionId={session}").json["turns"] == []
    assert relay.request("DELETE", "/v1/session", body={"sessionId": session}).status == 204
    assert relay.chat({"message": "Hi again", "sessionId": session}).json["answer"].startswith("Turn 1:")


def test_a_session_reaches_only_its_own_messages(relay, chatted):
    _, messages = chatted
    other = relay.chat({"message": "I am someone else"}).json["sessionId"]
    body = {"sessionId": other, "messageId": messages[0], "rating": "dislike"}
    refused(relay.request("POST", "/v1/feedback", body=body), 404, "not_found")


def test_the_served_openapi_document_is_the_checked_in_one(relay):
    served = ok(relay.request("GET", "/v1/openapi.json"), None)
    assert served == json.loads((ROOT / "docs" / "openapi.json").read_text()) == document()
    assert set(served["paths"]) == {
        "/v1/chat",
        "/v1/chat/stream",
        "/v1/chat/stop",
        "/v1/audio",
        "/v1/files",
        "/v1/speech",
        "/v1/config",
        "/v1/feedback",
        "/v1/suggested",
        "/v1/history",
        "/v1/session",
        "/v1/openapi.json",
    }


def test_companion_routes_refuse_other_origins(relay):
    refused(relay.request("GET", "/v1/config", origin="https://evil.example"), 403, "origin_not_allowed")
