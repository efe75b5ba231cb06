"""A burst of signed webhook events against a real WSGI server: are any lost, and how fast is
each answered?

The bench starts gunicorn on 127.0.0.1 serving testproject, on SQLite (a temporary file, with
the options docs/webhooks.md documents) and on PostgreSQL (``--postgres-url``, or
``DATABASE_URL``), seeds one send log row per message, then posts the events from concurrent
clients, each client posting its next event as soon as its last is answered. An event is lost
when its answer is not a 2xx or takes longer than SendFleet's 5 s. After the burst it waits for
the processing that runs after each answer, and counts the events applied. The figure is the
p99 latency as a share of the 5-second budget. Goal: 0 lost, p99 <= 5 % (250 ms).

    pip install -e ".[bench]"
    python bench/bench_webhooks.py --events 1000 --clients 32 \\
        --postgres-url postgres://USER@127.0.0.1:PORT/DB
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
BUDGET = 5.0
GOAL_MS = BUDGET * 1000 * 0.05
SECRET = "bench-webhook-secret"
#: Per message, in the order SendFleet sends them; every fourth message bounces for good.
EVENTS_PER_MESSAGE = (("email.sent", {}), ("email.delivered", {}))
BOUNCE = ("email.bounced", {"bounce_type": "Permanent"})


def events_for(count: int) -> list[dict]:
    events: list[dict] = []
    number = 0
    while len(events) < count:
        kinds = [*EVENTS_PER_MESSAGE, BOUNCE] if number % 4 == 3 else list(EVENTS_PER_MESSAGE)
        for kind, extra in kinds:
            events.append(
                {
                    "event_type": kind,
                    "message_id": f"bench-{number}",
                    "to": f"r{number}@example.com",
                    "timestamp": time.time(),
                }
                | extra
            )
        number += 1
    return events[:count]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def server_environment(database_url: str) -> dict[str, str]:
    return os.environ | {
        "DJANGO_SETTINGS_MODULE": "testproject.settings",
        "DATABASE_URL": database_url,
        "DJANGO_DEBUG": os.environ.get("BENCH_DEBUG", "0"),
        "SENDFLEET_WEBHOOK_SECRET": SECRET,
        # Persistent database connections, as docs/webhooks.md recommends for a webhook endpoint.
        "DJANGO_CONN_MAX_AGE": os.environ.get("BENCH_CONN_MAX_AGE", "60"),
        "PYTHONPATH": str(ROOT),
    }


def prepare_database(env: dict[str, str], events: list[dict]) -> None:
    """Migrate, then empty the tables and log one send per message (in a process of its own)."""
    manage = [sys.executable, "-m", "django"]
    subprocess.run([*manage, "migrate", "--verbosity", "0"], env=env, cwd=ROOT, check=True)
    seed = (
        "import django, json, sys; django.setup()\n"
        f"sys.path.insert(0, {str(Path(__file__).resolve().parent)!r})\n"
        "from bench_webhooks import seed_send_log\n"
        "seed_send_log(json.load(sys.stdin))\n"
    )
    events_json = json.dumps(events)
    subprocess.run(
        [sys.executable, "-c", seed], input=events_json, text=True, env=env, cwd=ROOT, check=True
    )


def seed_send_log(events: list[dict]) -> None:
    """Empty the tables, and log one send per message of the events (Django set up)."""
    from django_sendfleet.models import SendLog, Suppression, WebhookEvent

    WebhookEvent.objects.all().delete_whole()
    Suppression.objects.all().delete()
    SendLog.objects.all().delete()
    recipients = {event["message_id"]: event["to"] for event in events}
    SendLog.objects.bulk_create(
        SendLog(message_id=message_id, recipient=to, from_email="shop@example.com", status="queued")
        for message_id, to in sorted(recipients.items())
    )


def start_gunicorn(env: dict[str, str], workers: int, threads: int) -> tuple[subprocess.Popen, int]:
    port = free_port()
    command = [
        sys.executable,
        "-m",
        "gunicorn",
        "django.core.wsgi:get_wsgi_application()",
        "--bind",
        f"127.0.0.1:{port}",
        "--workers",
        str(workers),
        "--threads",
        str(threads),
        "--log-level",
        "warning",
    ]
    server = subprocess.Popen(command, env=env, cwd=ROOT)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                return server, port
        time.sleep(0.1)
    server.kill()
    raise RuntimeError("gunicorn did not start")


class Client:
    """One of SendFleet's senders: by default it keeps its connection between events, as an
    HTTP client library does (``keep_alive=False``: a new connection for each event)."""

    def __init__(self, port: int, *, keep_alive: bool = True) -> None:
        self.port = port
        self.keep_alive = keep_alive
        self.connection: http.client.HTTPConnection | None = None

    def post(self, body: bytes, signature: str) -> tuple[int, float]:
        """One event as SendFleet posts it: (status, seconds); status 0 when no answer came."""
        headers = {"Content-Type": "application/json", "X-SendFleet-Signature": signature}
        started = time.perf_counter()
        if self.connection is None:
            self.connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=BUDGET)
        try:
            self.connection.request("POST", "/sendfleet/webhook/", body=body, headers=headers)
            answer = self.connection.getresponse()
            answer.read()
            status = answer.status
            if answer.will_close:
                self.close()
        except OSError:
            status = 0
            self.close()
        finally:
            if not self.keep_alive:
                self.close()
        return status, time.perf_counter() - started

    def close(self) -> None:
        if self.connection is not None:
            self.connection.close()
            self.connection = None


def post(port: int, body: bytes, signature: str) -> tuple[int, float]:
    """One event on a connection of its own."""
    return Client(port, keep_alive=False).post(body, signature)


def burst(
    port: int,
    events: list[dict],
    clients: int,
    secret: str = SECRET,
    *,
    keep_alive: bool = True,
) -> list[tuple[int, float]]:
    from django_sendfleet.webhooks.view import sign

    signed = []
    for event in events:
        body = json.dumps(event).encode()
        signed.append((body, sign(body, secret)))
    results: list[tuple[int, float]] = []
    lock = threading.Lock()
    queue = iter(signed)

    def client() -> None:
        sender = Client(port, keep_alive=keep_alive)
        try:
            while True:
                with lock:
                    item = next(queue, None)
                if item is None:
                    return
                result = sender.post(*item)
                with lock:
                    results.append(result)
        finally:
            sender.close()

    threads = [threading.Thread(target=client) for _ in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results


def outcomes(env: dict[str, str]) -> dict[str, int]:
    count = (
        "import django, json; django.setup()\n"
        "from collections import Counter\n"
        "from django_sendfleet.models import Suppression, WebhookEvent\n"
        "c = Counter(WebhookEvent.objects.values_list('outcome', flat=True))\n"
        "c['suppressions'] = Suppression.objects.count()\n"
        "print(json.dumps(c))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", count], env=env, cwd=ROOT, check=True, capture_output=True
    )
    return json.loads(out.stdout)


def cpu_seconds(server: subprocess.Popen) -> float:
    """User and system CPU time of gunicorn's workers so far (Linux /proc)."""
    total = 0.0
    ticks = os.sysconf("SC_CLK_TCK")
    children = Path(f"/proc/{server.pid}/task/{server.pid}/children").read_text().split()
    for pid in children:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
        total += (int(fields[11]) + int(fields[12])) / ticks  # utime, stime
    return total


