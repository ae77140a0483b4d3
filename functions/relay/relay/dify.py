"""Everything about Dify's Service API: routes, request shapes, blocking and streamed answers, error codes."""

from __future__ import annotations

import json
import threading
import time
import uuid
from dataclasses import dataclass, field
from enum import Enum

import urllib3
from aws_lambda_powertools import Logger

from . import sse
from .errors import ErrorKind, RelayError
from .keys import KeyProvider

logger = Logger(child=True)

DEFAULT_RETRY_AFTER = 2
SNIPPET_CHARS = 300
_STREAM_READ_BYTES = 16 * 1024


class Route(Enum):
    """A Dify API route and whether it can answer in blocking mode."""

    CHAT = ("/chat-messages", True)
    AGENT = ("/chat-messages", False)  # Dify refuses blocking mode for agent apps
    COMPLETION = ("/completion-messages", True)
    WORKFLOW = ("/workflows/run", True)

    def __init__(self, path: str, can_block: bool) -> None:
        self.path = path
        self.can_block = can_block

    @property
    def has_conversations(self) -> bool:
        return self.path == "/chat-messages"


# Dify's app `mode` (GET /info) → the route that serves it.
APP_ROUTES = {
    "chat": Route.CHAT,
    "advanced-chat": Route.CHAT,
    "agent-chat": Route.AGENT,
    "agent": Route.AGENT,
    "completion": Route.COMPLETION,
    "workflow": Route.WORKFLOW,
}
# The relay's DIFY_APP_MODE names → Dify's app mode, and back: a widget sees the relay's names.
CONFIGURED_MODES = {
    "chat": "chat",
    "chatflow": "advanced-chat",
    "agent": "agent-chat",
    "completion": "completion",
    "workflow": "workflow",
}
RELAY_MODES = {**{dify: relay for relay, dify in CONFIGURED_MODES.items()}, "agent": "agent"}


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
    usage: dict | None = None
    sources: list | None = None
    task_id: str | None = None


class ConversationNotFound(RelayError):
    """Dify will not continue the conversation id the relay sent (unknown, another user's, or ended)."""

    def __init__(self) -> None:
        super().__init__(ErrorKind.UPSTREAM_REJECTED, "The conversation could not be continued.")


def is_uuid(value: str) -> bool:
    try:
        return str(uuid.UUID(value)) == value.lower()
    except (ValueError, AttributeError, TypeError):
        return False


_QUOTA_CODES = {"provider_quota_exceeded", "rate_limit_error"}
_TRANSIENT_CODES = {"completion_request_error", "internal_server_error"}
_ENDED_CONVERSATION = {(404, "not_found"), (400, "conversation_completed")}
_MALFORMED = "The assistant sent an answer the relay could not read."


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


def _malformed() -> RelayError:
    return RelayError(ErrorKind.UPSTREAM_ERROR, _MALFORMED)


def _misconfigured(reason: str, **details) -> RelayError:
    logger.error(f"relay configuration does not fit the Dify app: {reason}", extra=details)
    return RelayError(ErrorKind.UPSTREAM_REJECTED, "The assistant is not configured correctly.")


