"""Soak: 2,000 turns through the handler with randomly injected faults. Every reply is the JSON the fault
calls for, and the process's memory stays flat (the growth is reported)."""

import gc
import json
import random
import tracemalloc

from local.dify_simulator import Fault
from tests.integration.conftest import find_leaks
from tests.support import ROOT

RELAY = str(ROOT / "layers" / "relay")

TURNS = 2_000
SESSIONS = 50
# fault (None: none; "forget": Dify loses every conversation first), requests it hits, status the widget gets
MIX = [
    (None, 0, 200),
    (None, 0, 200),
    (None, 0, 200),
    (Fault(kind="error", status=500), 1, 200),
    (Fault(kind="error", status=500), 3, 502),
    (Fault(kind="html", status=502), 3, 502),
    (Fault(kind="close"), 1, 200),
    (Fault(kind="error", status=429, code="rate_limit_error"), 1, 503),
    (Fault(kind="error", status=429, code="too_many_requests", headers={"Retry-After": "60"}), 1, 503),
    (Fault(kind="truncated_json"), 1, 502),
    (Fault(kind="empty_answer"), 1, 502),
    ("forget", 0, 200),
]


def rss_kib() -> int:
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmRSS:"))


def test_two_thousand_turns_with_random_faults(make_relay, simulator, monkeypatch, capfd, relay_log):
    tracemalloc.start()
    monkeypatch.setattr("relay.dify.transport.BACKOFF_BASE", 0.001)
    relay = make_relay(
        SESSIONS_TABLE="",  # in-memory stores: the memory measured is the relay's own, not moto's
        RATE_LIMIT_SESSION_PER_MINUTE="0",
        RATE_LIMIT_SESSION_PER_DAY="0",
        RATE_LIMIT_IP_PER_MINUTE="0",
        RATE_LIMIT_IP_PER_DAY="0",
    )
    rng = random.Random(20261123)
    sessions: list[str] = []
    seen: dict[int, int] = {}
    memory = {}
    for turn in range(1, TURNS + 1):
        fault, times, expected = rng.choice(MIX)
        if fault == "forget":
            simulator.forget_conversations()
            if sessions:  # this turn heals one stale session; the rest are left behind
                body_session = rng.choice(sessions)
                sessions = [body_session]
        elif fault is not None:
            simulator.inject(fault, times=times)
        body = {"message": f"turn {turn}"}
        if fault == "forget" and sessions:
            body["sessionId"] = sessions[0]
        elif sessions and rng.random() < 0.8:
            body["sessionId"] = rng.choice(sessions)
        reply = relay.chat(body)
        simulator.clear_faults()
        payload = json.loads(reply.raw_body)
        assert reply.status == expected, (turn, fault, reply.raw_body)
        assert (
            ("answer" in payload)
            if expected == 200
            else set(payload["error"]) == {"code", "message", "retryable"}
        )
        if expected == 200 and len(sessions) < SESSIONS and "sessionId" not in body:
            sessions.append(payload["sessionId"])
        seen[reply.status] = seen.get(reply.status, 0) + 1
        relay.replies.clear()
        if turn % 200 == 0:
            assert find_leaks([relay_log.getvalue()]) == []
            relay_log.seek(0)
            relay_log.truncate()  # the log a test keeps is not the relay's memory
            simulator.clear_requests()
        if turn in (200, TURNS):
            gc.collect()
            memory[turn] = (rss_kib(), tracemalloc.take_snapshot())
    (rss_start, start), (rss_end, end) = memory[200], memory[TURNS]
    relay_code = [
        tracemalloc.Filter(True, f"{RELAY}/*"),
        tracemalloc.Filter(False, f"{RELAY}/relay/sessions.py"),
    ]
    relay_growth = sum(
        d.size_diff
        for d in end.filter_traces(relay_code).compare_to(start.filter_traces(relay_code), "filename")
    )
    tracemalloc.stop()
    with capfd.disabled():
        print(
            f"\nsoak: {TURNS} turns, statuses {dict(sorted(seen.items()))}; allocations held by relay code "
            f"{relay_growth / 1024:+.1f} KiB from turn 200 to {TURNS}; process RSS {rss_start} -> {rss_end} "
            "KiB (includes the simulator, the test harness and tracemalloc's own bookkeeping)"
        )
    assert set(seen) == {200, 502, 503}
    assert relay_growth < 256 * 1024  # the relay holds nothing per turn beyond its session records
