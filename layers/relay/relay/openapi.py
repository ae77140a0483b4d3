"""The widget API v1 as an OpenAPI 3.1 document, built from the relay's own names and limits.

Served at GET /v1/openapi.json and checked in as docs/openapi.json
(`PYTHONPATH=layers/relay python -m relay.openapi > docs/openapi.json`); the tests validate real responses
against it.
"""

from __future__ import annotations

import copy
import json
from functools import cache

from .errors import ErrorKind
from .settings import BRANDING_OPTIONS
from .uploads import AUDIO, IMAGES
from .widget import (
    CONTROL,
    DEFAULT_MAX_MESSAGE_CHARS,
    MAX_FEEDBACK_CHARS,
    MAX_HISTORY,
    MAX_INPUT_CHARS,
    MAX_TURN_FILES,
    MAX_USER_CHARS,
    SESSION_ID,
    UUID,
)

MODES = ["chat", "chatflow", "agent", "completion", "workflow"]


def _object(properties: dict, required: tuple[str, ...] = ()) -> dict:
    return {
        "type": "object",
        "properties": properties,
        "required": list(required),
        "additionalProperties": False,
    }


def _mime_types(formats) -> list[str]:
    return [f.mime_type for f in formats]


def _ref(name: str) -> dict:
    return {"$ref": f"#/components/schemas/{name}"}


_SESSION_ID = {"type": "string", "pattern": f"^{SESSION_ID.pattern}$"}
# Text the relay takes: no NUL or other control characters (tab and line ends allowed), and for `_VISIBLE`
# at least one character that is not white space.
# The relay's own set (CONTROL), as JSON Schema writes it.
_PRINTABLE = "[^" + CONTROL.pattern.replace("\\x", "\\u00")[1:]
_TEXT = {"type": "string", "pattern": f"^{_PRINTABLE}*$"}
_VISIBLE = {"type": "string", "pattern": f"^{_PRINTABLE}*[^\\s\\u0000-\\u001f\\u007f]{_PRINTABLE}*$"}
_MESSAGE_ID = {"type": "string", "pattern": f"^{UUID.pattern}$"}

