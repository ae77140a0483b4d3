"""Lambda entry point: routes of the widget API v1 mapped to the turn, companion and media services.

Each route serves the stack's default app at `/v1/<route>` and a registered app at `/v1/apps/<app>/<route>`.
"""

import base64

from aws_lambda_powertools import Logger
from aws_lambda_powertools.event_handler import APIGatewayRestResolver, CORSConfig, Response, content_types
from aws_lambda_powertools.event_handler.exceptions import NotFoundError
from aws_lambda_powertools.logging import correlation_paths

from relay import telemetry, wiring
from relay.apps import app_id_of, default_route, route_path
from relay.deadline import Deadline
from relay.errors import ErrorKind, RelayError
from relay.openapi import app_document
from relay.openapi import document as openapi_document
from relay.settings import Settings
from relay.telemetry import metrics
from relay.widget import (
    history_before_of,
    history_limit_of,
    json_body,
    message_id_of,
    parse_chat_request,
    parse_feedback,
    session_id_of,
)

logger = Logger()
settings = Settings.from_env()
relay = wiring.Relay(settings)
services = relay.default  # `make local` shares it with the streaming function


def current() -> wiring.Services:
    """The services of the app the request's path names (404 for an app the registry does not have)."""
    return relay.services(app_id_of(app.current_event.path))


class PolicyCors(CORSConfig):
    """The resolver's CORS grants, from the origin policy of the request's app."""

    def allowed_origin(self, extracted_origin: str | None) -> str | None:
        return extracted_origin if self.to_dict(extracted_origin) else None

    def to_dict(self, origin: str | None) -> dict[str, str]:
        try:
            return current().origins.cors_headers(origin)
        except RelayError:  # no such app: no grant
            return {}


app = APIGatewayRestResolver(cors=PolicyCors())


def enforce_origin(app: APIGatewayRestResolver, next_middleware):
    # CORS only stops a browser from reading the answer; the allow-list must stop the call itself.
    served = current()
    telemetry.for_app(served.app.app_id)
    if not served.origins.permits(app.current_event.headers.get("origin")):
        raise RelayError(ErrorKind.ORIGIN_NOT_ALLOWED, "This site may not use this assistant.")
    return next_middleware(app)


app.use(middlewares=[enforce_origin])


def route(rule: str, method: str):
    """`rule` for the default app (`/v1<rule>`) and for every registered app (`/v1/apps/<app><rule>`)."""

    def register(handler):
        app.route(f"/v1{rule}", method=method)(handler)
        app.route(f"/v1/apps/<app_id>{rule}", method=method)(lambda app_id, **params: handler(**params))
        return handler

    return register


@route("/chat", "POST")
def chat():
    served = current()
    request = parse_chat_request(
        text_body(),
        max_message_chars=settings.max_message_chars,
        allowed_inputs=served.app.allowed_inputs,
        max_body_bytes=settings.max_body_bytes,
    )
    deadline = invocation_deadline()

    def answer() -> dict:
        return served.turns.take_turn(request, deadline=deadline, client_ip=client_ip()).to_json()

    key = app.current_event.headers.get("idempotency-key")
    if key is None:
        return answer()
    return served.repeats.answer(key, request.scope() | served.app.scope(), answer, app.lambda_context)


@route("/chat/stop", "POST")
def stop():
    body = json_body(text_body(), settings.max_body_bytes, ("sessionId", "taskId"))
    session_id, task_id = session_id_of(body.get("sessionId")), message_id_of(body.get("taskId"), "taskId")
    current().turns.stop_turn(session_id, task_id, deadline=invocation_deadline())
    return {"result": "ok"}


@route("/audio", "POST")
def audio():
    session_id = session_id_of(query().get("sessionId"), required=False)
    return current().media.transcribe(
        session_id, raw_body(), content_type(), invocation_deadline(), client_ip()
    )


@route("/files", "POST")
def files():
    session_id = session_id_of(query().get("sessionId"), required=False)
    media = current().media
    uploaded = media.upload_image(session_id, raw_body(), content_type(), invocation_deadline(), client_ip())
    return Response(status_code=201, content_type=content_types.APPLICATION_JSON, body=uploaded)


@route("/speech", "POST")
def speech():
    body = json_body(text_body(), settings.max_body_bytes, ("sessionId", "messageId"))
    session_id, message_id = session_id_of(body.get("sessionId")), message_id_of(body.get("messageId"))
    audio, audio_type = current().media.speak(session_id, message_id, invocation_deadline(), client_ip())
    return Response(status_code=200, content_type=audio_type, body=audio)


