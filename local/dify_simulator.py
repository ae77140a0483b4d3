"""A local stand-in for the Dify Service API (https://api.dify.ai/v1).

It answers the app routes the relay uses with Dify's status codes, error envelope
(``{"code", "message", "status"}``) and response shapes, blocking and streaming (SSE), and produces
deterministic answers (``Turn <n>: you said '<query>' [inputs: k=v]``) so tests can check conversation
continuity and the inputs in effect. Faults can be queued to reproduce what a real deployment does
when it misbehaves. Standard library only.

    with DifySimulator(apps={"app-key": App(mode="chat")}) as sim:
        ...  # point the relay at sim.url

Run ``python -m local.dify_simulator --help`` to serve one app from the command line.
"""

import argparse
import email.parser
import email.policy
import hashlib
import json
import re
import socket
import struct
import sys
import threading
import time
import traceback
import uuid
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

__all__ = ["App", "DifySimulator", "Fault", "Recorded", "main"]

CHAT_MODES = frozenset({"chat", "agent-chat", "advanced-chat", "agent"})
MODES = CHAT_MODES | {"completion", "workflow"}
_STREAM_FAULTS = frozenset({"stream_cut", "error_event"})
_GENERATION_FAULTS = _STREAM_FAULTS | {"empty_answer"}
FAULT_KINDS = _GENERATION_FAULTS | {"error", "html", "truncated_json", "slow_headers", "slow_body", "close"}
_GENERATION_PATHS = ("/chat-messages", "/completion-messages", "/workflows/run")

API_PREFIX = "/v1"
DEFAULT_USER = "DEFAULT-USER"  # what Dify files a call under when an optional `user` is left out
INPUT_MAX_LENGTH = 256
JSON_TYPE = "application/json"
SSE_TYPE = "text/event-stream; charset=utf-8"
_UUID = "[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"

_WRONG_ROUTE = "Please check if your app mode matches the right API route."
_BAD_REQUEST = "The browser (or proxy) sent a request that this server could not understand."
MB = 1024 * 1024
# audio-to-text compares the part's Content-Type with audio/<extension> for its list: Dify 1.x's list, and
# the current one (webm moved to the video types, x-m4a read as m4a).
AUDIO_TYPES = {
    "legacy": {"audio/mp3", "audio/m4a", "audio/wav", "audio/webm", "audio/amr"},
    "current": {"audio/mp3", "audio/m4a", "audio/x-m4a", "audio/wav", "audio/amr", "audio/mpga"},
}
AUDIO_LIMIT_MB = 30
IMAGE_EXTENSIONS = {"jpg", "jpeg", "png", "webp", "gif", "svg"}
# files/upload's limit by the category of the file name's extension (UPLOAD_*_FILE_SIZE_LIMIT defaults).
UPLOAD_LIMITS_MB = {"image": 10, "video": 100, "audio": 50, "file": 15}
_VIDEO_EXTENSIONS = {"mp4", "mov", "mpeg", "webm"}
_AUDIO_EXTENSIONS = {"mp3", "m4a", "wav", "amr", "mpga"}
_APP_UNAVAILABLE = "App unavailable, please check your app configurations."
_WORKFLOW_FAILURE = "Simulated workflow failure."
RELEASES = frozenset({"current", "legacy"})
_URL_NOT_FOUND = (
    "The requested URL was not found on the server. "
    "If you entered the URL manually please check your spelling and try again."
)


@dataclass
class App:
    """One simulated Dify app, selected by the API key it is registered under."""

    mode: str = "chat"
    name: str = ""
    required_inputs: tuple[str, ...] = ()
    optional_inputs: tuple[str, ...] = ()
    # None: what an app of this mode has by default (see __post_init__)
    opening_statement: str | None = None
    suggested_questions: tuple[str, ...] | None = None
    suggested_after_answer: bool | None = None
    sources: list[dict] = field(default_factory=list)
    answer_output: str = "answer"
    query_input: str = "query"
    stream_chunk_chars: int = 8
    ping_every: int = 3
    moderated_replacement: str | None = None
    fail_workflow: bool = False
    # Features switched on in the app's settings: voice input, answers read aloud, images from the device.
    speech_to_text: bool = False
    text_to_speech: bool = False
    image_upload: bool = False
    image_limit: int = 3  # images per message (file_upload number_limits)
    transcript: str = "What are your opening hours?"  # what every recording says
    stream_delay: float = 0.0  # seconds between streamed events, to leave room for a stop call
    # "current" answers as Dify 1.x's Service API does today; "legacy" as releases before it where they
    # differ (see docs/dify-compatibility.md): suggested questions switched off are a 400 instead of a 403,
    # deleting a conversation answers 200 {"result": "success"} instead of 204, and a continued chat or
    # agent-chat turn keeps the conversation's first inputs, unchecked.
    release: str = "current"
    # How long an answer takes, from lo to hi milliseconds: a function of the query (see latency_s), so a
    # load test knows each turn's share without asking.
    latency_ms: tuple[float, float] = (0.0, 0.0)
    id: str = field(default_factory=lambda: str(uuid.uuid4()), init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"unknown app mode {self.mode!r}; expected one of {sorted(MODES)}")
        if self.stream_chunk_chars < 1:
            raise ValueError("stream_chunk_chars must be at least 1")
        if self.release not in RELEASES:
            raise ValueError(f"unknown release {self.release!r}; expected one of {sorted(RELEASES)}")
        self.name = self.name or f"Simulated {self.mode} app"
        # Chat apps welcome and suggest; a completion app has no follow-ups; a workflow none of these; a New
        # Agent app's /parameters come from an empty feature set, so all of them are off.
        follows_up = self.mode in CHAT_MODES - {"agent"}
        welcomes = follows_up or self.mode == "completion"
        if self.opening_statement is None and welcomes:
            self.opening_statement = "Hello! How can I help?"
        if self.suggested_questions is None:
            self.suggested_questions = ("What can you do?",) if welcomes else ()
        if self.suggested_after_answer is None:
            self.suggested_after_answer = follows_up

    def latency_s(self, query: str) -> float:
        low, high = self.latency_ms
        return (low + (high - low) * (zlib.crc32(query.encode()) % 1000) / 999) / 1000

    @property
    def variables(self) -> dict[str, bool]:
        """Input variable name -> required, in the order of the app's input form."""
        form: dict[str, bool] = {}
        if self.mode in ("completion", "workflow"):
            form[self.query_input] = True
        form.update(dict.fromkeys(self.required_inputs, True))
        for name in self.optional_inputs:
            form.setdefault(name, False)
        return form


