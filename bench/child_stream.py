"""Figure 4, in a process of its own: assembling a Dify agent stream, through the public path.

DifyClient.ask (as the relay calls it for an agent app) reads a canned HTTP response, as
tests/unit/test_dify_client.py does: the body arrives in reads of CHUNK bytes, each parsed by relay.sse and
assembled into one answer. The stream is what Dify sends an agent-chat app: an agent_thought, agent_message
deltas, a ping now and then, a closing agent_thought and message_end.

argv: chunk_bytes size:repeats [size:repeats ...]
"""

import sys
import time

import harness

harness.child_setup()

import io  # noqa: E402
import json  # noqa: E402

import urllib3  # noqa: E402
from aws_lambda_powertools import Logger  # noqa: E402

from relay.deadline import Deadline  # noqa: E402
from relay.dify import DifyClient, Question  # noqa: E402
from relay.keys import StaticKeyProvider  # noqa: E402

CHUNK = int(sys.argv[1])
PLAN = [tuple(int(part) for part in arg.split(":")) for arg in sys.argv[2:]]
TASK = "5ad4cb98-f0c7-4085-b384-88c403be6290"
CONVERSATION = "45701982-8118-4bc5-8e9b-64562b4555f2"
MESSAGE = "9a1e4c2b-7d3f-4e5a-8b6c-1d2e3f4a5b6c"
PING_EVERY = 50
SSE = {"Content-Type": "text/event-stream; charset=utf-8"}


def event(name: str, **fields) -> bytes:
    ids = {"conversation_id": CONVERSATION, "message_id": MESSAGE, "created_at": 1735732800, "task_id": TASK}
    return b"data: " + json.dumps({"event": name, **ids, **fields}, ensure_ascii=False).encode() + b"\n\n"


def agent_stream(events: int) -> bytes:
    """`events` SSE events in all (pings included), as Dify streams an agent app's answer."""
    thought = {"id": TASK, "position": 1, "thought": "", "observation": "", "tool": "", "tool_input": ""}
    head = [event("agent_thought", **thought)]
    tail = [
        event("agent_thought", **{**thought, "thought": "Answered."}),
        event("message_end", id=MESSAGE, metadata={"usage": {"prompt_tokens": 9, "completion_tokens": 3}}),
    ]
    body = []
    for n in range(events - len(head) - len(tail)):
        if n % PING_EVERY == PING_EVERY - 1:
            body.append(b"event: ping\n\n")
        else:
            body.append(event("agent_message", id=MESSAGE, answer=f"wörd{n % 10} "))
    return b"".join(head + body + tail)


class ChunkedBody(io.RawIOBase):
    """A response body that arrives in the given pieces, one per read."""

    def __init__(self, chunks: list[bytes]) -> None:
        self.chunks = chunks
        self.index = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        if self.index == len(self.chunks):
            return 0
        chunk = self.chunks[self.index]
        self.index += 1
        buffer[: len(chunk)] = chunk
        return len(chunk)


class CannedHttp:
    def __init__(self, chunks: list[bytes]) -> None:
        self.chunks = chunks

    def request(self, method, url, body=None, headers=None, **kwargs):
        return urllib3.HTTPResponse(
            body=io.BufferedReader(ChunkedBody(self.chunks), buffer_size=CHUNK),
            headers=SSE,
            status=200,
            preload_content=False,
        )


Logger()  # the handler's logger, which the client's log lines go to (and into the sink), as in the relay
results = []
for events, repeats in PLAN:
    stream = agent_stream(events)
    chunks = [stream[i : i + CHUNK] for i in range(0, len(stream), CHUNK)]
    http = CannedHttp(chunks)
    dify = DifyClient(
        "http://dify.invalid/v1", StaticKeyProvider("bench"), http=http, connect_timeout=1, read_timeout=1
    )
    question = Question(query="q", user="u")
    seconds = []
    for _ in range(repeats):
        started = time.perf_counter()
        answer = dify.ask(question, app_mode="agent-chat", deadline=Deadline(60))
        seconds.append(time.perf_counter() - started)
    deltas = stream.count(b'"agent_message"')
    if answer.text.count("wörd") != deltas:
        raise RuntimeError("the assembled answer lost deltas")
    results.append({"events": events, "bytes": len(stream), "chunks": len(chunks), "seconds": seconds})

harness.report({"python": sys.version.split()[0], "results": results})
