"""Dify's refusals and failures, as the widget is told them; Dify's own message stays in the logs."""

from __future__ import annotations

import math

from aws_lambda_powertools import Logger

from .. import telemetry
from ..errors import ErrorKind, RelayError
from .protocol import is_uuid

logger = Logger(child=True)

DEFAULT_RETRY_AFTER = 2
_QUOTA_CODES = {"provider_quota_exceeded", "rate_limit_error"}
_TRANSIENT_CODES = {"completion_request_error", "internal_server_error"}
# What Dify answers a conversation id it will not continue.
ENDED_CONVERSATION = {(404, "not_found"), (400, "conversation_completed")}
# Follow-up questions switched off: 403 in current Dify, 400 bad_request in older releases.
SUGGESTIONS_OFF = {(403, "app_suggested_questions_after_answer_disabled"), (400, "bad_request")}
_MALFORMED = "The assistant sent an answer the relay could not read."


class ConversationNotFound(RelayError):
    """Dify will not continue the conversation id the relay sent (unknown, another user's, or ended)."""

    def __init__(self) -> None:
        super().__init__(ErrorKind.UPSTREAM_REJECTED, "The conversation could not be continued.")


def upstream_error(status: int, body: dict, headers) -> RelayError:
    """Maps a Dify error response to what the widget is told."""
    code = str(body.get("code") or "")
    if status == 429 and code != "rate_limit_error":
        return RelayError(
            ErrorKind.UPSTREAM_BUSY,
            "The assistant is busy. Please try again in a moment.",
            retry_after=retry_after(headers) or DEFAULT_RETRY_AFTER,
        )
    if code in _QUOTA_CODES or status == 429:
        return RelayError(ErrorKind.UPSTREAM_QUOTA, "The assistant has reached its usage limit.")
    if status >= 500 or code in _TRANSIENT_CODES:
        return RelayError(ErrorKind.UPSTREAM_ERROR, "The assistant failed to answer. Please try again.")
    if status == 401:
        return RelayError(ErrorKind.UPSTREAM_REJECTED, "The assistant refused the relay's credentials.")
    # An upload within the relay's limits but over the Dify instance's own, or of a type it does not take.
    if status == 413:
        return RelayError(ErrorKind.REQUEST_TOO_LARGE, "The file is larger than the assistant takes.")
    if status == 415:
        return RelayError(ErrorKind.UNSUPPORTED_MEDIA_TYPE, "The assistant does not take this type of file.")
    return RelayError(ErrorKind.UPSTREAM_REJECTED, "The assistant is not available for this request.")


def retry_after(headers) -> int | None:
    """Dify's Retry-After in whole seconds, if it sent a usable one."""
    try:
        return max(1, math.ceil(float(headers.get("Retry-After", ""))))
    except ValueError:
        return None


def checked_id(value: str) -> str:
    """Ids that go into a Dify URL are UUIDs, never a path a visitor could steer."""
    if not is_uuid(value):
        raise RelayError(ErrorKind.INVALID_REQUEST, "Unknown message or conversation id.")
    return value


def malformed() -> RelayError:
    return RelayError(ErrorKind.UPSTREAM_ERROR, _MALFORMED)


def misconfigured(reason: str, **details) -> RelayError:
    logger.error(f"relay configuration does not fit the Dify app: {reason}", extra=details)
    return RelayError(ErrorKind.UPSTREAM_REJECTED, "The assistant is not configured correctly.")


def timeout() -> RelayError:
    telemetry.count("UpstreamTimeouts")
    return RelayError(ErrorKind.UPSTREAM_TIMEOUT, "The assistant took too long to answer.")


def failed_run(run: dict) -> RelayError:
    logger.warning("Dify workflow run did not succeed", extra={"dify_run_status": run.get("status")})
    return RelayError(ErrorKind.UPSTREAM_ERROR, "The assistant failed to answer. Please try again.")


def too_long(max_bytes: int) -> RelayError:
    logger.warning("Dify's binary answer is over the relay's limit", extra={"max_bytes": max_bytes})
    return RelayError(ErrorKind.REQUEST_TOO_LARGE, "The answer is too long to be read aloud.")