class DifyClient:
    def __init__(
        self,
        base_url: str,
        keys: KeyProvider,
        *,
        http: urllib3.PoolManager,
        connect_timeout: float,
        read_timeout: float,
        query_input: str = "query",
        answer_output: str = "answer",
    ) -> None:
        self._base_url = base_url.rstrip("/")
        self._keys = keys
        self._http = http
        self._timeout = urllib3.Timeout(connect=connect_timeout, read=read_timeout)
        self._query_input = query_input
        self._answer_output = answer_output
        self._app_mode: str | None = None
        self._lock = threading.Lock()

    def app_mode(self) -> str:
        """The app's mode from GET /info, asked once per container; a failed lookup is asked again."""
        with self._lock:
            if self._app_mode is None:
                mode = self._call("GET", "/info").get("mode")
                if mode not in APP_ROUTES:
                    raise _misconfigured("Dify reported an app mode the relay does not know", dify_mode=mode)
                logger.info("Dify app mode detected", extra={"dify_mode": mode})
                self._app_mode = mode
            return self._app_mode

    def ask(self, question: Question, *, app_mode: str, streaming: bool = False) -> Answer:
        route, mode = APP_ROUTES[app_mode], RELAY_MODES[app_mode]
        streaming = streaming or not route.can_block
        payload = self._payload(route, question, streaming)
        sent_conversation = "conversation_id" in payload
        if streaming:
            assembly = _Assembly(route, mode, self._pick_output)
            for event in self._stream(route.path, payload, sent_conversation):
                assembly.add(event)
            return assembly.answer()
        return self._blocking_answer(route, mode, self._call("POST", route.path, payload, sent_conversation))

    def _payload(self, route: Route, question: Question, streaming: bool) -> dict:
        inputs = dict(question.inputs)
        payload = {"user": question.user, "response_mode": "streaming" if streaming else "blocking"}
        if route.has_conversations:
            payload["query"] = question.query
            if question.conversation_id:
                if not is_uuid(question.conversation_id):
                    raise ConversationNotFound()
                payload["conversation_id"] = question.conversation_id
        else:
            inputs[self._query_input] = question.query
            if route is Route.COMPLETION:
                payload["query"] = question.query  # the legacy field older completion apps read
        payload["inputs"] = inputs
        return payload

    def _blocking_answer(self, route: Route, mode: str, data: dict) -> Answer:
        if route is Route.WORKFLOW:
            run = data.get("data")
            if not isinstance(run, dict):
                raise _malformed()
            return _workflow_answer(run, mode, data.get("task_id"), self._pick_output)
        metadata = data.get("metadata") if isinstance(data.get("metadata"), dict) else {}
        return _checked(
            Answer(
                text=data.get("answer"),
                conversation_id=_text_or_none(data.get("conversation_id")),
                message_id=_text_or_none(data.get("message_id") or data.get("id")),
                mode=mode,
                usage=usage_of(metadata),
                sources=sources_of(metadata),
                task_id=_text_or_none(data.get("task_id")),
            )
        )

    def _pick_output(self, outputs) -> str:
        """The workflow output named ANSWER_OUTPUT, else the only text output."""
        if not isinstance(outputs, dict):
            raise _malformed()
        if isinstance(outputs.get(self._answer_output), str):
            return outputs[self._answer_output]
        texts = [value for value in outputs.values() if isinstance(value, str)]
        if len(texts) == 1:
            return texts[0]
        raise _misconfigured(
            "the workflow has no text output named by ANSWER_OUTPUT",
            answer_output=self._answer_output,
            workflow_outputs=sorted(outputs),
        )

    # --- HTTP -------------------------------------------------------------------------------------------

    def _call(self, method: str, path: str, payload: dict | None = None, sent_conversation=False) -> dict:
        response = self._send(method, path, payload, stream=False)
        data = _json_object(response.data)
        if response.status >= 400:
            raise self._refusal(response.status, data, response.headers, sent_conversation)
        if data is None:
            raise _malformed()
        return data

    def _stream(self, path: str, payload: dict, sent_conversation: bool):
        """The JSON events of a streamed answer. Errors before the stream opens come as plain JSON."""
        response = self._send("POST", path, payload, stream=True)
        try:
            if response.status >= 400:
                raise self._refusal(
                    response.status, _json_object(response.read()), response.headers, sent_conversation
                )
            if not response.headers.get("Content-Type", "").startswith("text/event-stream"):
                logger.warning("Dify answered a stream request without a stream")
                raise _malformed()
            for event in sse.parse(self._chunks(response, path)):
                if event.name == "ping" or not event.data:
                    continue
                data = _json_object(event.data)
                if data is None:
                    raise _malformed()
                yield data
        except BaseException:
            response.close()  # a half-read stream must not go back to the pool
            raise
        finally:
            response.release_conn()

    def _chunks(self, response, path: str):
        try:
            while chunk := response.read1(_STREAM_READ_BYTES):  # whatever has arrived, not a full buffer
                yield chunk
        except urllib3.exceptions.HTTPError as exc:
            raise self._transport_error(exc, path) from None

    def _refusal(self, status: int, data: dict | None, headers, sent_conversation: bool) -> RelayError:
        code = str((data or {}).get("code") or "")
        logger.warning("Dify error", extra={"dify_status": status, "dify_code": code})
        if sent_conversation and (status, code) in _ENDED_CONVERSATION:
            return ConversationNotFound()
        return upstream_error(status, data or {}, headers)

    def _send(
        self, method: str, path: str, payload: dict | None, *, stream: bool
    ) -> urllib3.BaseHTTPResponse:
        body = json.dumps(payload).encode() if payload is not None else None
        response = self._request(method, path, body, self._keys.get(), stream)
        if response.status == 401:
            response.drain_conn()
            response.release_conn()
            logger.info("Dify refused the cached key; fetching it again")
            response = self._request(method, path, body, self._keys.get(refresh=True), stream)
        return response

    def _request(self, method: str, path: str, body: bytes | None, key: str, stream: bool):
        headers = {"Authorization": f"Bearer {key}"}
        if body is not None:
            headers["Content-Type"] = "application/json"
        started = time.perf_counter()
        try:
            response = self._http.request(
                method,
                self._base_url + path,
                body=body,
                headers=headers,
                timeout=self._timeout,
                retries=False,
                preload_content=not stream,
            )
        except urllib3.exceptions.HTTPError as exc:
            raise self._transport_error(exc, path) from None
        logger.info(
            "Dify answered",
            extra={"dify_path": path, "dify_status": response.status, "dify_ms": _ms_since(started)},
        )
        return response

    @staticmethod
    def _transport_error(exc: Exception, path: str) -> RelayError:
        # NewConnectionError subclasses ConnectTimeoutError, but a refused connection is no timeout.
        if isinstance(exc, urllib3.exceptions.TimeoutError) and not isinstance(
            exc, urllib3.exceptions.NewConnectionError
        ):
            logger.warning("Dify did not answer in time", extra={"dify_path": path})
            return RelayError(ErrorKind.UPSTREAM_TIMEOUT, "The assistant took too long to answer.")
        logger.warning("Dify unreachable", extra={"dify_path": path, "reason": type(exc).__name__})
        return RelayError(ErrorKind.UPSTREAM_ERROR, "The assistant could not be reached.")


