"""API Gateway REST proxy events and a Lambda context, for calling the handler outside AWS."""

from __future__ import annotations

import copy
import json
import time
import uuid
from pathlib import Path
from urllib.parse import parse_qs

EVENTS = Path(__file__).resolve().parent.parent / "events"
STAGE = "live"


def load_event(name: str) -> dict:
    return json.loads((EVENTS / name).read_text())


_TEMPLATE = load_event("chat_first_turn.json")


def rest_event(
    method: str,
    path: str,
    *,
    headers: dict[str, str] | None = None,
    body: str | None = None,
    query: str = "",
    source_ip: str = "127.0.0.1",
) -> dict:
    """A REST proxy event shaped like the checked-in ones, as API Gateway would send it."""
    event = copy.deepcopy(_TEMPLATE)
    headers = dict(headers or {})
    params = parse_qs(query, keep_blank_values=True)
    event.update(
        httpMethod=method,
        path=path,
        resource=path,
        headers=headers,
        multiValueHeaders={k: [v] for k, v in headers.items()},
        queryStringParameters={k: v[-1] for k, v in params.items()} or None,
        multiValueQueryStringParameters=params or None,
        body=body,
        isBase64Encoded=False,
    )
    context = event["requestContext"]
    context.update(
        httpMethod=method,
        path=f"/{STAGE}{path}",
        resourcePath=path,
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
