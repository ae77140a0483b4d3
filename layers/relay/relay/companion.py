"""What a widget needs besides turns: the app's welcome, feedback, follow-up questions, the conversation
back after a reload, and erasing it. Every call is resolved through the session record: a widget never names
a Dify conversation, and a session reaches only its own messages."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from contextlib import contextmanager

from .deadline import Deadline
from .dify import CONFIGURED_MODES, RELAY_MODES, DifyClient
from .errors import ErrorKind, RelayError
from .sessions import Session, SessionStore
from .uploads import IMAGES, MB
from .widget import MAX_TURN_FILES

# Dify's input form item types → the relay's names for them.
_INPUT_TYPES = {"text-input": "text", "paragraph": "paragraph", "select": "select", "number": "number"}


class CompanionService:
    def __init__(
        self,
        dify: DifyClient,
        sessions: SessionStore,
        *,
        app_mode: str = "auto",
        allowed_inputs: frozenset[str] = frozenset(),
        config_ttl_seconds: int = 300,
        max_upload_bytes: int = 4 * MB,
        branding: dict | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._max_upload = max_upload_bytes
        self._branding = branding or {}
        self._dify = dify
        self._sessions = sessions
        self._app_mode = CONFIGURED_MODES.get(app_mode)
        self._allowed_inputs = allowed_inputs
        self._config_ttl = config_ttl_seconds
        self._clock = clock
        self._config: tuple[float, dict] | None = None
        self._lock = threading.Lock()

    def config(self, deadline: Deadline) -> dict:
        """The app's welcome and features, from Dify's /info and /parameters, cached for a while."""
        now = self._clock()
        with self._lock:
            if self._config is None or now - self._config[0] >= self._config_ttl:
                self._config = (now, self._fetch_config(deadline))
            return self._config[1]

    def _fetch_config(self, deadline: Deadline) -> dict:
        info, params = self._dify.info(deadline), self._dify.parameters(deadline)
        mode = RELAY_MODES.get(self._app_mode or str(info.get("mode")), "chat")
        follow_ups = params.get("suggested_questions_after_answer")
        return {
            "name": str(info.get("name") or ""),
            "description": str(info.get("description") or ""),
            "mode": mode,
            "openingStatement": str(params.get("opening_statement") or ""),
            "starterQuestions": [
                q for q in params.get("suggested_questions") or [] if isinstance(q, str) and q
            ],
            "features": {
                "feedback": mode != "workflow",  # workflow runs have no messages to rate
                "suggestions": mode not in ("completion", "workflow")
                and bool(isinstance(follow_ups, dict) and follow_ups.get("enabled")),
                "speechToText": _enabled(params, "speech_to_text"),
                # An answer is read aloud once the relay finds it in the session's conversation.
                "textToSpeech": mode not in ("completion", "workflow") and _enabled(params, "text_to_speech"),
                "images": self._images(params),
            },
            "inputs": [
                field
                for field in map(_input_field_for(self._allowed_inputs), params.get("user_input_form") or [])
                if field
            ],
            "branding": self._branding,
        }

    def _images(self, params: dict) -> dict | None:
        """What the widget may attach: images uploaded from the visitor's device, if the app takes them."""
        upload = params.get("file_upload") if isinstance(params.get("file_upload"), dict) else {}
        legacy = upload.get("image") if isinstance(upload.get("image"), dict) else {}
        if (
            "enabled" in upload
        ):  # saved by Dify 0.10 and later, which read these fields (and drop `files` when off)
            allowed = upload["enabled"] is True and "image" in _list(upload.get("allowed_file_types"))
            methods, limit = _list(upload.get("allowed_file_upload_methods")), upload.get("number_limits")
        else:
            allowed = legacy.get("enabled") is True
            methods, limit = _list(legacy.get("transfer_methods")), legacy.get("number_limits")
        if not allowed or "local_file" not in methods:
            return None
        system = params.get("system_parameters") if isinstance(params.get("system_parameters"), dict) else {}
        dify_mb = system.get("image_file_size_limit")
        dify_bytes = int(dify_mb * MB) if isinstance(dify_mb, int | float) and dify_mb > 0 else 10 * MB
        return {
            "maxFiles": max(1, min(limit, MAX_TURN_FILES)) if isinstance(limit, int) else 1,
            "maxBytes": min(dify_bytes, self._max_upload),
            "types": [image.mime_type for image in IMAGES],
        }

    def feedback(self, session_id: str, message_id: str, rating: str | None, content: str | None, deadline):
        session = self._known(session_id)
        with _unknown_message_as_not_found():
            self._dify.feedback(message_id, session.user, rating, content, deadline)

    def suggested(self, session_id: str, message_id: str, deadline: Deadline) -> list[str]:
        session = self._known(session_id)
        with _unknown_message_as_not_found():
            return self._dify.suggested(message_id, session.user, deadline)

    def history(self, session_id: str, limit: int, before: str | None, deadline: Deadline) -> dict:
        """The session's latest `limit` turns before turn `before` (a messageId), oldest first."""
        session = self._sessions.load(session_id, self._clock())
        if session is None or not session.conversation_id:
            return {"turns": [], "hasMore": False}
        page = self._dify.history(session.conversation_id, session.user, limit, deadline, before=before)
        turns = [
            {
                "question": str(item.get("query") or ""),
                "answer": str(item.get("answer") or ""),
                "messageId": item.get("id"),
                "createdAt": item.get("created_at"),
            }
            for item in page.messages
        ]
        return {"turns": turns, "hasMore": page.has_more}

    def erase(self, session_id: str, deadline: Deadline) -> None:
        """Deletes the Dify conversation and the session record; erasing an unknown session is a no-op."""
        session = self._sessions.load(session_id, self._clock())
        if session is None:
            return
        if session.conversation_id:
            self._dify.delete_conversation(session.conversation_id, session.user, deadline)
        self._sessions.delete(session_id)

    def _known(self, session_id: str) -> Session:
        session = self._sessions.load(session_id, self._clock())
        if session is None:
            raise RelayError(ErrorKind.NOT_FOUND, "Unknown session.")
        return session


def _enabled(params: dict, feature: str) -> bool:
    setting = params.get(feature)
    return isinstance(setting, dict) and setting.get("enabled") is True


def _list(value) -> list:
    return value if isinstance(value, list) else []


def _input_field_for(allowed: frozenset[str]):
    """Describes a Dify input form item a widget may set (one of ALLOWED_INPUTS); None for the others."""

    def describe(item) -> dict | None:
        if not isinstance(item, dict) or len(item) != 1:
            return None
        kind, spec = next(iter(item.items()))
        if kind not in _INPUT_TYPES or not isinstance(spec, dict) or spec.get("variable") not in allowed:
            return None
        field = {
            "variable": spec["variable"],
            "label": str(spec.get("label") or spec["variable"]),
            "type": _INPUT_TYPES[kind],
            "required": bool(spec.get("required")),
        }
        if isinstance(spec.get("max_length"), int):
            field["maxLength"] = spec["max_length"]
        if kind == "select" and isinstance(spec.get("options"), list):
            field["options"] = [str(option) for option in spec["options"]]
        return field

    return describe


@contextmanager
def _unknown_message_as_not_found():
    """Dify answers 404 for a message that is not this session's user's: to the widget, it does not exist."""
    try:
        yield
    except RelayError as error:
        if error.dify_status == 404:
            raise RelayError(ErrorKind.NOT_FOUND, "Unknown message.") from None
        raise
