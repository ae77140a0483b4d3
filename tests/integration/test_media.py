"""Voice messages, images and answers read aloud: the handler against the simulated Dify app, DynamoDB
through moto."""

import base64

import pytest

from local.dify_simulator import App
from tests.conftest import DIFY_KEY
from tests.support import check_schema, png_bytes, wav_bytes

MEDIA_APP = App(mode="chat", speech_to_text=True, text_to_speech=True, image_upload=True, image_limit=2)
WEBM = b"\x1a\x45\xdf\xa3" + bytes(200)
M4A = b"\x00\x00\x00\x20ftypM4A " + bytes(200)


@pytest.fixture
def media_relay(make_relay, simulator):
    simulator.apps[DIFY_KEY] = MEDIA_APP
    return make_relay()


def dify_calls(simulator, path: str) -> list:
    return [r for r in simulator.requests if r.path == f"/v1{path}"]


def refused(reply, status: int, code: str) -> None:
    assert (reply.status, reply.error_code) == (status, code), reply.raw_body
    check_schema("Error", reply.json)


def test_config_tells_the_widget_which_media_the_app_takes(media_relay):
    features = media_relay.request("GET", "/v1/config").json["features"]
    assert features["speechToText"] is True and features["textToSpeech"] is True
    assert features["images"] == {
        "maxFiles": 2,
        "maxBytes": 4 * 1024 * 1024,  # the relay's upload limit, under Dify's 10 MB for images
        "types": ["image/png", "image/jpeg", "image/gif", "image/webp"],
    }


def test_a_voice_message_comes_back_as_text_under_the_sessions_user(media_relay, simulator):
    reply = media_relay.upload("/v1/audio", wav_bytes(), "audio/wav")
    assert reply.status == 200, reply.raw_body
    check_schema("Transcript", reply.json)
    assert reply.json["text"] == MEDIA_APP.transcript
    session = reply.json["sessionId"]
    [sent] = dify_calls(simulator, "/audio-to-text")
    assert sent.body["file"] == {
        "filename": "recording.wav",
        "content_type": "audio/wav",
        "size": len(wav_bytes()),
    }
    assert sent.body["user"] == session
    # The visitor sends the text as the session's first turn: the same Dify user.
    turn = media_relay.chat({"message": reply.json["text"], "sessionId": session})
    assert turn.status == 200 and dify_calls(simulator, "/chat-messages")[0].body["user"] == session


def test_a_safari_recording_reaches_dify_as_m4a(media_relay, simulator):
    reply = media_relay.upload("/v1/audio", M4A, "audio/mp4")
    assert reply.status == 200, reply.raw_body
    assert dify_calls(simulator, "/audio-to-text")[0].body["file"]["content_type"] == "audio/m4a"


def test_webm_is_refused_by_current_dify_and_taken_by_older_releases(make_relay, simulator):
    simulator.apps[DIFY_KEY] = App(mode="chat", speech_to_text=True)
    refused(make_relay().upload("/v1/audio", WEBM, "audio/webm;codecs=opus"), 415, "unsupported_media_type")
    simulator.apps[DIFY_KEY] = App(mode="chat", speech_to_text=True, release="legacy")
    assert make_relay().upload("/v1/audio", WEBM, "audio/webm;codecs=opus").status == 200


@pytest.mark.parametrize(
    ("data", "content_type", "status", "code"),
    [
        (wav_bytes(), "text/plain", 415, "unsupported_media_type"),
        (png_bytes(), "audio/wav", 415, "unsupported_media_type"),  # the bytes are not a recording
        (b"", "audio/wav", 400, "invalid_request"),
        (wav_bytes(seconds=1), "audio/wav", 413, "request_too_large"),  # over MAX_UPLOAD_BYTES below
    ],
)
def test_bad_recordings_are_refused_before_dify(make_relay, simulator, data, content_type, status, code):
    simulator.apps[DIFY_KEY] = MEDIA_APP
    relay = make_relay(MAX_UPLOAD_BYTES="16000")
    refused(relay.upload("/v1/audio", data, content_type), status, code)
    assert not dify_calls(simulator, "/audio-to-text")


def test_media_routes_are_closed_where_the_app_has_the_feature_off(relay, simulator):
    refused(relay.upload("/v1/audio", wav_bytes(), "audio/wav"), 404, "not_found")
    refused(relay.upload("/v1/files", png_bytes(), "image/png"), 404, "not_found")
    session = relay.chat({"message": "Hello"}).json
    body = {"sessionId": session["sessionId"], "messageId": session["messageId"]}
    refused(relay.request("POST", "/v1/speech", body=body), 404, "not_found")
    assert not [r for r in simulator.requests if r.path.endswith(("-to-text", "/upload", "-to-audio"))]


