"""`make local`: the widget API on localhost, served by the same handler Lambda runs.

With no DIFY_API_KEY, an embedded Dify simulator answers, so a first turn works with nothing set up.
"""

from __future__ import annotations

import base64
import html
import json
import os
import secrets
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from local.apigw import LambdaContext, is_binary, rest_event

ROOT = Path(__file__).resolve().parent.parent
# What each DIFY_APP_MODE looks like inside Dify (the simulated app's `mode`).
SIMULATED_MODES = {
    "auto": "chat",
    "chat": "chat",
    "chatflow": "advanced-chat",
    "agent": "agent-chat",
    "completion": "completion",
    "workflow": "workflow",
}
MAX_BODY_BYTES = 6 * 1024 * 1024  # Lambda's request payload limit
# The demo page's consent notice; DEMO_CONSENT= (empty) shows the widget without one.
DEMO_CONSENT = "I agree that this chat is stored so the assistant can answer me."


# The second app `make local` serves (at /v1/apps/sales/...), unless APPS names the apps itself.
SALES_APP = "sales"
SALES_GREETING = "Hello from sales! Which plan interests you?"


def start_simulator(env) -> tuple:
    """Simulated Dify apps: the default app (SIMULATED_APP, a Dify mode, or the one DIFY_APP_MODE names) and,
    unless APPS is set, a sales agent app. Returns the simulator, the default app's key, the APPS entries."""
    from local.dify_simulator import App, DifySimulator

    mode = env.get("SIMULATED_APP") or SIMULATED_MODES.get(env.get("DIFY_APP_MODE", "auto").lower(), "chat")
    required = tuple(
        name.strip() for name in env.get("SIMULATED_REQUIRED_INPUTS", "").split(",") if name.strip()
    )
    key = env.get("SIMULATED_API_KEY") or "app-local-" + secrets.token_hex(8)
    media = (env.get("SIMULATED_MEDIA") or "on").lower() != "off"
    shared = {
        "stream_delay": float(env.get("SIMULATED_STREAM_DELAY") or 0),  # seconds between streamed events
        # Voice input, answers read aloud and images, unless SIMULATED_MEDIA=off.
        **dict.fromkeys(("speech_to_text", "text_to_speech", "image_upload"), media),
    }
    apps = {
        key: App(mode=mode, required_inputs=required, query_input=env.get("QUERY_INPUT") or "query", **shared)
    }
    entries = {}
    if not env.get("APPS"):
        sales_key = "app-local-" + secrets.token_hex(8)
        apps[sales_key] = App(mode="agent-chat", name="Sales", opening_statement=SALES_GREETING, **shared)
        entries[SALES_APP] = {
            "key": sales_key,
            "appMode": "agent",
            # Its own allow-list: the demo page's origin only, whatever ALLOWED_ORIGINS lets the default app.
            "allowedOrigins": [f"http://localhost:{env.get('DEMO_PORT') or 8080}"],
            "branding": {"title": "Sales assistant", "position": "left", "color": "#0a7d45"},
        }
    simulator = DifySimulator(apps=apps).start()
    for entry in entries.values():
        entry["difyApiUrl"] = simulator.url
    return simulator, key, entries


def make_handler(lambda_handler, stream=None):
    """`stream`: the streaming function's module (stream_app), which serves POST /v1/chat/stream."""
    # importable once main() has put the relay on sys.path
    from relay.apps import default_route
    from relay.errors import ErrorKind, RelayError

    # The resolver keeps the current event on a module-level object: one call at a time, as in Lambda.
    lock = threading.Lock()

    class RequestHandler(BaseHTTPRequestHandler):
        server_version = "dify-relay-local"
        # A client that stops sending mid-request is dropped after this many seconds (API Gateway buffers
        # a request whole before Lambda sees it; here a slow body would hold a thread).
        timeout = float(os.environ.get("LOCAL_READ_TIMEOUT") or 10)

        def _relay(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            if length > MAX_BODY_BYTES:
                self._refuse(
                    RelayError(
                        ErrorKind.REQUEST_TOO_LARGE,
                        f"The request body is larger than {MAX_BODY_BYTES} bytes.",
                    )
                )
                return
            raw = self.rfile.read(length) if length else None
            path, _, query = self.path.partition("?")
            event = rest_event(
                self.command,
                path,
                headers=dict(self.headers.items()),
                body=raw,
                query=query,
                source_ip=self.client_address[0],
            )
            if stream is not None and self.command == "POST" and default_route(path) == "/v1/chat/stream":
                self._stream(event)
                return
            with lock:
                result = lambda_handler(event, LambdaContext())
            payload = (result.get("body") or "").encode()
            if result.get("isBase64Encoded") and is_binary(self.headers.get("Accept", "").split(",")[0]):
                payload = base64.b64decode(payload)  # as API Gateway does for an Accept of a binary type
            self.send_response(result["statusCode"])
            multi = result.get("multiValueHeaders") or {}
            for name, value in (result.get("headers") or {}).items():
                multi.setdefault(name, [value])
            for name, values in multi.items():
                for value in values:
                    self.send_header(name, value)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def _stream(self, event: dict) -> None:
            """Chunked and flushed per event, as API Gateway streams it; no lock: the streaming handler keeps
            no per-request state. A visitor who goes away closes the body, which stops the Dify run."""
            # The streaming function's timeout: a little over its longest turn.
            context = LambdaContext(timeout_ms=(stream.settings.stream_max_seconds + 5) * 1000)
            response = stream.handle(event, context)
            self.protocol_version = "HTTP/1.1"  # chunked framing, for this response only
            self.close_connection = True
            self.send_response(response.status)
            for name, value in response.headers.items():
                self.send_header(name, value)
            self.send_header("Transfer-Encoding", "chunked")
            self.send_header("Connection", "close")
            self.end_headers()
            try:
                for data in response.body:
                    self.wfile.write(b"%X\r\n%s\r\n" % (len(data), data))
                    self.wfile.flush()
                self.wfile.write(b"0\r\n\r\n")
            except (BrokenPipeError, ConnectionResetError):
                pass
            finally:
                response.body.close()

        def _refuse(self, error) -> None:
            """The relay's own envelope for a request refused before the handler sees it."""
            payload = json.dumps(error.body()).encode()
            self.send_response(error.kind.status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(payload)
            self.close_connection = True

        def __getattr__(self, name: str):
            # Every method, however named, reaches the handler, which answers those a route does not take
            # with 405.
            if name.startswith("do_"):
                return self._relay
            raise AttributeError(name)

        def log_message(self, format: str, *args) -> None:
            sys.stderr.write(f"{self.address_string()} {format % args}\n")

    return RequestHandler


def make_demo_handler(relay_url: str, consent: str, apps: dict | None = None):
    """Serves the reference widget and a demo page that embeds it, from an origin of its own: a widget for
    the default app and one for each of `apps` (app id -> APPS entry)."""
    files = {
        "/": ("demo.html", "text/html; charset=utf-8"),
        "/relay-widget.js": ("relay-widget.js", "text/javascript; charset=utf-8"),
    }

    class DemoHandler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            name, content_type = files.get(self.path.partition("?")[0], (None, None))
            if name is None:
                self.send_error(404)
                return
            text = (ROOT / "widget" / name).read_text()
            attribute = f'data-consent="{html.escape(consent)}"' if consent else ""
            payload = (
                text.replace("{{APP_WIDGETS}}", app_widgets(apps or {}))
                .replace("{{RELAY_URL}}", relay_url)
                .replace("{{CONSENT}}", attribute)
                .encode()
            )
            self.send_response(200)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(payload)))
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, format: str, *args) -> None:
            pass

    return DemoHandler


def app_widgets(apps: dict) -> str:
    """A script tag per registered app; its title and colours come from the app's branding (/v1/config)."""
    tags = []
    for app_id, entry in apps.items():
        branding = entry.get("branding") or {} if isinstance(entry, dict) else {}
        title, app_id = html.escape(branding.get("title") or app_id), html.escape(app_id)
        tags.append(
            f'<script src="relay-widget.js" data-relay-url="{{{{RELAY_URL}}}}" data-app="{app_id}"'
            f' data-title="{title}" data-position="left" {{{{CONSENT}}}} defer></script>'
        )
    if tags:
        names = ", ".join(f"<code>{html.escape(app_id)}</code>" for app_id in apps)
        tags.insert(0, f"<p>The widget at the bottom left talks to another app of this relay: {names}.</p>")
    return "\n  ".join(tags)


def main() -> None:
    sys.path[:0] = [str(ROOT / "functions" / name) for name in ("relay", "stream")] + [
        str(ROOT / "layers" / "relay")
    ]
    os.environ.setdefault("ALLOWED_ORIGINS", "*")
    os.environ.setdefault("POWERTOOLS_SERVICE_NAME", "dify-relay")
    os.environ.setdefault("POWERTOOLS_LOG_LEVEL", "WARNING")
    simulator = None
    if not os.environ.get("DIFY_API_KEY"):
        simulator, key, entries = start_simulator(os.environ)
        os.environ["DIFY_API_URL"] = simulator.url
        os.environ["DIFY_API_KEY"] = key
        if entries:
            os.environ["APPS"] = json.dumps(entries)
        mode = simulator.apps[key].mode
        print(f"No DIFY_API_KEY given: a simulated Dify {mode} app answers at {simulator.url}", flush=True)
        for app_id, entry in entries.items():
            print(f"  and a simulated {entry['appMode']} app at /v1/apps/{app_id}/...", flush=True)

    import stream_app

    import app

    stream_app.use(app.relay)  # one set of sessions and budgets for both routes, as the table is on AWS
    port = int(os.environ.get("PORT", "3000"))
    server = ThreadingHTTPServer(("127.0.0.1", port), make_handler(app.lambda_handler, stream_app))
    demo_port = int(os.environ.get("DEMO_PORT", "8080"))
    try:
        demo = ThreadingHTTPServer(
            ("127.0.0.1", demo_port),
            make_demo_handler(
                f"http://127.0.0.1:{port}",
                os.environ.get("DEMO_CONSENT", DEMO_CONSENT),
                app.settings.apps,
            ),
        )
    except OSError as error:
        demo = None
        print(f"Widget demo page not served: port {demo_port} is taken ({error.strerror}); set DEMO_PORT")
    else:
        threading.Thread(target=demo.serve_forever, daemon=True).start()
        print(f"Widget demo page on http://localhost:{demo_port}/", flush=True)
    print(f"Dify Relay listening on http://127.0.0.1:{port}  (POST /v1/chat, /v1/chat/stream)", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
        if demo is not None:
            demo.server_close()
        if simulator is not None:
            simulator.stop()


if __name__ == "__main__":
    main()
