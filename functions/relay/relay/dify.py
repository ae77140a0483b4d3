"""Everything about Dify's Service API: routes, request shapes, blocking and streamed answers, error codes."""

from __future__ import annotations

import json
import math
import secrets
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import Enum
from urllib.parse import urlencode

import urllib3
from aws_lambda_powertools import Logger

from . import sse, telemetry
from .deadline import Deadline
from .errors import ErrorKind, RelayError
from .keys import KeyProvider

logger = Logger(child=True)

DEFAULT_RETRY_AFTER = 2
SNIPPET_CHARS = 300
MAX_ATTEMPTS = 3
BACKOFF_BASE = 0.25  # seconds; doubled on each attempt, fully jittered
MIN_ATTEMPT_SECONDS = 1.0  # no retry starts with less than this left of the deadline
STOP_SECONDS = 1.0
_READ_BYTES = 64 * 1024
_JITTER = secrets.SystemRandom()


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


@dataclass(frozen=True)
class HistoryPage:
    """Messages of a conversation, oldest first, and whether older ones remain."""

    messages: list[dict]
    has_more: bool


class ConversationNotFound(RelayError):
    """Dify will not continue the conversation id the relay sent (unknown, another user's, or ended)."""

    def __init__(self) -> None:
        super().__init__(ErrorKind.UPSTREAM_REJECTED, "The conversation could not be continued.")


def _checked_id(value: str) -> str:
    """Ids that go into a Dify URL are UUIDs, never a path a visitor could steer."""
    if not is_uuid(value):
        raise RelayError(ErrorKind.INVALID_REQUEST, "Unknown message or conversation id.")
    return value


def is_uuid(value: str) -> bool:
    try:
        return str(uuid.UUID(value)) == value.lower()
    except (ValueError, AttributeError, TypeError):
        return False


_QUOTA_CODES = {"provider_quota_exceeded", "rate_limit_error"}
_TRANSIENT_CODES = {"completion_request_error", "internal_server_error"}
_ENDED_CONVERSATION = {(404, "not_found"), (400, "conversation_completed")}
_MALFORMED = "The assistant sent an answer the relay could not read."


# Follow-up questions switched off: 403 in current Dify, 400 bad_request in older releases.
_SUGGESTIONS_OFF = {(403, "app_suggested_questions_after_answer_disabled"), (400, "bad_request")}


def upstream_error(status: int, body: dict, headers) -> RelayError:
    """Maps a Dify error response to what the widget is told; Dify's own message stays in the logs."""
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
    return RelayError(ErrorKind.UPSTREAM_REJECTED, "The assistant is not available for this request.")


