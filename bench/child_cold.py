"""Figure 2, one cold start per process: import the handler, answer a first turn, then a second one.

Times are time.monotonic() readings (CLOCK_MONOTONIC, the clock the parent reads too), so the parent can
measure from the moment it started this process.
"""

import time

STARTED = time.monotonic()

import harness  # noqa: E402

harness.child_setup()

import sys  # noqa: E402

BEFORE_IMPORT = time.monotonic()
import app  # noqa: E402

IMPORTED = time.monotonic()

from local.apigw import LambdaContext  # noqa: E402 - after the handler: not part of its import

# Time spent building AWS clients during the first turn (the relay creates them on first use).
client_seconds = []
if "botocore.session" in sys.modules:
    import botocore.session

    build_client = botocore.session.Session.create_client

    def timed_client(*args, **kwargs):
        started = time.monotonic()
        try:
            return build_client(*args, **kwargs)
        finally:
            client_seconds.append(time.monotonic() - started)

    botocore.session.Session.create_client = timed_client

first = harness.chat_event({"message": "Hello! What can you do?", "sessionId": "bench-cold-session-1"})
second = harness.chat_event({"message": "Tell me more.", "sessionId": "bench-cold-session-1"})
FIRST_START = time.monotonic()
status_first = app.lambda_handler(first, LambdaContext())["statusCode"]
ANSWERED = time.monotonic()
status_second = app.lambda_handler(second, LambdaContext())["statusCode"]
SECOND = time.monotonic()

harness.report(
    {
        "python": sys.version.split()[0],
        "started": STARTED,
        "before_import": BEFORE_IMPORT,
        "imported": IMPORTED,
        "first_start": FIRST_START,
        "answered": ANSWERED,
        "second_answered": SECOND,
        "status": [status_first, status_second],
        "aws_clients": len(client_seconds),
        "aws_client_s": sum(client_seconds),
        "modules": len(sys.modules),
    }
)
