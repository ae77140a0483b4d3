"""API Gateway REST proxy events and a Lambda context, for calling the handler outside AWS."""

from __future__ import annotations

import base64
import copy
import fnmatch
import json
import time
import uuid
from pathlib import Path
from urllib.parse import parse_qs

EVENTS = Path(__file__).resolve().parent.parent / "events"
STAGE = "live"
# The request types API Gateway hands Lambda base64-encoded (BinaryMediaTypes in template.yaml).
BINARY_MEDIA_TYPES = ("audio/*", "image/*")


def load_event(name: str) -> dict:
    return json.loads((EVENTS / name).read_text())


_TEMPLATE = load_event("chat_first_turn.json")


def is_binary(content_type: str) -> bool:
    """Whether API Gateway treats a body of this type (or an Accept of it) as binary."""
    media_type = content_type.split(";")[0].strip().lower()
    return bool(media_type) and any(fnmatch.fnmatchcase(media_type, t) for t in BINARY_MEDIA_TYPES)


def rest_event(
    method: str,
    path: str,
    *,
    headers: dict[str, str] | None = None,
    body: str | bytes | None = None,
    query: str = "",
    source_ip: str = "127.0.0.1",
) -> dict:
    """A REST proxy event shaped like the checked-in ones, as API Gateway would send it: a body of a binary
    media type base64-encoded, any other as text."""
    event = copy.deepcopy(_TEMPLATE)
    headers = dict(headers or {})
    params = parse_qs(query, keep_blank_values=True)
    binary = is_binary(next((v for k, v in headers.items() if k.lower() == "content-type"), ""))
    if isinstance(body, str) and binary:
        body = body.encode()
    if isinstance(body, bytes):
        body = base64.b64encode(body).decode() if binary else body.decode("utf-8", "replace")
    from relay.apps import api_route  # importable once the relay is on sys.path (local.server's main())

    resource, path_parameters = api_route(path)
    event.update(
        httpMethod=method,
        path=path,
        resource=resource,
        pathParameters=path_parameters,
        headers=headers,
        multiValueHeaders={k: [v] for k, v in headers.items()},
        queryStringParameters={k: v[-1] for k, v in params.items()} or None,
        multiValueQueryStringParameters=params or None,
        body=body,
        isBase64Encoded=binary and body is not None,
    )
    context = event["requestContext"]
    context.update(
        httpMethod=method,
        path=f"/{STAGE}{path}",
        resourcePath=resource,
        requestId=str(uuid.uuid4()),
        requestTimeEpoch=int(time.time() * 1000),
    )
    context["identity"]["sourceIp"] = source_ip
    return event


class LambdaContext:
    """The parts of Lambda's context object the handler and Powertools read."""

    function_name = "dify-relay-local"
    function_version = "$LATEST"
    memory_limit_in_mb = 256
    invoked_function_arn = "arn:aws:lambda:us-east-1:000000000000:function:dify-relay-local"

    def __init__(self, timeout_ms: int = 30_000) -> None:
        self.aws_request_id = str(uuid.uuid4())
        self._deadline = time.monotonic() + timeout_ms / 1000

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.monotonic()) * 1000))
