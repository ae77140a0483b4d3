"""Figure 2's floor, in a process of its own: what a cold start costs before any relay code runs. The
interpreter starts, urllib3 is imported and one POST goes to the simulator (a first turn's Dify call,
blocking), over a new connection, as the relay's first turn makes it.
"""

import time

STARTED = time.monotonic()

import harness  # noqa: E402

harness.child_setup()

import json  # noqa: E402
import os  # noqa: E402
import sys  # noqa: E402

BEFORE_IMPORT = time.monotonic()
import urllib3  # noqa: E402

IMPORTED = time.monotonic()
body = {"user": "bench-floor", "response_mode": "blocking", "query": "Hello! What can you do?", "inputs": {}}
response = urllib3.PoolManager().request(
    "POST",
    os.environ["DIFY_API_URL"] + "/chat-messages",
    body=json.dumps(body).encode(),
    headers={"Authorization": f"Bearer {harness.DIFY_KEY}", "Content-Type": "application/json"},
    retries=False,
)
ANSWERED = time.monotonic()
if response.status != 200 or "answer" not in json.loads(response.data):
    raise RuntimeError(f"the simulator answered {response.status}")
harness.report(
    {
        "python": sys.version.split()[0],
        "started": STARTED,
        "before_import": BEFORE_IMPORT,
        "imported": IMPORTED,
        "answered": ANSWERED,
    }
)