SCHEMAS = {
    "ChatRequest": _object(
        {
            "message": _VISIBLE
            | {
                "maxLength": DEFAULT_MAX_MESSAGE_CHARS,
                "description": "The visitor's text; at most MAX_MESSAGE_CHARS characters "
                f"({DEFAULT_MAX_MESSAGE_CHARS:,} by default), else 413.",
            },
            # The optional fields may also be null, which means left out.
            "sessionId": _SESSION_ID
            | {
                "type": ["string", "null"],
                "description": "Leave out on a first message; the relay creates one.",
            },
            "user": _VISIBLE | {"type": ["string", "null"], "maxLength": MAX_USER_CHARS},
            "inputs": {
                "type": ["object", "null"],
                "description": "App inputs named in ALLOWED_INPUTS; a deployment's own document lists them.",
                "additionalProperties": {
                    "anyOf": [
                        _TEXT | {"maxLength": MAX_INPUT_CHARS},
                        {"type": ["number", "boolean"]},
                    ]
                },
            },
            "files": {
                "type": ["array", "null"],
                "description": "Images for this turn: fileIds this session got from POST /v1/files.",
                "maxItems": MAX_TURN_FILES,
                "items": _MESSAGE_ID,
            },
        },
        ("message",),
    ),
    "ChatAnswer": _object(
        {
            "answer": {"type": "string"},
            "sessionId": _SESSION_ID,
            "conversationId": {"type": ["string", "null"], "description": "Dify's own id; null without one."},
            "messageId": {"type": ["string", "null"]},
            "mode": {"enum": MODES},
            "usage": _object(
                {
                    name: {"type": "integer", "minimum": 0}
                    for name in ("promptTokens", "completionTokens", "totalTokens")
                }
            ),
            "sources": {
                "type": "array",
                "items": _object(
                    {"title": {"type": "string"}, "snippet": {"type": "string"}}, ("title", "snippet")
                ),
            },
        },
        ("answer", "sessionId", "conversationId", "messageId", "mode"),
    ),
    "Error": _object(
        {
            "error": _object(
                {
                    "code": {"enum": sorted(kind.code for kind in ErrorKind)},
                    "message": {"type": "string"},
                    "retryable": {"type": "boolean"},
                },
                ("code", "message", "retryable"),
            )
        },
        ("error",),
    ),
    "Config": _object(
        {
            "name": {"type": "string"},
            "description": {"type": "string"},
            "mode": {"enum": MODES},
            "openingStatement": {"type": "string"},
            "starterQuestions": {"type": "array", "items": {"type": "string"}},
            "features": _object(
                {
                    "feedback": {"type": "boolean"},
                    "suggestions": {"type": "boolean"},
                    "speechToText": {"type": "boolean", "description": "POST /v1/audio is open."},
                    "textToSpeech": {"type": "boolean", "description": "POST /v1/speech is open."},
                    "images": {
                        "description": "POST /v1/files is open, for images this many, this large; else null.",
                        "oneOf": [
                            {"type": "null"},
                            _object(
                                {
                                    "maxFiles": {"type": "integer", "minimum": 1, "maximum": MAX_TURN_FILES},
                                    "maxBytes": {"type": "integer", "minimum": 1},
                                    "types": {"type": "array", "items": {"enum": _mime_types(IMAGES)}},
                                },
                                ("maxFiles", "maxBytes", "types"),
                            ),
                        ],
                    },
                },
                ("feedback", "suggestions", "speechToText", "textToSpeech", "images"),
            ),
            "inputs": {"type": "array", "items": _ref("InputField")},
            "branding": _object({name: {"type": "string"} for name in BRANDING_OPTIONS})
            | {"description": "The deployment's widget options (WIDGET_BRANDING); a page's data-* win."},
        },
        (
            "name",
            "description",
            "mode",
            "openingStatement",
            "starterQuestions",
            "features",
            "inputs",
            "branding",
        ),
    ),
    "InputField": _object(
        {
            "variable": {"type": "string"},
            "label": {"type": "string"},
            "type": {"enum": ["text", "paragraph", "select", "number"]},
            "required": {"type": "boolean"},
            "maxLength": {"type": "integer"},
            "options": {"type": "array", "items": {"type": "string"}},
        },
        ("variable", "label", "type", "required"),
    ),
    "FeedbackRequest": _object(
        {
            "sessionId": _SESSION_ID,
            "messageId": _MESSAGE_ID,
            "rating": {"enum": ["like", "dislike", None], "description": "null withdraws a rating."},
            "content": _TEXT | {"maxLength": MAX_FEEDBACK_CHARS},
        },
        ("sessionId", "messageId", "rating"),
    ),
    "FeedbackResult": _object({"result": {"const": "ok"}}, ("result",)),
    "Suggestions": _object({"questions": {"type": "array", "items": {"type": "string"}}}, ("questions",)),
    "History": _object(
        {
            "sessionId": _SESSION_ID,
            "turns": {
                "type": "array",
                "items": _object(
                    {
                        "question": {"type": "string"},
                        "answer": {"type": "string"},
                        "messageId": {"type": ["string", "null"]},
                        "createdAt": {"type": ["integer", "null"], "description": "Unix seconds."},
                    },
                    ("question", "answer", "messageId", "createdAt"),
                ),
            },
            "hasMore": {
                "type": "boolean",
                "description": "Older turns remain: ask again with `before` = the first turn's messageId.",
            },
        },
        ("sessionId", "turns", "hasMore"),
    ),
    "EraseRequest": _object({"sessionId": _SESSION_ID}, ("sessionId",)),
    "StreamStart": _object(
        {
            "sessionId": _SESSION_ID,
            "conversationId": {"type": ["string", "null"]},
            "messageId": {"type": ["string", "null"]},
            "taskId": {
                "type": ["string", "null"],
                "description": "Stops this answer through POST /v1/chat/stop; null on a replayed answer.",
            },
        },
        ("sessionId", "conversationId", "messageId", "taskId"),
    ),
    "StreamText": _object({"text": {"type": "string"}}, ("text",)),
    "StreamSources": _object({"sources": {}}, ("sources",)),  # the same list as ChatAnswer's, set below
    "StopRequest": _object({"sessionId": _SESSION_ID, "taskId": _MESSAGE_ID}, ("sessionId", "taskId")),
    "StopResult": _object({"result": {"const": "ok"}}, ("result",)),
    "Transcript": _object({"sessionId": _SESSION_ID, "text": {"type": "string"}}, ("sessionId", "text")),
    "UploadedImage": _object(
        {
            "sessionId": _SESSION_ID,
            "fileId": _MESSAGE_ID | {"description": "Name it in ChatRequest.files of this session's turns."},
            "mimeType": {"enum": _mime_types(IMAGES)},
            "size": {"type": "integer", "minimum": 1},
        },
        ("sessionId", "fileId", "mimeType", "size"),
    ),
    "SpeechRequest": _object(
        {"sessionId": _SESSION_ID, "messageId": _MESSAGE_ID}, ("sessionId", "messageId")
    ),
}
SCHEMAS["StreamSources"]["properties"]["sources"] = copy.deepcopy(
    SCHEMAS["ChatAnswer"]["properties"]["sources"]
)

