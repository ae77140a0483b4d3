"""A widget's turns through the handler: real sockets to the Dify simulator, AWS through moto."""

import re

import pytest

from local.apigw import load_event
from local.dify_simulator import App
from relay.dify import is_uuid
from tests.conftest import DIFY_KEY, ROTATED_KEY
from tests.integration.conftest import ORIGIN, TABLE, set_origin

CHAT = "/chat-messages"


def dify_chats(simulator):
    return [r.body for r in simulator.requests if r.path.endswith(CHAT)]


def test_first_turn_answers_and_starts_a_dify_conversation(relay, simulator):
    reply = relay.chat({"message": "Hello there"})
    assert reply.status == 200
    body = reply.json
    assert {"answer", "sessionId", "conversationId", "messageId", "mode"} <= set(body)
    assert body["usage"]["totalTokens"] == body["usage"]["promptTokens"] + body["usage"]["completionTokens"]
    assert body["answer"].startswith("Turn 1: you said 'Hello there'")
    assert re.fullmatch(r"[A-Za-z0-9_-]{22,}", body["sessionId"])
    assert is_uuid(body["conversationId"]) and is_uuid(body["messageId"])
    assert body["mode"] == "chat"
    [sent] = dify_chats(simulator)
    assert "conversation_id" not in sent
    assert sent["user"] == body["sessionId"]
    assert sent["response_mode"] == "blocking"
    assert sent["inputs"] == {}


def test_continued_turn_keeps_the_conversation(relay, simulator):
    first = relay.chat({"message": "Hello"}).json
    second = relay.chat(
        {"message": "And then?", "sessionId": first["sessionId"]}, event="chat_continued_turn.json"
    )
    assert second.status == 200
    assert second.json["answer"].startswith("Turn 2:")
    assert second.json["conversationId"] == first["conversationId"]
    assert second.json["sessionId"] == first["sessionId"]
    assert dify_chats(simulator)[1]["conversation_id"] == first["conversationId"]


def test_the_checked_in_continued_turn_event_works_on_its_own(relay, simulator):
    reply = relay.invoke(load_event("chat_continued_turn.json"))
    assert reply.status == 200
    assert reply.json["sessionId"] == "demo-session-0001"
    assert "conversation_id" not in dify_chats(simulator)[0]  # a widget's own id is never a conversation id


def test_a_session_keeps_its_first_user(relay, simulator):
    first = relay.chat({"message": "Hi", "user": "visitor-42"}).json
    relay.chat({"message": "Again", "sessionId": first["sessionId"], "user": "intruder"})
    assert [sent["user"] for sent in dify_chats(simulator)] == ["visitor-42", "visitor-42"]


def test_sessions_survive_a_cold_start(make_relay, simulator):
    first = make_relay().chat({"message": "Hi"}).json
    second = make_relay().chat({"message": "Still there?", "sessionId": first["sessionId"]}).json
    assert second["answer"].startswith("Turn 2:")


def test_session_record_has_a_ttl(relay, aws):
    session_id = relay.chat({"message": "Hi"}).json["sessionId"]
    item = aws.dynamodb.get_item(TableName=TABLE, Key={"pk": {"S": f"session#{session_id}"}})["Item"]
    assert "expiresAt" in item and int(item["expiresAt"]["N"]) > 0


def test_a_forgotten_conversation_heals_itself(relay, simulator):
    first = relay.chat({"message": "Hello"}).json
    simulator.forget_conversations()
    healed = relay.chat({"message": "Are you there?", "sessionId": first["sessionId"]})
    assert healed.status == 200
    assert healed.json["answer"].startswith("Turn 1:")
    assert healed.json["conversationId"] != first["conversationId"]
    sent = dify_chats(simulator)
    assert sent[1]["conversation_id"] == first["conversationId"] and "conversation_id" not in sent[2]
    after = relay.chat({"message": "Good", "sessionId": first["sessionId"]}).json
    assert after["answer"].startswith("Turn 2:") and after["conversationId"] == healed.json["conversationId"]


def test_a_rotated_key_is_fetched_again_once(relay, simulator, aws):
    relay.chat({"message": "Hello"})
    simulator.rotate_key(DIFY_KEY, ROTATED_KEY)
    aws.store_key(f'{{"apiKey": "{ROTATED_KEY}"}}')
    simulator.clear_requests()
    reply = relay.chat({"message": "After rotation"})
    assert reply.status == 200
    assert [r.headers["authorization"] for r in simulator.requests] == [
        f"Bearer {DIFY_KEY}",
        f"Bearer {ROTATED_KEY}",
    ]


def test_a_refused_key_is_reported_after_one_refetch(relay, simulator):
    simulator.rotate_key(DIFY_KEY, ROTATED_KEY)  # the secret still holds the old key
    reply = relay.chat({"message": "Hello"})
    assert (reply.status, reply.error_code, reply.json["error"]["retryable"]) == (
        502,
        "upstream_rejected",
        False,
    )
    assert len(simulator.requests) == 2


