"""Safe to leave open: the relay enforces origins, rate limits and input limits; ids cannot steer Dify."""

import threading
import time

import boto3
import pytest

from local.apigw import load_event
from relay.limits import DynamoDBCounters
from tests.integration.conftest import TABLE, set_origin


@pytest.fixture
def fresh_minute():
    """Counting tests run on the wall clock: start them well inside a minute window."""
    if time.time() % 60 > 45:
        time.sleep(60 - time.time() % 60 + 0.1)


def test_a_disallowed_origin_is_refused_and_not_forwarded(relay, simulator):
    reply = relay.chat({"message": "Hi"}, origin="https://evil.example")
    assert (reply.status, reply.error_code) == (403, "origin_not_allowed")
    assert "access-control-allow-origin" not in reply.headers
    assert simulator.requests == []


def test_wildcard_subdomains_are_allowed(make_relay, simulator):
    relay = make_relay(ALLOWED_ORIGINS="https://*.example.com")
    reply = relay.chat({"message": "Hi"}, origin="https://shop.example.com")
    assert reply.status == 200
    assert reply.headers["access-control-allow-origin"] == "https://shop.example.com"
    assert relay.chat({"message": "Hi"}, origin="https://example.com").status == 403


def test_requests_without_origin_are_refused_when_an_origin_is_required(make_relay, simulator):
    relay = make_relay(REQUIRE_ORIGIN="true")
    assert relay.chat({"message": "Hi"}, origin=None).error_code == "origin_not_allowed"
    assert relay.chat({"message": "Hi"}).status == 200
    assert len([r for r in simulator.requests if r.path.endswith("/chat-messages")]) == 1


def test_requests_without_origin_are_served_by_default(relay):
    assert relay.chat({"message": "Hi"}, origin=None).status == 200


def test_a_preflight_from_a_wildcard_origin_is_granted(make_relay):
    relay = make_relay(ALLOWED_ORIGINS="https://*.example.com")
    event = load_event("chat_preflight.json")
    set_origin(event, "https://help.example.com")
    reply = relay.invoke(event)
    assert reply.headers["access-control-allow-origin"] == "https://help.example.com"


def test_a_burst_of_40_in_one_session_meets_429_with_retry_after(relay, simulator, fresh_minute):
    session = relay.chat({"message": "first"}).json["sessionId"]
    replies = [relay.chat({"message": f"m{i}", "sessionId": session}) for i in range(39)]
    refused = [r for r in replies if r.status == 429]
    assert len(refused) == 40 - 20  # the default budget is 20 a minute per session
    assert all(r.error_code == "rate_limited" and r.json["error"]["retryable"] for r in refused)
    assert all(1 <= int(r.headers["retry-after"]) <= 60 for r in refused)
    assert refused[0].headers["access-control-allow-origin"]  # the widget can read it
    assert len([r for r in simulator.requests if r.path.endswith("/chat-messages")]) == 20


def test_one_ip_across_many_sessions_meets_its_budget(make_relay, fresh_minute):
    relay = make_relay(RATE_LIMIT_IP_PER_MINUTE="15")
    statuses = [relay.chat({"message": "new visitor"}).status for _ in range(20)]
    assert statuses == [200] * 15 + [429] * 5


def test_daily_cap_per_session(make_relay):
    relay = make_relay(RATE_LIMIT_SESSION_PER_DAY="3", RATE_LIMIT_SESSION_PER_MINUTE="0")
    session = relay.chat({"message": "1"}).json["sessionId"]
    statuses = [relay.chat({"message": "n", "sessionId": session}).status for _ in range(3)]
    assert statuses == [200, 200, 429]


