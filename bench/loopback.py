"""The relay's neighbours on loopback, in a process of their own so they take no CPU time or memory from the
process being measured: the Dify simulator (local/dify_simulator.py) and a stub of the two AWS APIs the
relay calls, Secrets Manager GetSecretValue and DynamoDB GetItem/PutItem/UpdateItem.

Run as a script, it prints one JSON line {"dify": url, "aws": url} and serves until stdin closes.
`Loopback()` starts it from the parent as a context manager.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

if __package__ in (None, ""):
    sys.path.append(str(Path(__file__).resolve().parent.parent))

from bench.harness import DIFY_KEY, SECRET_NAME

SECRET_ARN = f"arn:aws:secretsmanager:us-east-1:000000000000:secret:{SECRET_NAME}-AbCdEf"


class AwsStub:
    """Answers the AWS JSON-protocol calls the relay makes, as the real services shape them. DynamoDB items
    are kept (GetItem sees what PutItem and a plain UpdateItem wrote); conditions are not evaluated."""

    def __init__(self) -> None:
        self.items: dict[str, dict] = {}
        self.calls: Counter[str] = Counter()
        self.lock = threading.Lock()

    def _update(self, body: dict) -> None:
        """Applies an update's plain `SET name = :value` assignments (what a session save is made of); the
        counters' arithmetic is not kept."""
        item = self.items.setdefault(_key(body), dict(body["Key"]))
        names, values = body.get("ExpressionAttributeNames", {}), body.get("ExpressionAttributeValues", {})
        sets = body.get("UpdateExpression", "").removeprefix("SET ").split(" REMOVE ")[0]
        for assignment in sets.split(", "):
            name, _, value = (part.strip() for part in assignment.partition("="))
            if value in values:
                item[names.get(name, name)] = values[value]

    def answer(self, target: str, body: dict) -> tuple[int, dict]:
        with self.lock:
            self.calls[target] += 1
            if target == "secretsmanager.GetSecretValue":
                if body.get("SecretId") not in (SECRET_NAME, SECRET_ARN):
                    return 400, {"__type": "ResourceNotFoundException", "message": "Secret not found."}
                return 200, {
                    "ARN": SECRET_ARN,
                    "Name": SECRET_NAME,
                    "SecretString": DIFY_KEY,
                    "VersionId": "00000000-0000-4000-8000-000000000001",
                    "VersionStages": ["AWSCURRENT"],
                    "CreatedDate": 1_735_732_800.0,
                }
            if target == "DynamoDB_20120810.GetItem":
                item = self.items.get(_key(body))
                return 200, {"Item": item} if item else {}
            if target == "DynamoDB_20120810.PutItem":
                self.items[_key(body)] = body.get("Item", {})
                return 200, {}
            if target == "DynamoDB_20120810.UpdateItem":
                self._update(body)
                return 200, {}
            if target == "DynamoDB_20120810.DeleteItem":
                self.items.pop(_key(body), None)
                return 200, {}
        return 400, {"__type": "UnknownOperationException", "message": f"not stubbed: {target}"}


def _key(body: dict) -> str:
    key = body.get("Key") or {"pk": body.get("Item", {}).get("pk")}
    return json.dumps(key, sort_keys=True)


class _AwsHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    server: _AwsServer

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b"{}"
        target = self.headers.get("X-Amz-Target", "")
        status, payload = self.server.stub.answer(target, json.loads(raw or b"{}"))
        data = json.dumps(payload).encode()
        version = "1.0" if target.startswith("DynamoDB") else "1.1"
        self.send_response(status)
        self.send_header("Content-Type", f"application/x-amz-json-{version}")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("x-amzn-RequestId", "00000000-0000-4000-8000-000000000000")
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args) -> None:
        pass


class _AwsServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, stub: AwsStub) -> None:
        self.stub = stub
        super().__init__(("127.0.0.1", 0), _AwsHandler)


def serve() -> None:
    from local.dify_simulator import App, DifySimulator

    aws = _AwsServer(AwsStub())
    threading.Thread(target=aws.serve_forever, args=(0.05,), daemon=True).start()
    with DifySimulator(apps={DIFY_KEY: App(mode="chat")}) as dify:
        aws_url = f"http://127.0.0.1:{aws.server_address[1]}"
        print(json.dumps({"dify": dify.url, "aws": aws_url}), flush=True)
        sys.stdin.read()  # until the parent closes it
    aws.shutdown()


class Loopback:
    """The loopback services in a child process, for as long as the context lasts."""

    def __enter__(self) -> Loopback:
        self._process = subprocess.Popen(  # noqa: S603 - this interpreter, this file
            [sys.executable, str(Path(__file__).resolve())],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        line = self._process.stdout.readline()
        if not line:
            raise RuntimeError("the loopback services did not start")
        urls = json.loads(line)
        self.dify_url, self.aws_url = urls["dify"], urls["aws"]
        return self

    def __exit__(self, *exc_info) -> None:
        self._process.stdin.close()
        try:
            self._process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._process.kill()


if __name__ == "__main__":
    serve()
