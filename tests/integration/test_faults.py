"""Fault injection: whatever Dify, Secrets Manager or DynamoDB do, the widget gets an answer or an honest,
actionable JSON error with CORS headers, and Dify sees only the calls its own retry rules allow."""

import json
import time
from unittest.mock import patch

import botocore.client
import pytest
from botocore.exceptions import ClientError, EndpointConnectionError

from local.dify_simulator import App, Fault
from tests.conftest import DIFY_KEY, ROTATED_KEY
from tests.integration.conftest import ORIGIN

GENERATION = ("/chat-messages", "/completion-messages", "/workflows/run")


def dify_calls(simulator) -> int:
    return sum(1 for r in simulator.requests if r.path.endswith(GENERATION))


def check(reply, status, code=None, retryable=None):
    assert reply.status == status, reply.raw_body
    assert reply.headers["access-control-allow-origin"] == ORIGIN
    if code is not None:
        assert reply.json == {
            "error": {"code": code, "message": reply.json["error"]["message"], "retryable": retryable}
        }
        assert "Traceback" not in reply.raw_body


# fault, how many requests it hits (None: all), expected status, code, retryable, Dify calls, Retry-After
ROWS = {
    "500 once then fine": (Fault(kind="error", status=500), 1, 200, None, None, 2, None),
    "500 always": (Fault(kind="error", status=500), None, 502, "upstream_error", True, 3, None),
    "502 html page": (Fault(kind="html", status=502), None, 502, "upstream_error", True, 3, None),
    "429 busy, Retry-After 1, once": (
        Fault(kind="error", status=429, code="too_many_requests", headers={"Retry-After": "1"}),
        1,
        200,
        None,
        None,
        2,
        None,
    ),
    "429 busy, Retry-After past the deadline": (
        Fault(kind="error", status=429, code="too_many_requests", headers={"Retry-After": "120"}),
        None,
        503,
        "upstream_busy",
        True,
        1,
        "120",
    ),
    "429 busy without Retry-After": (
        Fault(kind="error", status=429, code="too_many_requests"),
        None,
        503,
        "upstream_busy",
        True,
        3,
        "2",
    ),
    "429 quota": (
        Fault(kind="error", status=429, code="rate_limit_error"),
        None,
        503,
        "upstream_quota",
        False,
        1,
        None,
    ),
    "400 provider quota": (
        Fault(kind="error", status=400, code="provider_quota_exceeded"),
        None,
        503,
        "upstream_quota",
        False,
        1,
        None,
    ),
    "400 provider not set up": (
        Fault(kind="error", status=400, code="provider_not_initialize"),
        None,
        502,
        "upstream_rejected",
        False,
        1,
        None,
    ),
    "403 app disabled": (
        Fault(kind="error", status=403, code="forbidden"),
        None,
        502,
        "upstream_rejected",
        False,
        1,
        None,
    ),
    "401 always": (
        Fault(kind="error", status=401, code="unauthorized"),
        None,
        502,
        "upstream_rejected",
        False,
        2,
        None,
    ),
    "connection reset once": (Fault(kind="close"), 1, 200, None, None, 2, None),
    "connection reset always": (Fault(kind="close"), None, 502, "upstream_error", True, 3, None),
    "truncated json": (Fault(kind="truncated_json"), None, 502, "upstream_error", True, 1, None),
    "empty answer": (Fault(kind="empty_answer"), None, 502, "upstream_error", True, 1, None),
    "slow headers past the deadline": (
        Fault(kind="slow_headers", delay=5),
        None,
        504,
        "upstream_timeout",
        True,
        1,
        None,
    ),
}


@pytest.mark.parametrize("row", ROWS.values(), ids=ROWS.keys())
def test_blocking_faults(make_relay, simulator, row):
    fault, times, status, code, retryable, calls, retry_after = row
    relay = make_relay(GATEWAY_TIMEOUT_MS="3500", DEADLINE_MARGIN_MS="500")  # a 3 s budget
    simulator.inject(fault, times=times)
    started = time.monotonic()
    reply = relay.chat({"message": "Hello"})
    check(reply, status, code, retryable)
    assert dify_calls(simulator) == calls
    assert reply.headers.get("retry-after") == retry_after
    assert time.monotonic() - started < 3.5


STREAM_ROWS = {
    "stream cut": (Fault(kind="stream_cut"), "upstream_error", True),
    "error event": (Fault(kind="error_event"), "upstream_error", True),
    "error event, quota": (
        Fault(kind="error_event", status=400, code="provider_quota_exceeded"),
        "upstream_quota",
        False,
    ),
}


@pytest.mark.parametrize("row", STREAM_ROWS.values(), ids=STREAM_ROWS.keys())
def test_stream_faults_are_errors_never_half_answers(make_relay, simulator, row):
    fault, code, retryable = row
    simulator.apps[DIFY_KEY] = App(mode="agent-chat")
    relay = make_relay(DIFY_APP_MODE="agent")
    simulator.inject(fault)
    reply = relay.chat({"message": "Hello"})
    check(reply, 503 if code == "upstream_quota" else 502, code, retryable)
    assert dify_calls(simulator) == 1  # a stream that opened is not sent again


@pytest.mark.parametrize(
    ("dify_mode", "configured", "run_path", "stop_path"),
    [
        ("agent-chat", "agent", "/v1/chat-messages", "/v1/chat-messages/{task}/stop"),
        ("completion", "completion", "/v1/completion-messages", "/v1/completion-messages/{task}/stop"),
        ("workflow", "workflow", "/v1/workflows/run", "/v1/workflows/tasks/{task}/stop"),
    ],
)
def test_a_run_past_the_deadline_is_answered_in_time_and_stopped(
    make_relay, simulator, dify_mode, configured, run_path, stop_path
):
    simulator.apps[DIFY_KEY] = App(mode=dify_mode)
    relay = make_relay(
        DIFY_APP_MODE=configured,
        UPSTREAM_MODE="streaming",
        GATEWAY_TIMEOUT_MS="2500",
        DEADLINE_MARGIN_MS="500",
    )
    simulator.inject(Fault(kind="slow_body", delay=6, path_contains=run_path))
    started = time.monotonic()
    reply = relay.chat({"message": "Hello"})
    elapsed = time.monotonic() - started
    check(reply, 504, "upstream_timeout", True)
    assert elapsed < 2.5
    stops = [r for r in simulator.requests if r.path.endswith("/stop")]
    assert len(stops) == 1 and stops[0].body["user"]
    [task] = simulator.stopped_tasks
    assert stops[0].path == stop_path.format(task=task)


def test_a_stale_conversation_is_restarted_once(relay, simulator):
    session = relay.chat({"message": "Hi"}).json["sessionId"]
    simulator.forget_conversations()
    simulator.clear_requests()
    check(relay.chat({"message": "Again", "sessionId": session}), 200)
    assert dify_calls(simulator) == 2


def test_a_rotated_key_costs_one_extra_call(relay, simulator, aws):
    relay.chat({"message": "Hi"})
    simulator.rotate_key(DIFY_KEY, ROTATED_KEY)
    aws.store_key(ROTATED_KEY)
    simulator.clear_requests()
    check(relay.chat({"message": "Again"}), 200)
    assert dify_calls(simulator) == 2


def test_a_refused_connection_is_retried_then_reported(make_relay):
    reply = make_relay(DIFY_API_URL="http://127.0.0.1:9/v1").chat({"message": "Hi"})
    check(reply, 502, "upstream_error", True)


def failing(operations, error):
    """AWS calls named in `operations` fail the way botocore reports it; others reach moto."""
    original = botocore.client.BaseClient._make_api_call

    def call(self, operation, params):
        if operation in operations:
            raise error
        return original(self, operation, params)

    return patch.object(botocore.client.BaseClient, "_make_api_call", call)


THROTTLED = ClientError(
    {"Error": {"Code": "ThrottlingException", "Message": "Rate exceeded"}}, "GetSecretValue"
)


def test_secrets_manager_down_before_any_key_is_a_retryable_503(relay, simulator):
    with failing({"GetSecretValue"}, THROTTLED):
        reply = relay.chat({"message": "Hi"})
    check(reply, 503, "relay_unavailable", True)
    assert dify_calls(simulator) == 0


def test_secrets_manager_down_later_keeps_the_last_good_key(make_relay, simulator):
    relay = make_relay(KEY_CACHE_SECONDS="0")  # every turn asks Secrets Manager again
    check(relay.chat({"message": "Hi"}), 200)
    with failing({"GetSecretValue"}, EndpointConnectionError(endpoint_url="https://secretsmanager")):
        check(relay.chat({"message": "Still there?"}), 200)
    assert dify_calls(simulator) == 2


def test_dynamodb_down_still_answers_as_a_new_conversation(relay, simulator, relay_log, capfd):
    session = relay.chat({"message": "Hi"}).json["sessionId"]
    down = ClientError(
        {"Error": {"Code": "ProvisionedThroughputExceededException", "Message": "slow down"}}, "x"
    )
    with failing({"GetItem", "PutItem", "UpdateItem"}, down):
        reply = relay.chat({"message": "Again", "sessionId": session})
    check(reply, 200)
    assert reply.json["sessionId"] == session and reply.json["answer"].startswith("Turn 1:")
    assert "DynamoDB unavailable" in relay_log.getvalue()
    assert emitted_metric(capfd, "StoreDegradations") == 3  # load, rate counters, save


def emitted_metric(capfd, name: str) -> float:
    """The sum of a metric over the EMF records the handler printed."""
    out, _ = capfd.readouterr()
    records = [json.loads(line) for line in out.splitlines() if line.startswith('{"_aws"')]
    return sum(sum(r[name]) if isinstance(r[name], list) else r[name] for r in records if name in r)
