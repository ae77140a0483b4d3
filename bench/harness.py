"""What the benchmark's parent and its child processes share. Standard library only: the children run in
a Lambda-like layout (function code, layer and runtime SDK directories, no site-packages)."""

from __future__ import annotations

# Only modules the interpreter has loaded at startup: a cold-start child imports this before the handler.
import io
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RELAY = os.path.join(ROOT, "functions", "relay")
# The relay package both functions share, shipped as a layer of its own.
SHARED = os.path.join(ROOT, "layers", "relay")
EVENTS = os.path.join(ROOT, "events")

# Loopback stand-ins only: the simulator and the AWS stub accept exactly these.
DIFY_KEY = "app-bench-loopback-0123456789"
SECRET_NAME = "dify-relay/dify-app-key"  # noqa: S105 - a name, not a secret
TABLE = "relay-sessions"
ORIGIN = "http://localhost:8080"
UNLIMITED = str(10**9)  # a rate budget nothing in the benchmark reaches: the limiter runs, never refuses


def relay_env(dify_url: str, aws_url: str, *, dynamodb: bool, unlimited: bool = False) -> dict[str, str]:
    """The environment template.yaml gives the function, pointed at loopback stand-ins."""
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "LANG": "C.UTF-8",
        "HOME": os.environ.get("HOME", os.devnull),
        "POWERTOOLS_SERVICE_NAME": "dify-relay",
        "POWERTOOLS_METRICS_NAMESPACE": "DifyRelay",
        "POWERTOOLS_LOG_LEVEL": "INFO",
        "DIFY_API_URL": dify_url,
        "DIFY_APP_MODE": "auto",
        "UPSTREAM_MODE": "auto",
        "DIFY_API_KEY_SECRET": SECRET_NAME,
        "ALLOWED_ORIGINS": ORIGIN,
        "AWS_REGION": "us-east-1",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ACCESS_KEY_ID": "bench-access-key",
        "AWS_SECRET_ACCESS_KEY": "bench-secret-key",  # a loopback stub's, not AWS's
        "AWS_SESSION_TOKEN": "bench-session-token",
        "AWS_ENDPOINT_URL_SECRETS_MANAGER": aws_url,
        "AWS_ENDPOINT_URL_DYNAMODB": aws_url,
        "AWS_CONFIG_FILE": os.devnull,
        "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
        "AWS_EC2_METADATA_DISABLED": "true",
    }
    if dynamodb:
        env["SESSIONS_TABLE"] = TABLE
    if unlimited:
        for scope in ("SESSION", "IP"):
            for window in ("MINUTE", "DAY"):
                env[f"RATE_LIMIT_{scope}_PER_{window}"] = UNLIMITED
    return env


# ---------------------------------------------------------------- in a child process


def child_setup() -> None:
    """Puts the relay's code first on sys.path (BENCH_PATH, set by the parent) and the repository last, and
    sends everything the relay prints (log lines, EMF metrics) to a counting sink: fd 1 stays the report
    channel."""
    paths = [p for p in os.environ.get("BENCH_PATH", os.pathsep.join((RELAY, SHARED))).split(os.pathsep) if p]
    sys.path[1:1] = paths  # sys.path[0] is bench/, which holds only these helpers
    sys.path.append(ROOT)
    sys.stdout = SINK


class CountingSink(io.TextIOBase):
    """Discards text and counts it: what the relay would write to CloudWatch Logs."""

    def __init__(self) -> None:
        self.chars = 0

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        self.chars += len(text)
        return len(text)


SINK = CountingSink()


def report(data: dict) -> None:
    import json

    os.write(1, (json.dumps(data) + "\n").encode())


_TEMPLATES: dict[str, dict] = {}


def chat_event(
    body: dict, *, headers: dict[str, str] | None = None, stream: bool = False, app: str | None = None
) -> dict:
    """An API Gateway REST proxy event for POST /v1/chat (or /v1/chat/stream), shaped like the checked-in
    events/chat_first_turn.json (events/chat_stream.json); `app`: the same route of a registered app."""
    import copy
    import json

    name = "chat_stream.json" if stream else "chat_first_turn.json"
    if name not in _TEMPLATES:
        with open(os.path.join(EVENTS, name)) as source:
            _TEMPLATES[name] = json.load(source)
    event = copy.deepcopy(_TEMPLATES[name])
    event["body"] = json.dumps(body)
    if app:
        event["path"] = event["requestContext"]["path"] = event["path"].replace("/v1/", f"/v1/apps/{app}/", 1)
    for name, value in (headers or {}).items():
        event["headers"][name] = value
        event["multiValueHeaders"][name] = [value]
    return event


class DirectDify:
    """What the relay sends Dify for a continued turn, sent straight to the simulator by the same client
    library: the baseline the relay's figures are measured against."""

    def __init__(self, settings, message: str, conversations: dict[str, str], response_mode: str) -> None:
        import json

        import urllib3

        self.http = urllib3.PoolManager(maxsize=4)
        self.url = settings.default_app.dify_api_url + "/chat-messages"
        self.headers = {"Authorization": f"Bearer {DIFY_KEY}", "Content-Type": "application/json"}
        self.timeout = urllib3.Timeout(connect=settings.connect_timeout, read=settings.read_timeout)
        self.bodies = {
            session: json.dumps(
                {
                    "user": session,
                    "response_mode": response_mode,
                    "query": message,
                    "conversation_id": conversation,
                    "inputs": {},
                }
            ).encode()
            for session, conversation in conversations.items()
        }

    def post(self, session: str, **options):
        return self.http.request(
            "POST",
            self.url,
            body=self.bodies[session],
            headers=self.headers,
            timeout=self.timeout,
            retries=False,
            **options,
        )


def rss_kib(field: str = "VmRSS") -> int:
    """A memory figure of this process from /proc/self/status, in KiB (VmRSS: now; VmHWM: its peak)."""
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith(field + ":"))