def test_an_unfilled_secret_is_reported_without_calling_dify(relay, simulator, aws):
    aws.store_key("REPLACE_WITH_YOUR_DIFY_APP_API_KEY")
    reply = relay.chat({"message": "Hello"})
    assert (reply.status, reply.error_code) == (502, "upstream_rejected")
    assert simulator.requests == []


def test_wrong_app_type_is_rejected(make_relay, simulator):
    simulator.apps[DIFY_KEY] = App(mode="workflow")
    reply = make_relay().chat({"message": "Hello"})
    assert (reply.status, reply.error_code) == (502, "upstream_rejected")


def test_an_unreachable_dify_is_an_upstream_error(make_relay):
    reply = make_relay(DIFY_API_URL="http://127.0.0.1:9/v1").chat({"message": "Hello"})
    assert (reply.status, reply.error_code, reply.json["error"]["retryable"]) == (502, "upstream_error", True)


def test_a_dify_url_without_the_api_prefix_is_a_final_error_not_a_retry(make_relay, simulator):
    """Dify leaves unmatched URLs to Werkzeug's HTML 404 page: the relay reports it once, without retrying."""
    relay = make_relay(DIFY_API_URL=simulator.url.removesuffix("/v1"))
    reply = relay.chat({"message": "Hello"})
    assert (reply.status, reply.error_code, reply.json["error"]["retryable"]) == (
        502,
        "upstream_rejected",
        False,
    )
    assert [r.path for r in simulator.requests] == ["/chat-messages"]


@pytest.mark.parametrize(
    ("body", "status"),
    [
        ('{"message": ', 400),
        ({"message": "   "}, 400),
        ({"message": 7}, 400),
        ({"message": "hi", "sessionId": "bad id!"}, 400),
        ({"message": "x" * 4001}, 413),
        # Found by Schemathesis: fields the document does not list, and control characters in `user`.
        ({"message": "hi", "x-unknown": 42}, 400),
        ({"message": "hi", "user": "G\u0006"}, 400),
    ],
)
def test_bad_requests_never_reach_dify(relay, simulator, body, status):
    reply = relay.chat(body)
    assert reply.status == status
    assert reply.error_code == ("message_too_long" if status == 413 else "invalid_request")
    assert reply.headers["access-control-allow-origin"] == ORIGIN
    assert simulator.requests == []


def test_the_checked_in_bad_body_event_is_refused(relay):
    reply = relay.invoke(load_event("chat_bad_body.json"))
    assert (reply.status, reply.error_code) == (400, "invalid_request")


def test_an_unexpected_failure_is_a_json_500_without_details(relay, monkeypatch):
    import app

    def broken(*args, **kwargs):
        raise RuntimeError("disk on fire at /var/task/relay/secret_place.py")

    monkeypatch.setattr(app.relay.default.turns, "take_turn", broken)
    reply = relay.chat({"message": "Hello"})
    assert (reply.status, reply.error_code) == (500, "internal_error")
    assert "disk on fire" not in reply.raw_body and "Traceback" not in reply.raw_body


def test_unknown_routes_are_json_404s(relay):
    event = load_event("chat_first_turn.json")
    event.update(path="/v1/nothing", resource="/v1/nothing")
    reply = relay.invoke(event)
    assert (reply.status, reply.error_code) == (404, "not_found")


@pytest.mark.parametrize(
    ("method", "path", "allowed"), [("PUT", "/v1/chat", "POST"), ("TRACE", "/v1/session", "DELETE")]
)
def test_a_method_a_route_does_not_take_is_a_json_405_naming_the_ones_it_does(relay, method, path, allowed):
    reply = relay.request(method, path, body={"message": "Hi"})
    assert (reply.status, reply.error_code, reply.headers["allow"]) == (405, "method_not_allowed", allowed)


def test_a_preflight_for_a_route_that_does_not_exist_is_a_json_404(relay):
    reply = relay.request("OPTIONS", "/v1/nothing")
    assert (reply.status, reply.error_code) == (404, "not_found")


def test_preflight_from_an_allowed_origin_is_granted(relay):
    reply = relay.invoke(load_event("chat_preflight.json"))
    assert reply.status == 204
    assert reply.headers["access-control-allow-origin"] == ORIGIN
    assert "content-type" in reply.headers["access-control-allow-headers"].lower()
    assert "POST" in reply.headers["access-control-allow-methods"]


def test_preflight_from_another_origin_gets_no_grant(relay):
    event = load_event("chat_preflight.json")
    set_origin(event, "https://evil.example")
    reply = relay.invoke(event)
    assert "access-control-allow-origin" not in reply.headers