@dataclass
class Fault:
    """A misbehaviour applied to matching requests; see DifySimulator.inject."""

    kind: str
    status: int | None = None  # default: 500 for HTTP errors; 400 for error events, as Dify sends them
    code: str | None = None
    message: str | None = None
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 1.0
    path_contains: str | None = None

    def __post_init__(self) -> None:
        if self.kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault kind {self.kind!r}; expected one of {sorted(FAULT_KINDS)}")
        if self.status is None:
            # A stream's error event is 400 for Dify's own codes (invalid_param, completion_request_error,
            # provider_*) and 500 only for internal_server_error.
            internal = self.kind != "error_event" or self.code == "internal_server_error"
            self.status = 500 if internal else 400

    def matches(self, method: str, path: str, body: Any) -> bool:
        if self.path_contains is not None and self.path_contains not in path:
            return False
        if self.kind in _GENERATION_FAULTS and not (method == "POST" and path.endswith(_GENERATION_PATHS)):
            return False
        if self.kind in _STREAM_FAULTS:
            return isinstance(body, dict) and body.get("response_mode") == "streaming"
        return True

    def envelope(self) -> dict[str, Any]:
        phrase = HTTPStatus(self.status).phrase
        default_code = "completion_request_error" if self.kind == "error_event" else None
        return {
            "code": self.code or default_code or phrase.lower().replace(" ", "_").replace("-", "_"),
            "message": self.message or f"{phrase} (simulated)",
            "status": self.status,
        }


@dataclass
class Recorded:
    """A request as the simulator received it."""

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: Any  # parsed JSON, a described form (see _parse_body), the text otherwise, or None when empty


class DifyError(Exception):
    """An error answered with Dify's JSON envelope."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message

    def response(self) -> "_Json":
        headers = {"WWW-Authenticate": 'Bearer realm="api"'} if self.status == 401 else {}
        body = {"code": self.code, "message": self.message, "status": self.status}
        return _Json(self.status, body, headers)


def _invalid(message: str) -> DifyError:
    return DifyError(400, "invalid_param", message)


# ---------------------------------------------------------------- stored state


@dataclass
class _Conversation:
    id: str
    app_id: str
    user: str
    inputs: dict[str, Any]
    message_ids: list[str] = field(default_factory=list)


@dataclass
class _Message:
    id: str
    app_id: str
    user: str
    conversation_id: str | None
    query: str
    answer: str
    inputs: dict[str, Any]
    created_at: int
    retriever_resources: list[dict]
    feedback: dict | None = None
    files: list[dict] = field(default_factory=list)


@dataclass
class _UploadedFile:
    id: str
    app_id: str
    user: str
    name: str
    size: int
    extension: str
    mime_type: str
    created_at: int


@dataclass
class _Task:
    app_id: str
    user: str


@dataclass
class _QueuedFault:
    fault: Fault
    remaining: int | None


# ---------------------------------------------------------------- requests and responses


@dataclass
class _Call:
    method: str
    path: str  # below /v1
    query: dict[str, str]
    headers: dict[str, str]
    raw_body: bytes
    fault: Fault | None
    params: dict[str, str] = field(default_factory=dict)
    app: App | None = None  # set once the key is checked

    def json(self) -> dict[str, Any]:
        mimetype = self.headers.get("content-type", "").split(";")[0].strip().lower()
        if mimetype != JSON_TYPE:
            raise DifyError(
                415,
                "unsupported_media_type",
                "Did not attempt to load JSON data because the request Content-Type was not "
                "'application/json'.",
            )
        try:
            body = json.loads(self.raw_body)
        except ValueError:
            body = None
        if not isinstance(body, dict):
            raise DifyError(400, "bad_request", "Invalid JSON payload received or JSON payload is empty.")
        return body

    def fault_kind(self) -> str | None:
        return self.fault.kind if self.fault else None

    def form(self) -> "_Form":
        """The multipart form's fields and file parts (by field name)."""
        return _parse_form(self.headers.get("content-type", ""), self.raw_body)


@dataclass
class _FilePart:
    filename: str
    content_type: str  # "" when the part declares none
    data: bytes


@dataclass
class _Form:
    fields: dict[str, str]
    files: dict[str, _FilePart]
    file_parts: int


@dataclass
class _Json:
    status: int
    body: dict[str, Any] | None  # None: no content
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class _Bytes:
    status: int
    data: bytes
    content_type: str


@dataclass
class _Turn:
    """One generation: a chat or completion message, or a workflow run."""

    app: App
    task_id: str
    message: _Message
    draft: str  # the text streamed as deltas; moderation may replace it at the end
    prompt: str
    workflow_run_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    started: float = field(default_factory=time.monotonic)

    @property
    def moderated(self) -> bool:
        return self.app.moderated_replacement is not None and self.app.mode != "workflow"

    @property
    def final_answer(self) -> str:
        return self.app.moderated_replacement if self.moderated else self.draft

    def event(self, name: str, **fields: Any) -> dict[str, Any]:
        """An SSE event carrying the identity fields Dify puts on it for this app mode."""
        if self.app.mode == "workflow":
            ids = {"task_id": self.task_id, "workflow_run_id": self.workflow_run_id}
        else:
            ids = {"task_id": self.task_id, "message_id": self.message.id}
            if self.message.conversation_id:
                ids["conversation_id"] = self.message.conversation_id
            ids["created_at"] = self.message.created_at
            if name.startswith(("workflow_", "node_")):
                ids["workflow_run_id"] = self.workflow_run_id
        if name == "error":
            del ids["task_id"]
        return {"event": name, **ids, **fields}

    def blocking_body(self) -> dict[str, Any]:
        message = self.message
        if self.app.mode == "workflow":
            status, error = ("failed", _WORKFLOW_FAILURE) if self.app.fail_workflow else ("succeeded", None)
            data = self.workflow_data(status, message.answer, error)
            return {"task_id": self.task_id, "workflow_run_id": self.workflow_run_id, "data": data}
        body = {"event": "message", "task_id": self.task_id, "id": message.id, "message_id": message.id}
        if message.conversation_id:
            body["conversation_id"] = message.conversation_id
        return body | {
            "mode": self.app.mode,
            "answer": message.answer,
            "metadata": self.metadata(message.answer),
            "created_at": message.created_at,
        }

    def usage(self, answer: str) -> dict[str, Any]:
        prompt_tokens, completion_tokens = len(self.prompt.split()), len(answer.split())
        prompt_price, completion_price = _price(prompt_tokens, "0.001"), _price(completion_tokens, "0.002")
        return {
            "prompt_tokens": prompt_tokens,
            "prompt_unit_price": "0.001",
            "prompt_price_unit": "0.001",
            "prompt_price": f"{prompt_price:f}",
            "completion_tokens": completion_tokens,
            "completion_unit_price": "0.002",
            "completion_price_unit": "0.001",
            "completion_price": f"{completion_price:f}",
            "total_tokens": prompt_tokens + completion_tokens,
            "total_price": f"{prompt_price + completion_price:f}",
            "currency": "USD",
            "latency": round(time.monotonic() - self.started, 6),
        }

    def metadata(self, answer: str) -> dict[str, Any]:
        sources = self.message.retriever_resources if self.app.mode != "agent" else []
        return {"annotation_reply": None, "retriever_resources": sources, "usage": self.usage(answer)}

    def workflow_data(self, status: str, answer: str, error: str | None = None) -> dict[str, Any]:
        return {
            "id": self.workflow_run_id,
            "workflow_id": self.app.id,
            "status": status,
            "outputs": {} if status == "failed" else {self.app.answer_output: answer},
            "error": error,
            "elapsed_time": round(time.monotonic() - self.started, 6),
            "total_tokens": self.usage(answer)["total_tokens"],
            "total_steps": 3,
            "created_at": self.message.created_at,
            "finished_at": int(time.time()),
        }

    def node_data(self, status: str | None = None, answer: str = "", error: str | None = None) -> dict:
        data: dict[str, Any] = {
            "id": self.task_id,
            "node_id": "llm",
            "node_type": "llm",
            "title": "LLM",
            "index": 1,
            "predecessor_node_id": "start",
            "created_at": self.message.created_at,
        }
        if status is not None:
            data |= {"status": status, "outputs": {"text": answer}, "error": error}
            data |= {
                "elapsed_time": round(time.monotonic() - self.started, 6),
                "finished_at": int(time.time()),
            }
        return data


