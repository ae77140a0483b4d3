import pytest

from relay.dify import is_uuid, upstream_error


@pytest.mark.parametrize(
    ("status", "code", "headers", "expected", "retryable", "retry_after"),
    [
        (500, "internal_server_error", {}, "upstream_error", True, None),
        (503, "", {}, "upstream_error", True, None),
        (400, "completion_request_error", {}, "upstream_error", True, None),
        (401, "unauthorized", {}, "upstream_rejected", False, None),
        (403, "forbidden", {}, "upstream_rejected", False, None),
        (400, "not_chat_app", {}, "upstream_rejected", False, None),
        (400, "invalid_param", {}, "upstream_rejected", False, None),
        (400, "provider_not_initialize", {}, "upstream_rejected", False, None),
        (400, "provider_quota_exceeded", {}, "upstream_quota", False, None),
        (429, "rate_limit_error", {}, "upstream_quota", False, None),
        (429, "too_many_requests", {"Retry-After": "7"}, "upstream_busy", True, 7),
        (429, "too_many_requests", {"Retry-After": "soon"}, "upstream_busy", True, 2),
        (429, "too_many_requests", {}, "upstream_busy", True, 2),
    ],
)
def test_dify_errors_map_to_what_a_widget_can_act_on(status, code, headers, expected, retryable, retry_after):
    error = upstream_error(status, {"code": code, "message": "secret detail from Dify"}, headers)
    body = error.body()["error"]
    assert (body["code"], body["retryable"], error.retry_after) == (expected, retryable, retry_after)
    assert "secret detail" not in body["message"]


@pytest.mark.parametrize(
    ("value", "valid"),
    [
        ("0b6f5e6e-8a53-4e6b-9f1e-2f4a3b1c9d7e", True),
        ("0B6F5E6E-8A53-4E6B-9F1E-2F4A3B1C9D7E", True),
        ("0b6f5e6e8a534e6b9f1e2f4a3b1c9d7e", False),
        ("{0b6f5e6e-8a53-4e6b-9f1e-2f4a3b1c9d7e}", False),
        ("0b6f5e6e-8a53-4e6b-9f1e-2f4a3b1c9d7e/../stop", False),
        ("", False),
    ],
)
def test_only_canonical_uuids_count_as_dify_ids(value, valid):
    assert is_uuid(value) is valid
