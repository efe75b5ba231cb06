"""Per-message cost of django-sendfleet's backend against django-anymail's Postmark backend.

Both backends post to the same loopback HTTP server (it answers each in its API's shape) in
one process, in interleaved rounds, so machine noise hits both alike. The figure is the ratio
of the medians of per-message time: below 1.0 means ours costs less per message.

    python bench/bench_backend.py [--rounds 15] [--batch 100]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "testproject.settings")


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as both clients expect
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


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--batch", type=int, default=100)
    args = parser.parse_args()

    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_port}"

    import django
    from django.conf import settings

    django.setup()
    settings.SENDFLEET = {
        "API_KEY": "benchkey.0123456789abcdef0123456789abcdef",
        "API_URL": f"{base}/api/send/",
    }
    settings.ANYMAIL = {"POSTMARK_SERVER_TOKEN": "bench-token", "POSTMARK_API_URL": f"{base}/"}

    from anymail.backends.postmark import EmailBackend as PostmarkBackend
    from django.core.mail import EmailMultiAlternatives

    from django_sendfleet.backends import EmailBackend as SendFleetBackend

    def messages() -> list[EmailMultiAlternatives]:
        batch = []
        for n in range(args.batch):
            message = EmailMultiAlternatives(
                f"Order {n} shipped",
                f"Hello, order {n} is on its way.",
                "Shop <shop@example.com>",
                [f"Customer {n} <customer{n}@example.com>"],
                reply_to=["help@example.com"],
            )
            message.attach_alternative(
                f"<p>Hello, order <b>{n}</b> is on its way.</p>", "text/html"
            )
            batch.append(message)
        return batch

    def per_message_seconds(backend_class: type) -> float:
        batch = messages()
        started = time.perf_counter()
        with backend_class() as connection:
            sent = connection.send_messages(batch)
        elapsed = time.perf_counter() - started
        assert sent == args.batch, (backend_class, sent)
        return elapsed / args.batch

    for backend_class in (SendFleetBackend, PostmarkBackend):  # warm up both
        per_message_seconds(backend_class)
    ours: list[float] = []
    theirs: list[float] = []
    for round_number in range(args.rounds):
        # Alternate which goes first so neither always gets the warmer caches.
        pair = [(SendFleetBackend, ours), (PostmarkBackend, theirs)]
        for backend_class, results in pair if round_number % 2 == 0 else reversed(pair):
            results.append(per_message_seconds(backend_class))
    server.shutdown()

    ours_median, theirs_median = statistics.median(ours), statistics.median(theirs)
    print(f"django-sendfleet EmailBackend:     {ours_median * 1e6:8.0f} us/message (median)")
    print(f"django-anymail Postmark backend:   {theirs_median * 1e6:8.0f} us/message (median)")
    print(
        f"ratio sendfleet/anymail:           {ours_median / theirs_median:8.2f}"
        f"   ({args.rounds} rounds x {args.batch} messages each, interleaved)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