@route("/config", "GET")
def config():
    return current().companion.config(invocation_deadline())


@route("/feedback", "POST")
def feedback():
    request = parse_feedback(text_body(), max_body_bytes=settings.max_body_bytes)
    current().companion.feedback(
        request.session_id, request.message_id, request.rating, request.content, invocation_deadline()
    )
    return {"result": "ok"}


@route("/suggested", "GET")
def suggested():
    session_id, message_id = session_id_of(query().get("sessionId")), message_id_of(query().get("messageId"))
    return {"questions": current().companion.suggested(session_id, message_id, invocation_deadline())}


@route("/history", "GET")
def history():
    session_id, limit = session_id_of(query().get("sessionId")), history_limit_of(query().get("limit"))
    before = history_before_of(query().get("before"))
    found = current().companion.history(session_id, limit, before, invocation_deadline())
    return {"sessionId": session_id} | found


@route("/session", "DELETE")
def erase_session():
    body = json_body(text_body(), settings.max_body_bytes, ("sessionId",))
    current().companion.erase(session_id_of(body.get("sessionId")), invocation_deadline())
    return Response(status_code=204, body="")


@route("/openapi.json", "GET")
def openapi():
    served = current().app
    if served.is_default:
        return openapi_document(served.allowed_inputs)
    return app_document(served.app_id, served.allowed_inputs)


@route("/<name>", "OPTIONS")
@route("/chat/<name>", "OPTIONS")
def preflight(name: str):
    # A preflight grants the methods of its own route (Powertools' would list every method of the API).
    methods = route_methods()
    if not methods:
        raise RelayError(ErrorKind.NOT_FOUND, "No such route.")
    allowed = ", ".join(sorted({"OPTIONS", *methods}))
    return Response(status_code=204, body="", headers={"Access-Control-Allow-Methods": allowed})


def route_methods() -> list[str]:
    """The methods the current request's path takes, as the OpenAPI document lists them; none: no route."""
    paths = openapi_document(settings.default_app.allowed_inputs)["paths"]
    methods = paths.get(default_route(app.current_event.path), {})
    return sorted(method.upper() for method in methods)


def query() -> dict[str, str]:
    return app.current_event.query_string_parameters or {}


def client_ip() -> str | None:
    return app.current_event.request_context.identity.source_ip


def content_type() -> str | None:
    return app.current_event.headers.get("content-type")


def text_body() -> str | None:
    try:
        return app.current_event.decoded_body
    except UnicodeDecodeError:  # bytes of a binary media type (template.yaml BinaryMediaTypes)
        raise RelayError(ErrorKind.INVALID_REQUEST, "The request body must be a JSON object.") from None


def raw_body() -> bytes:
    """The uploaded bytes: API Gateway base64-encodes bodies of the binary media types."""
    event = app.current_event
    if event.is_base64_encoded:
        return base64.b64decode(event.body or "")
    return (event.body or "").encode("utf-8", "surrogateescape")


def invocation_deadline() -> Deadline:
    return Deadline.for_invocation(
        app.lambda_context,
        gateway_timeout_ms=settings.gateway_timeout_ms,
        margin_ms=settings.deadline_margin_ms,
    )


def error_response(error: RelayError) -> Response:
    telemetry.error(error.kind.code)
    return Response(
        status_code=error.kind.status,
        content_type=content_types.APPLICATION_JSON,
        body=error.body(),
        headers=error.headers(),
    )


@app.exception_handler(RelayError)
def relay_error(error: RelayError) -> Response:
    return error_response(error)


@app.not_found
def not_found(_: NotFoundError) -> Response:
    methods = route_methods()
    if not methods:
        return error_response(RelayError(ErrorKind.NOT_FOUND, "No such route."))
    allowed = ", ".join(methods)
    response = error_response(RelayError(ErrorKind.METHOD_NOT_ALLOWED, f"This route answers {allowed}."))
    response.headers["Allow"] = allowed
    return response


@app.exception_handler(Exception)
def unexpected_error(error: Exception) -> Response:
    logger.exception("unexpected error")
    return error_response(RelayError(ErrorKind.INTERNAL, "The relay failed unexpectedly. Please try again."))


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_REST)
@metrics.log_metrics
def lambda_handler(event, context):
    telemetry.for_app(None)
    return app.resolve({**event, "path": route_path(event)}, context)
