"""What a widget may upload: recordings for speech-to-text and images for a turn, checked by their bytes.

A browser's Content-Type is a claim; the relay names each upload by what its first bytes are, so Dify (which
reads the type from the file name) never gets a file that is not what its name says.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from .dify import Upload
from .errors import ErrorKind, RelayError

MB = 1024 * 1024


def _riff(form: bytes) -> Callable[[bytes], bool]:
    return lambda data: data[:4] == b"RIFF" and data[8:12] == form


def _mp3(data: bytes) -> bool:
    return data[:3] == b"ID3" or (len(data) > 1 and data[0] == 0xFF and data[1] & 0xE0 == 0xE0)


@dataclass(frozen=True)
class Format:
    mime_type: str  # the type's usual name, as a browser sends it
    extension: str
    matches: Callable[[bytes], bool]
    dify_type: str = ""  # the name Dify checks, where it differs

    @property
    def sent_as(self) -> str:
        return self.dify_type or self.mime_type


# Dify's audio-to-text compares the part's type with audio/<extension> from its own list, which lost webm in
# current releases (what MediaRecorder records in Firefox, and in Chrome by default); the reference widget
# records MP4 audio, or WAV where the browser cannot.
AUDIO = (
    Format("audio/wav", "wav", _riff(b"WAVE")),
    Format("audio/mp4", "m4a", lambda data: data[4:8] == b"ftyp", "audio/m4a"),
    Format("audio/mpeg", "mp3", _mp3, "audio/mp3"),
    Format("audio/amr", "amr", lambda data: data[:6] == b"#!AMR\n"),
    Format("audio/webm", "webm", lambda data: data[:4] == b"\x1a\x45\xdf\xa3"),
)
# Raster images only: an SVG is a document that can carry script.
IMAGES = (
    Format("image/png", "png", lambda data: data[:8] == b"\x89PNG\r\n\x1a\n"),
    Format("image/jpeg", "jpg", lambda data: data[:3] == b"\xff\xd8\xff"),
    Format("image/gif", "gif", lambda data: data[:6] in (b"GIF87a", b"GIF89a")),
    Format("image/webp", "webp", _riff(b"WEBP")),
)


def media_type_of(content_type: str | None) -> str:
    return (content_type or "").split(";")[0].strip().lower()


def checked_upload(
    data: bytes, content_type: str | None, formats: tuple[Format, ...], *, max_bytes: int, what: str
) -> Upload:
    """The upload as Dify gets it, or 400 (empty), 413 (over `max_bytes`), 415 (not one of `formats`)."""
    family = formats[0].mime_type.split("/")[0]
    accepted = ", ".join(f.mime_type for f in formats)
    if not media_type_of(content_type).startswith(family + "/"):
        raise RelayError(
            ErrorKind.UNSUPPORTED_MEDIA_TYPE, f"Send the {what} as its own type ({accepted}) in Content-Type."
        )
    if not data:
        raise RelayError(ErrorKind.INVALID_REQUEST, f"The {what} is empty.")
    if len(data) > max_bytes:
        raise RelayError(ErrorKind.REQUEST_TOO_LARGE, f"The {what} is larger than {_size(max_bytes)}.")
    found = next((f for f in formats if f.matches(data)), None)
    if found is None:
        raise RelayError(ErrorKind.UNSUPPORTED_MEDIA_TYPE, f"The {what} must be one of: {accepted}.")
    return Upload(name=f"{what}.{found.extension}", data=data, content_type=found.sent_as)


def _size(n: int) -> str:
    return f"{n / MB:.3g} MB" if n >= MB else f"{n:,} bytes"
