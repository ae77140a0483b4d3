"""Schemathesis checks of the relay's own, loaded by the fuzz run (SCHEMATHESIS_HOOKS=tests.fuzz.hooks)."""

import json

import schemathesis

from tests.conftest import CANARY


@schemathesis.check
def key_never_in_a_response(ctx, response, case):
    """The simulated app's key carries the test suite's canary: no answer, header or error may show it."""
    assert CANARY not in response.content.decode(errors="replace")
    assert not any(CANARY in value for value in response.headers.values()), response.headers


@schemathesis.check
def error_is_the_relay_envelope(ctx, response, case):
    """Every refusal, documented or not (a 405 for a method no route takes), is the relay's JSON envelope."""
    if response.status_code < 400:
        return None
    body = json.loads(response.content)
    error = body["error"]
    assert set(body) == {"error"}, body
    assert set(error) == {"code", "message", "retryable"}, error
    assert isinstance(error["code"], str) and isinstance(error["message"], str), error
    assert isinstance(error["retryable"], bool), error
    return None


def _samples() -> dict[str, list[bytes]]:
    """Files of each upload type the relay documents, as a visitor's browser would send them."""
    from tests.support import png_bytes, wav_bytes

    return {
        "audio/wav": [wav_bytes(0.1), wav_bytes(0.5, rate=8_000)],
        "audio/mp4": [b"\x00\x00\x00\x20ftypM4A " + bytes(64)],
        "audio/mpeg": [b"ID3\x04\x00\x00\x00\x00\x00\x00" + b"\xff\xfb\x90\x64" + bytes(413)],
        "audio/amr": [b"#!AMR\n" + bytes(32)],
        "audio/webm": [b"\x1a\x45\xdf\xa3" + bytes(64)],
        "image/png": [png_bytes(), png_bytes(16, 9)],
        "image/jpeg": [b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + bytes(64) + b"\xff\xd9"],
        "image/gif": [b"GIF89a\x01\x00\x01\x00\x00\x00\x00;"],
        "image/webp": [b"RIFF\x1a\x00\x00\x00WEBPVP8 " + bytes(14)],
    }


def _register_upload_media_types() -> None:
    from hypothesis import strategies as st

    for media_type, files in _samples().items():
        schemathesis.openapi.media_type(media_type, st.sampled_from(files))


_register_upload_media_types()
