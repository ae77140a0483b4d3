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

# Time spent building boto3 clients during the first turn (the relay creates them on first use).
client_seconds = []
if "boto3" in sys.modules:
    import boto3.session

    build_client = boto3.session.Session.client

    def timed_client(*args, **kwargs):
        started = time.monotonic()
        try:
            return build_client(*args, **kwargs)
        finally:
            client_seconds.append(time.monotonic() - started)

    boto3.session.Session.client = timed_client

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
        "boto3_clients": len(client_seconds),
        "boto3_client_s": sum(client_seconds),
        "modules": len(sys.modules),
    }
)
