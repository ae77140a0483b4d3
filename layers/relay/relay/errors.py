"""The errors a widget can receive: one status, code and retry hint per kind."""

from __future__ import annotations

from enum import Enum


class ErrorKind(Enum):
    INVALID_REQUEST = (400, "invalid_request", False)
    ORIGIN_NOT_ALLOWED = (403, "origin_not_allowed", False)
    NOT_FOUND = (404, "not_found", False)
    METHOD_NOT_ALLOWED = (405, "method_not_allowed", False)
    REQUEST_IN_PROGRESS = (409, "request_in_progress", True)
    MESSAGE_TOO_LONG = (413, "message_too_long", False)
    REQUEST_TOO_LARGE = (413, "request_too_large", False)
    UNSUPPORTED_MEDIA_TYPE = (415, "unsupported_media_type", False)
    RATE_LIMITED = (429, "rate_limited", True)
    UPSTREAM_ERROR = (502, "upstream_error", True)
    UPSTREAM_REJECTED = (502, "upstream_rejected", False)
    UPSTREAM_BUSY = (503, "upstream_busy", True)
    UPSTREAM_QUOTA = (503, "upstream_quota", False)
    UPSTREAM_TIMEOUT = (504, "upstream_timeout", True)
    RELAY_UNAVAILABLE = (503, "relay_unavailable", True)
    INTERNAL = (500, "internal_error", True)

    def __init__(self, status: int, code: str, retryable: bool) -> None:
        self.status = status
        self.code = code
        self.retryable = retryable


class RelayError(Exception):
    """An error the widget is told about. `message` is written for the widget: never Dify's raw text."""

    def __init__(self, kind: ErrorKind, message: str, *, retry_after: int | None = None) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message
        self.retry_after = retry_after
        self.dify_status: int | None = None  # Dify's status and code when the error is its answer
        self.dify_code: str | None = None

    def body(self) -> dict:
        return {"error": {"code": self.kind.code, "message": self.message, "retryable": self.kind.retryable}}

    def headers(self) -> dict[str, str]:
        return {"Retry-After": str(self.retry_after)} if self.retry_after is not None else {}
