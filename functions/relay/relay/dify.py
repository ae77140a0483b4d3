"""Everything about Dify's Service API: routes, request shapes, answers and error codes."""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass, field

import urllib3
from aws_lambda_powertools import Logger

from .errors import ErrorKind, RelayError
from .keys import KeyProvider

logger = Logger(child=True)

DEFAULT_RETRY_AFTER = 2
CHAT_MODES = ("chat", "advanced-chat")


@dataclass(frozen=True)
class Question:
    """One turn as Dify sees it."""

    query: str
    user: str
    conversation_id: str | None = None
    inputs: dict = field(default_factory=dict)


@dataclass(frozen=True)
class Answer:
    text: str
    conversation_id: str | None
    message_id: str | None
    mode: str


class ConversationNotFound(RelayError):
    """Dify no longer knows the conversation id the relay sent (expired, deleted, another user's)."""

    def __init__(self) -> None:
        super().__init__(ErrorKind.UPSTREAM_REJECTED, "The conversation could not be continued.")


def is_uuid(value: str) -> bool:
    try:
        return str(uuid.UUID(value)) == value.lower()
    except (ValueError, AttributeError, TypeError):
        return False


# Dify's 4xx codes that mean "the app or its provider is not set up to answer": nothing a retry can fix.
_QUOTA_CODES = {"provider_quota_exceeded", "rate_limit_error"}
_TRANSIENT_CODES = {"completion_request_error", "internal_server_error"}


def upstream_error(status: int, body: dict, headers) -> RelayError:
    """Maps a Dify error response to what the widget is told; Dify's own message stays in the logs."""
    code = str(body.get("code") or "")
    if status == 429 and code != "rate_limit_error":
        return RelayError(
            ErrorKind.UPSTREAM_BUSY,
            "The assistant is busy. Please try again in a moment.",
            retry_after=_retry_after(headers),
        )
    if code in _QUOTA_CODES or status == 429:
        return RelayError(ErrorKind.UPSTREAM_QUOTA, "The assistant has reached its usage limit.")
    if status >= 500 or code in _TRANSIENT_CODES:
        return RelayError(ErrorKind.UPSTREAM_ERROR, "The assistant failed to answer. Please try again.")
    if status == 401:
        return RelayError(ErrorKind.UPSTREAM_REJECTED, "The assistant refused the relay's credentials.")
    return RelayError(ErrorKind.UPSTREAM_REJECTED, "The assistant is not available for this request.")


def _retry_after(headers) -> int:
    try:
        return max(1, int(float(headers.get("Retry-After", ""))))
    except ValueError:
        return DEFAULT_RETRY_AFTER


_MALFORMED = "The assistant sent an answer the relay could not read."


class DifyClient:
    def __init__(
        self,
        base_url: str,
        keys: KeyProvider,
        *,
        http: urllib3.PoolManager,
        connect_timeout: float,
        read_timeout: float,
    ) -> None:
        self._base_url = base_url.rstrip("/")
        self._keys = keys
        self._http = http
        self._timeout = urllib3.Timeout(connect=connect_timeout, read=read_timeout)

    def chat(self, question: Question) -> Answer:
        """POST /chat-messages in blocking mode (chat and chatflow apps)."""
        payload = {
            "inputs": question.inputs,
            "query": question.query,
            "user": question.user,
            "response_mode": "blocking",
        }
        if question.conversation_id:
            if not is_uuid(question.conversation_id):
                raise ConversationNotFound()
            payload["conversation_id"] = question.conversation_id
        data = self._post("/chat-messages", payload, conversation_sent=bool(question.conversation_id))
        text = data.get("answer")
        if not isinstance(text, str) or not text.strip():
            raise RelayError(ErrorKind.UPSTREAM_ERROR, _MALFORMED)
        return Answer(
            text=text,
            conversation_id=_optional_str(data.get("conversation_id")),
            message_id=_optional_str(data.get("message_id") or data.get("id")),
            mode=str(data.get("mode") or "chat"),
        )

    def _post(self, path: str, payload: dict, *, conversation_sent: bool = False) -> dict:
        body = json.dumps(payload).encode()
        response = self._send("POST", path, body, self._keys.get())
        if response.status == 401:
            logger.info("Dify refused the cached key; fetching it again")
            response = self._send("POST", path, body, self._keys.get(refresh=True))
        data = _json_object(response.data)
        if response.status >= 400:
            code = str((data or {}).get("code") or "")
            logger.warning("Dify error", extra={"dify_status": response.status, "dify_code": code})
            if response.status == 404 and code == "not_found" and conversation_sent:
                raise ConversationNotFound()
            raise upstream_error(response.status, data or {}, response.headers)
        if data is None:
            raise RelayError(ErrorKind.UPSTREAM_ERROR, _MALFORMED)
        return data

    def _send(self, method: str, path: str, body: bytes, key: str) -> urllib3.BaseHTTPResponse:
        started = time.perf_counter()
        try:
            response = self._http.request(
                method,
                self._base_url + path,
                body=body,
                headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
                timeout=self._timeout,
                retries=False,
            )
        except urllib3.exceptions.NewConnectionError:  # a subclass of ConnectTimeoutError, but refused
            logger.warning("Dify unreachable", extra={"dify_path": path, "reason": "connection refused"})
            raise RelayError(ErrorKind.UPSTREAM_ERROR, "The assistant could not be reached.") from None
        except urllib3.exceptions.TimeoutError:
            logger.warning("Dify did not answer in time", extra={"dify_path": path})
            raise RelayError(ErrorKind.UPSTREAM_TIMEOUT, "The assistant took too long to answer.") from None
        except urllib3.exceptions.HTTPError as exc:
            logger.warning("Dify unreachable", extra={"dify_path": path, "reason": type(exc).__name__})
            raise RelayError(ErrorKind.UPSTREAM_ERROR, "The assistant could not be reached.") from None
        logger.info(
            "Dify answered",
            extra={"dify_path": path, "dify_status": response.status, "dify_ms": _ms_since(started)},
        )
        return response


def _json_object(raw: bytes) -> dict | None:
    try:
        data = json.loads(raw)
    except ValueError:
        return None
    return data if isinstance(data, dict) else None


def _optional_str(value) -> str | None:
    return value if isinstance(value, str) and value else None


def _ms_since(started: float) -> int:
    return round((time.perf_counter() - started) * 1000)
