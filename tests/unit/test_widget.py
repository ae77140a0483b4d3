import json

import pytest

from relay.errors import ErrorKind, RelayError
from relay.widget import parse_chat_request


def parse(body, limit=100):
    return parse_chat_request(body if isinstance(body, str) else json.dumps(body), max_message_chars=limit)


def test_a_message_alone_is_a_valid_first_turn():
    request = parse({"message": "Hi there"})
    assert (request.message, request.session_id, request.user) == ("Hi there", None, None)


def test_session_and_user_are_carried_through():
    request = parse({"message": "Hi", "sessionId": "abc_DEF-123", "user": "visitor-7"})
    assert (request.session_id, request.user) == ("abc_DEF-123", "visitor-7")


@pytest.mark.parametrize(
    "body",
    [
        "",
        "not json",
        '{"message": ',
        "[1, 2]",
        '"just a string"',
        {},
        {"message": ""},
        {"message": "   \n\t"},
        {"message": 42},
        {"message": ["hi"]},
        {"message": "hi", "sessionId": "short"},
        {"message": "hi", "sessionId": "x" * 129},
        {"message": "hi", "sessionId": "has space in it"},
        {"message": "hi", "sessionId": "../../etc/passwd"},
        {"message": "hi", "sessionId": 12345678},
        {"message": "hi", "user": ""},
        {"message": "hi", "user": 7},
        {"message": "hi", "user": "u" * 256},
        {"message": "hi", "user": "bad\x00user"},
        {"message": "nul\x00inside"},
        {"message": "escape \x1b[31m red"},
    ],
)
def test_malformed_requests_are_invalid(body):
    with pytest.raises(RelayError) as caught:
        parse(body)
    assert caught.value.kind is ErrorKind.INVALID_REQUEST
    assert caught.value.body()["error"]["retryable"] is False


def test_session_id_limits_are_inclusive():
    assert parse({"message": "hi", "sessionId": "a" * 8}).session_id == "a" * 8
    assert parse({"message": "hi", "sessionId": "a" * 128}).session_id == "a" * 128


def test_message_over_the_limit_is_too_long_and_at_the_limit_is_fine():
    assert parse({"message": "x" * 100}).message == "x" * 100
    with pytest.raises(RelayError) as caught:
        parse({"message": "x" * 101})
    assert caught.value.kind.status == 413
    assert caught.value.kind.code == "message_too_long"


ALLOWED = frozenset({"lang", "level"})


def parse_inputs(inputs):
    body = json.dumps({"message": "hi", "inputs": inputs})
    return parse_chat_request(body, max_message_chars=100, allowed_inputs=ALLOWED).inputs


def test_allowed_inputs_pass_through_with_plain_values():
    assert parse_inputs({"lang": "de", "level": 3}) == {"lang": "de", "level": 3}
    assert parse_inputs({"level": True}) == {"level": True}
    assert parse_inputs({"level": 2.5}) == {"level": 2.5}
    assert parse_inputs({}) == {}


@pytest.mark.parametrize(
    ("inputs", "named"),
    [
        ({"topic": "x"}, "inputs.topic"),
        ({"lang": "de", "__proto__": "x"}, "inputs.__proto__"),
        ({"lang": None}, "inputs.lang"),
        ({"lang": ["de"]}, "inputs.lang"),
        ({"lang": {"nested": 1}}, "inputs.lang"),
        ({"lang": "x" * 2001}, "inputs.lang"),
        ({"lang": "bell\x07"}, "inputs.lang"),
        ({"level": float("inf")}, "inputs.level"),
        ({"level": float("nan")}, "inputs.level"),
        ("lang=de", "'inputs'"),
    ],
)
def test_other_inputs_are_refused_by_name(inputs, named):
    with pytest.raises(RelayError) as caught:
        parse_inputs(inputs)
    assert caught.value.kind is ErrorKind.INVALID_REQUEST
    assert named in caught.value.message


def test_line_breaks_and_tabs_are_ordinary_text():
    assert parse({"message": "line one\r\nline two\tend"}).message == "line one\r\nline two\tend"


def test_an_oversized_body_is_refused_before_it_is_parsed():
    body = json.dumps({"message": "x" * 50, "pad": "é" * 200})
    with pytest.raises(RelayError) as caught:
        parse_chat_request(body, max_message_chars=100, max_body_bytes=400)
    assert (caught.value.kind.status, caught.value.kind.code) == (413, "request_too_large")
