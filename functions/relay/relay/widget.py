"""The widget API v1: what a widget may send, checked before anything reaches Dify."""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field

from .errors import ErrorKind, RelayError

SESSION_ID = re.compile(r"[A-Za-z0-9_-]{8,128}")
MAX_USER_CHARS = 255  # Dify stores `user` in a 255-character column
MAX_INPUT_CHARS = 2000
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


@dataclass(frozen=True)
class ChatRequest:
    message: str
    session_id: str | None
    user: str | None
    inputs: dict = field(default_factory=dict)

    def scope(self) -> dict:
        """What makes two requests the same message."""
        return {
            "sessionId": self.session_id,
            "user": self.user,
            "message": self.message,
            "inputs": self.inputs,
        }


def _invalid(message: str) -> RelayError:
    return RelayError(ErrorKind.INVALID_REQUEST, message)


def parse_chat_request(
    body: str | None,
    *,
    max_message_chars: int,
    allowed_inputs: frozenset[str] = frozenset(),
    max_body_bytes: int = 32_768,
) -> ChatRequest:
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

    message = data.get("message")
    if not isinstance(message, str) or not message.strip():
        raise _invalid("'message' must be a non-blank string.")
    if len(message) > max_message_chars:
        raise RelayError(
            ErrorKind.MESSAGE_TOO_LONG, f"'message' is longer than {max_message_chars} characters."
        )
    if _CONTROL.search(message):
        raise _invalid("'message' must not contain NUL or other control characters.")

    session_id = data.get("sessionId")
    if session_id is not None and not (isinstance(session_id, str) and SESSION_ID.fullmatch(session_id)):
        raise _invalid("'sessionId' must be 8 to 128 letters, digits, '_' or '-'.")

    user = data.get("user")
    if user is not None and not (
        isinstance(user, str) and user.strip() and len(user) <= MAX_USER_CHARS and not _CONTROL.search(user)
    ):
        raise _invalid(f"'user' must be a non-blank string of at most {MAX_USER_CHARS} printable characters.")

    return ChatRequest(
        message=message, session_id=session_id, user=user, inputs=_inputs(data.get("inputs"), allowed_inputs)
    )


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
            ok = len(value) <= MAX_INPUT_CHARS and not _CONTROL.search(value)
        else:
            ok = isinstance(value, bool) or (isinstance(value, int | float) and math.isfinite(value))
        if not ok:
            raise _invalid(
                f"'inputs.{name}' must be a number, a boolean or a string of up to {MAX_INPUT_CHARS} chars."
            )
    return inputs
