"""Figure 6, in a process of its own: a streamed turn (POST /v1/chat/stream) through stream_app.handle.

(a) Time to first byte: interleaved pairs of one continued streamed turn through the handler, timed until its
first bytes (the `start` event) are out, and one direct streaming POST of the same body to the same simulator
endpoint, timed until its first whole data event has arrived (the event the relay's `start` waits for). Both
are then read to their end, untimed.

(b) Per-event cost: the handler's whole body for a canned agent stream of N events (bench/canned.py), against
DifyClient.stream over the same bytes (reading Dify's events and assembling the answer, which any relay must
do); the difference is the relay's own work per event: turn events, JSON and SSE encoding.

argv: pairs warmup sessions events [events ...]
"""

import dataclasses
import time
import types

import harness

harness.child_setup()

import json  # noqa: E402
import os  # noqa: E402
import sys  # noqa: E402

sys.path.insert(1, os.path.join(harness.ROOT, "functions", "stream"))

import stream_app  # noqa: E402
from canned import CannedHttp, agent_stream  # noqa: E402

from local.apigw import LambdaContext  # noqa: E402
from relay.deadline import Deadline  # noqa: E402
from relay.dify import DifyClient, Question  # noqa: E402
from relay.keys import StaticKeyProvider  # noqa: E402
from relay.sessions import InMemorySessionStore  # noqa: E402
from relay.turns import TurnService  # noqa: E402

PAIRS, WARMUP, SESSIONS = (int(arg) for arg in sys.argv[1:4])
SIZES = [int(arg) for arg in sys.argv[4:]]
MESSAGE = "Tell me more about your opening hours."
READ_BYTES = 16384
clock = time.perf_counter


def streamed(event: dict) -> tuple[float, bytes]:
    """Seconds until the handler's first bytes, and the whole body."""
    started = clock()
    response = stream_app.handle(event, LambdaContext(timeout_ms=300_000))
    if response.status != 200:
        raise RuntimeError(f"the handler answered {response.status}: {b''.join(response.body)!r}")
    first = next(response.body)
    elapsed = clock() - started
    return elapsed, first + b"".join(response.body)


def sessions() -> tuple[list[str], dict[str, str]]:
    conversations = {}
    for _ in range(SESSIONS):
        _, body = streamed(harness.chat_event({"message": MESSAGE}, stream=True))
        end = json.loads(body.rsplit(b"event: end\ndata: ", 1)[1])
        conversations[end["sessionId"]] = end["conversationId"]
    return list(conversations), conversations


session_ids, conversations = sessions()
events = {sid: harness.chat_event({"message": MESSAGE, "sessionId": sid}, stream=True) for sid in session_ids}
dify_direct = harness.DirectDify(stream_app.settings, MESSAGE, conversations, "streaming")


def direct(sid: str) -> float:
    """Seconds until the simulator's first whole data event."""
    started = clock()
    response = dify_direct.post(sid, preload_content=False)
    received, elapsed = b"", None
    for chunk in response.stream(READ_BYTES):
        received += chunk
        if elapsed is None and b"data: " in received and b"\n\n" in received.split(b"data: ", 1)[1]:
            elapsed = clock() - started
    response.release_conn()
    if response.status != 200 or elapsed is None:
        raise RuntimeError(f"Dify answered {response.status} without a data event")
    return elapsed


for n in range(WARMUP):
    sid = session_ids[n % SESSIONS]
    streamed(events[sid])
    direct(sid)
relay_s, direct_s = [], []
for n in range(PAIRS):
    sid = session_ids[n % SESSIONS]
    if n % 2:
        direct_s.append(direct(sid))
        relay_s.append(streamed(events[sid])[0])
    else:
        relay_s.append(streamed(events[sid])[0])
        direct_s.append(direct(sid))

# (b) The canned stream, through the whole handler and through the Dify client alone.
per_event = []
default_app = stream_app.relay.default
for size in SIZES:
    stream = agent_stream(size)
    chunks = [stream[i : i + READ_BYTES] for i in range(0, len(stream), READ_BYTES)]
    dify = DifyClient(
        "http://dify.invalid/v1",
        StaticKeyProvider("bench"),
        http=CannedHttp(chunks, READ_BYTES),
        connect_timeout=1,
        read_timeout=1,
    )
    turns = TurnService(dify, InMemorySessionStore(), session_ttl_seconds=3600, app_mode="agent")
    served = dataclasses.replace(default_app, turns=turns)
    stream_app.use(types.SimpleNamespace(services=lambda app_id, served=served: served))
    event = harness.chat_event({"message": MESSAGE}, stream=True)
    whole, client_only, written = [], [], 0
    for _ in range(5 if size <= 10_000 else 2):
        started = clock()
        parts = list(
            dify.stream(Question(query=MESSAGE, user="u"), app_mode="agent-chat", deadline=Deadline(60))
        )
        client_only.append(clock() - started)
        started = clock()
        response = stream_app.handle(event, LambdaContext(timeout_ms=300_000))
        written = sum(len(data) for data in response.body)
        whole.append(clock() - started)
    if not parts[-1].text or b"event: end" not in b"".join(stream_app.handle(event, LambdaContext()).body):
        raise RuntimeError("the streamed turn did not end")
    per_event.append(
        {
            "events": size,
            "bytes_in": len(stream),
            "bytes_out": written,
            "whole_s": whole,
            "client_s": client_only,
        }
    )

harness.report(
    {
        "python": sys.version.split()[0],
        "ttfb": {"relay_s": relay_s, "direct_s": direct_s},
        "per_event": per_event,
    }
)
