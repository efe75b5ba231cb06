"""How long a Django view that calls ``send_mail`` takes with ``QueuedEmailBackend`` against
``EmailBackend``, when the API answers in 200 ms.

Both run in one process against the same sandbox (latency 0.2 s), through Django's test client
and testproject's ``/shop/receipt/`` view, in alternating rounds. The queued backend writes the
outbox row and enqueues the task in a django-tasks-db task table (SQLite, a temporary file);
no worker runs during the measurement, so the figure is what the web request pays.

    python bench/bench_queued_view.py [--requests 20]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "testproject.settings")
os.environ["DATABASE_URL"] = f"sqlite:///{Path(tempfile.mkdtemp()) / 'bench.sqlite3'}"

LATENCY = 0.2


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=20, help="per backend")
    args = parser.parse_args()

    import django
    from django.conf import settings

    from django_sendfleet.sandbox import SANDBOX_API_KEY, Sandbox

    sandbox = Sandbox(rate_limit=(100_000, 60)).start()
    sandbox.latency = LATENCY
    settings.INSTALLED_APPS = [*settings.INSTALLED_APPS, "django_tasks_db"]
    settings.TASKS = {"default": {"BACKEND": "django_tasks_db.DatabaseBackend"}}
    django.setup()
    from django.core.management import call_command
    from django.test import Client

    call_command("migrate", verbosity=0)
    settings.SENDFLEET = {
        "API_KEY": SANDBOX_API_KEY,
        "API_URL": sandbox.url,
        "WEBHOOK_SECRET": "bench",
        "RATE_LIMIT": None,
    }
    client = Client()
    backends = {
        "EmailBackend": "django_sendfleet.backends.EmailBackend",
        "QueuedEmailBackend": "django_sendfleet.backends.QueuedEmailBackend",
    }

    def timed_request(backend: str) -> float:
        if django.VERSION >= (6, 1):
            settings.MAILERS = {"default": {"BACKEND": backend}}
        else:
            settings.EMAIL_BACKEND = backend
        started = time.perf_counter()
        answer = client.post("/shop/receipt/", {"email": "ann@example.com"})
        elapsed = time.perf_counter() - started
        assert answer.status_code == 200 and answer.json()["sent"] == 1, answer.content
        return elapsed

    for backend in backends.values():  # warm up
        timed_request(backend)
    times: dict[str, list[float]] = {name: [] for name in backends}
    for round_number in range(args.requests):
        order = list(backends.items())
        for name, backend in order if round_number % 2 == 0 else reversed(order):
            times[name].append(timed_request(backend))
    sandbox.stop()

    from django_sendfleet.models import SendLog

    sync = statistics.median(times["EmailBackend"])
    queued = statistics.median(times["QueuedEmailBackend"])
    print(f"API latency {LATENCY * 1000:.0f} ms; {args.requests} requests per backend, alternating")
    print(f"EmailBackend        view p50 {sync * 1000:7.1f} ms")
    print(f"QueuedEmailBackend  view p50 {queued * 1000:7.1f} ms")
    print(f"ratio queued/sync   {queued / sync:.3f}  ({sync / queued:.0f}x faster)")
    pending = SendLog.objects.filter(status="pending").count()
    print(f"({pending} rows left pending in the outbox for a worker)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