def test_an_image_turn_shows_dify_the_uploaded_image(media_relay, simulator):
    uploaded = media_relay.upload("/v1/files", png_bytes(), "image/png")
    assert uploaded.status == 201, uploaded.raw_body
    check_schema("UploadedImage", uploaded.json)
    session, file_id = uploaded.json["sessionId"], uploaded.json["fileId"]
    [sent] = dify_calls(simulator, "/files/upload")
    assert sent.body["file"]["filename"] == "image.png" and sent.body["user"] == session
    turn = media_relay.chat({"message": "What is this?", "sessionId": session, "files": [file_id]})
    assert turn.status == 200, turn.raw_body
    assert turn.json["answer"].endswith("[images: 1]")
    [asked] = dify_calls(simulator, "/chat-messages")
    assert asked.body["files"] == [
        {"type": "image", "transfer_method": "local_file", "upload_file_id": file_id}
    ]


def test_a_session_cannot_send_an_image_it_did_not_upload(media_relay, simulator):
    theirs = media_relay.upload("/v1/files", png_bytes(), "image/png").json
    mine = media_relay.chat({"message": "Hello"}).json["sessionId"]
    for file_id in (theirs["fileId"], "00000000-0000-4000-8000-000000000000"):
        reply = media_relay.chat({"message": "Look", "sessionId": mine, "files": [file_id]})
        refused(reply, 404, "not_found")
    assert len(dify_calls(simulator, "/chat-messages")) == 1


@pytest.mark.parametrize(
    ("data", "content_type", "status"),
    [
        (b"<svg xmlns='http://www.w3.org/2000/svg'/>", "image/svg+xml", 415),
        (wav_bytes(), "image/png", 415),
        (png_bytes(), "application/octet-stream", 415),
        (png_bytes(64, 64) + bytes(20_000), "image/png", 413),
    ],
)
def test_bad_images_are_refused_before_dify(make_relay, simulator, data, content_type, status):
    simulator.apps[DIFY_KEY] = MEDIA_APP
    relay = make_relay(MAX_UPLOAD_BYTES="16000")
    code = {413: "request_too_large", 415: "unsupported_media_type"}[status]
    refused(relay.upload("/v1/files", data, content_type), status, code)
    assert not dify_calls(simulator, "/files/upload")


def test_an_answer_is_read_aloud_for_its_own_session_only(media_relay, simulator):
    answer = media_relay.chat({"message": "Hello"}).json
    body = {"sessionId": answer["sessionId"], "messageId": answer["messageId"]}
    spoken = media_relay.invoke(_speech_event(body))
    assert spoken.status == 200 and spoken.headers["content-type"] == "audio/mpeg"
    assert spoken.base64_encoded and spoken.data[:2] == b"\xff\xfb"  # MPEG audio frames
    assert dify_calls(simulator, "/text-to-audio")[0].body == {
        "message_id": answer["messageId"],
        "user": answer["sessionId"],
    }
    other = media_relay.chat({"message": "Hi"}).json["sessionId"]
    refused(media_relay.request("POST", "/v1/speech", body=body | {"sessionId": other}), 404, "not_found")
    refused(
        media_relay.request("POST", "/v1/speech", body=body | {"sessionId": "never-seen-1"}), 404, "not_found"
    )


def _speech_event(body: dict) -> dict:
    import json

    from local.apigw import rest_event
    from tests.integration.conftest import ORIGIN

    headers = {"Content-Type": "application/json", "Accept": "audio/mpeg", "Origin": ORIGIN}
    return rest_event("POST", "/v1/speech", headers=headers, body=json.dumps(body))


def test_media_spend_the_sessions_message_budget(make_relay, simulator):
    simulator.apps[DIFY_KEY] = MEDIA_APP
    relay = make_relay(RATE_LIMIT_SESSION_PER_MINUTE="2")
    session = relay.upload("/v1/audio", wav_bytes(), "audio/wav").json["sessionId"]
    assert relay.upload("/v1/files", png_bytes(), "image/png", query=f"sessionId={session}").status == 201
    refused(
        relay.upload("/v1/audio", wav_bytes(), "audio/wav", query=f"sessionId={session}"), 429, "rate_limited"
    )
    refused(relay.chat({"message": "Hello", "sessionId": session}), 429, "rate_limited")


def test_a_json_route_given_binary_bytes_says_so(relay):
    event_body = base64.b64encode(b"\x89PNG\r\n\x1a\n\xff\xfe").decode()
    from local.apigw import rest_event
    from tests.integration.conftest import ORIGIN

    event = rest_event("POST", "/v1/chat", headers={"Content-Type": "image/png", "Origin": ORIGIN})
    event.update(body=event_body, isBase64Encoded=True)
    refused(relay.invoke(event), 400, "invalid_request")


def test_an_upload_from_a_foreign_origin_is_refused(media_relay, simulator):
    reply = media_relay.upload("/v1/audio", wav_bytes(), "audio/wav", origin="https://evil.example")
    refused(reply, 403, "origin_not_allowed")
    assert not dify_calls(simulator, "/audio-to-text")
