"""HTTP to Dify: the key on every call, deadlines on every read, Dify's retry rules, bodies, streams."""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Callable, Iterator

import urllib3
from aws_lambda_powertools import Logger

from .. import sse, telemetry
from ..deadline import Deadline
from ..errors import ErrorKind, RelayError
from ..keys import KeyProvider
from .protocol import Upload, json_object
from .refusals import (
    ENDED_CONVERSATION,
    ConversationNotFound,
    malformed,
    retry_after,
    timeout,
    too_long,
    upstream_error,
)

logger = Logger(child=True)

MAX_ATTEMPTS = 3
BACKOFF_BASE = 0.25  # seconds; doubled on each attempt, fully jittered
MIN_ATTEMPT_SECONDS = 1.0  # no retry starts with less than this left of the deadline
_READ_BYTES = 64 * 1024
_JITTER = secrets.SystemRandom()
PING = {"event": "ping"}  # Dify's keep-alive, which it sends as a named event without data
_Body = tuple[bytes, str]  # a request body and its content type


def _json(payload) -> _Body | None:
    return None if payload is None else (json.dumps(payload).encode(), "application/json")


class Transport:
    def __init__(
        self,
        base_url: str,
        keys: KeyProvider,
        *,
        http: urllib3.PoolManager,
        connect_timeout: float,
        read_timeout: float,
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

    def call(self, method: str, path: str, deadline: Deadline, payload=None, sent_conversation=False) -> dict:
        """Dify's JSON answer to one request ({} for 204)."""
        response = self._open(method, path, _json(payload), deadline, sent_conversation)
        return self._json_answer(response, deadline)

    def upload(self, path: str, upload: Upload, fields: dict[str, str], deadline: Deadline) -> dict:
        """Dify's JSON answer to a multipart form of `fields` and the upload as its `file`."""
        body = urllib3.encode_multipart_formdata(
            {**fields, "file": (upload.name, upload.data, upload.content_type)}
        )
        return self._json_answer(self._open("POST", path, body, deadline, False), deadline)

    def fetch(self, path: str, payload: dict, deadline: Deadline, max_bytes: int) -> tuple[bytes, str]:
        """A binary answer and its content type, refused when longer than `max_bytes`."""
        response = self._open("POST", path, _json(payload), deadline, False)
        content_type = response.headers.get("Content-Type", "")
        data = bytearray()
        try:
            for chunk in self._chunks(response, path, deadline):
                data += chunk
                if len(data) > max_bytes:
                    response.close()
                    raise too_long(max_bytes)
        finally:
            response.release_conn()
        return bytes(data), content_type

    def _json_answer(self, response, deadline: Deadline) -> dict:
        raw = self._read_all(response, deadline)
        if response.status == 204:
            return {}
        data = json_object(raw)
        if data is None:
            raise malformed()
        return data

    def events(self, path: str, payload: dict, deadline: Deadline, sent_conversation: bool) -> Iterator[dict]:
        """The JSON events of a streamed answer, Dify's pings as PING. Errors before the stream opens come
        as plain JSON."""
        response = self._open("POST", path, _json(payload), deadline, sent_conversation)
        try:
            if not response.headers.get("Content-Type", "").startswith("text/event-stream"):
                logger.warning("Dify answered a stream request without a stream")
                raise malformed()
            for event in sse.parse(self._chunks(response, path, deadline)):
                if event.name == "ping":
                    yield PING
                    continue
                if not event.data:
                    continue
                data = json_object(event.data)
                if data is None:
                    raise malformed()
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
            raise timeout()
        sock = getattr(response.connection, "sock", None)
        if sock is not None:
            sock.settimeout(min(remaining, self._read_timeout))

    def _open(self, method: str, path: str, body: _Body | None, deadline: Deadline, sent_conversation: bool):
        """A response with a success status, after Dify's retry rules; its body is still to be read.

        Retried: connection failures, 5xx and 429 too_many_requests, with jittered exponential backoff that
        honours Retry-After, within the deadline and MAX_ATTEMPTS. Never retried as they are: other 4xx.
        A 401 is retried once with the key fetched again (it may have been rotated).
        """
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
            data = json_object(self._read_all(response, deadline))
            if response.status == 401 and not refreshed:
                logger.info("Dify refused the cached key; fetching it again")
                key, refreshed, attempt = self._keys.get(refresh=True), True, attempt - 1
                continue
            error = self._refusal(response.status, data, response.headers, sent_conversation)
            transient = response.status >= 500 or error.kind is ErrorKind.UPSTREAM_BUSY
            if not transient or attempt >= MAX_ATTEMPTS:
                raise error
            self._pause_before_retry(attempt, retry_after(response.headers), deadline, error)

    def _pause_before_retry(self, attempt: int, wait_s: int | None, deadline: Deadline, error) -> None:
        wait = wait_s if wait_s is not None else self._random() * BACKOFF_BASE * 2 ** (attempt - 1)
        if wait + MIN_ATTEMPT_SECONDS > deadline.remaining():
            raise error
        logger.info("retrying Dify", extra={"attempt": attempt + 1, "wait_s": round(wait, 3)})
        telemetry.count("UpstreamRetries")
        self._sleep(wait)

    @staticmethod
    def _refusal(status: int, data: dict | None, headers, sent_conversation: bool) -> RelayError:
        code = str((data or {}).get("code") or "")
        logger.warning("Dify error", extra={"dify_status": status, "dify_code": code})
        if sent_conversation and (status, code) in ENDED_CONVERSATION:
            return ConversationNotFound()
        error = upstream_error(status, data or {}, headers)
        error.dify_status, error.dify_code = status, code
        return error

    def _request(self, method: str, path: str, body: _Body | None, key: str, deadline: Deadline):
        remaining = deadline.remaining()
        if remaining <= 0:
            raise timeout()
        headers, data = {"Authorization": f"Bearer {key}"}, None
        if body is not None:
            data, headers["Content-Type"] = body
        started = time.perf_counter()
        try:
            response = self._http.request(
                method,
                self._base_url + path,
                body=data,
                headers=headers,
                timeout=urllib3.Timeout(
                    connect=min(self._connect_timeout, remaining), read=min(self._read_timeout, remaining)
                ),
                retries=False,
                preload_content=False,
            )
        except urllib3.exceptions.HTTPError as exc:
            raise self._transport_error(exc, path) from None
        elapsed = round((time.perf_counter() - started) * 1000)
        telemetry.upstream_latency(elapsed)
        logger.debug(
            "Dify answered", extra={"dify_path": path, "dify_status": response.status, "dify_ms": elapsed}
        )
        return response

    @staticmethod
    def _transport_error(exc: Exception, path: str) -> RelayError:
        # NewConnectionError subclasses ConnectTimeoutError, but a refused connection is no timeout.
        if isinstance(exc, urllib3.exceptions.TimeoutError) and not isinstance(
            exc, urllib3.exceptions.NewConnectionError
        ):
            logger.warning("Dify did not answer in time", extra={"dify_path": path})
            return timeout()
        logger.warning("Dify unreachable", extra={"dify_path": path, "reason": type(exc).__name__})
        return RelayError(ErrorKind.UPSTREAM_ERROR, "The assistant could not be reached.")
