"""POST /v1/chat/stream: a visitor's turn as Server-Sent Events while Dify writes the answer.

Same body and checks as POST /v1/chat (origin, budgets, inputs, idempotency). A refusal before the first event
is the usual JSON error with its status; after it, an `error` event with the same envelope.
"""

from __future__ import annotations

import json
from collections.abc import Generator, Iterator
from contextlib import closing
from dataclasses import dataclass
from itertools import chain

from aws_lambda_powertools import Logger

from relay import sse, telemetry, wiring
from relay.apps import app_id_of, route_path
from relay.deadline import Deadline
from relay.errors import ErrorKind, RelayError
from relay.settings import Settings
from relay.telemetry import metrics
from relay.turns import TurnEvent, replayed
from relay.widget import parse_chat_request

logger = Logger()
settings = Settings.from_env()
relay = wiring.Relay(settings)
STREAM_HEADERS = {
    "Content-Type": "text/event-stream; charset=utf-8",
    "Cache-Control": "no-cache",
    "X-Accel-Buffering": "no",  # no proxy in between should hold events back
}


@dataclass
class StreamedResponse:
    status: int
    headers: dict[str, str]
    body: Generator[bytes, None, None]


def use(shared: wiring.Relay) -> None:
    """Serves streams from apps built elsewhere (`make local` shares the JSON function's)."""
    global relay
    relay = shared


def handle(event: dict, context) -> StreamedResponse:
    headers = {name.lower(): value for name, value in (event.get("headers") or {}).items()}
    logger.set_correlation_id((event.get("requestContext") or {}).get("requestId"))
    cors: dict[str, str] = {}
    telemetry.for_app(None)
    try:
        served = relay.services(app_id_of(route_path(event)))
        telemetry.for_app(served.app.app_id)
        cors = served.origins.cors_headers(headers.get("origin"))
        events = _turn(served, event, headers, context)
        first = next(events)
    except RelayError as error:
        return _refused(error, cors)
    except Exception:
        logger.exception("unexpected error")
        return _refused(
            RelayError(ErrorKind.INTERNAL, "The relay failed unexpectedly. Please try again."), cors
        )
    return StreamedResponse(200, cors | STREAM_HEADERS, _written(chain([first], events), events))


def _turn(served: wiring.Services, event: dict, headers: dict, context) -> Iterator[TurnEvent]:
    if event.get("httpMethod") != "POST":
        raise RelayError(ErrorKind.METHOD_NOT_ALLOWED, "This route answers POST.")
    if not served.origins.permits(headers.get("origin")):
        raise RelayError(ErrorKind.ORIGIN_NOT_ALLOWED, "This site may not use this assistant.")
    request = parse_chat_request(
        _body(event),
        max_message_chars=settings.max_message_chars,
        allowed_inputs=served.app.allowed_inputs,
        max_body_bytes=settings.max_body_bytes,
    )
    deadline = Deadline.for_invocation(
        context, gateway_timeout_ms=settings.stream_max_seconds * 1000, margin_ms=settings.deadline_margin_ms
    )
    client_ip = ((event.get("requestContext") or {}).get("identity") or {}).get("sourceIp")

    def turn() -> Iterator[TurnEvent]:
        return served.turns.stream_turn(request, deadline=deadline, client_ip=client_ip)

    key = headers.get("idempotency-key")
    if key is None:
        return turn()
    return served.repeats.stream(key, request.scope() | served.app.scope(), turn, replayed, context)


def _body(event: dict) -> str | None:
    body = event.get("body")
    if body is not None and event.get("isBase64Encoded"):
        import base64

        body = base64.b64decode(body).decode("utf-8", "replace")
    return body


def _written(events: Iterator[TurnEvent], source: Iterator[TurnEvent]) -> Iterator[bytes]:
    """The events as SSE bytes. Closing this (the visitor left) closes the turn, which stops the Dify run."""
    try:
        with closing(source):
            for event in events:
                yield sse.encode(event.name, None if event.data is None else json.dumps(event.data))
    except RelayError as error:
        telemetry.error(error.kind.code)
        yield sse.encode("error", json.dumps(error.body()))
    except Exception:
        logger.exception("unexpected error mid-stream")
        error = RelayError(ErrorKind.INTERNAL, "The relay failed unexpectedly. Please try again.")
        telemetry.error(error.kind.code)
        yield sse.encode("error", json.dumps(error.body()))
    finally:
        metrics.flush_metrics()


def _refused(error: RelayError, cors: dict[str, str]) -> StreamedResponse:
    telemetry.error(error.kind.code)
    metrics.flush_metrics()
    headers = cors | {"Content-Type": "application/json"} | error.headers()
    body = json.dumps(error.body()).encode()
    return StreamedResponse(error.kind.status, headers, (chunk for chunk in (body,)))  # closable, as a stream
