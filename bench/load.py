"""Load held: 5,000 turns at concurrency 50 through the handler, as API Gateway would call it.

Fifty worker processes are fifty Lambda containers: each imports the handler once and answers one event at a
time. They share one DynamoDB (moto, served on loopback from this process, each request atomic as DynamoDB's
are) and one Dify simulator (threads of this process, which otherwise only hands out events) whose answer
takes 5 to 60 ms, a function of the message, so the driver knows each turn's share. 250 sessions send 20
turns each, shuffled, so a session's turns race across containers; the session budget is 16 a day.

Checked: every turn is answered once or refused with 429, exactly 16 per session are answered, Dify saw each
answered message exactly once, and each answer is its own message's. Reported: the relay's own time per
answered turn (the handler's time less the simulated answer time, so loopback HTTP to both neighbours is in
it), median and p99.

    .venv/bin/python bench/load.py [--turns 5000] [--concurrency 50]
"""

from __future__ import annotations

import argparse
import json
import logging
import multiprocessing
import os
import random
import statistics
import sys
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "functions" / "relay"), str(ROOT / "layers" / "relay")]

KEY = "app-load-0123456789"
TABLE = "relay-sessions"
SECRET = "dify-relay/dify-app-key"  # noqa: S105 - a name
LATENCY_MS = (5.0, 60.0)
PER_SESSION, BUDGET = 20, 16


def container(inbox, outbox) -> None:
    """One Lambda container: configured by its first message, then one event at a time."""
    os.environ.update(inbox.get())
    sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - the relay's log and EMF lines: CloudWatch's
    import app
    from local.apigw import LambdaContext, rest_event

    outbox.put(("ready", None, None))
    while (turn := inbox.get()) is not None:
        number, session, message = turn
        body = json.dumps({"message": message, "sessionId": session})
        event = rest_event(
            "POST",
            "/v1/chat",
            headers={"Content-Type": "application/json", "Origin": "http://localhost:8080"},
            body=body,
            source_ip=f"198.51.100.{number % 250}",
        )
        started, cpu = time.perf_counter(), time.process_time()
        result = app.lambda_handler(event, LambdaContext())
        elapsed = (time.perf_counter() - started, time.process_time() - cpu)
        outbox.put((number, elapsed, (result["statusCode"], result.get("body"))))


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--turns", type=int, default=5000)
    parser.add_argument("--concurrency", type=int, default=50)
    args = parser.parse_args()
    sessions = args.turns // PER_SESSION

    # Containers first, while this process has no threads to fork with.
    context = multiprocessing.get_context("fork")
    inboxes = [context.Queue() for _ in range(args.concurrency)]
    outbox = context.Queue()
    workers = [context.Process(target=container, args=(box, outbox), daemon=True) for box in inboxes]
    for worker in workers:
        worker.start()

    import boto3
    from moto import mock_aws
    from moto.server import ThreadedMotoServer

    from local.dify_simulator import App, DifySimulator
    from tests.support import atomic_dynamodb, create_sessions_table, free_port

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # moto's server logs each refused update
    aws_port = free_port()
    moto = ThreadedMotoServer(ip_address="127.0.0.1", port=aws_port, verbose=False)
    with atomic_dynamodb(), mock_aws(), DifySimulator({KEY: App(latency_ms=LATENCY_MS)}) as dify:
        moto.start()
        try:
            dify_url = dify.url
            endpoint = f"http://127.0.0.1:{aws_port}"
            aws = {"endpoint_url": endpoint, "region_name": "us-east-1"}
            boto3.client("secretsmanager", **aws).create_secret(Name=SECRET, SecretString=KEY)
            create_sessions_table(boto3.client("dynamodb", **aws), TABLE)
            env = {
                "DIFY_API_URL": dify_url,
                "DIFY_APP_MODE": "chat",
                "DIFY_API_KEY_SECRET": SECRET,
                "SESSIONS_TABLE": TABLE,
                "ALLOWED_ORIGINS": "http://localhost:8080",
                "AWS_ENDPOINT_URL": endpoint,
                "AWS_DEFAULT_REGION": "us-east-1",
                "AWS_ACCESS_KEY_ID": "load",
                "AWS_SECRET_ACCESS_KEY": "load",  # moto's, on loopback
                "POWERTOOLS_SERVICE_NAME": "dify-relay",
                "POWERTOOLS_LOG_LEVEL": "WARNING",
                "RATE_LIMIT_SESSION_PER_MINUTE": "0",
                "RATE_LIMIT_SESSION_PER_DAY": str(BUDGET),
                "RATE_LIMIT_IP_PER_MINUTE": "0",
                "RATE_LIMIT_IP_PER_DAY": "0",
            }
            for box in inboxes:
                box.put(env)
            for _ in workers:
                assert outbox.get(timeout=120)[0] == "ready"

            turns = [
                (n, f"load-session-{n % sessions:05d}", f"turn {n}") for n in range(sessions * PER_SESSION)
            ]
            random.Random(20261202).shuffle(turns)  # noqa: S311 - an order, not a secret
            pending, idle, results = iter(turns), list(range(len(workers))), {}
            owner: dict[int, int] = {}
            started = time.monotonic()
            while len(results) < len(turns):
                while idle and (turn := next(pending, None)) is not None:
                    worker = idle.pop()
                    owner[turn[0]] = worker
                    inboxes[worker].put(turn)
                number, elapsed, reply = outbox.get(timeout=120)
                results[number] = (elapsed, reply)
                idle.append(owner[number])
            wall = time.monotonic() - started
            seen = Counter(r.body["query"] for r in dify.requests if r.path.endswith("/chat-messages"))
        finally:
            for box in inboxes:
                box.put(None)
            moto.stop()
    return report(turns, results, sessions, wall, args.concurrency, seen)


