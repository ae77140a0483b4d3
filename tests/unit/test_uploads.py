"""An upload is named by what its bytes are, within its size, before anything reaches Dify."""

import pytest

from relay.errors import ErrorKind, RelayError
from relay.uploads import AUDIO, IMAGES, checked_upload
from tests.support import png_bytes, wav_bytes

RECORDINGS = {
    "recording.wav": (wav_bytes(0.05), "audio/wav"),
    "recording.m4a": (b"\x00\x00\x00\x1cftypM4A " + bytes(40), "audio/m4a"),
    "recording.mp3": (b"ID3\x03\x00" + bytes(40), "audio/mp3"),
    "recording.amr": (b"#!AMR\n" + bytes(40), "audio/amr"),
    "recording.webm": (b"\x1a\x45\xdf\xa3" + bytes(40), "audio/webm"),
}


@pytest.mark.parametrize("name", sorted(RECORDINGS))
def test_a_recording_is_named_by_its_bytes_whatever_the_browser_called_it(name):
    data, dify_type = RECORDINGS[name]
    upload = checked_upload(data, "audio/x-anything;codecs=opus", AUDIO, max_bytes=10**6, what="recording")
    assert (upload.name, upload.content_type, upload.data) == (name, dify_type, data)


def refusal(data, content_type, formats=IMAGES, max_bytes=10**6) -> tuple[int, str]:
    with pytest.raises(RelayError) as caught:
        checked_upload(data, content_type, formats, max_bytes=max_bytes, what="image")
    return caught.value.kind.status, caught.value.message


def test_images_outside_the_raster_types_are_refused():
    assert refusal(b"<svg xmlns='http://www.w3.org/2000/svg'><script/></svg>", "image/svg+xml")[0] == 415
    assert refusal(wav_bytes(0.05), "image/png")[0] == 415
    assert refusal(png_bytes(), "audio/wav")[0] == 415  # an image sent as a recording's type
    assert refusal(png_bytes(), None)[0] == 415


def test_the_size_limit_is_inclusive_and_empty_is_no_upload():
    image = png_bytes()
    assert checked_upload(image, "image/png", IMAGES, max_bytes=len(image), what="image").name == "image.png"
    status, message = refusal(image, "image/png", max_bytes=len(image) - 1)
    assert status == 413 and f"{len(image) - 1:,} bytes" in message
    assert refusal(b"", "image/png")[0] == ErrorKind.INVALID_REQUEST.status
