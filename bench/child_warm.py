"""Figure 1, in a process of its own: the warm handler's overhead over a direct call to Dify.

Interleaved pairs: one handler turn (a continued turn through app.lambda_handler, in-memory stores, the key
from Secrets Manager already cached) and one direct urllib3 POST of the same body to the same simulator
endpoint; the order inside a pair alternates. Before the timed pairs, the store calls of first and continued
turns are counted through wrappers that are removed again before timing.

argv: iterations warmup sessions
"""

import time

import harness

harness.child_setup()

import functools  # noqa: E402 - after the search path is set
import json  # noqa: E402
import os  # noqa: E402
import sys  # noqa: E402
from collections import Counter  # noqa: E402

from local.apigw import LambdaContext  # noqa: E402
from relay import limits, sessions  # noqa: E402

ITERATIONS, WARMUP, SESSIONS = (int(arg) for arg in sys.argv[1:4])
APP = os.environ.get("BENCH_APP")  # turns to this registered app (/v1/apps/<app>/chat), not the default
MESSAGE = "Tell me more about your opening hours."

calls: Counter[str] = Counter()
originals = []


def count_calls(owner, name: str, label: str) -> None:
    original = getattr(owner, name)
    originals.append((owner, name, original))

    @functools.wraps(original)
    def counted(*args, **kwargs):
        calls[label] += 1
        return original(*args, **kwargs)

    setattr(owner, name, counted)


count_calls(sessions.InMemorySessionStore, "load", "session load")
count_calls(sessions.InMemorySessionStore, "save", "session save")
count_calls(limits.InMemoryCounters, "spend", "counter spend")

import app  # noqa: E402


def turn(event: dict) -> dict:
    result = app.lambda_handler(event, LambdaContext())
    if result["statusCode"] != 200:
        raise RuntimeError(f"the handler answered {result['statusCode']}: {result['body']}")
    return json.loads(result["body"])


def calls_of(action) -> tuple[dict, dict]:
    calls.clear()
    answer = action()
    return dict(calls), answer


# First turns: no sessionId, the relay creates the session; those sessions are the pool for the rest.
first_turn_calls, conversations = [], {}
for _ in range(SESSIONS):
    counted, answer = calls_of(lambda: turn(harness.chat_event({"message": MESSAGE}, app=APP)))
    first_turn_calls.append(counted)
    conversations[answer["sessionId"]] = answer["conversationId"]
session_ids = list(conversations)
events = {sid: harness.chat_event({"message": MESSAGE, "sessionId": sid}, app=APP) for sid in session_ids}
continued_turn_calls = [calls_of(lambda sid=sid: turn(events[sid]))[0] for sid in session_ids]
for owner, name, original in originals:
    setattr(owner, name, original)

dify = harness.DirectDify(app.settings, MESSAGE, conversations, "blocking")


def direct(sid: str) -> dict:
    response = dify.post(sid)
    if response.status != 200:
        raise RuntimeError(f"Dify answered {response.status}")
    return json.loads(response.data)


chars_before = harness.SINK.chars
for n in range(WARMUP):
    sid = session_ids[n % SESSIONS]
    turn(events[sid])
    direct(sid)
chars_per_turn = (harness.SINK.chars - chars_before) / max(WARMUP, 1)

handler_ms, direct_ms = [], []
clock = time.perf_counter
for n in range(ITERATIONS):
    sid = session_ids[n % SESSIONS]
    event = events[sid]
    if n % 2:
        t0 = clock()
        direct(sid)
        t1 = clock()
        turn(event)
        t2 = clock()
        direct_ms.append((t1 - t0) * 1000)
        handler_ms.append((t2 - t1) * 1000)
    else:
        t0 = clock()
        turn(event)
        t1 = clock()
        direct(sid)
        t2 = clock()
        handler_ms.append((t1 - t0) * 1000)
        direct_ms.append((t2 - t1) * 1000)

harness.report(
    {
        "python": sys.version.split()[0],
        "handler_ms": handler_ms,
        "direct_ms": direct_ms,
        "first_turn_calls": first_turn_calls,
        "continued_turn_calls": continued_turn_calls,
        "log_chars_per_turn": chars_per_turn,
    }
)
