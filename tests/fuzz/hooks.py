"""Schemathesis checks of the relay's own, loaded by the fuzz run (SCHEMATHESIS_HOOKS=tests.fuzz.hooks)."""

import json

import schemathesis

from tests.conftest import CANARY


@schemathesis.check
def key_never_in_a_response(ctx, response, case):
    """The simulated app's key carries the test suite's canary: no answer, header or error may show it."""
    assert CANARY not in response.content.decode(errors="replace")
    assert not any(CANARY in value for value in response.headers.values()), response.headers


@schemathesis.check
def error_is_the_relay_envelope(ctx, response, case):
    """Every refusal, documented or not (a 405 for a method no route takes), is the relay's JSON envelope."""
    if response.status_code < 400:
        return None
    body = json.loads(response.content)
    error = body["error"]
    assert set(body) == {"error"}, body
    assert set(error) == {"code", "message", "retryable"}, error
    assert isinstance(error["code"], str) and isinstance(error["message"], str), error
    assert isinstance(error["retryable"], bool), error
    return None