# One event of the stream as OpenAPI 3.2 models Server-Sent Events ({event, data, id, retry}); data is JSON.
_STREAM_EVENT = {
    "oneOf": [
        {
            "type": "object",
            "properties": {
                "event": {"const": name},
                "data": {
                    "type": "string",
                    "contentMediaType": "application/json",
                    "contentSchema": _ref(schema),
                },
            },
            "required": ["event", "data"],
        }
        for name, schema in (
            ("start", "StreamStart"),
            ("delta", "StreamText"),
            ("replace", "StreamText"),
            ("sources", "StreamSources"),
            ("end", "ChatAnswer"),
            ("error", "Error"),
        )
    ]
}

_STREAM = """Server-Sent Events, each `event: <name>` with one JSON `data:` line:

- `start` (StreamStart): the session and Dify's ids, once Dify has taken the turn;
- `delta` (StreamText): more text to append to the answer;
- `replace` (StreamText): the answer so far, replaced whole (output moderation);
- `sources` (StreamSources): the documents the answer drew on, when there are any;
- `end` (ChatAnswer): the whole answer, exactly as POST /v1/chat returns it; the stream closes;
- `error` (Error): the turn failed after `start`; the stream closes.

Comment lines (`: ping`) keep a quiet connection open. A refusal before `start` is a JSON error
with its status instead, so a widget can fall back to POST /v1/chat."""

_ERRORS = {
    str(status): {"description": description, "content": {"application/json": {"schema": _ref("Error")}}}
    for status, description in {
        400: "Invalid request",
        403: "Origin not allowed",
        404: "Unknown route or session",
        409: "The same message is still being answered",
        413: "Message, body or upload too large",
        415: "An upload that is not one of the route's types",
        429: "Rate limited (see Retry-After)",
        500: "Unexpected relay failure",
        502: "Dify failed or refused",
        503: "Dify busy or out of quota, or the relay briefly unavailable",
        504: "Dify did not answer in time",
    }.items()
}


def _json(name: str, description: str) -> dict:
    return {"description": description, "content": {"application/json": {"schema": _ref(name)}}}


# What a widget does next with an answer: the same session's history, feedback, follow-ups and erasure.
_SESSION = "$response.body#/sessionId"
_ANSWER_LINKS = {
    "History": {"operationId": "history", "parameters": {"sessionId": _SESSION}},
    "Suggested": {
        "operationId": "suggested",
        "parameters": {"sessionId": _SESSION, "messageId": "$response.body#/messageId"},
    },
    "Feedback": {
        "operationId": "feedback",
        "requestBody": {"sessionId": _SESSION, "messageId": "$response.body#/messageId", "rating": "like"},
    },
    "Erase": {"operationId": "erase", "requestBody": {"sessionId": _SESSION}},
    "Speech": {
        "operationId": "speech",
        "requestBody": {"sessionId": _SESSION, "messageId": "$response.body#/messageId"},
    },
}


def _operation(
    operation_id: str, summary: str, ok: dict, *, body: str | None = None, parameters: list | None = None
) -> dict:
    operation = {"operationId": operation_id, "summary": summary, "responses": ok | _ERRORS}
    if body:
        operation["requestBody"] = {"required": True, "content": {"application/json": {"schema": _ref(body)}}}
    if parameters:
        operation["parameters"] = parameters
    return operation


_IDEMPOTENCY_KEY = {
    "name": "Idempotency-Key",
    "in": "header",
    "required": False,
    "schema": {"type": "string", "pattern": "^[A-Za-z0-9_.:-]{8,128}$"},
}


def _query(name: str, schema: dict, required: bool = True) -> dict:
    return {"name": name, "in": "query", "required": required, "schema": schema}


def _upload(operation_id: str, summary: str, ok: dict, formats, what: str) -> dict:
    """A route whose body is the uploaded file itself, in one of `formats`."""
    operation = _operation(
        operation_id,
        summary,
        ok,
        parameters=[
            _query("sessionId", _SESSION_ID | {"description": "Leave out before the first turn."}, False)
        ],
    )
    body = {"schema": {"type": "string", "format": "binary"}}
    operation["requestBody"] = {
        "required": True,
        "description": f"The {what}'s bytes; its type is read from them (Content-Type must be one of these).",
        "content": {mime_type: body for mime_type in _mime_types(formats)},
    }
    return operation


