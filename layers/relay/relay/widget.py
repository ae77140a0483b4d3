"""The widget API v1: what a widget may send, checked before anything reaches Dify."""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field

from .errors import ErrorKind, RelayError

SESSION_ID = re.compile(r"[A-Za-z0-9_-]{8,128}")
UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
DEFAULT_MAX_MESSAGE_CHARS = 4000
MAX_FEEDBACK_CHARS = 1000
MAX_HISTORY = 100
MAX_USER_CHARS = 255  # Dify stores `user` in a 255-character column
MAX_INPUT_CHARS = 2000
MAX_TURN_FILES = 10  # Dify checks the app's own, lower number_limits
CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


@dataclass(frozen=True)
class ChatRequest:
    message: str
    session_id: str | None
    user: str | None
    inputs: dict = field(default_factory=dict)
    image_ids: tuple[str, ...] = ()  # fileIds from /v1/files

    def scope(self) -> dict:
        """What makes two requests the same message."""
        scope = {
            "sessionId": self.session_id,
            "user": self.user,
            "message": self.message,
            "inputs": self.inputs,
        }
        return scope | ({"files": list(self.image_ids)} if self.image_ids else {})


def _invalid(message: str) -> RelayError:
    return RelayError(ErrorKind.INVALID_REQUEST, message)


def json_body(body: str | None, max_body_bytes: int, fields: tuple[str, ...]) -> dict:
    """The request's JSON object, holding no field but `fields`."""
    if body and len(body.encode("utf-8", "surrogatepass")) > max_body_bytes:
        raise RelayError(
            ErrorKind.REQUEST_TOO_LARGE, f"The request body is larger than {max_body_bytes} bytes."
        )
    try:
        data = json.loads(body or "")
    except ValueError:
        raise _invalid("The request body must be a JSON object.") from None
    if not isinstance(data, dict):
        raise _invalid("The request body must be a JSON object.")
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise _invalid(f"'{unknown[0][:64]}' is not a field of this request; it takes {', '.join(fields)}.")
    return data


def session_id_of(value, *, required: bool = True) -> str | None:
    if value is None and not required:
        return None
    if not (isinstance(value, str) and SESSION_ID.fullmatch(value)):
        raise _invalid("'sessionId' must be 8 to 128 letters, digits, '_' or '-'.")
    return value


def message_id_of(value, field: str = "messageId") -> str:
    if not (isinstance(value, str) and UUID.fullmatch(value)):
        raise _invalid(f"'{field}' must be a message id the relay returned.")
    return value


def parse_chat_request(
    body: str | None,
    *,
    max_message_chars: int,
    allowed_inputs: frozenset[str] = frozenset(),
    max_body_bytes: int = 32_768,
) -> ChatRequest:
    data = json_body(body, max_body_bytes, ("message", "sessionId", "user", "inputs", "files"))

    message = data.get("message")
    if not isinstance(message, str) or not message.strip():
        raise _invalid("'message' must be a non-blank string.")
    if len(message) > max_message_chars:
        raise RelayError(
            ErrorKind.MESSAGE_TOO_LONG, f"'message' is longer than {max_message_chars} characters."
        )
    if CONTROL.search(message):
        raise _invalid("'message' must not contain NUL or other control characters.")

    session_id = session_id_of(data.get("sessionId"), required=False)

    user = data.get("user")
    if user is not None and not (
        isinstance(user, str) and user.strip() and len(user) <= MAX_USER_CHARS and not CONTROL.search(user)
    ):
        raise _invalid(f"'user' must be a non-blank string of at most {MAX_USER_CHARS} printable characters.")

    return ChatRequest(
        message=message,
        session_id=session_id,
        user=user,
        inputs=_inputs(data.get("inputs"), allowed_inputs),
        image_ids=_file_ids(data.get("files")),
    )


def _file_ids(files) -> tuple[str, ...]:
    if files is None:
        return ()
    if not (
        isinstance(files, list)
        and len(files) <= MAX_TURN_FILES
        and all(isinstance(f, str) and UUID.fullmatch(f) for f in files)
    ):
        raise _invalid(f"'files' must be a list of at most {MAX_TURN_FILES} fileIds from /v1/files.")
    return tuple(dict.fromkeys(files))


def _inputs(inputs, allowed: frozenset[str]) -> dict:
    """App variables a widget may set: only the names the site owner allowed, only plain values."""
    if inputs is None:
        return {}
    if not isinstance(inputs, dict):
        raise _invalid("'inputs' must be a JSON object.")
    for name, value in inputs.items():
        if name not in allowed:
            raise _invalid(f"'inputs.{name[:64]}' is not an input this assistant accepts.")
        if isinstance(value, str):
            ok = len(value) <= MAX_INPUT_CHARS and not CONTROL.search(value)
        else:
            ok = isinstance(value, bool) or (isinstance(value, int | float) and math.isfinite(value))
        if not ok:
            raise _invalid(
                f"'inputs.{name}' must be a number, a boolean or a string of up to {MAX_INPUT_CHARS} chars."
            )
    return inputs


@dataclass(frozen=True)
class FeedbackRequest:
    session_id: str
    message_id: str
    rating: str | None
    content: str | None


def parse_feedback(body: str | None, *, max_body_bytes: int) -> FeedbackRequest:
    data = json_body(body, max_body_bytes, ("sessionId", "messageId", "rating", "content"))
    if "rating" not in data or data["rating"] not in ("like", "dislike", None):
        raise _invalid('\'rating\' must be "like", "dislike" or null (to withdraw a rating).')
    content = data.get("content")
    if content is not None and not (
        isinstance(content, str) and len(content) <= MAX_FEEDBACK_CHARS and not CONTROL.search(content)
    ):
        raise _invalid(f"'content' must be a string of at most {MAX_FEEDBACK_CHARS} characters.")
    return FeedbackRequest(
        session_id=session_id_of(data.get("sessionId")),
        message_id=message_id_of(data.get("messageId")),
        rating=data["rating"],
        content=content or None,
    )


def history_before_of(value: str | None) -> str | None:
    return None if value is None else message_id_of(value, "before")


def history_limit_of(value: str | None) -> int:
    if value is None:
        return 20
    if not value.isdigit() or not 1 <= int(value) <= MAX_HISTORY:
        raise _invalid(f"'limit' must be a whole number from 1 to {MAX_HISTORY}.")
    return int(value)