def report(turns, results, sessions, wall, concurrency, seen: Counter) -> int:
    from local.dify_simulator import App

    app = App(latency_ms=LATENCY_MS)
    by_number = {number: (session, message) for number, session, message in turns}
    answered, refused, wrong, own, cpu = Counter(), 0, [], [], []
    for number, ((elapsed, cpu_s), (status, body)) in results.items():
        session, message = by_number[number]
        if status == 200:
            answered[session] += 1
            if f"you said '{message}'" not in json.loads(body)["answer"]:
                wrong.append(number)
            own.append((elapsed - app.latency_s(message)) * 1000)
            cpu.append(cpu_s * 1000)
        elif status == 429:
            refused += 1
        else:
            wrong.append(number)
    exact = all(answered[f"load-session-{n:05d}"] == BUDGET for n in range(sessions))
    lost = len(turns) - len(results)
    answered_messages = {by_number[n][1] for n, (_, (status, _)) in results.items() if status == 200}
    once = set(seen) == answered_messages and set(seen.values()) == {1}
    print(f"turns {len(turns)}, concurrency {concurrency} containers, wall {wall:.1f} s")
    print(
        f"answered {sum(answered.values())}, refused 429 {refused}, lost {lost}, other or wrong {len(wrong)}"
    )
    print(f"sessions answered exactly {BUDGET} of {PER_SESSION}: {exact}")
    print(f"Dify saw each answered message exactly once, and no other: {once} ({sum(seen.values())} calls)")
    print(
        f"relay's own time per answered turn: median {statistics.median(own):.2f} ms, "
        f"p99 {percentile(own, 0.99):.2f} ms (handler time less the simulated {LATENCY_MS[0]:.0f}-"
        f"{LATENCY_MS[1]:.0f} ms answer; with {concurrency} containers on {os.cpu_count()} cores it includes"
        " waiting for a core and for moto)"
    )
    print(
        f"relay's CPU time per answered turn (the container's own): median {statistics.median(cpu):.2f} ms, "
        f"p99 {percentile(cpu, 0.99):.2f} ms"
    )
    ok = exact and once and not lost and not wrong and refused == len(turns) - sessions * BUDGET
    print("PASS" if ok else "FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
