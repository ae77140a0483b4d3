"""The Service API routes the relay uses, one method each, over the transport and the answer shapes."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import closing
from urllib.parse import urlencode

import urllib3
from aws_lambda_powertools import Logger

from ..deadline import Deadline
from ..errors import ErrorKind, RelayError
from ..keys import KeyProvider
from .answers import PING, Assembly, Shapes
from .protocol import APP_ROUTES, RELAY_MODES, Answer, HistoryPage, Part, Question, Route, Upload, is_uuid
from .refusals import SUGGESTIONS_OFF, checked_id, malformed, misconfigured
from .transport import _JITTER, Transport

logger = Logger(child=True)

STOP_SECONDS = 1.0


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
        self._transport = Transport(
            base_url,
            keys,
            http=http,
            connect_timeout=connect_timeout,
            read_timeout=read_timeout,
            sleep=sleep,
            random=random,
        )
        self._shapes = Shapes(query_input=query_input, answer_output=answer_output)
        self._app_mode: str | None = None
        self._lock = threading.Lock()

    def app_mode(self, deadline: Deadline) -> str:
        """The app's mode from GET /info, asked once per container; a failed lookup is asked again."""
        with self._lock:
            if self._app_mode is None:
                mode = self.info(deadline).get("mode")
                if mode not in APP_ROUTES:
                    raise misconfigured("Dify reported an app mode the relay does not know", dify_mode=mode)
                logger.info("Dify app mode detected", extra={"dify_mode": mode})
                self._app_mode = mode
            return self._app_mode

    def info(self, deadline: Deadline) -> dict:
        """GET /info: the app's name, description and mode."""
        return self._transport.call("GET", "/info", deadline)

    def parameters(self, deadline: Deadline) -> dict:
        """GET /parameters: opening statement, suggested questions, feature switches, the input form."""
        return self._transport.call("GET", "/parameters", deadline)

    def feedback(self, message_id: str, user: str, rating: str | None, content: str | None, deadline) -> None:
        payload = {"rating": rating, "user": user} | ({"content": content} if content else {})
        try:
            self._transport.call("POST", f"/messages/{checked_id(message_id)}/feedbacks", deadline, payload)
        except RelayError as error:
            # Withdrawing a rating the message does not have is 400 invalid_param to Dify; to the widget,
            # no rating is left either way.
            if rating is not None or (error.dify_status, error.dify_code) != (400, "invalid_param"):
                raise

    def suggested(self, message_id: str, user: str, deadline: Deadline) -> list[str]:
        """Follow-up questions; none when the app has the feature switched off."""
        path = f"/messages/{checked_id(message_id)}/suggested?" + urlencode({"user": user})
        try:
            data = self._transport.call("GET", path, deadline).get("data")
        except RelayError as error:
            if (error.dify_status, error.dify_code) in SUGGESTIONS_OFF:
                return []
            raise
        return [q for q in data if isinstance(q, str)] if isinstance(data, list) else []

    def history(
        self, conversation_id: str, user: str, limit: int, deadline: Deadline, before: str | None = None
    ) -> HistoryPage:
        """The conversation's latest `limit` messages (older than message `before`, if given), oldest
        first as Dify sends them; an empty page for a conversation, or a `before`, Dify does not know."""
        query = {"conversation_id": checked_id(conversation_id), "user": user, "limit": limit}
        if before:
            query["first_id"] = checked_id(before)
        try:
            body = self._transport.call("GET", f"/messages?{urlencode(query)}", deadline)
        except RelayError as error:
            if error.dify_status == 404:
                return HistoryPage([], has_more=False)
            raise
        data = body.get("data")
        items = [item for item in data if isinstance(item, dict)] if isinstance(data, list) else []
        return HistoryPage(items, has_more=body.get("has_more") is True)

    def delete_conversation(self, conversation_id: str, user: str, deadline: Deadline) -> None:
        """Deletes a conversation; one Dify no longer has counts as deleted."""
        path = f"/conversations/{checked_id(conversation_id)}"
        try:
            self._transport.call("DELETE", path, deadline, {"user": user})
        except RelayError as error:
            if error.dify_status != 404:
                raise

    def transcribe(self, recording: Upload, user: str, deadline: Deadline) -> str:
        """POST /audio-to-text: what the recording says."""
        text = self._transport.upload("/audio-to-text", recording, {"user": user}, deadline).get("text")
        if not isinstance(text, str):
            raise malformed()
        return text

    def upload_image(self, image: Upload, user: str, deadline: Deadline) -> str:
        """POST /files/upload: the id a turn names the image by, owned by `user`."""
        file_id = self._transport.upload("/files/upload", image, {"user": user}, deadline).get("id")
        if not isinstance(file_id, str) or not is_uuid(file_id):
            raise malformed()
        return file_id

    def speak(self, message_id: str, user: str, deadline: Deadline, *, max_bytes: int) -> tuple[bytes, str]:
        """POST /text-to-audio: the message read aloud, and its audio type. No voice is named, so Dify
        uses the app's and refuses when the app has the feature off."""
        payload = {"message_id": checked_id(message_id), "user": user}
        audio, audio_type = self._transport.fetch("/text-to-audio", payload, deadline, max_bytes)
        if not audio_type.startswith("audio/"):
            # A JSON null: Dify has no such message (or not this user's), or the message has no text.
            raise RelayError(ErrorKind.NOT_FOUND, "Unknown message.")
        return audio, audio_type.split(";")[0]

    def ask(
        self, question: Question, *, app_mode: str, deadline: Deadline, streaming: bool = False
    ) -> Answer:
        route, mode = APP_ROUTES[app_mode], RELAY_MODES[app_mode]
        streaming = streaming or not route.can_block
        payload = self._shapes.payload(route, question, streaming)
        sent_conversation = "conversation_id" in payload
        if not streaming:
            data = self._transport.call("POST", route.path, deadline, payload, sent_conversation)
            return self._shapes.blocking_answer(route, mode, data)
        parts = self.stream(question, app_mode=app_mode, deadline=deadline)
        with closing(parts):
            return next(part for part in parts if isinstance(part, Answer))

    def stream(self, question: Question, *, app_mode: str, deadline: Deadline) -> Iterator[Part | Answer]:
        """The answer as Dify writes it: Started once Dify has taken the turn, then Delta, Replaced and Ping
        parts, and the whole Answer last. Closing the iterator early (the visitor left, or asked to stop)
        stops the Dify run, as does running out of time; errors before Started come before any part."""
        route, mode = APP_ROUTES[app_mode], RELAY_MODES[app_mode]
        payload = self._shapes.payload(route, question, True)
        sent_conversation = "conversation_id" in payload
        assembly, started, finished = Assembly(route, mode, self._shapes), False, False
        events = self._transport.events(route.path, payload, deadline, sent_conversation)
        try:
            for event in events:
                part = assembly.add(event)
                if not started and part is not PING:
                    started = True
                    yield assembly.ids
                if part is not None:
                    yield part
            answer = assembly.answer()
            finished = True
            yield answer
        except GeneratorExit:
            # Stopped while the stream is still open: Dify keeps generating after a disconnect.
            if not finished:
                self.stop(route, assembly.task_id, question.user)
            raise
        except RelayError as error:
            if error.kind is ErrorKind.UPSTREAM_TIMEOUT:
                self.stop(route, assembly.task_id, question.user)
            raise
        finally:
            events.close()

    def stop_run(self, task_id: str, *, app_mode: str, user: str) -> None:
        """Stops the streamed run `task_id` of `user`, when the visitor asks to."""
        self.stop(APP_ROUTES[app_mode], task_id, user)

    def stop(self, route: Route, task_id: str | None, user: str) -> None:
        """Stops a streamed run nobody will read, so it spends no more tokens. Best effort, briefly."""
        if not task_id or not is_uuid(task_id):
            return
        try:
            self._transport.call("POST", route.stop_path(task_id), Deadline(STOP_SECONDS), {"user": user})
            logger.info("stopped the Dify run", extra={"task_id": task_id})
        except RelayError:
            logger.warning("could not stop the Dify run", extra={"task_id": task_id})
