"""A canned Dify agent stream for the stream figures: what Dify sends an agent-chat app (an agent_thought,
agent_message deltas, a ping now and then, a closing agent_thought and message_end), served by a stand-in for
urllib3's PoolManager as the unit tests do."""

import io
import json

import urllib3

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
    """Answers every request with the same stream, arriving in `chunks`, read `read_bytes` at a time."""

    def __init__(self, chunks: list[bytes], read_bytes: int) -> None:
        self.chunks = chunks
        self.read_bytes = read_bytes

    def request(self, method, url, body=None, headers=None, **kwargs):
        return urllib3.HTTPResponse(
            body=io.BufferedReader(ChunkedBody(self.chunks), buffer_size=self.read_bytes),
            headers=SSE,
            status=200,
            preload_content=False,
        )