def run(name: str, database_url: str, args: argparse.Namespace) -> dict:
    events = events_for(args.events)
    env = server_environment(database_url)
    prepare_database(env, events)
    server, port = start_gunicorn(env, args.workers, args.threads)
    try:
        post(port, b"{}", "sha256=warm-up")  # the workers' first request: imports, connections
        # The baseline, on the same server just before: the same bodies with a wrong
        # signature, refused (403) before the body is read or the database is touched.
        refused_cpu_before = cpu_seconds(server)
        refused = burst(
            port, events, args.clients, secret="not-the-secret", keep_alive=args.keep_alive
        )
        refused_cpu = cpu_seconds(server) - refused_cpu_before
        load = os.getloadavg()[0]
        cpu_before = cpu_seconds(server)
        started = time.perf_counter()
        results = burst(port, events, args.clients, keep_alive=args.keep_alive)
        elapsed = time.perf_counter() - started
        deadline = time.monotonic() + 60  # the processing after each answer
        while outcomes(env).get("pending") and time.monotonic() < deadline:
            time.sleep(0.5)
        counted = outcomes(env)
        cpu = cpu_seconds(server) - cpu_before
    finally:
        server.send_signal(signal.SIGINT)  # gunicorn's quick shutdown
        server.wait(timeout=30)
    latencies = sorted(seconds for _, seconds in results)
    baseline = sorted(seconds for _, seconds in refused)
    lost = sum(1 for status, seconds in results if not 200 <= status < 300 or seconds > BUDGET)
    bounces = sum(1 for event in events if event["event_type"] == "email.bounced")
    return {
        "database": name,
        "events": len(events),
        "lost": lost,
        "p50_ms": statistics.median(latencies) * 1000,
        "p99_ms": latencies[int(len(latencies) * 0.99) - 1] * 1000,
        "max_ms": latencies[-1] * 1000,
        "baseline_p50_ms": statistics.median(baseline) * 1000,
        "baseline_p99_ms": baseline[int(len(baseline) * 0.99) - 1] * 1000,
        "cpu_ms_per_event": cpu / len(events) * 1000,
        "baseline_cpu_ms_per_event": refused_cpu / len(events) * 1000,
        "load": load,
        "per_second": len(events) / elapsed,
        "applied": counted.get("applied", 0),
        "not_applied": {k: v for k, v in counted.items() if k not in ("applied", "suppressions")},
        "suppressed": f"{counted.get('suppressions', 0)}/{bounces}",
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1000)
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--workers", type=int, default=2, help="gunicorn worker processes")
    parser.add_argument("--threads", type=int, default=4, help="gunicorn threads per worker")
    parser.add_argument(
        "--new-connections",
        dest="keep_alive",
        action="store_false",
        help="each event on a new connection (default: each client keeps its connection)",
    )
    parser.add_argument("--postgres-url", default=os.environ.get("DATABASE_URL", ""))
    parser.add_argument("--only", choices=("sqlite", "postgres"))
    parser.add_argument(
        "--repeat", type=int, default=1, help="bursts per database (each on a fresh server)"
    )
    args = parser.parse_args()
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "testproject.settings")
    import django

    django.setup()
    targets = []
    if args.only != "postgres":
        sqlite_file = Path(tempfile.mkdtemp()) / "bench-webhooks.sqlite3"
        targets.append(("SQLite (documented options)", f"sqlite:///{sqlite_file}"))
    if args.only != "sqlite":
        if not args.postgres_url.startswith("postgres"):
            print("PostgreSQL skipped: pass --postgres-url (or set DATABASE_URL)")
        else:
            targets.append(("PostgreSQL", args.postgres_url))
    print(
        f"{args.events} signed events, {args.clients} clients, gunicorn "
        f"{args.workers} workers x {args.threads} threads, "
        f"CONN_MAX_AGE={server_environment('')['DJANGO_CONN_MAX_AGE']}; "
        f"{'kept' if args.keep_alive else 'new'} client connections; "
        f"lost = not 2xx or over {BUDGET:g} s"
    )
    for name, url in targets:
        p99s, maxima = [], []
        for _ in range(args.repeat):
            result = run(name, url, args)
            p99s.append(result["p99_ms"])
            maxima.append(result["max_ms"])
            print(
                f"{result['database']}: lost {result['lost']}, p50 {result['p50_ms']:.1f} ms, "
                f"p99 {result['p99_ms']:.1f} ms = {result['p99_ms'] / (BUDGET * 10):.1f} % of the "
                f"budget (max {result['max_ms']:.1f} ms), {result['per_second']:.0f} events/s, "
                f"applied {result['applied']}/{result['events']} {result['not_applied'] or ''}, "
                f"hard bounces suppressed {result['suppressed']}\n"
                f"    server CPU {result['cpu_ms_per_event']:.1f} ms per event (applying "
                f"included); baseline (refused, 403) {result['baseline_cpu_ms_per_event']:.1f} ms "
                f"of CPU, p50 {result['baseline_p50_ms']:.1f} ms, "
                f"p99 {result['baseline_p99_ms']:.1f} ms; p99 ratio to the baseline "
                f"{result['p99_ms'] / result['baseline_p99_ms']:.2f}; load average "
                f"{result['load']:.1f} on {os.cpu_count()} cores",
                flush=True,
            )
        if args.repeat > 1:
            met = sum(1 for p99 in p99s if p99 <= GOAL_MS)
            print(
                f"{name}, {args.repeat} bursts: p99 median {statistics.median(p99s):.1f} ms, "
                f"worst {max(p99s):.1f} ms; within {GOAL_MS:g} ms in {met} of {args.repeat}; "
                f"slowest answer {max(maxima):.1f} ms"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
