"""What a cold start imports: each function's handler module, imported in a fresh process as Lambda's init
does, loads nothing the first request does not need (boto3 and s3transfer: the relay uses botocore clients;
idempotency and parameters: on first use; X-Ray: off unless tracing), and the streaming function no resolver.
No network: the handlers are configured with a secret name and a table but call nothing at import."""

import json
import subprocess
import sys

import pytest

from tests.support import ROOT

NEVER_AT_INIT = (
    "boto3",
    "s3transfer",
    "aws_lambda_powertools.utilities.idempotency",
    "aws_lambda_powertools.utilities.parameters",
    "aws_xray_sdk",
)
RESOLVER = ("aws_lambda_powertools.event_handler", "asyncio")
ENV = {
    "POWERTOOLS_SERVICE_NAME": "dify-relay",
    "DIFY_API_KEY_SECRET": "dify-relay/dify-app-key",
    "SESSIONS_TABLE": "relay-sessions",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "PYTHONPATH": ":".join(str(ROOT / p) for p in ("functions/relay", "functions/stream", "layers/relay")),
}


def imported_by(module: str) -> set[str]:
    script = f"import json, sys; import {module}; print(json.dumps(sorted(sys.modules)))"
    done = subprocess.run(
        [sys.executable, "-c", script], env=ENV, capture_output=True, text=True, timeout=60, check=True
    )
    return set(json.loads(done.stdout))


@pytest.mark.parametrize(
    ("module", "forbidden"), [("app", NEVER_AT_INIT), ("stream_app", NEVER_AT_INIT + RESOLVER)]
)
def test_a_cold_start_imports_only_what_the_first_request_needs(module, forbidden):
    modules = imported_by(module)
    assert module in modules and "botocore.session" in modules  # the clients are built at init
    assert not [name for name in forbidden if name in modules]