@cache
def document(allowed_inputs: frozenset[str] = frozenset()) -> dict:
    """The document of a deployment whose widgets may set `allowed_inputs` (ALLOWED_INPUTS)."""
    schemas = copy.deepcopy(SCHEMAS)
    inputs = schemas["ChatRequest"]["properties"]["inputs"]
    inputs |= {"propertyNames": {"enum": sorted(allowed_inputs)}} if allowed_inputs else {"maxProperties": 0}
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Dify Relay widget API",
            "version": "1",
            "description": "What a website chat widget calls; the Dify app key stays on the server. "
            "Each path serves the stack's default app; /v1/apps/{app}/... serves the same route for a "
            "registered app (/v1/apps/sales/chat), which has its own origins, sessions and budgets.",
        },
        "paths": {
            "/v1/chat": {
                "post": _operation(
                    "chat",
                    "Send a visitor's message and get the answer",
                    {"200": _json("ChatAnswer", "The answer") | {"links": _ANSWER_LINKS}},
                    body="ChatRequest",
                    parameters=[_IDEMPOTENCY_KEY],
                )
            },
            "/v1/chat/stream": {
                "post": _operation(
                    "chatStream",
                    "Send a visitor's message and get the answer as it is written",
                    {
                        "200": {
                            "description": _STREAM,
                            "content": {"text/event-stream": {"schema": _STREAM_EVENT}},
                        }
                    },
                    body="ChatRequest",
                    parameters=[_IDEMPOTENCY_KEY],
                )
            },
            "/v1/chat/stop": {
                "post": _operation(
                    "chatStop",
                    "Stop a streamed answer (Dify stops writing it)",
                    {"200": _json("StopResult", "Asked of Dify (also when the answer had already ended)")},
                    body="StopRequest",
                )
            },
            "/v1/audio": {
                "post": _upload(
                    "transcribe",
                    "A voice message as text, for the visitor to edit and send (features.speechToText)",
                    {"200": _json("Transcript", "What the recording says")},
                    AUDIO,
                    "recording",
                )
            },
            "/v1/files": {
                "post": _upload(
                    "uploadImage",
                    "An image for the session's next turn (features.images)",
                    {"201": _json("UploadedImage", "Uploaded to Dify")},
                    IMAGES,
                    "image",
                )
            },
            "/v1/speech": {
                "post": _operation(
                    "speech",
                    "An answer read aloud (features.textToSpeech); send Accept: audio/mpeg",
                    {
                        "200": {
                            "description": "The audio Dify made of the answer",
                            "content": {"audio/mpeg": {"schema": {"type": "string", "format": "binary"}}},
                        }
                    },
                    body="SpeechRequest",
                )
            },
            "/v1/config": {
                "get": _operation(
                    "config", "What to show before the first message", {"200": _json("Config", "")}
                )
            },
            "/v1/feedback": {
                "post": _operation(
                    "feedback",
                    "Rate an answer",
                    {"200": _json("FeedbackResult", "Recorded")},
                    body="FeedbackRequest",
                )
            },
            "/v1/suggested": {
                "get": _operation(
                    "suggested",
                    "Follow-up questions for an answer",
                    {"200": _json("Suggestions", "Empty when the app has the feature off")},
                    parameters=[_query("sessionId", _SESSION_ID), _query("messageId", _MESSAGE_ID)],
                )
            },
            "/v1/history": {
                "get": _operation(
                    "history",
                    "The session's latest turns, oldest first, a page at a time",
                    {"200": _json("History", "Empty for an unknown session")},
                    parameters=[
                        _query("sessionId", _SESSION_ID),
                        _query(
                            "limit", {"type": "integer", "minimum": 1, "maximum": MAX_HISTORY}, required=False
                        ),
                        _query("before", _MESSAGE_ID, required=False),
                    ],
                )
            },
            "/v1/session": {
                "delete": _operation(
                    "erase",
                    "Erase the session and its Dify conversation",
                    {"204": {"description": "Erased (also when there was nothing to erase)"}},
                    body="EraseRequest",
                )
            },
            "/v1/openapi.json": {
                "get": {
                    "operationId": "openapi",
                    "summary": "This document",
                    "responses": {"200": {"description": "OpenAPI 3.1"}},
                }
            },
        },
        "components": {"schemas": schemas},
    }


@cache
def app_document(app_id: str, allowed_inputs: frozenset[str] = frozenset()) -> dict:
    """The document as a registered app serves it: the same operations at /v1/apps/<app_id>/..."""
    whole = document(allowed_inputs)
    paths = {path.replace("/v1/", f"/v1/apps/{app_id}/", 1): item for path, item in whole["paths"].items()}
    description = (
        f"What a website chat widget calls for the app {app_id} of this stack; the key stays on the server."
    )
    return whole | {"info": whole["info"] | {"description": description}, "paths": paths}


if __name__ == "__main__":
    print(json.dumps(document(), indent=2))
