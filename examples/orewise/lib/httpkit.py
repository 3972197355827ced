"""Minimal JSON-over-HTTP helpers (Python standard library only).

Shared by both services: each lists `lib` in its `inputs` in sandpit.toml (so a
change here rebuilds them) and its build.py copies this file into its dist/.

What it gives a service:
  * JsonHandler: routes via `route(method, url)`, reads/writes JSON, turns
    HttpError into a JSON error body, logs exactly one line per request.
  * serve(): binds 127.0.0.1:$PORT, prints a startup line, and on SIGTERM or
    SIGINT stops accepting requests and returns promptly.
"""

import json
import os
import signal
import sys
import threading
import time
import traceback
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

MAX_BODY_BYTES = 64 * 1024


class HttpError(Exception):
    """Raise from a route to answer `status` with {"error": message[, "field": field]}."""

    def __init__(self, status, message, field=None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.field = field

    def body(self):
        body = {"error": self.message}
        if self.field is not None:
            body["field"] = self.field
        return body


def _reject_constant(name):
    raise ValueError(f"{name} is not a valid JSON number")


class JsonHandler(BaseHTTPRequestHandler):
    component = "service"  # subclasses set this; it prefixes every log line

    def route(self, method, url):
        """Return (status, json_body). `url` is a urllib SplitResult."""
        raise HttpError(404, "not found")

    # -- plumbing -----------------------------------------------------------

    def do_GET(self):
        self._dispatch("GET")

    def do_POST(self):
        self._dispatch("POST")

    def do_PUT(self):
        self._dispatch("PUT")

    def do_DELETE(self):
        self._dispatch("DELETE")

    def do_PATCH(self):
        self._dispatch("PATCH")

    def _dispatch(self, method):
        self._started = time.monotonic()
        try:
            status, body = self.route(method, urlsplit(self.path))
        except HttpError as err:
            status, body = err.status, err.body()
        except Exception:  # a bug: log it, answer 500 without leaking details
            traceback.print_exc(file=sys.stderr)
            status, body = 500, {"error": "internal error (see the service log)"}
        self.send_json(status, body)

    def read_json(self):
        """The request body parsed as a JSON object, or HttpError(400/411/413)."""
        length = self.headers.get("Content-Length")
        if length is None:
            raise HttpError(411, "Content-Length header is required")
        try:
            length = int(length)
        except ValueError:
            raise HttpError(400, "Content-Length is not a number") from None
        if length > MAX_BODY_BYTES:
            raise HttpError(413, f"request body is larger than {MAX_BODY_BYTES} bytes")
        raw = self.rfile.read(length)
        try:
            body = json.loads(raw, parse_constant=_reject_constant)
        except (ValueError, UnicodeDecodeError) as err:
            raise HttpError(400, f"request body is not valid JSON: {err}") from None
        if not isinstance(body, dict):
            raise HttpError(400, "request body must be a JSON object")
        return body

    def send_json(self, status, body):
        data = json.dumps(body, indent=2).encode("utf-8") + b"\n"
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_request(self, code="-", size="-"):
        started = getattr(self, "_started", None)
        took = f"{(time.monotonic() - started) * 1000:.1f}ms" if started else "-"
        method = getattr(self, "command", None) or "-"
        path = getattr(self, "path", None) or "-"
        code = getattr(code, "value", code)
        print(f"{self.component} {self.client_address[0]} {method} {path} {code} {took}", flush=True)

    def log_message(self, format, *args):
        # BaseHTTPRequestHandler's other chatter (e.g. malformed request lines)
        # still ends in log_request, so one line per request is kept.
        pass


def port_from_env():
    """$PORT as an int, or exit 1 with a message saying what is wrong."""
    raw = os.environ.get("PORT", "")
    if not raw:
        sys.exit("error: PORT is not set (sandpit sets it; by hand: PORT=18081 python3 server.py)")
    try:
        port = int(raw)
    except ValueError:
        port = -1
    if not 0 < port < 65536:
        sys.exit(f"error: PORT={raw!r} is not a TCP port number (1-65535)")
    return port


def serve(handler_cls, port, startup_line):
    """Serve until SIGTERM/SIGINT, then shut down and return."""
    try:
        server = ThreadingHTTPServer(("127.0.0.1", port), handler_cls)
    except OSError as err:
        sys.exit(f"error: cannot listen on 127.0.0.1:{port}: {err.strerror or err}")
    server.daemon_threads = True  # in-flight requests never block exit

    stop = threading.Event()

    def on_signal(signum, _frame):
        print(f"{handler_cls.component} received {signal.Signals(signum).name}, shutting down", flush=True)
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    loop = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
    loop.start()
    print(startup_line, flush=True)
    while not stop.wait(0.5):
        pass
    server.shutdown()
    server.server_close()
    print(f"{handler_cls.component} stopped", flush=True)
