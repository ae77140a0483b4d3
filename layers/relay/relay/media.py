"""A visitor's voice and images: a recording to text, an image for the next turn, an answer read aloud.

Each route is open only where the Dify app has the feature on (its /parameters, as /v1/config reports them),
spends from the same budgets as a turn, and files the call under the session's Dify user.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from . import telemetry
from .deadline import Deadline
from .dify import DifyClient
from .dynamodb import StoreUnavailable
from .errors import ErrorKind, RelayError
from .limits import RateLimiter
from .sessions import MAX_IMAGES, Session, SessionStore, resume
from .uploads import AUDIO, IMAGES, MB, checked_upload

DIFY_AUDIO_BYTES = 30 * MB  # audio-to-text's own limit in Dify (services/audio_service.py)
MAX_SPEECH_BYTES = 4 * MB  # what fits Lambda's 6 MB response once base64-encoded
SPEAKABLE_ANSWERS = 100  # the latest answers of a conversation that can be read aloud (one page of history)


class MediaService:
    def __init__(
        self,
        dify: DifyClient,
        sessions: SessionStore,
        features: Callable[[Deadline], dict],
        *,
        session_ttl_seconds: int,
        max_upload_bytes: int,
        limiter: RateLimiter | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._dify = dify
        self._sessions = sessions
        self._features = features
        self._ttl = session_ttl_seconds
        self._max_upload = max_upload_bytes
        self._limiter = limiter
        self._clock = clock

    def transcribe(
        self, session_id: str | None, data: bytes, content_type: str | None, deadline: Deadline, client_ip
    ) -> dict:
        """The recording's text, for the visitor to read (and edit) before sending it."""
        self._require(deadline, "speechToText", "This assistant does not take voice messages.")
        recording = checked_upload(
            data, content_type, AUDIO, max_bytes=min(self._max_upload, DIFY_AUDIO_BYTES), what="recording"
        )
        session = self._opened(session_id, client_ip)
        text = self._dify.transcribe(recording, session.user, deadline)
        telemetry.count("Transcriptions")
        return {"sessionId": session.session_id, "text": text}

    def upload_image(
        self, session_id: str | None, data: bytes, content_type: str | None, deadline: Deadline, client_ip
    ) -> dict:
        """Uploads an image the session's next turns may show Dify, by the fileId this returns."""
        images = self._require(deadline, "images", "This assistant does not take images.")
        image = checked_upload(
            data, content_type, IMAGES, max_bytes=min(self._max_upload, images["maxBytes"]), what="image"
        )
        session = self._opened(session_id, client_ip)
        file_id = self._dify.upload_image(image, session.user, deadline)
        try:
            kept = self._sessions.add_image(session, file_id, int(self._clock()) + self._ttl)
        except StoreUnavailable as error:
            telemetry.degraded("image not kept; the visitor is asked to send it again", error)
            raise RelayError(
                ErrorKind.RELAY_UNAVAILABLE, "The image could not be kept. Please try again."
            ) from None
        if not kept:
            raise RelayError(
                ErrorKind.INVALID_REQUEST,
                f"This conversation already has {MAX_IMAGES} images; erase it to send more.",
            )
        telemetry.count("ImageUploads")
        return {
            "sessionId": session.session_id,
            "fileId": file_id,
            "mimeType": image.content_type,
            "size": len(image.data),
        }

    def speak(self, session_id: str, message_id: str, deadline: Deadline, client_ip) -> tuple[bytes, str]:
        """The answer `message_id` read aloud, as audio bytes and their type."""
        self._require(deadline, "textToSpeech", "This assistant does not read answers aloud.")
        try:
            session = self._sessions.load(session_id, self._clock())
        except StoreUnavailable:
            raise RelayError(ErrorKind.RELAY_UNAVAILABLE, "The assistant is briefly unavailable.") from None
        if session is None:
            raise RelayError(ErrorKind.NOT_FOUND, "Unknown session.")
        self._spend(session, client_ip)
        # Dify looks the message up by its id alone: only one of this session's own answers is read.
        if not session.conversation_id or not self._answered(session, message_id, deadline):
            raise RelayError(ErrorKind.NOT_FOUND, "Unknown message.")
        audio, audio_type = self._dify.speak(message_id, session.user, deadline, max_bytes=MAX_SPEECH_BYTES)
        telemetry.count("SpokenAnswers")
        return audio, audio_type

    def _answered(self, session: Session, message_id: str, deadline: Deadline) -> bool:
        page = self._dify.history(session.conversation_id, session.user, SPEAKABLE_ANSWERS, deadline)
        return message_id.lower() in {str(message.get("id")).lower() for message in page.messages}

    def _require(self, deadline: Deadline, feature: str, refusal: str):
        enabled = self._features(deadline)["features"].get(feature)
        if not enabled:
            raise RelayError(ErrorKind.NOT_FOUND, refusal)
        return enabled

    def _opened(self, session_id: str | None, client_ip) -> Session:
        """The session, or a new one: a new session's user is its id, so the turns that follow it under
        that id are filed under the same Dify user."""
        session = resume(self._sessions, session_id, None, self._clock())
        self._spend(session, client_ip)
        return session

    def _spend(self, session: Session, client_ip) -> None:
        if self._limiter is not None:
            self._limiter.spend(session_id=session.session_id, client_ip=client_ip, now=self._clock())
