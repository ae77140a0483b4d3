"""The handler, invoked in-process with API Gateway events, against the Dify simulator on loopback
and Secrets Manager and DynamoDB through moto."""

from __future__ import annotations

import copy
import importlib
import io
import json
import logging
from dataclasses import dataclass, field

import boto3
import pytest
from moto import mock_aws

from local.apigw import LambdaContext, load_event, rest_event
from local.dify_simulator import App
from tests.conftest import CANARY, DIFY_KEY
from tests.support import Reply, atomic_dynamodb, create_sessions_table, reply_from

ORIGIN = "http://localhost:8080"
TABLE = "relay-sessions"
SECRET = "dify-relay/dify-app-key"


@dataclass
class Aws:
    secret_arn: str
    secrets: object
    dynamodb: object

    def store_key(self, value: str) -> None:
        self.secrets.put_secret_value(SecretId=self.secret_arn, SecretString=value)


@pytest.fixture
def aws():
    with mock_aws():
        secrets = boto3.client("secretsmanager")
        arn = secrets.create_secret(Name=SECRET, SecretString=DIFY_KEY)["ARN"]
        dynamodb = boto3.client("dynamodb")
        create_sessions_table(dynamodb, TABLE)
        yield Aws(arn, secrets, dynamodb)


@pytest.fixture
def simulator(dify_server):
    dify_server.reset({DIFY_KEY: App(mode="chat")})
    return dify_server


@dataclass
class Relay:
    handler: object
    replies: list[Reply] = field(default_factory=list)

    def invoke(self, event: dict) -> Reply:
        reply = reply_from(self.handler(event, LambdaContext()))
        self.replies.append(reply)
        return reply

    def chat(self, body, *, origin: str | None = ORIGIN, event: str = "chat_first_turn.json") -> Reply:
        request = copy.deepcopy(load_event(event))
        request["body"] = body if isinstance(body, str) else json.dumps(body)
        set_origin(request, origin)
        return self.invoke(request)

    def request(
        self, method: str, path: str, *, body=None, query: str = "", origin: str | None = ORIGIN
    ) -> Reply:
        """Any route, as API Gateway would deliver it."""
        headers = {"Content-Type": "application/json"} | ({"Origin": origin} if origin else {})
        payload = None if body is None else body if isinstance(body, str) else json.dumps(body)
        return self.invoke(rest_event(method, path, headers=headers, body=payload, query=query))

    def upload(
        self, path: str, data: bytes, content_type: str, *, query: str = "", origin: str | None = ORIGIN
    ) -> Reply:
        """A file as its own body (base64-encoded by API Gateway for the binary media types)."""
        headers = {"Content-Type": content_type} | ({"Origin": origin} if origin else {})
        return self.invoke(rest_event("POST", path, headers=headers, body=data, query=query))


def set_origin(event: dict, origin: str | None) -> None:
    for section in ("headers", "multiValueHeaders"):
        headers = event[section]
        for name in [n for n in headers if n.lower() == "origin"]:
            del headers[name]
        if origin is not None:
            headers["Origin"] = origin if section == "headers" else [origin]


@pytest.fixture
def relay_env(aws, simulator, monkeypatch):
    """The environment the template gives the function, pointed at the simulator and moto."""
    env = {
        "DIFY_API_URL": simulator.url,
        "DIFY_APP_MODE": "chat",
        "DIFY_API_KEY_SECRET": aws.secret_arn,
        "ALLOWED_ORIGINS": f"{ORIGIN},https://www.example.com",
        "SESSIONS_TABLE": TABLE,
        "SESSION_TTL_SECONDS": "3600",
        "MAX_MESSAGE_CHARS": "4000",
        "DIFY_READ_TIMEOUT": "2",
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("DIFY_API_KEY", raising=False)
    return env


@pytest.fixture
def relay_log():
    """Everything the relay's Powertools logger writes during one test."""
    return io.StringIO()


@pytest.fixture
def make_relay(relay_env, relay_log, monkeypatch, request):
    """Loads the handler module afresh (a cold start) with the environment plus any overrides."""
    relays = []

    def build(**overrides) -> Relay:
        for name, value in overrides.items():
            monkeypatch.setenv(name, value)
        import app

        app = importlib.reload(app)
        # Powertools keeps one handler on the stdlib logger across reloads: point it at this test's log.
        for handler in logging.getLogger("dify-relay").handlers:
            handler.stream = relay_log
        relay = Relay(app.lambda_handler)
        relays.append(relay)
        return relay

    yield build
    request.node.relays = relays


@pytest.fixture
def relay(make_relay) -> Relay:
    return make_relay()


@pytest.fixture(autouse=True)
def key_never_leaks(request, relay_log, capfd):
    """After every integration test: no Dify key in any log line, response body or header."""
    yield
    out, err = capfd.readouterr()
    out += relay_log.getvalue()
    replies = [r for relay in getattr(request.node, "relays", []) for r in relay.replies]
    leaks = find_leaks([out, err] + [r.raw_body + json.dumps(r.headers) for r in replies])
    assert not leaks, f"a Dify key leaked: {leaks[0][:300]}"


def find_leaks(texts: list[str]) -> list[str]:
    return [text for text in texts if CANARY in text]


@pytest.fixture
def atomic_requests():
    with atomic_dynamodb():
        yield
