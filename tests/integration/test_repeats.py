"""A resent message with the same Idempotency-Key gets the first answer, never a second Dify call."""

import copy
import importlib.util
import json
import sys
import threading

from local.apigw import LambdaContext, load_event
from local.dify_simulator import Fault
from tests.integration.conftest import ORIGIN
from tests.support import ROOT, reply_from

CHAT = "/chat-messages"


def dify_calls(simulator):
    return sum(1 for r in simulator.requests if r.path.endswith(CHAT))


def event_with_key(body: dict, key: str | None) -> dict:
    event = copy.deepcopy(load_event("chat_first_turn.json"))
    event["body"] = json.dumps(body)
    if key is not None:
        event["headers"]["Idempotency-Key"] = key
        event["multiValueHeaders"]["Idempotency-Key"] = [key]
    return event


def test_a_resent_message_gets_the_first_answer_again(relay, simulator):
    first = relay.invoke(event_with_key({"message": "Hello"}, "retry-key-0001"))
    again = relay.invoke(event_with_key({"message": "Hello"}, "retry-key-0001"))
    assert first.status == again.status == 200
    assert again.json == first.json
    assert dify_calls(simulator) == 1


def test_the_same_key_with_another_message_is_another_turn(relay, simulator):
    session = relay.invoke(event_with_key({"message": "Hello"}, "retry-key-0002")).json["sessionId"]
    other = relay.invoke(event_with_key({"message": "Next", "sessionId": session}, "retry-key-0002"))
    assert other.json["answer"].startswith("Turn 2:")
    assert dify_calls(simulator) == 2


def test_without_a_key_every_post_is_a_turn(relay, simulator):
    relay.invoke(event_with_key({"message": "Hello"}, None))
    relay.invoke(event_with_key({"message": "Hello"}, None))
    assert dify_calls(simulator) == 2


def test_failures_are_not_remembered(relay, simulator):
    simulator.inject(Fault(kind="error", status=500), times=None)
    assert relay.invoke(event_with_key({"message": "Hello"}, "retry-key-0003")).status == 502
    simulator.clear_faults()
    assert relay.invoke(event_with_key({"message": "Hello"}, "retry-key-0003")).status == 200


def test_a_malformed_key_is_refused(relay, simulator):
    reply = relay.invoke(event_with_key({"message": "Hello"}, "short"))
    assert (reply.status, reply.json["error"]["code"]) == (400, "invalid_request")
    assert dify_calls(simulator) == 0


def load_container(name: str):
    """A second, separate copy of the handler module: another warm Lambda container."""
    spec = importlib.util.spec_from_file_location(name, ROOT / "functions" / "relay" / "app.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def test_concurrent_duplicates_reach_dify_once(relay_env, simulator, atomic_requests):
    simulator.inject(Fault(kind="slow_headers", delay=1.0, path_contains=CHAT))
    containers = [load_container(f"app_container_{i}") for i in range(2)]
    replies = []
    start = threading.Barrier(2)

    def send(container):
        start.wait()
        event = event_with_key({"message": "Hello"}, "double-click-01")
        replies.append(reply_from(container.lambda_handler(event, LambdaContext())))

    threads = [threading.Thread(target=send, args=(c,)) for c in containers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=20)
    assert dify_calls(simulator) == 1
    statuses = sorted(r.status for r in replies)
    assert statuses == [200, 409]
    busy = next(r for r in replies if r.status == 409)
    assert busy.json["error"] == {
        "code": "request_in_progress",
        "message": busy.json["error"]["message"],
        "retryable": True,
    }
    assert busy.headers["retry-after"] == "1" and busy.headers["access-control-allow-origin"] == ORIGIN
