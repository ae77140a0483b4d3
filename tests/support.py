"""Helpers shared by the integration and template tests."""

from __future__ import annotations

import base64
import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cache
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


@cache
def template() -> dict:
    from cfnlint.decode import cfn_yaml

    return cfn_yaml.load(str(ROOT / "template.yaml"))


def resource(name: str) -> dict:
    return template()["Resources"][name]


def function(name: str) -> dict:
    """A function's properties as SAM deploys them: the template's Globals merged in (maps merged, lists
    of Globals first, the function's own values winning)."""

    def merged(shared, own):
        if isinstance(shared, dict) and isinstance(own, dict):
            return {
                key: merged(shared.get(key), own.get(key))
                if key in shared and key in own
                else own.get(key, shared.get(key))
                for key in {**shared, **own}
            }
        if isinstance(shared, list) and isinstance(own, list):
            return shared + own
        return own

    shared = template().get("Globals", {}).get("Function", {})
    return merged(dict(shared), dict(resource(name)["Properties"]))


def create_sessions_table(dynamodb, name: str) -> None:
    """Creates the sessions table exactly as template.yaml declares it."""
    props = resource("SessionsTable")["Properties"]
    dynamodb.create_table(
        TableName=name,
        BillingMode=props["BillingMode"],
        AttributeDefinitions=props["AttributeDefinitions"],
        KeySchema=props["KeySchema"],
    )
    ttl = props["TimeToLiveSpecification"]
    dynamodb.update_time_to_live(
        TableName=name,
        TimeToLiveSpecification={"AttributeName": ttl["AttributeName"], "Enabled": ttl["Enabled"]},
    )


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    raw_body: str
    base64_encoded: bool = False

    @property
    def data(self) -> bytes:
        """The body's bytes (a binary body arrives base64-encoded, as API Gateway takes it)."""
        return base64.b64decode(self.raw_body) if self.base64_encoded else self.raw_body.encode()

    @property
    def json(self):
        return json.loads(self.raw_body)

    @property
    def error_code(self) -> str | None:
        return self.json.get("error", {}).get("code")


def reply_from(result: dict) -> Reply:
    headers = {k.lower(): v for k, v in (result.get("headers") or {}).items()}
    for name, values in (result.get("multiValueHeaders") or {}).items():
        headers[name.lower()] = ",".join(values)
    return Reply(result["statusCode"], headers, result.get("body") or "", bool(result.get("isBase64Encoded")))


@cache
def openapi() -> dict:
    return json.loads((ROOT / "docs" / "openapi.json").read_text())


def check_schema(name: str, instance) -> None:
    """Fails unless `instance` matches the widget API's OpenAPI schema `name`."""
    from jsonschema import Draft202012Validator
    from referencing import Registry, Resource
    from referencing.jsonschema import DRAFT202012

    document = Resource.from_contents(openapi(), default_specification=DRAFT202012)
    registry = Registry().with_resource("urn:widget-api", document)
    schema = {"$ref": f"urn:widget-api#/components/schemas/{name}"}
    Draft202012Validator(schema, registry=registry).validate(instance)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def local_server(
    env: dict[str, str], *, port: int | None = None, demo_port: int | None = None
) -> Iterator[str]:
    """`make local` as a process of its own (its simulator embedded), with `env` over a clean environment;
    yields the relay's URL."""
    port, demo_port = port or free_port(), demo_port or free_port()
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("DIFY_", "SESSIONS_", "ALLOWED_"))}
    process = subprocess.Popen(
        [sys.executable, "-m", "local.server"],
        cwd=ROOT,
        env=clean | {"PORT": str(port), "DEMO_PORT": str(demo_port)} | env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            line = process.stdout.readline()
            if "listening on" in line or not line:
                break
        assert process.poll() is None, "make local did not start"
        # Keep reading its log (a line or two per request), or a full pipe would stall the server.
        threading.Thread(target=process.stdout.read, daemon=True).start()
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        process.wait(timeout=10)


@contextmanager
def atomic_dynamodb() -> Iterator[None]:
    """DynamoDB executes each request atomically; moto does not. Model that, and nothing more, with a lock
    around moto's item operations: a read-then-write counter still races, a conditional update does not."""
    from moto.dynamodb.models import DynamoDBBackend

    lock = threading.RLock()
    originals = {name: getattr(DynamoDBBackend, name) for name in ("get_item", "put_item", "update_item")}

    def atomic(original):
        def call(self, *args, **kwargs):
            with lock:
                return original(self, *args, **kwargs)

        return call

    for name, original in originals.items():
        setattr(DynamoDBBackend, name, atomic(original))
    try:
        yield
    finally:
        for name, original in originals.items():
            setattr(DynamoDBBackend, name, original)


def wav_bytes(seconds: float = 0.25, rate: int = 16_000) -> bytes:
    """A mono 16-bit WAV of a quiet tone, as the widget records it."""
    import io
    import math
    import struct
    import wave

    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        samples = (int(3000 * math.sin(2 * math.pi * 440 * n / rate)) for n in range(int(seconds * rate)))
        out.writeframes(b"".join(struct.pack("<h", s) for s in samples))
    return buffer.getvalue()


def png_bytes(width: int = 2, height: int = 2) -> bytes:
    """A valid RGB PNG of one colour."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    rows = b"".join(b"\x00" + b"\x20\x80\xc0" * width for _ in range(height))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )
