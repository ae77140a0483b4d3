"""After a deployment: one message to the relay's ChatUrl must come back 200 with an answer.

    python3 .github/scripts/smoke_test.py CHAT_URL [--origin ORIGIN] [--allowed-origins LIST]

The request carries an Origin header, as a browser's would: ORIGIN when given, otherwise the first
exact origin (not a https://*. wildcard) of LIST, the stack's AllowedOrigins parameter. Exits 0 on
a 200 with a non-empty "answer", 1 on anything else, 2 when no origin can be chosen. Prints the
status and, for an error, the relay's error code and message; never the answer itself.
Standard library only, so it runs on any Python 3.11+ without installing anything.
"""

from __future__ import annotations

import argparse
import json
import sys
import urllib.error
import urllib.parse
import urllib.request

MESSAGE = "Deployment smoke test: please answer with a short greeting."
USER = "dify-relay-smoke-test"


def choose_origin(origin: str, allowed_origins: str) -> str | None:
    if origin.strip():
        return origin.strip().rstrip("/")
    for entry in allowed_origins.split(","):
        entry = entry.strip().rstrip("/")
        if entry and "*" not in entry:
            return entry
    return None


def post(url: str, origin: str, timeout: float) -> tuple[int, bytes]:
    if urllib.parse.urlsplit(url).scheme not in ("https", "http"):
        raise ValueError(f"not an http(s) URL: {url!r}")
    body = json.dumps({"message": MESSAGE, "user": USER}).encode()
    request = urllib.request.Request(  # noqa: S310 - the scheme is checked above
        url,
        data=body,
        method="POST",
        headers={"Content-Type": "application/json", "Origin": origin},
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def verdict(status: int, raw: bytes) -> tuple[bool, str]:
    try:
        body = json.loads(raw)
    except ValueError:
        return False, f"{status}, and the body is not JSON ({len(raw)} bytes)"
    if not isinstance(body, dict):
        return False, f"{status}, and the body is not a JSON object"
    if status != 200:
        error = body.get("error") if isinstance(body.get("error"), dict) else {}
        return False, f"{status} {error.get('code', '(no error code)')}: {error.get('message', '')}"
    answer = body.get("answer")
    if not isinstance(answer, str) or not answer.strip():
        return False, "200, but without an answer"
    return True, f"200 with an answer of {len(answer)} characters (mode {body.get('mode')})"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("url", help="the stack's ChatUrl output")
    parser.add_argument("--origin", default="", help="Origin header to send (one of AllowedOrigins)")
    parser.add_argument("--allowed-origins", default="", help="the stack's AllowedOrigins parameter")
    parser.add_argument("--timeout", type=float, default=35.0, help="seconds to wait for the answer")
    args = parser.parse_args(argv)

    if not args.url.strip() or args.url.strip() == "None":
        print("smoke test: no ChatUrl - is the stack deployed?", file=sys.stderr)
        return 1
    origin = choose_origin(args.origin, args.allowed_origins)
    if origin is None:
        print(
            "smoke test: no origin to send - AllowedOrigins has only wildcards; "
            "set the environment's smoke-test origin variable",
            file=sys.stderr,
        )
        return 2
    try:
        status, raw = post(args.url.strip(), origin, args.timeout)
    except (OSError, ValueError) as error:
        print(f"smoke test FAILED: {args.url} could not be reached: {error}", file=sys.stderr)
        return 1
    passed, summary = verdict(status, raw)
    print(f"smoke test {'passed' if passed else 'FAILED'}: POST {args.url} (Origin {origin}) -> {summary}")
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
