"""A visitor's turn: find the session, ask Dify in the right conversation, remember where it went."""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, replace

from aws_lambda_powertools import Logger

from . import telemetry
from .deadline import Deadline
from .dify import CONFIGURED_MODES, Answer, ConversationNotFound, DifyClient, Question
from .dynamodb import StoreUnavailable
from .limits import RateLimiter
from .sessions import Session, SessionStore
from .widget import ChatRequest

logger = Logger(child=True)


def new_session_id() -> str:
    return secrets.token_urlsafe(24)  # 192 random bits, URL-safe


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
        now = self._clock()
        session = self._session_for(request, now)
        if self._limiter is not None:
            try:
                self._limiter.spend(session_id=session.session_id, client_ip=client_ip, now=now)
            except StoreUnavailable as error:
                # Gateway throttling and reserved concurrency still cap spending while counters are down.
                _degraded("rate limits not checked", error)
        app_mode = self._app_mode or self._dify.app_mode(deadline)
        question = Question(
            query=request.message,
            user=session.user,
            conversation_id=session.conversation_id,
            inputs={**self._default_inputs, **request.inputs},
        )
        try:
            answer = self._dify.ask(question, app_mode=app_mode, deadline=deadline, streaming=self._streaming)
        except ConversationNotFound:
            logger.info("Dify forgot the conversation; starting anew", extra={"session": session.session_id})
            telemetry.count("ConversationResets")
            question = replace(question, conversation_id=None)
            answer = self._dify.ask(question, app_mode=app_mode, deadline=deadline, streaming=self._streaming)
        telemetry.count("Answers")
        self._remember(session, answer, now)
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
        stored = None
        if request.session_id:
            try:
                stored = self._sessions.load(request.session_id, now)
            except StoreUnavailable as error:
                _degraded("session not loaded; answering as a new conversation", error)
        if stored is not None:
            return stored
        session_id = request.session_id or new_session_id()
        # expires_at 0 marks a session not saved yet.
        return Session(
            session_id=session_id, user=request.user or session_id, conversation_id=None, expires_at=0
        )

    def _remember(self, session: Session, answer: Answer, now: float) -> None:
        # A continued turn writes only when something changed or half the idle window has passed.
        unchanged = answer.conversation_id == session.conversation_id
        if unchanged and session.expires_at - now > self._ttl / 2:
            return
        renewed = replace(session, conversation_id=answer.conversation_id, expires_at=int(now) + self._ttl)
        try:
            self._sessions.save(renewed)
        except StoreUnavailable as error:
            _degraded("session not saved; the next turn starts a new conversation", error)


def _degraded(what: str, error: StoreUnavailable) -> None:
    logger.warning(f"DynamoDB unavailable: {what}", extra={"reason": str(error)})
    telemetry.count("StoreDegradations")
