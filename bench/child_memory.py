"""Figure 3, in a process of its own: resident memory over many turns through the handler.

A fixed pool of sessions (ids the widget brings), so the in-memory session store holds the same number of
records at turn 100 as at the last turn: any growth is the relay's, not the pool's.

argv: turns sessions checkpoint
"""

import resource
import sys

import harness

harness.child_setup()

import app  # noqa: E402
from local.apigw import LambdaContext  # noqa: E402

TURNS, SESSIONS, CHECKPOINT = (int(arg) for arg in sys.argv[1:4])

after_import = harness.rss_kib()
events = [
    harness.chat_event({"message": f"Question number {n % 7}, please.", "sessionId": f"bench-memory-{n:04d}"})
    for n in range(SESSIONS)
]
rss = {}
for n in range(1, TURNS + 1):
    result = app.lambda_handler(events[n % SESSIONS], LambdaContext())
    if result["statusCode"] != 200:
        raise RuntimeError(f"turn {n}: the handler answered {result['statusCode']}: {result['body']}")
    if n in (CHECKPOINT, TURNS):
        rss[n] = harness.rss_kib()

harness.report(
    {
        "python": sys.version.split()[0],
        "after_import_kib": after_import,
        "rss_kib": rss,
        "maxrss_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,  # KiB on Linux
        "hwm_kib": harness.rss_kib("VmHWM"),
    }
)