def test_two_containers_never_both_spend_the_last_unit(aws, atomic_requests):
    """Eight containers (own clients) race for one budget of 25: exactly 25 units are ever spent."""
    containers = [DynamoDBCounters(TABLE, client=boto3.client("dynamodb")) for _ in range(8)]
    start = threading.Barrier(len(containers))
    spent = []

    def race(counters):
        start.wait()
        spent.extend(
            counters.spend("rate#session#race#0", {"day": 25, "m1": 40}, expires_at=120) is None
            for _ in range(10)
        )

    threads = [threading.Thread(target=race, args=(c,)) for c in containers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert len(spent) == 80
    assert sum(spent) == 25


def test_counters_expire_through_the_table_ttl(aws):
    counters = DynamoDBCounters(TABLE, client=aws.dynamodb)
    counters.spend("rate#ip#abc#0", {"day": 5, "m10": 2}, expires_at=86_460)
    item = aws.dynamodb.get_item(TableName=TABLE, Key={"pk": {"S": "rate#ip#abc#0"}})["Item"]
    assert item["expiresAt"] == {"N": "86460"}
    assert (item["day"], item["m10"]) == ({"N": "1"}, {"N": "1"})


def test_a_counter_item_keeps_only_its_recent_minutes(aws):
    counters = DynamoDBCounters(TABLE, client=aws.dynamodb)
    for minute in range(100, 130):
        forget = tuple(f"m{minute - back}" for back in range(1, 11))
        assert counters.spend("rate#session#s#0", {"day": 100, f"m{minute}": 5}, 86_460, forget) is None
    item = aws.dynamodb.get_item(TableName=TABLE, Key={"pk": {"S": "rate#session#s#0"}})["Item"]
    assert sorted(name for name in item if name.startswith("m")) == ["m129"]
    assert item["day"] == {"N": "30"}


def test_a_refused_window_is_named_and_nothing_is_spent(aws):
    counters = DynamoDBCounters(TABLE, client=aws.dynamodb)
    assert counters.spend("rate#ip#x#0", {"day": 1, "m5": 9}, 86_460) is None
    assert counters.spend("rate#ip#x#0", {"day": 1, "m5": 9}, 86_460) == "day"
    item = aws.dynamodb.get_item(TableName=TABLE, Key={"pk": {"S": "rate#ip#x#0"}})["Item"]
    assert item["m5"] == {"N": "1"}


def test_client_ips_are_not_stored_in_the_clear(relay, aws):
    relay.chat({"message": "Hi"})
    keys = [i["pk"]["S"] for i in aws.dynamodb.scan(TableName=TABLE)["Items"]]
    assert any(k.startswith("rate#ip#") for k in keys)
    assert not any("203.0.113.10" in k for k in keys)


def test_a_20000_character_message_is_too_long(relay, simulator):
    reply = relay.chat({"message": "x" * 20_000})
    assert (reply.status, reply.error_code) == (413, "message_too_long")
    assert simulator.requests == []


def test_an_oversized_body_is_refused(relay, simulator):
    reply = relay.chat({"message": "hi", "padding": "x" * 40_000})
    assert (reply.status, reply.error_code) == (413, "request_too_large")
    assert simulator.requests == []


@pytest.mark.parametrize(
    "session_id", ["../../info", "a/b/c/d/e/f", "%2e%2e%2finfo", "session\x00id", "x" * 129, "spaces in id"]
)
def test_session_ids_cannot_carry_paths(relay, simulator, session_id):
    reply = relay.chat({"message": "Hi", "sessionId": session_id})
    assert (reply.status, reply.error_code) == (400, "invalid_request")
    assert simulator.requests == []


def test_a_tampered_conversation_id_never_reaches_a_dify_url_or_body(relay, simulator, aws):
    session = relay.chat({"message": "Hi"}).json["sessionId"]
    aws.dynamodb.update_item(
        TableName=TABLE,
        Key={"pk": {"S": f"session#{session}"}},
        UpdateExpression="SET conversationId = :c",
        ExpressionAttributeValues={":c": {"S": "../conversations/x"}},
    )
    simulator.clear_requests()
    reply = relay.chat({"message": "Again", "sessionId": session})
    assert reply.status == 200 and reply.json["answer"].startswith("Turn 1:")
    assert [r.path for r in simulator.requests] == ["/v1/chat-messages"]
    assert "conversation_id" not in simulator.requests[0].body