def _price(tokens: int, unit_price: str) -> Decimal:
    return (tokens * Decimal(unit_price) * Decimal("0.001")).quantize(Decimal("0.0000001"))


@dataclass
class _Stream:
    """How one streamed answer is told: opening events, one event per delta, then the closing events."""

    turn: _Turn
    head: list[dict]
    delta: Callable[[str], dict]
    tail: Callable[[str, bool], list[dict]]  # (answer so far, stopped) -> closing events
    failure: Callable[[Fault], list[dict]]

    def chunks(self) -> list[str]:
        size = self.turn.app.stream_chunk_chars
        return [self.turn.draft[i : i + size] for i in range(0, len(self.turn.draft), size)]


def _stream_for(turn: _Turn) -> _Stream:
    app = turn.app
    flow = app.mode in ("advanced-chat", "workflow")
    head: list[dict] = []
    if flow:
        started = {"id": turn.workflow_run_id, "workflow_id": app.id, "inputs": turn.message.inputs}
        started |= {"created_at": turn.message.created_at, "reason": "initial"}
        head.append(turn.event("workflow_started", data=started))
        head.append(turn.event("node_started", data=turn.node_data()))
    if app.mode in ("agent-chat", "agent"):
        thought = {"id": str(uuid.uuid4()), "position": 1, "thought": "", "observation": ""}
        head.append(turn.event("agent_thought", **thought, tool="", tool_input="", message_files=[]))

    def delta(text: str) -> dict:
        if app.mode == "workflow":
            return turn.event("text_chunk", data={"text": text, "from_variable_selector": ["llm", "text"]})
        name = "agent_message" if app.mode in ("agent-chat", "agent") else "message"
        return turn.event(name, id=turn.message.id, answer=text)

    def tail(answer: str, stopped: bool) -> list[dict]:
        if app.fail_workflow and app.mode == "workflow":
            return [
                turn.event("node_finished", data=turn.node_data("failed", "", _WORKFLOW_FAILURE)),
                turn.event("workflow_finished", data=turn.workflow_data("failed", "", _WORKFLOW_FAILURE)),
            ]
        events = []
        if flow:
            status = "stopped" if stopped else "succeeded"
            events.append(turn.event("node_finished", data=turn.node_data("succeeded", answer)))
            events.append(turn.event("workflow_finished", data=turn.workflow_data(status, answer)))
        if turn.moderated and not stopped:
            answer = turn.final_answer
            events.append(turn.event("message_replace", answer=answer, reason="output_moderation"))
        if app.mode == "agent":
            events.append(turn.event("message", id=turn.message.id, answer=answer))
        if app.mode != "workflow":
            events.append(turn.event("message_end", id=turn.message.id, metadata=turn.metadata(answer)))
        return events

    def failure(fault: Fault) -> list[dict]:
        envelope = fault.envelope()
        events = []
        if app.mode == "advanced-chat":
            data = turn.workflow_data("failed", "", envelope["message"])
            events.append(turn.event("workflow_finished", data=data))
        return [*events, turn.event("error", **envelope)]

    return _Stream(turn, head, delta, tail, failure)


def _check_inputs(app: App, inputs: dict[str, Any]) -> dict[str, Any]:
    """The inputs Dify keeps: declared variables only, each required one present (not absent or null),
    strings within length."""
    kept = {}
    for name, required in app.variables.items():
        value = inputs.get(name)
        if value is None:
            if required:
                raise _invalid(f"{name} is required in input form")
            continue
        if not isinstance(value, str):
            raise _invalid(f"(type 'text-input') {name} in input form must be a string")
        if len(value) > INPUT_MAX_LENGTH:
            raise _invalid(f"{name} in input form must be less than {INPUT_MAX_LENGTH} characters")
        kept[name] = value
    return kept


def _require_user(value: Any) -> str:
    if value is None or value == "":
        raise _invalid("Arg user must be provided.")
    return str(value)


def _require_inputs(body: dict[str, Any]) -> dict[str, Any]:
    inputs = body.get("inputs")
    if not isinstance(inputs, dict):
        raise _invalid("inputs is required and must be an object")
    return inputs


def _response_mode(body: dict[str, Any]) -> str | None:
    mode = body.get("response_mode")
    if mode not in (None, "blocking", "streaming"):
        raise _invalid("response_mode must be 'blocking' or 'streaming'")
    return mode


def _as_uuid(value: Any, what: str) -> str:
    try:
        return str(uuid.UUID(value))
    except (TypeError, ValueError, AttributeError):
        raise _invalid(f"{what} must be a valid UUID") from None


def _compose_answer(turn_number: int, query: str, inputs: dict[str, Any], images: int = 0) -> str:
    answer = f"Turn {turn_number}: you said '{query}'"
    if inputs:
        answer += " [inputs: " + ", ".join(f"{k}={inputs[k]}" for k in sorted(inputs)) + "]"
    if images:
        answer += f" [images: {images}]"
    return answer


@dataclass(frozen=True)
class _Audience:
    """The app modes a route serves, and the 400 error (code, message) any other mode gets."""

    modes: frozenset[str]
    wrong_mode: tuple[str, str] = ("", "")


