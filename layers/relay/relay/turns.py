"""A visitor's turn: find the session, ask Dify in the right conversation, remember where it went."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import closing
from dataclasses import dataclass, replace

from aws_lambda_powertools import Logger

from . import telemetry
from .deadline import Deadline
from .dify import (
    CONFIGURED_MODES,
    Answer,
    ConversationNotFound,
    Delta,
    DifyClient,
    Question,
    Replaced,
    Started,
)
from .dynamodb import StoreUnavailable
from .errors import ErrorKind, RelayError
from .limits import RateLimiter
from .sessions import Session, SessionStore, resume
from .widget import ChatRequest

logger = Logger(child=True)


@dataclass(frozen=True)
class TurnResult:
    session_id: str
    answer: Answer

    def to_json(self) -> dict:
        body = {
            "answer": self.answer.text,
            "sessionId": self.session_id,
            "conversationId": self.answer.conversation_id,
            "messageId": self.answer.message_id,
            "mode": self.answer.mode,
        }
        if self.answer.usage:
            body["usage"] = self.answer.usage
        if self.answer.sources:
            body["sources"] = self.answer.sources
        return body


@dataclass(frozen=True)
class TurnEvent:
    """One event of a streamed turn: its name and its JSON data (None for a keep-alive)."""

    name: str
    data: dict | None


class TurnService:
    def __init__(
        self,
        dify: DifyClient,
        sessions: SessionStore,
        *,
        session_ttl_seconds: int,
        app_mode: str = "auto",
        upstream_mode: str = "auto",
        default_inputs: dict | None = None,
        limiter: RateLimiter | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._limiter = limiter
        self._dify = dify
        self._sessions = sessions
        self._ttl = session_ttl_seconds
        self._app_mode = CONFIGURED_MODES.get(app_mode)  # None: ask Dify
        self._streaming = upstream_mode == "streaming"  # otherwise blocking wherever Dify allows it
        self._default_inputs = default_inputs or {}
        self._clock = clock

    def take_turn(
        self, request: ChatRequest, *, deadline: Deadline, client_ip: str | None = None
    ) -> TurnResult:
        session, question, app_mode, now = self._begin(request, deadline, client_ip)
        try:
            answer = self._dify.ask(question, app_mode=app_mode, deadline=deadline, streaming=self._streaming)
        except ConversationNotFound:
            question = self._forget_conversation(session, question)
            answer = self._dify.ask(question, app_mode=app_mode, deadline=deadline, streaming=self._streaming)
        self._remember(session, answer.conversation_id, now)
        return self._answered(session, request, answer)

    def stream_turn(
        self, request: ChatRequest, *, deadline: Deadline, client_ip: str | None = None
    ) -> Iterator[TurnEvent]:
        """The turn as events while Dify writes it: `start`, then `delta`, `replace` and `ping`, then
        `sources` (if any) and `end` with the same body /v1/chat answers. A refusal before `start` raises
        on the first next(); closing the events early stops the Dify run."""
        session, question, app_mode, now = self._begin(request, deadline, client_ip)
        parts = self._dify.stream(question, app_mode=app_mode, deadline=deadline)
        try:
            first = next(parts)
        except ConversationNotFound:
            question = self._forget_conversation(session, question)
            parts = self._dify.stream(question, app_mode=app_mode, deadline=deadline)
            first = next(parts)
        with closing(parts):
            part = first
            while True:
                if isinstance(part, Answer):
                    result = self._answered(session, request, part)
                    if part.sources:
                        yield TurnEvent("sources", {"sources": part.sources})
                    yield TurnEvent("end", result.to_json())
                    return
                yield self._event(session, part, now)
                part = next(parts)

    def _event(self, session: Session, part, now: float) -> TurnEvent:
        if isinstance(part, Started):
            # Remembered before the answer is done: a visitor who leaves mid-answer continues it next turn.
            self._remember(session, part.conversation_id, now)
            return TurnEvent(
                "start",
                {
                    "sessionId": session.session_id,
                    "conversationId": part.conversation_id,
                    "messageId": part.message_id,
                    "taskId": part.task_id,
                },
            )
        if isinstance(part, Delta):
            return TurnEvent("delta", {"text": part.text})
        if isinstance(part, Replaced):
            return TurnEvent("replace", {"text": part.text})
        return TurnEvent("ping", None)  # a Ping: Dify is still working

    def stop_turn(self, session_id: str, task_id: str, *, deadline: Deadline) -> None:
        """Stops a streamed answer the visitor no longer wants (Dify stops only its own user's runs)."""
        session = self._session_for(ChatRequest(message="", session_id=session_id, user=None), self._clock())
        app_mode = self._app_mode or self._dify.app_mode(deadline)
        self._dify.stop_run(task_id, app_mode=app_mode, user=session.user)

    def _begin(
        self, request: ChatRequest, deadline: Deadline, client_ip: str | None
    ) -> tuple[Session, Question, str, float]:
        now = self._clock()
        session = self._session_for(request, now)
        if not session.image_ids.issuperset(request.image_ids):
            # As with a message id, another session's file does not exist for this one.
            raise RelayError(ErrorKind.NOT_FOUND, "'files' names an image this session did not upload.")
        if self._limiter is not None:
            self._limiter.spend(session_id=session.session_id, client_ip=client_ip, now=now)
        app_mode = self._app_mode or self._dify.app_mode(deadline)
        question = Question(
            query=request.message,
            user=session.user,
            conversation_id=session.conversation_id,
            inputs={**self._default_inputs, **request.inputs},
            image_ids=request.image_ids,
        )
        return session, question, app_mode, now

    def _forget_conversation(self, session: Session, question: Question) -> Question:
        logger.info("Dify forgot the conversation; starting anew", extra={"session": session.session_id})
        telemetry.count("ConversationResets")
        return replace(question, conversation_id=None)

    def _answered(self, session: Session, request: ChatRequest, answer: Answer) -> TurnResult:
        telemetry.count("Answers")
        logger.info(
            "turn answered",
            extra={
                "session": session.session_id,
                "message_chars": len(request.message),
                "answer_chars": len(answer.text),
            },
        )
        return TurnResult(session_id=session.session_id, answer=answer)

    def _session_for(self, request: ChatRequest, now: float) -> Session:
        return resume(self._sessions, request.session_id, request.user, now)

    def _remember(self, session: Session, conversation_id: str | None, now: float) -> None:
        # A continued turn writes only when something changed or half the idle window has passed.
        unchanged = conversation_id == session.conversation_id
        if unchanged and session.expires_at - now > self._ttl / 2:
            return
        renewed = replace(session, conversation_id=conversation_id, expires_at=int(now) + self._ttl)
        try:
            self._sessions.save(renewed, new=session.expires_at == 0)
        except StoreUnavailable as error:
            telemetry.degraded("session not saved; the next turn starts a new conversation", error)


def replayed(body: dict) -> Iterator[TurnEvent]:
    """A recorded streamed turn (its `end` body) told again as the events of a stream."""
    start = {name: body.get(name) for name in ("sessionId", "conversationId", "messageId")}
    yield TurnEvent("start", start | {"taskId": None})
    if body.get("answer"):
        yield TurnEvent("delta", {"text": body["answer"]})
    if body.get("sources"):
        yield TurnEvent("sources", {"sources": body["sources"]})
    yield TurnEvent("end", body)