def retry_after(headers) -> int | None:
    """Dify's Retry-After in whole seconds, if it sent a usable one."""
    try:
        return max(1, math.ceil(float(headers.get("Retry-After", ""))))
    except ValueError:
        return None


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
        sleep: Callable[[float], None] = time.sleep,
        random: Callable[[], float] = _JITTER.random,
    ) -> None:
        self._base_url = base_url.rstrip("/")
        self._keys = keys
        self._http = http
        self._connect_timeout = connect_timeout
        self._read_timeout = read_timeout
        self._sleep = sleep
        self._random = random
        self._query_input = query_input
        self._answer_output = answer_output
        self._app_mode: str | None = None
        self._lock = threading.Lock()

    def app_mode(self, deadline: Deadline) -> str:
        """The app's mode from GET /info, asked once per container; a failed lookup is asked again."""
        with self._lock:
            if self._app_mode is None:
                mode = self.info(deadline).get("mode")
                if mode not in APP_ROUTES:
                    raise _misconfigured("Dify reported an app mode the relay does not know", dify_mode=mode)
                logger.info("Dify app mode detected", extra={"dify_mode": mode})
                self._app_mode = mode
            return self._app_mode

    def info(self, deadline: Deadline) -> dict:
        """GET /info: the app's name, description and mode."""
        return self._call("GET", "/info", deadline)

    def parameters(self, deadline: Deadline) -> dict:
        """GET /parameters: opening statement, suggested questions, feature switches, the input form."""
        return self._call("GET", "/parameters", deadline)

    def feedback(self, message_id: str, user: str, rating: str | None, content: str | None, deadline) -> None:
        payload = {"rating": rating, "user": user} | ({"content": content} if content else {})
        try:
            self._call("POST", f"/messages/{_checked_id(message_id)}/feedbacks", deadline, payload)
        except RelayError as error:
            # Withdrawing a rating the message does not have is 400 invalid_param to Dify; to the widget,
            # no rating is left either way.
            if rating is not None or (error.dify_status, error.dify_code) != (400, "invalid_param"):
                raise

    def suggested(self, message_id: str, user: str, deadline: Deadline) -> list[str]:
        """Follow-up questions; none when the app has the feature switched off."""
        path = f"/messages/{_checked_id(message_id)}/suggested?" + urlencode({"user": user})
        try:
            data = self._call("GET", path, deadline).get("data")
        except RelayError as error:
            if (error.dify_status, error.dify_code) in _SUGGESTIONS_OFF:
                return []
            raise
        return [q for q in data if isinstance(q, str)] if isinstance(data, list) else []

    def history(
        self, conversation_id: str, user: str, limit: int, deadline: Deadline, before: str | None = None
    ) -> HistoryPage:
        """The conversation's latest `limit` messages (older than message `before`, if given), oldest
        first as Dify sends them; an empty page for a conversation, or a `before`, Dify does not know."""
        query = {"conversation_id": _checked_id(conversation_id), "user": user, "limit": limit}
        if before:
            query["first_id"] = _checked_id(before)
        try:
            body = self._call("GET", f"/messages?{urlencode(query)}", deadline)
        except RelayError as error:
            if error.dify_status == 404:
                return HistoryPage([], has_more=False)
            raise
        data = body.get("data")
        items = [item for item in data if isinstance(item, dict)] if isinstance(data, list) else []
        return HistoryPage(items, has_more=body.get("has_more") is True)

    def delete_conversation(self, conversation_id: str, user: str, deadline: Deadline) -> None:
        """Deletes a conversation; one Dify no longer has counts as deleted."""
        try:
            self._call("DELETE", f"/conversations/{_checked_id(conversation_id)}", deadline, {"user": user})
        except RelayError as error:
            if error.dify_status != 404:
                raise

    def ask(
        self, question: Question, *, app_mode: str, deadline: Deadline, streaming: bool = False
    ) -> Answer:
        route, mode = APP_ROUTES[app_mode], RELAY_MODES[app_mode]
        streaming = streaming or not route.can_block
        payload = self._payload(route, question, streaming)
        sent_conversation = "conversation_id" in payload
        if not streaming:
            return self._blocking_answer(
                route, mode, self._call("POST", route.path, deadline, payload, sent_conversation)
            )
        assembly = _Assembly(route, mode, self._pick_output)
        try:
            for event in self._stream(route.path, payload, deadline, sent_conversation):
                assembly.add(event)
        except RelayError as error:
            if error.kind is ErrorKind.UPSTREAM_TIMEOUT:
                self.stop(route, assembly.task_id, question.user)
            raise
        return assembly.answer()

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

    def _call(
        self, method: str, path: str, deadline: Deadline, payload=None, sent_conversation=False
    ) -> dict:
        response = self._open(method, path, payload, deadline, sent_conversation)
        raw = self._read_all(response, deadline)
        if response.status == 204:
            return {}
        data = _json_object(raw)
        if data is None:
            raise _malformed()
        return data

    def _stream(self, path: str, payload: dict, deadline: Deadline, sent_conversation: bool):
        """The JSON events of a streamed answer. Errors before the stream opens come as plain JSON."""
        response = self._open("POST", path, payload, deadline, sent_conversation)
        try:
            if not response.headers.get("Content-Type", "").startswith("text/event-stream"):
                logger.warning("Dify answered a stream request without a stream")
                raise _malformed()
            for event in sse.parse(self._chunks(response, path, deadline)):
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

    def _chunks(self, response, path: str, deadline: Deadline):
        """The body as it arrives; each read may wait only for what is left of the deadline."""
        try:
            while True:
                self._bound_next_read(response, deadline)
                chunk = response.read1(_READ_BYTES)
                if not chunk:
                    return
                yield chunk
        except urllib3.exceptions.HTTPError as exc:
            raise self._transport_error(exc, path) from None

    def _read_all(self, response, deadline: Deadline) -> bytes:
        try:
            return b"".join(self._chunks(response, "", deadline))
        finally:
            response.release_conn()

    def _bound_next_read(self, response, deadline: Deadline) -> None:
        remaining = deadline.remaining()
        if remaining <= 0:
            raise _timeout()
        sock = getattr(response.connection, "sock", None)
        if sock is not None:
            sock.settimeout(min(remaining, self._read_timeout))

    def _open(self, method: str, path: str, payload, deadline: Deadline, sent_conversation: bool):
        """A response with a success status, after Dify's retry rules; its body is still to be read.

        Retried: connection failures, 5xx and 429 too_many_requests, with jittered exponential backoff that
        honours Retry-After, within the deadline and MAX_ATTEMPTS. Never retried as they are: other 4xx.
        A 401 is retried once with the key fetched again (it may have been rotated).
        """
        body = json.dumps(payload).encode() if payload is not None else None
        key, refreshed, attempt = self._keys.get(), False, 0
        while True:
            attempt += 1
            try:
                response = self._request(method, path, body, key, deadline)
            except RelayError as error:
                if error.kind is ErrorKind.UPSTREAM_TIMEOUT or attempt >= MAX_ATTEMPTS:
                    raise
                self._pause_before_retry(attempt, None, deadline, error)
                continue
            if response.status < 400:
                return response
            data = _json_object(self._read_all(response, deadline))
            if response.status == 401 and not refreshed:
                logger.info("Dify refused the cached key; fetching it again")
                key, refreshed, attempt = self._keys.get(refresh=True), True, attempt - 1
                continue
            error = self._refusal(response.status, data, response.headers, sent_conversation)
            transient = response.status >= 500 or error.kind is ErrorKind.UPSTREAM_BUSY
            if not transient or attempt >= MAX_ATTEMPTS:
                raise error
            self._pause_before_retry(attempt, retry_after(response.headers), deadline, error)

    def _pause_before_retry(self, attempt: int, retry_after: int | None, deadline: Deadline, error) -> None:
        wait = retry_after if retry_after is not None else self._random() * BACKOFF_BASE * 2 ** (attempt - 1)
        if wait + MIN_ATTEMPT_SECONDS > deadline.remaining():
            raise error
        logger.info("retrying Dify", extra={"attempt": attempt + 1, "wait_s": round(wait, 3)})
        telemetry.count("UpstreamRetries")
        self._sleep(wait)

    def _refusal(self, status: int, data: dict | None, headers, sent_conversation: bool) -> RelayError:
        code = str((data or {}).get("code") or "")
        logger.warning("Dify error", extra={"dify_status": status, "dify_code": code})
        if sent_conversation and (status, code) in _ENDED_CONVERSATION:
            return ConversationNotFound()
        error = upstream_error(status, data or {}, headers)
        error.dify_status, error.dify_code = status, code
        return error

    def _request(self, method: str, path: str, body: bytes | None, key: str, deadline: Deadline):
        remaining = deadline.remaining()
        if remaining <= 0:
            raise _timeout()
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
                timeout=urllib3.Timeout(
                    connect=min(self._connect_timeout, remaining), read=min(self._read_timeout, remaining)
                ),
                retries=False,
                preload_content=False,
            )
        except urllib3.exceptions.HTTPError as exc:
            raise self._transport_error(exc, path) from None
        elapsed = _ms_since(started)
        telemetry.upstream_latency(elapsed)
        logger.debug(
            "Dify answered", extra={"dify_path": path, "dify_status": response.status, "dify_ms": elapsed}
        )
        return response

    def stop(self, route: Route, task_id: str | None, user: str) -> None:
        """Stops a streamed run nobody will read, so it spends no more tokens. Best effort, briefly."""
        if not task_id or not is_uuid(task_id):
            return
        path = (
            f"/workflows/tasks/{task_id}/stop" if route is Route.WORKFLOW else f"{route.path}/{task_id}/stop"
        )
        try:
            self._call("POST", path, Deadline(STOP_SECONDS), {"user": user})
            logger.info("stopped the Dify run", extra={"task_id": task_id})
        except RelayError:
            logger.warning("could not stop the Dify run", extra={"task_id": task_id})

    @staticmethod
    def _transport_error(exc: Exception, path: str) -> RelayError:
        # NewConnectionError subclasses ConnectTimeoutError, but a refused connection is no timeout.
        if isinstance(exc, urllib3.exceptions.TimeoutError) and not isinstance(
            exc, urllib3.exceptions.NewConnectionError
        ):
            logger.warning("Dify did not answer in time", extra={"dify_path": path})
            return _timeout()
        logger.warning("Dify unreachable", extra={"dify_path": path, "reason": type(exc).__name__})
        return RelayError(ErrorKind.UPSTREAM_ERROR, "The assistant could not be reached.")


def _timeout() -> RelayError:
    telemetry.count("UpstreamTimeouts")
    return RelayError(ErrorKind.UPSTREAM_TIMEOUT, "The assistant took too long to answer.")


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
        elif kind == "workflow_finished":
            run = event.get("data") if isinstance(event.get("data"), dict) else {}
            if self._route is Route.WORKFLOW:
                self._ended = True
                self._answer = _workflow_answer(run, self._mode, self._ids["task_id"], self._pick_output)
            # A chatflow's answer ends with message_end, which Dify sends after the workflow's end (older
            # streams before it); a run that did not succeed is an error while its answer is still open.
            elif not self._ended and run.get("status") != "succeeded":
                raise _failed_run(run)

    @property
    def task_id(self) -> str | None:
        return self._ids["task_id"]

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