_ANY_APP = _Audience(MODES)
_CHAT_APPS = _Audience(CHAT_MODES, ("not_chat_app", _WRONG_ROUTE))
_COMPLETION_APPS = _Audience(frozenset({"completion"}), ("app_unavailable", _APP_UNAVAILABLE))
_WORKFLOW_APPS = _Audience(frozenset({"workflow"}), ("not_workflow_app", _WRONG_ROUTE))


@dataclass(frozen=True)
class _Route:
    method: str
    pattern: re.Pattern
    handler: Callable[["DifySimulator", _Call], "_Json | _Stream"]
    audience: _Audience


def _route(method: str, path: str, handler: Callable, audience: _Audience = _ANY_APP) -> _Route:
    """A route; `{name}` in `path` matches one segment, `{name:uuid}` only a UUID (else a plain 404)."""
    pattern = re.sub(r"\{(\w+)(:uuid)?\}", lambda m: f"(?P<{m[1]}>{_UUID if m[2] else '[^/]+'})", path)
    return _Route(method, re.compile(pattern + "$"), handler, audience)


# ---------------------------------------------------------------- the simulator


class DifySimulator:
    """An HTTP server speaking Dify's Service API for the given apps (API key -> App)."""

    def __init__(
        self, apps: dict[str, App], host: str = "127.0.0.1", port: int = 0, verbose: bool = False
    ) -> None:
        self.host, self.port, self.verbose = host, port, verbose
        self.requests: list[Recorded] = []
        self.stopped_tasks: set[str] = set()
        self.apps = dict(apps)  # API key -> App; tests may swap an app in place
        self._lock = threading.RLock()
        self._conversations: dict[str, _Conversation] = {}
        self._messages: dict[str, _Message] = {}
        self._files: dict[str, _UploadedFile] = {}
        self._tasks: dict[str, _Task] = {}
        self._faults: list[_QueuedFault] = []
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._closing = threading.Event()
        self._generation = 0  # bumped by reset(): streams of an earlier generation end

    # -- lifecycle

    def start(self) -> "DifySimulator":
        if self._server is not None:
            raise RuntimeError("simulator already started")
        self._closing.clear()
        self._server = _Server((self.host, self.port), self)
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(
            target=self._server.serve_forever, args=(0.05,), name="dify-simulator", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is None:
            return
        self._closing.set()
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._server = self._thread = None

    def __enter__(self) -> "DifySimulator":
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        if self._server is None:
            raise RuntimeError("simulator not started")
        return f"http://{self.host}:{self.port}{API_PREFIX}"

    # -- test controls

    def reset(self, apps: dict[str, App]) -> None:
        """Back to a new simulator serving `apps`, on the same port: nothing recorded, no conversation,
        message, task or fault left, and any stream still being written for an earlier caller cut."""
        with self._lock:
            self.apps = dict(apps)
            self.requests.clear()
            self.stopped_tasks.clear()
            self._conversations.clear()
            self._messages.clear()
            self._files.clear()
            self._tasks.clear()
            self._faults.clear()
            self._generation += 1

    def clear_requests(self) -> None:
        with self._lock:
            self.requests.clear()

    def rotate_key(self, old_key: str, new_key: str) -> None:
        with self._lock:
            self.apps[new_key] = self.apps.pop(old_key)

    def forget_conversations(self) -> None:
        with self._lock:
            self._conversations.clear()
            self._messages = {k: m for k, m in self._messages.items() if m.conversation_id is None}

    def inject(self, fault: Fault, times: int | None = 1) -> None:
        """Apply `fault` to the next `times` matching requests (None: until clear_faults)."""
        if times is not None and times < 1:
            raise ValueError("times must be at least 1, or None")
        with self._lock:
            self._faults.append(_QueuedFault(fault, times))

    def clear_faults(self) -> None:
        with self._lock:
            self._faults.clear()

    def _take_fault(self, method: str, path: str, body: Any) -> Fault | None:
        with self._lock:
            for queued in self._faults:
                if queued.fault.matches(method, path, body):
                    if queued.remaining is not None:
                        queued.remaining -= 1
                        if queued.remaining == 0:
                            self._faults.remove(queued)
                    return queued.fault
        return None

    # -- serving

    def _serve(self, h: "_RequestHandler") -> None:
        split = urlsplit(h.path)
        length = int(h.headers.get("Content-Length") or 0)
        raw = h.rfile.read(length) if length else b""
        headers = {k.lower(): v for k, v in h.headers.items()}
        record = Recorded(
            h.command,
            split.path,
            dict(parse_qsl(split.query, True)),
            headers,
            _parse_body(raw, headers.get("content-type", "")),
        )
        with self._lock:
            self.requests.append(record)
            generation = self._generation
        fault = self._take_fault(record.method, record.path, record.body)
        status = 0
        try:
            status = self._respond(h, record, raw, fault, generation)
        except (BrokenPipeError, ConnectionResetError):
            h.close_connection = True
        if self.verbose:
            note = f" [fault: {fault.kind}]" if fault else ""
            print(f"dify-simulator: {record.method} {h.path} -> {status or 'dropped'}{note}", file=sys.stderr)

    def _respond(
        self, h: "_RequestHandler", record: Recorded, raw: bytes, fault: Fault | None, generation: int
    ) -> int:
        kind = fault.kind if fault else None
        if kind == "close":
            _abort(h, reset=True)
            return 0
        if kind == "slow_headers":
            time.sleep(fault.delay)
            if self._generation != generation:  # reset while it waited: it must not touch the new state
                _abort(h, reset=False)
                return 0
        if kind == "error":
            return _send(h, _Json(fault.status, fault.envelope(), dict(fault.headers)))
        if kind == "html":
            return _send_html(
                h, fault.status, _proxy_page(fault.status), {"Content-Type": "text/html", **fault.headers}
            )
        path = record.path.removeprefix(API_PREFIX) if record.path.startswith(API_PREFIX + "/") else ""
        call = _Call(record.method, path, record.query, record.headers, raw, fault)
        try:
            response = self._dispatch(call)
        except _NoRoute:
            page = _werkzeug_page(404, "Not Found", _URL_NOT_FOUND)
            return _send_html(h, 404, page, {"Content-Type": "text/html; charset=utf-8"})
        except DifyError as error:
            response = error.response()
        except Exception:
            traceback.print_exc()
            response = DifyError(500, "internal_server_error", "Internal Server Error.").response()
        if isinstance(response, _Stream):
            if kind != "truncated_json":
                return self._send_stream(h, response, fault)
            response = _Json(200, response.turn.blocking_body())
        if isinstance(response, _Bytes):
            return _send_bytes(h, response)
        return _send(h, response, fault)

    def _dispatch(self, call: _Call) -> "_Json | _Stream":
        route, allowed = None, []
        for candidate in self._ROUTES:
            match = candidate.pattern.match(call.path)
            if match:
                allowed.append(candidate.method)
                if candidate.method == call.method:
                    route, call.params = candidate, match.groupdict()
        if route is None and allowed:
            raise DifyError(405, "method_not_allowed", "The method is not allowed for the requested URL.")
        if route is None:
            raise _NoRoute
        call.app = self._authenticate(call.headers.get("authorization", ""))
        if call.app.mode not in route.audience.modes:
            raise DifyError(400, *route.audience.wrong_mode)
        return route.handler(self, call)

    def _authenticate(self, authorization: str) -> App:
        scheme, _, key = authorization.strip().partition(" ")
        if not scheme or not key.strip():
            raise DifyError(
                401, "unauthorized", "Authorization header must be provided and start with 'Bearer'"
            )
        if scheme.lower() != "bearer":
            raise DifyError(401, "unauthorized", "Authorization scheme must be 'Bearer'")
        with self._lock:
            app = self.apps.get(key.strip())
        if app is None:
            raise DifyError(401, "unauthorized", "Access token is invalid")
        return app

    def _send_stream(self, h: "_RequestHandler", stream: _Stream, fault: Fault | None) -> int:
        turn, app, generation = stream.turn, stream.turn.app, self._generation
        h.send_response(200)
        h.send_header("Content-Type", SSE_TYPE)
        h.send_header("Cache-Control", "no-cache")
        h.send_header("Transfer-Encoding", "chunked")
        h.end_headers()
        sent = 0

        def emit(event: dict) -> None:
            nonlocal sent
            if sent and app.ping_every and sent % app.ping_every == 0:
                _write_chunk(h, b"event: ping\n\n")
            _write_chunk(h, f"data: {json.dumps(event, ensure_ascii=False)}\n\n".encode())
            sent += 1
            if sent == 1 and fault and fault.kind == "slow_body":
                time.sleep(fault.delay)
            elif app.stream_delay:
                time.sleep(app.stream_delay)

        for event in stream.head:
            emit(event)
        chunks, answer, stopped = stream.chunks(), "", False
        cut_at = max(1, (len(chunks) + 1) // 2) if fault and fault.kind in _STREAM_FAULTS else None
        for index, chunk in enumerate(chunks):
            if index == cut_at:
                break
            if self._closing.is_set() or self._generation != generation:
                _abort(h, reset=False)
                return 200
            if turn.task_id in self.stopped_tasks:
                stopped = True
                break
            emit(stream.delta(chunk))
            answer += chunk
        if fault and fault.kind == "stream_cut":
            _abort(h, reset=False)
            return 200
        closing = (
            stream.failure(fault) if fault and fault.kind == "error_event" else stream.tail(answer, stopped)
        )
        if stopped:
            with self._lock:
                turn.message.answer = answer
        for event in closing:
            emit(event)
        _write_chunk(h, b"")
        return 200

    # -- generation

    def _start_turn(
        self,
        call: _Call,
        user: str,
        query: str,
        inputs: dict,
        conversation: _Conversation | None,
        files: list[dict] | None = None,
    ) -> _Turn:
        """Register the message (and its task) that answers `query`; the caller holds the lock."""
        turn_number = len(conversation.message_ids) + 1 if conversation else 1
        silent = call.fault_kind() == "empty_answer" or call.app.fail_workflow
        files = files or []
        draft = "" if silent else _compose_answer(turn_number, query, inputs, len(files))
        message = _Message(
            id=str(uuid.uuid4()),
            app_id=call.app.id,
            user=user,
            conversation_id=conversation.id if conversation else None,
            query=query,
            answer=draft,
            inputs=inputs,
            created_at=int(time.time()),
            retriever_resources=[dict(source) for source in call.app.sources],
            files=files,
        )
        prompt = " ".join([query, *map(str, inputs.values())])
        turn = _Turn(call.app, str(uuid.uuid4()), message, draft, prompt)
        message.answer = turn.final_answer
        if call.app.mode != "workflow":
            self._messages[message.id] = message
        if conversation:
            conversation.message_ids.append(message.id)
        self._tasks[turn.task_id] = _Task(call.app.id, user)
        return turn

    def _reply(self, turn: _Turn, streaming: bool) -> "_Json | _Stream":
        time.sleep(turn.app.latency_s(turn.message.query))  # the lock is not held here
        return _stream_for(turn) if streaming else _Json(200, turn.blocking_body())

    def _owned_conversation(self, conversation_id: str, call: _Call, user: str) -> _Conversation:
        conversation = self._conversations.get(conversation_id)
        if conversation is None or conversation.app_id != call.app.id or conversation.user != user:
            raise DifyError(404, "not_found", "Conversation Not Exists.")
        return conversation

    def _owned_message(self, message_id: str, call: _Call, user: str) -> _Message:
        message = self._messages.get(message_id.lower())
        if message is None or message.app_id != call.app.id or message.user != user:
            raise DifyError(404, "not_found", "Message Not Exists.")
        return message

    # -- route handlers

    def _chat_messages(self, call: _Call) -> "_Json | _Stream":
        body = call.json()
        user = _require_user(body.get("user"))
        inputs = _require_inputs(body)
        query = body.get("query")
        if not isinstance(query, str):
            raise _invalid("query is required and must be a string")
        response_mode = _response_mode(body)
        given = body.get("conversation_id")
        blank = given is None or (isinstance(given, str) and not given.strip())
        conversation_id = None if blank else _as_uuid(given, "conversation_id")
        mode = call.app.mode
        with self._lock:
            conversation = self._owned_conversation(conversation_id, call, user) if conversation_id else None
        # New Agent streams unless blocking is asked for; every other mode blocks unless streaming is.
        streaming = response_mode != "blocking" if mode == "agent" else response_mode == "streaming"
        if not streaming and mode == "agent-chat":
            raise _invalid("Agent Chat App does not support blocking mode")
        if not streaming and mode == "agent":
            raise DifyError(400, "bad_request", "Agent App only supports streaming response mode.")
        if not query:
            raise _invalid("query is required")
        if conversation and (mode == "advanced-chat" or call.app.release == "legacy"):
            kept = conversation.inputs  # a chatflow (and an older chat app) keeps its first inputs, unchecked
        else:
            kept = _check_inputs(call.app, inputs)  # chat and agent apps check and use every turn's
        with self._lock:
            files = self._message_files(call, user, body.get("files"))
            if conversation is None:
                conversation = _Conversation(str(uuid.uuid4()), call.app.id, user, kept)
                self._conversations[conversation.id] = conversation
            turn = self._start_turn(call, user, query, kept, conversation, files)
        return self._reply(turn, streaming)

    def _completion_messages(self, call: _Call) -> "_Json | _Stream":
        body = call.json()
        user = _require_user(body.get("user"))
        inputs = _require_inputs(body)
        streaming = _response_mode(body) == "streaming"
        kept = _check_inputs(call.app, inputs)
        with self._lock:
            files = self._message_files(call, user, body.get("files"))
            turn = self._start_turn(call, user, kept[call.app.query_input], kept, None, files)
        return self._reply(turn, streaming)

    def _workflow_run(self, call: _Call) -> "_Json | _Stream":
        body = call.json()
        user = _require_user(body.get("user"))
        inputs = _require_inputs(body)
        streaming = _response_mode(body) == "streaming"
        kept = _check_inputs(call.app, inputs)
        with self._lock:
            files = self._message_files(call, user, body.get("files"))
            turn = self._start_turn(call, user, kept[call.app.query_input], kept, None, files)
        return self._reply(turn, streaming)

    def _stop_task(self, call: _Call) -> _Json:
        user = _require_user(call.json().get("user"))
        task_id = call.params["task_id"]
        with self._lock:
            task = self._tasks.get(task_id)
            # Another user's stop does nothing (yet succeeds) except on workflows, where any user may stop.
            if task and task.app_id == call.app.id and (task.user == user or call.app.mode == "workflow"):
                self.stopped_tasks.add(task_id)
        return _Json(200, {"result": "success"})

    def _list_messages(self, call: _Call) -> _Json:
        user = call.query.get("user") or DEFAULT_USER
        conversation_id = _as_uuid(call.query.get("conversation_id"), "conversation_id")
        try:
            limit = int(call.query.get("limit", "20"))
        except ValueError:
            raise _invalid("limit must be an integer") from None
        if not 1 <= limit <= 100:
            raise _invalid("limit must be between 1 and 100")
        first_id = call.query.get("first_id")
        if first_id:
            first_id = _as_uuid(first_id, "first_id")
        with self._lock:
            ids = self._owned_conversation(conversation_id, call, user).message_ids
            if first_id:
                if first_id.lower() not in ids:
                    raise DifyError(404, "not_found", "First Message Not Exists.")
                ids = ids[: ids.index(first_id.lower())]
            # The latest `limit` messages (before first_id), oldest first, as Dify's Service API answers.
            page = [_history_item(self._messages[i]) for i in ids[-limit:]]
        return _Json(200, {"limit": limit, "has_more": len(ids) > limit, "data": page})

    def _feedback(self, call: _Call) -> _Json:
        body = call.json()
        user = _require_user(body.get("user"))
        rating = body.get("rating")
        if rating not in ("like", "dislike", None):
            raise _invalid("rating must be 'like', 'dislike' or null")
        with self._lock:
            message = self._owned_message(call.params["message_id"], call, user)
            if rating is None and message.feedback is None:
                raise _invalid("rating cannot be None when feedback not exists")
            message.feedback = {"rating": rating} if rating else None
        return _Json(200, {"result": "success"})

    def _suggested(self, call: _Call) -> _Json:
        user = _require_user(call.query.get("user"))
        with self._lock:
            message = self._owned_message(call.params["message_id"], call, user)
        if not call.app.suggested_after_answer:
            if call.app.release == "legacy":
                raise DifyError(400, "bad_request", "Suggested Questions Is Disabled.")
            raise DifyError(
                403,
                "app_suggested_questions_after_answer_disabled",
                "Function Suggested questions after answer disabled.",
            )
        topic = message.query[:40]
        questions = [
            f"Can you tell me more about '{topic}'?",
            "What else should I know?",
            "Where can I read more?",
        ]
        return _Json(200, {"result": "success", "data": questions})

    def _delete_conversation(self, call: _Call) -> _Json:
        user = call.json().get("user") or DEFAULT_USER
        with self._lock:
            conversation = self._owned_conversation(call.params["conversation_id"].lower(), call, user)
            del self._conversations[conversation.id]
            for message_id in conversation.message_ids:
                self._messages.pop(message_id, None)
        if call.app.release == "legacy":
            return _Json(200, {"result": "success"})
        return _Json(204, None)

    def _info(self, call: _Call) -> _Json:
        app = call.app
        body = {"name": app.name, "description": "", "tags": [], "mode": app.mode, "author_name": "Simulator"}
        return _Json(200, body)

    def _parameters(self, call: _Call) -> _Json:
        app = call.app
        form = [
            {
                "text-input": {
                    "label": name.replace("_", " ").capitalize(),
                    "variable": name,
                    "required": required,
                    "max_length": INPUT_MAX_LENGTH,
                    "default": "",
                }
            }
            for name, required in app.variables.items()
        ]
        methods = ["remote_url", "local_file"]
        image = {"enabled": app.image_upload, "number_limits": app.image_limit, "detail": "high"}
        image["transfer_methods"] = methods
        # An app whose uploads were never set keeps Dify's default, the image object alone; the current
        # settings page saves the top-level fields too.
        file_upload = {"image": image}
        if app.image_upload:
            file_upload |= {
                "enabled": True,
                "allowed_file_types": ["image"],
                "allowed_file_extensions": [],
                "allowed_file_upload_methods": methods,
                "number_limits": app.image_limit,
            }
        tts = {"enabled": app.text_to_speech, "voice": "", "language": "", "autoPlay": "disabled"}
        if app.text_to_speech:
            tts |= {"voice": "alloy", "language": "en-US"}
        limits = {"file_size_limit": 15, "image_file_size_limit": 10, "audio_file_size_limit": 50}
        limits |= {"video_file_size_limit": 100, "workflow_file_upload_limit": 10}
        return _Json(
            200,
            {
                "opening_statement": app.opening_statement,
                "suggested_questions": list(app.suggested_questions),
                "suggested_questions_after_answer": {"enabled": app.suggested_after_answer},
                "speech_to_text": {"enabled": app.speech_to_text},
                "text_to_speech": tts,
                "retriever_resource": {"enabled": bool(app.sources)},
                "annotation_reply": {"enabled": False},
                "more_like_this": {"enabled": False},
                "sensitive_word_avoidance": {"enabled": app.moderated_replacement is not None},
                "user_input_form": form,
                "file_upload": file_upload,
                "system_parameters": limits,
            },
        )

    # -- voice, images and speech

    def _message_files(self, call: _Call, user: str, mappings: Any) -> list[dict]:
        """A message's `files`, as Dify 1.x builds them: ignored unless the app takes uploads; every
        entry must name an upload of this app's workspace (and, on current Dify, of this user)."""
        app = call.app
        if not app.image_upload or not mappings:
            return []
        if not isinstance(mappings, list):
            raise _invalid("files must be a list")
        files = []
        for mapping in mappings:
            if not isinstance(mapping, dict) or not mapping.get("transfer_method"):
                continue  # entries without a transfer method are dropped, as Dify does
            if mapping["transfer_method"] != "local_file":
                raise _invalid(f"Invalid file transfer method: {mapping['transfer_method']}")
            file_id = mapping.get("upload_file_id")
            if not file_id:
                raise _invalid("Invalid upload file id")
            try:
                file_id = str(uuid.UUID(str(file_id)))
            except ValueError:
                raise _invalid("Invalid upload file id format") from None
            upload = self._files.get(file_id)
            if (
                upload is None
                or upload.app_id != app.id
                or (app.release == "current" and upload.user != user)
            ):
                raise _invalid("Invalid upload file")
            if mapping.get("type") != "image" or upload.extension not in IMAGE_EXTENSIONS:
                raise _invalid(f"File validation failed for file: {upload.name}")
            files.append({"id": upload.id, "url": f"/files/{upload.id}/file-preview"})
        if len(files) > app.image_limit:
            raise _invalid(f"Number of image files exceeds the maximum limit {app.image_limit}")
        return files

    def _audio_to_text(self, call: _Call) -> _Json:
        app = call.app
        if not app.speech_to_text:
            raise _invalid("Speech to text is not enabled")
        form = call.form()
        audio = form.files.get("file")
        if audio is None:
            # The controller reads the part before its own checks: werkzeug's missing-key error answers.
            raise DifyError(400, "bad_request_key_error", _BAD_REQUEST)
        allowed = AUDIO_TYPES[app.release]
        if audio.content_type not in allowed:
            raise DifyError(415, "unsupported_audio_type", "Audio type not allowed.")
        if len(audio.data) > AUDIO_LIMIT_MB * MB:
            raise DifyError(413, "audio_too_large", f"Audio size larger than {AUDIO_LIMIT_MB} mb")
        return _Json(200, {"text": app.transcript})

    def _upload_file(self, call: _Call) -> _Json:
        form = call.form()
        if "file" not in form.files:
            raise DifyError(400, "no_file_uploaded", "Please upload your file.")
        if form.file_parts > 1:
            raise DifyError(400, "too_many_files", "Only one file is allowed.")
        part = form.files["file"]
        if not part.content_type:
            raise DifyError(415, "unsupported_file_type", "File type not allowed.")
        if not part.filename:
            raise DifyError(400, "filename_not_exists_error", "The specified filename does not exist.")
        if any(c in part.filename for c in '/\\:*?"<>|'):
            raise _invalid("Filename contains invalid characters")
        extension = part.filename.rpartition(".")[2].lower() if "." in part.filename else ""
        limit_mb = UPLOAD_LIMITS_MB.get(_category(extension), UPLOAD_LIMITS_MB["file"])
        if len(part.data) > limit_mb * MB:
            raise DifyError(413, "file_too_large", f"File size exceeded. {len(part.data)} > {limit_mb * MB}")
        user = form.fields.get("user") or DEFAULT_USER
        upload = _UploadedFile(
            id=str(uuid.uuid4()),
            app_id=call.app.id,
            user=user,
            name=part.filename[:200],
            size=len(part.data),
            extension=extension,
            mime_type=part.content_type,
            created_at=int(time.time()),
        )
        with self._lock:
            self._files[upload.id] = upload
        end_user = str(uuid.uuid5(uuid.NAMESPACE_URL, f"{call.app.id}/{user}"))
        nonce = uuid.uuid4().hex
        return _Json(
            201,
            {
                "id": upload.id,
                "name": upload.name,
                "size": upload.size,
                "extension": upload.extension,
                "mime_type": upload.mime_type,
                "created_by": end_user,
                "created_at": upload.created_at,
                "preview_url": None,
                "source_url": f"/files/{upload.id}/file-preview?timestamp={upload.created_at}&nonce={nonce}"
                f"&sign={hashlib.sha256(nonce.encode()).hexdigest()[:43]}",
            },
        )

    def _text_to_audio(self, call: _Call) -> "_Json | _Bytes":
        body = call.json()
        app = call.app
        if not body.get("voice") and not app.text_to_speech:
            raise _invalid("TTS is not enabled")  # checked only when no voice is given, as Dify does
        message_id = body.get("message_id")
        if message_id:
            with self._lock:
                message = self._messages.get(str(message_id).lower())
            # Looked up by id alone, whoever asks and for whichever app (the relay checks ownership).
            if message is None or not message.answer:
                return _Bytes(200, b"null", JSON_TYPE)  # Dify returns nothing: a JSON null
            text = message.answer
        else:
            text = body.get("text")
            if text is None:
                raise _invalid("Text is required")
        return _Bytes(200, _silent_mp3(len(str(text))), "audio/mpeg")

    _ROUTES = (
        _route("POST", "/chat-messages", _chat_messages, _CHAT_APPS),
        _route("POST", "/chat-messages/{task_id}/stop", _stop_task, _CHAT_APPS),
        _route("POST", "/completion-messages", _completion_messages, _COMPLETION_APPS),
        _route("POST", "/completion-messages/{task_id}/stop", _stop_task, _COMPLETION_APPS),
        _route("POST", "/workflows/run", _workflow_run, _WORKFLOW_APPS),
        _route("POST", "/workflows/tasks/{task_id}/stop", _stop_task, _WORKFLOW_APPS),
        _route("GET", "/messages", _list_messages, _CHAT_APPS),
        _route("POST", "/messages/{message_id:uuid}/feedbacks", _feedback),
        _route("GET", "/messages/{message_id:uuid}/suggested", _suggested, _CHAT_APPS),
        _route("DELETE", "/conversations/{conversation_id:uuid}", _delete_conversation, _CHAT_APPS),
        _route("GET", "/info", _info),
        _route("GET", "/parameters", _parameters),
        _route("POST", "/audio-to-text", _audio_to_text),
        _route("POST", "/files/upload", _upload_file),
        _route("POST", "/text-to-audio", _text_to_audio),
    )


def _category(extension: str) -> str:
    if extension in IMAGE_EXTENSIONS:
        return "image"
    if extension in _VIDEO_EXTENSIONS:
        return "video"
    return "audio" if extension in _AUDIO_EXTENSIONS else "file"


def _silent_mp3(text_chars: int) -> bytes:
    """Silent MPEG-1 Layer III frames (128 kbit/s, 44.1 kHz): about a tenth of a second per 10 characters."""
    frame = b"\xff\xfb\x90\x64" + bytes(413)
    return frame * max(1, min(text_chars // 3, 2000))


def _history_item(message: _Message) -> dict[str, Any]:
    return {
        "id": message.id,
        "conversation_id": message.conversation_id,
        "parent_message_id": None,
        "inputs": message.inputs,
        "query": message.query,
        "answer": message.answer,
        "status": "normal",
        "error": None,
        "message_files": [
            {"id": f["id"], "type": "image", "url": f["url"], "belongs_to": "user"} for f in message.files
        ],
        "feedback": message.feedback,
        "retriever_resources": message.retriever_resources,
        "agent_thoughts": [],
        "created_at": message.created_at,
    }


def _parse_form(content_type: str, raw: bytes) -> _Form:
    if not content_type.lower().startswith("multipart/form-data"):
        return _Form({}, {}, 0)
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
        b"Content-Type: " + content_type.encode("latin-1") + b"\r\n\r\n" + raw
    )
    fields, files, file_parts = {}, {}, 0
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        filename = part.get_filename()
        data = part.get_payload(decode=True) or b""
        if filename is None:
            fields[name] = data.decode("utf-8", "replace")
            continue
        file_parts += 1
        declared = part.get("Content-Type")
        kind = declared.split(";")[0].strip().lower() if declared else ""
        files.setdefault(name, _FilePart(filename, kind, data))
    return _Form(fields, files, file_parts)


def _parse_body(raw: bytes, content_type: str = "") -> Any:
    """What a test sees of a request body: JSON, a form (its fields, and each file's name, type and size),
    or text."""
    if not raw:
        return None
    if content_type.lower().startswith("multipart/form-data"):
        form = _parse_form(content_type, raw)
        described = {
            name: {"filename": f.filename, "content_type": f.content_type, "size": len(f.data)}
            for name, f in form.files.items()
        }
        return form.fields | described
    text = raw.decode("utf-8", errors="replace")
    try:
        return json.loads(text)
    except ValueError:
        return text


# ---------------------------------------------------------------- HTTP plumbing


class _RequestHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, and chunked streams
    disable_nagle_algorithm = True  # headers and body go out in separate writes: no 40 ms delayed-ACK stall
    server: "_Server"

    def do_GET(self) -> None:
        self.server.simulator._serve(self)

    do_POST = do_PUT = do_PATCH = do_DELETE = do_GET

    def log_message(self, format: str, *args: Any) -> None:
        pass  # DifySimulator(verbose=True) prints its own one-line log


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], simulator: DifySimulator) -> None:
        self.simulator = simulator
        super().__init__(address, _RequestHandler)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that hangs up (a relay's timeout, a pooled connection closed) is routine, as for a real
        # server; anything else is printed as socketserver does.
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


def _send(h: _RequestHandler, response: _Json, fault: Fault | None = None) -> int:
    status, headers = response.status, {"Content-Type": JSON_TYPE, **response.headers}
    data = b"" if response.body is None else json.dumps(response.body).encode()
    if fault and fault.kind == "truncated_json":
        status, data = 200, data[: len(data) // 2]
    if status == 204:
        del headers["Content-Type"]
    h.send_response(status)
    for name, value in headers.items():
        h.send_header(name, value)
    h.send_header("Content-Length", str(len(data)))
    h.end_headers()
    if fault and fault.kind == "slow_body":
        time.sleep(fault.delay)
    h.wfile.write(data)
    return status


def _send_bytes(h: _RequestHandler, response: _Bytes) -> int:
    """A binary answer, chunked as Dify streams the audio it makes."""
    h.send_response(response.status)
    h.send_header("Content-Type", response.content_type)
    h.send_header("Transfer-Encoding", "chunked")
    h.end_headers()
    for start in range(0, len(response.data), 16 * 1024):
        _write_chunk(h, response.data[start : start + 16 * 1024])
    _write_chunk(h, b"")
    return response.status


class _NoRoute(Exception):
    """No route matches the URL: Werkzeug's own 404 page answers, not Dify's JSON envelope."""


def _werkzeug_page(status: int, title: str, text: str) -> str:
    """An error page as Werkzeug renders it for an HTTPException no JSON handler caught."""
    return (
        f"<!doctype html>\n<html lang=en>\n<title>{status} {title}</title>\n<h1>{title}</h1>\n<p>{text}</p>\n"
    )


def _proxy_page(status: int) -> str:
    """An error page as a reverse proxy in front of Dify (nginx) sends it."""
    title = f"{status} {HTTPStatus(status).phrase}"
    page = f"<html><head><title>{title}</title></head><body><center><h1>{title}</h1></center>"
    return page + "<hr><center>nginx</center></body></html>"


def _send_html(h: _RequestHandler, status: int, page: str, headers: dict[str, str]) -> int:
    data = page.encode()
    h.send_response(status)
    for name, value in headers.items():
        h.send_header(name, value)
    h.send_header("Content-Length", str(len(data)))
    h.end_headers()
    h.wfile.write(data)
    return status


def _write_chunk(h: _RequestHandler, data: bytes) -> None:
    """One HTTP/1.1 chunk; empty data writes the last chunk."""
    h.wfile.write(b"%X\r\n%s\r\n" % (len(data), data))


def _abort(h: _RequestHandler, reset: bool) -> None:
    """Drop the connection mid-exchange: a TCP reset, or an end of stream without the last chunk."""
    h.close_connection = True
    if reset:
        h.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        h.rfile.close()  # release the makefile reference so close() really closes (and resets)
        h.connection.close()
    else:
        h.connection.shutdown(socket.SHUT_RDWR)


# ---------------------------------------------------------------- command line


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m local.dify_simulator", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=5001)
    parser.add_argument("--mode", choices=sorted(MODES), default="chat")
    parser.add_argument("--key", default="app-local", help="the API key the app answers to")
    parser.add_argument("--required-input", action="append", default=[], metavar="NAME")
    parser.add_argument("--optional-input", action="append", default=[], metavar="NAME")
    parser.add_argument("--verbose", action="store_true", help="print one line per request")
    parser.add_argument(
        "--latency-ms",
        type=float,
        nargs=2,
        default=(0.0, 0.0),
        metavar=("LO", "HI"),
        help="answer time range",
    )
    args = parser.parse_args(argv)
    app = App(
        mode=args.mode,
        required_inputs=tuple(args.required_input),
        optional_inputs=tuple(args.optional_input),
        latency_ms=tuple(args.latency_ms),
    )
    with DifySimulator({args.key: app}, host=args.host, port=args.port, verbose=args.verbose) as sim:
        print(f"Dify simulator: {app.name} at {sim.url} (API key {args.key}); Ctrl-C to stop", flush=True)
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            pass


if __name__ == "__main__":
    main()