class _Assembly:
    """Builds one answer from a stream's events, by Dify's rules for each app type."""

    def __init__(self, route: Route, mode: str, pick_output) -> None:
        self._route = route
        self._mode = mode
        self._pick_output = pick_output
        self._parts: list[str] = []
        self._agent_deltas = False
        self._ended = False
        self._answer: Answer | None = None
        self._ids: dict[str, str | None] = {"conversation_id": None, "message_id": None, "task_id": None}
        self._metadata: dict = {}

    def add(self, event: dict) -> None:
        kind = event.get("event")
        for name in self._ids:
            self._ids[name] = self._ids[name] or _text_or_none(event.get(name))
        if kind == "error":
            status = event.get("status")
            status = status if isinstance(status, int) and status >= 400 else 500
            logger.warning("Dify stream error", extra={"dify_status": status, "dify_code": event.get("code")})
            raise upstream_error(status, event, {})
        if kind == "agent_message":
            self._agent_deltas = True
            self._parts.append(_delta(event.get("answer")))
        elif kind == "message":
            # New Agent closes its agent_message deltas with one message holding the complete answer.
            if self._agent_deltas:
                self._parts = [_delta(event.get("answer"))]
            else:
                self._parts.append(_delta(event.get("answer")))
        elif kind == "message_replace":
            self._parts = [_delta(event.get("answer"))]
        elif kind == "text_chunk":
            self._parts.append(_delta((event.get("data") or {}).get("text")))
        elif kind == "message_end":
            self._ended = True
            self._metadata = event.get("metadata") if isinstance(event.get("metadata"), dict) else {}
        elif kind == "workflow_finished" and (self._route is Route.WORKFLOW or not self._ended):
            run = event.get("data") if isinstance(event.get("data"), dict) else {}
            self._ended = True
            if self._route is Route.WORKFLOW:
                self._answer = _workflow_answer(run, self._mode, self._ids["task_id"], self._pick_output)
            elif run.get("status") != "succeeded":
                raise _failed_run(run)

    def answer(self) -> Answer:
        if not self._ended:
            logger.warning("Dify stream ended without a terminal event")
            raise _malformed()
        if self._answer is not None:
            return self._answer
        return _checked(
            Answer(
                text="".join(self._parts),
                conversation_id=self._ids["conversation_id"] if self._route.has_conversations else None,
                message_id=self._ids["message_id"],
                mode=self._mode,
                usage=usage_of(self._metadata),
                sources=sources_of(self._metadata),
                task_id=self._ids["task_id"],
            )
        )


def _workflow_answer(run: dict, mode: str, task_id, pick_output) -> Answer:
    if run.get("status") != "succeeded":
        raise _failed_run(run)
    tokens = run.get("total_tokens")
    return _checked(
        Answer(
            text=pick_output(run.get("outputs")),
            conversation_id=None,
            message_id=None,
            mode=mode,
            usage={"totalTokens": tokens} if isinstance(tokens, int) else None,
            task_id=_text_or_none(task_id),
        )
    )


def _failed_run(run: dict) -> RelayError:
    logger.warning("Dify workflow run did not succeed", extra={"dify_run_status": run.get("status")})
    return RelayError(ErrorKind.UPSTREAM_ERROR, "The assistant failed to answer. Please try again.")


def _checked(answer: Answer) -> Answer:
    if not isinstance(answer.text, str) or not answer.text.strip():
        logger.warning("Dify sent no answer text")
        raise _malformed()
    return answer


_USAGE = {
    "prompt_tokens": "promptTokens",
    "completion_tokens": "completionTokens",
    "total_tokens": "totalTokens",
}


def usage_of(metadata: dict) -> dict | None:
    usage = metadata.get("usage")
    if not isinstance(usage, dict):
        return None
    counts = {ours: usage[theirs] for theirs, ours in _USAGE.items() if isinstance(usage.get(theirs), int)}
    return counts or None


def sources_of(metadata: dict) -> list | None:
    resources = metadata.get("retriever_resources")
    if not isinstance(resources, list):
        return None
    sources = [
        {
            "title": str(item.get("document_name") or item.get("dataset_name") or ""),
            "snippet": str(item.get("content") or "")[:SNIPPET_CHARS],
        }
        for item in resources
        if isinstance(item, dict)
    ]
    return sources or None


def _delta(value) -> str:
    if not isinstance(value, str):
        raise _malformed()
    return value


def _json_object(raw: bytes | str) -> dict | None:
    try:
        data = json.loads(raw)
    except ValueError:
        return None
    return data if isinstance(data, dict) else None


def _text_or_none(value) -> str | None:
    return value if isinstance(value, str) and value else None


def _ms_since(started: float) -> int:
    return round((time.perf_counter() - started) * 1000)
