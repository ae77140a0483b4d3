"""The Lambda Runtime API loop of the streaming function, in streaming response mode.

Python's managed runtime does not stream responses, so the `bootstrap` wrapper script starts this loop instead
of AWS's runtime client (docs/streaming.md has the sources). Each invocation's response is an HTTP integration
response for API Gateway: a JSON prelude, eight NUL bytes, then the body, sent as HTTP/1.1 chunks as it is
produced. `http.client` cannot send trailers, which carry an error after the first byte, so this module frames
the chunks itself.
"""

from __future__ import annotations

import base64
import http.client
import json
import os
import sys
import time
import traceback
from collections.abc import Callable

VERSION = "2018-06-01"
PRELUDE_END = b"\0" * 8
ERROR_TYPE, ERROR_BODY = "Lambda-Runtime-Function-Error-Type", "Lambda-Runtime-Function-Error-Body"


class Context:
    """What the relay and Powertools read of Lambda's context object, from the Runtime API's headers."""

    def __init__(self, headers) -> None:
        self.aws_request_id = headers["Lambda-Runtime-Aws-Request-Id"]
        self.invoked_function_arn = headers.get("Lambda-Runtime-Invoked-Function-Arn", "")
        self._deadline_ms = int(headers.get("Lambda-Runtime-Deadline-Ms") or 0)
        self.function_name = os.environ.get("AWS_LAMBDA_FUNCTION_NAME", "")
        self.function_version = os.environ.get("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
        self.memory_limit_in_mb = int(os.environ.get("AWS_LAMBDA_FUNCTION_MEMORY_SIZE") or 0)
        self.log_group_name = os.environ.get("AWS_LAMBDA_LOG_GROUP_NAME", "")
        self.log_stream_name = os.environ.get("AWS_LAMBDA_LOG_STREAM_NAME", "")

    def get_remaining_time_in_millis(self) -> int:
        return max(0, self._deadline_ms - int(time.time() * 1000))


def _error(error: BaseException) -> dict:
    # Lambda's logs keep the trace; the body only tells Lambda what failed.
    return {"errorType": type(error).__name__, "errorMessage": str(error)}


def _chunk(data: bytes) -> bytes:
    return b"%X\r\n%s\r\n" % (len(data), data)


class RuntimeApi:
    def __init__(self, address: str) -> None:
        self._connection = http.client.HTTPConnection(address)

    def next(self) -> tuple[dict, Context]:
        self._connection.request("GET", f"/{VERSION}/runtime/invocation/next")
        response = self._connection.getresponse()
        event = json.loads(response.read())
        if trace := response.headers.get("Lambda-Runtime-Trace-Id"):
            os.environ["_X_AMZN_TRACE_ID"] = trace
        return event, Context(response.headers)

    def fail(self, path: str, error: BaseException) -> None:
        body = json.dumps(_error(error)).encode()
        headers = {"Content-Type": "application/json", ERROR_TYPE: "Runtime." + type(error).__name__}
        self._connection.request("POST", f"/{VERSION}/runtime/{path}", body, headers)
        self._connection.getresponse().read()

    def stream(self, request_id: str, response) -> None:
        """Writes one response as it is produced; an error after the first byte travels in the trailers."""
        connection = self._connection
        connection.putrequest("POST", f"/{VERSION}/runtime/invocation/{request_id}/response")
        for name, value in (
            ("Lambda-Runtime-Function-Response-Mode", "streaming"),
            ("Transfer-Encoding", "chunked"),
            ("Content-Type", "application/vnd.awslambda.http-integration-response"),
            ("Trailer", f"{ERROR_TYPE}, {ERROR_BODY}"),
        ):
            connection.putheader(name, value)
        connection.endheaders()
        prelude = json.dumps({"statusCode": response.status, "headers": response.headers}).encode()
        trailers = b""
        body = response.body
        try:
            connection.send(_chunk(prelude + PRELUDE_END))
            for data in body:
                if data:
                    connection.send(_chunk(data))
        except (OSError, http.client.HTTPException):
            raise  # the connection is gone: nothing more can be told
        except Exception as error:
            traceback.print_exc()
            encoded = base64.b64encode(json.dumps(_error(error)).encode())
            trailers = b"%s: Runtime.StreamError\r\n%s: %s\r\n" % (
                ERROR_TYPE.encode(),
                ERROR_BODY.encode(),
                encoded,
            )
        finally:
            close = getattr(body, "close", None)
            if close is not None:
                close()  # a body left unfinished stops its Dify run
        connection.send(b"0\r\n" + trailers + b"\r\n")
        connection.getresponse().read()


def serve(address: str, load: Callable[[], Callable], invocations: int | None = None) -> None:
    """Runs the handler `load()` returns for each invocation; `invocations` bounds the loop (tests)."""
    api = RuntimeApi(address)
    try:
        handle = load()
    except Exception as error:
        traceback.print_exc()
        api.fail("init/error", error)
        sys.exit(1)
    served = 0
    while invocations is None or served < invocations:
        event, context = api.next()
        try:
            response = handle(event, context)
        except Exception as error:
            traceback.print_exc()
            api.fail(f"invocation/{context.aws_request_id}/error", error)
        else:
            api.stream(context.aws_request_id, response)
        served += 1


def _load_handler() -> Callable:
    module, _, function = os.environ.get("_HANDLER", "stream_app.handle").rpartition(".")
    return getattr(__import__(module), function)


if __name__ == "__main__":
    serve(os.environ["AWS_LAMBDA_RUNTIME_API"], _load_handler)
