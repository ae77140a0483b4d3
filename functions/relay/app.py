"""Lambda entry point: routes of the widget API v1 mapped to the turn service."""

from aws_lambda_powertools import Logger
from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response, content_types
from aws_lambda_powertools.event_handler.exceptions import NotFoundError
from aws_lambda_powertools.logging import correlation_paths

from relay import telemetry, wiring
from relay.deadline import Deadline
from relay.errors import ErrorKind, RelayError
from relay.origins import OriginPolicy
from relay.settings import Settings
from relay.telemetry import metrics
from relay.widget import parse_chat_request

logger = Logger()
settings = Settings.from_env()
turns = wiring.turn_service(settings)
repeats = wiring.repeats(settings)
origins = OriginPolicy(settings.allowed_origins, require_origin=settings.require_origin)
app = APIGatewayRestResolver(cors=origins)


def enforce_origin(app: APIGatewayRestResolver, next_middleware):
    # CORS only stops a browser from reading the answer; the allow-list must stop the call itself.
    if not origins.permits(app.current_event.headers.get("origin")):
        raise RelayError(ErrorKind.ORIGIN_NOT_ALLOWED, "This site may not use this assistant.")
    return next_middleware(app)


app.use(middlewares=[enforce_origin])


@app.post("/v1/chat")
def chat():
    request = parse_chat_request(
        app.current_event.decoded_body,
        max_message_chars=settings.max_message_chars,
        allowed_inputs=settings.allowed_inputs,
        max_body_bytes=settings.max_body_bytes,
    )
    deadline = Deadline.for_invocation(
        app.lambda_context,
        gateway_timeout_ms=settings.gateway_timeout_ms,
        margin_ms=settings.deadline_margin_ms,
    )
    client_ip = app.current_event.request_context.identity.source_ip

    def answer() -> dict:
        return turns.take_turn(request, deadline=deadline, client_ip=client_ip).to_json()

    key = app.current_event.headers.get("idempotency-key")
    if key is None:
        return answer()
    return repeats.answer(key, request.scope(), answer, app.lambda_context)


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
    return error_response(RelayError(ErrorKind.NOT_FOUND, "No such route."))


@app.exception_handler(Exception)
def unexpected_error(error: Exception) -> Response:
    logger.exception("unexpected error")
    return error_response(RelayError(ErrorKind.INTERNAL, "The relay failed unexpectedly. Please try again."))


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_REST)
@metrics.log_metrics
def lambda_handler(event, context):
    return app.resolve(event, context)
