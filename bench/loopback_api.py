"""A loopback HTTP server answering as SendFleet's send endpoint does (and as Postmark's, for
``bench_backend.py``'s anymail contender): the benches' stand-in for the real API, so they time
the client side alone."""

from __future__ import annotations

import json
import threading
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as the clients expect
    disable_nagle_algorithm = True  # else delayed ACKs add ~40 ms to every answer

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        if self.path.endswith("/api/send/"):
            body = {
                "success": True,
                "message": "Email queued for delivery.",
                "message_id": str(uuid.uuid4()),
                "mode": "shared",
            }
        else:  # Postmark's /email
            body = {
                "To": "a@example.com",
                "SubmittedAt": "2026-11-28T12:00:00Z",
                "MessageID": str(uuid.uuid4()),
                "ErrorCode": 0,
                "Message": "OK",
            }
        data = json.dumps(body).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: object) -> None:
        pass


def start() -> ThreadingHTTPServer:
    """Serve on a free port of 127.0.0.1 in a daemon thread; ``server.shutdown()`` stops it."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


#: A key of SendFleet's shape; the loopback server takes any.
BENCH_API_KEY = "benchkey.0123456789abcdef0123456789abcdef"


def sendfleet_settings(server: ThreadingHTTPServer, **extra: object) -> dict[str, object]:
    """``SENDFLEET`` for a bench sending to ``server``: the limiter off, since its cost is not
    what a bench of the per-message cost measures."""
    return {
        "API_KEY": BENCH_API_KEY,
        "API_URL": f"http://127.0.0.1:{server.server_port}/api/send/",
        "RATE_LIMIT": None,
        **extra,
    }
