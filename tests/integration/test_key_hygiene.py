"""The key guard in conftest only proves something if logs are really captured and a leak would show."""

from tests.conftest import CANARY, DIFY_KEY, ROTATED_KEY
from tests.integration.conftest import find_leaks


def test_the_relay_logs_are_captured_by_the_guard(relay, relay_log):
    relay.chat({"message": "Hello"})
    out = relay_log.getvalue()
    assert '"message":"turn answered"' in out
    assert find_leaks([out]) == []


def test_the_guard_finds_a_key_wherever_it_appears():
    assert CANARY in DIFY_KEY and CANARY in ROTATED_KEY
    assert find_leaks(["fine", f'{{"header": "Bearer {DIFY_KEY}"}}']) == [
        f'{{"header": "Bearer {DIFY_KEY}"}}'
    ]


def test_visitor_text_is_not_logged_at_info(relay, relay_log):
    relay.chat({"message": "my private medical question"})
    out = relay_log.getvalue()
    assert '"message":"turn answered"' in out
    assert "private medical" not in out
