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

from aws_lambda_powertools import Logger  # noqa: E402
from canned import CannedHttp, agent_stream  # noqa: E402

from relay.deadline import Deadline  # noqa: E402
from relay.dify import DifyClient, Question  # noqa: E402
from relay.keys import StaticKeyProvider  # noqa: E402

CHUNK = int(sys.argv[1])
PLAN = [tuple(int(part) for part in arg.split(":")) for arg in sys.argv[2:]]
Logger()  # the handler's logger, which the client's log lines go to (and into the sink), as in the relay
results = []
for events, repeats in PLAN:
    stream = agent_stream(events)
    chunks = [stream[i : i + CHUNK] for i in range(0, len(stream), CHUNK)]
    http = CannedHttp(chunks, CHUNK)
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
