"""Peak memory of queuing a newsletter with ``QueuedEmailBackend``, and whether it is queued.

Each run is a fresh subprocess: Django set up on the database, the messages built (one string
of text and one of HTML shared by every message, as a loop sending one newsletter has them;
each message has a subject of its own, so that each stores its own content), then the peak-RSS
counter reset (``/proc/self/clear_refs``), ``send_messages`` called in autocommit (as a view
without ``ATOMIC_REQUESTS`` does), and the peak read back (``VmHWM``). The figure is the
growth: the peak during the send minus the RSS just before it. The baseline is the same send
with a tiny body (16 characters of text and of HTML), in its own subprocess in the same run;
the difference is what the content costs. Each run then counts what was stored: pending rows,
content rows and their characters (O(messages)).

The task backend is Django's dummy backend, so nothing is sent: the figure is what queuing
costs the web process. ``DEBUG`` is off, as in production (with it on, Django keeps the SQL of
its last 9,000 queries, content included). SQLite is a temporary file; with ``DATABASE_URL``
pointing at PostgreSQL, the bench creates a scratch database next to the one named
(``<name>_outbox_bench``) and drops it afterwards. Linux only (``/proc``).

    python bench/bench_outbox_memory.py                              # 5,001 recipients x 40 KB
    python bench/bench_outbox_memory.py --recipients 10001 --kb 100
    python bench/bench_outbox_memory.py --messages 10000 --recipients 1 --kb 50
    DATABASE_URL=postgres://USER@127.0.0.1:PORT/DB python bench/bench_outbox_memory.py ...

"--kb N" is N KB of text and N KB of HTML per message.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
TINY = 16  # characters of text and of HTML in the baseline's messages


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipients", type=int, default=5001, help="per message (to + bcc)")
    parser.add_argument("--kb", type=int, default=40, help="KB of text, and of HTML")
    parser.add_argument("--messages", type=int, default=1, help="messages per send_messages")
    parser.add_argument("--runs", type=int, default=1, help="runs of each (fresh processes)")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(_child(json.loads(args.child))))
        return 0

    database_url, drop = _scratch_database()
    try:
        _run_child({"setup": True}, database_url)
        cases = [("baseline (tiny body)", TINY), (f"{args.kb} KB text + {args.kb} KB HTML", 0)]
        print(
            f"{args.messages:,} message(s) x {args.recipients:,} recipient(s), "
            f"database: {database_url.split(':')[0]}, Python {sys.version.split()[0]}"
        )
        print(
            "| send | run | peak RSS growth (MB) | queued rows | content rows | stored chars | s |"
        )
        print("|---|---|---|---|---|---|---|")
        growth: dict[str, list[float]] = {}
        for run in range(args.runs):
            for name, tiny in cases:
                spec = {
                    "recipients": args.recipients,
                    "messages": args.messages,
                    "characters": tiny or args.kb * 1024,
                }
                result = _run_child(spec, database_url)
                growth.setdefault(name, []).append(result["growth_mb"])
                print(
                    f"| {name} | {run + 1} | {result['growth_mb']:.1f} | "
                    f"{result['pending']:,} | {result['contents']} | "
                    f"{result['content_characters']:,} | {result['seconds']:.1f} |"
                )
        baseline, content = (min(growth[name]) for name, _ in cases)
        print(
            f"\nwhat the content costs (best run minus best baseline): {content - baseline:+.1f} MB"
        )
    finally:
        drop()
    return 0


def _run_child(spec: dict[str, Any], database_url: str) -> dict[str, Any]:
    env = {**os.environ, "DATABASE_URL": database_url}
    done = subprocess.run(
        [sys.executable, __file__, "--child", json.dumps(spec)],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        sys.stderr.write(done.stderr)
        raise SystemExit(f"the run {spec} failed")
    return json.loads(done.stdout.strip().splitlines()[-1])


def _scratch_database() -> tuple[str, Any]:
    url = os.environ.get("DATABASE_URL", "")
    if not url.startswith("postgres"):
        path = Path(tempfile.mkdtemp()) / "bench.sqlite3"
        return f"sqlite:///{path}", lambda: None
    import psycopg

    base, _, name = url.rpartition("/")
    scratch = f"{name}_outbox_bench"
    maintenance = f"{base}/postgres"  # the named database need not exist
    with psycopg.connect(maintenance, autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{scratch}"')
        admin.execute(f'CREATE DATABASE "{scratch}"')

    def drop() -> None:
        with psycopg.connect(maintenance, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{scratch}"')

    return f"{base}/{scratch}", drop


# The child process: one send, measured.


def _child(spec: dict[str, Any]) -> dict[str, Any]:
    sys.path.insert(0, str(ROOT))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "testproject.settings")
    # As in production: with DEBUG, Django keeps the SQL of the last 9,000 queries in memory.
    os.environ["DJANGO_DEBUG"] = "0"
    import django
    from django.conf import settings

    from django_sendfleet.sandbox import SANDBOX_API_KEY

    settings.TASKS = {"default": {"BACKEND": "django.tasks.backends.dummy.DummyBackend"}}
    if django.VERSION < (6, 0):
        settings.INSTALLED_APPS = [*settings.INSTALLED_APPS, "django_tasks"]
        settings.TASKS["default"]["BACKEND"] = "django_tasks.backends.dummy.DummyBackend"
    settings.SENDFLEET = {
        "API_KEY": SANDBOX_API_KEY,
        "API_URL": "http://127.0.0.1:9/",  # never called: nothing is sent
        "WEBHOOK_SECRET": "bench",
        "RATE_LIMIT": None,
    }
    django.setup()
    from django.core.management import call_command

    if spec.get("setup"):
        call_command("migrate", verbosity=0)
        return {}
    return _measure(spec)


def _measure(spec: dict[str, Any]) -> dict[str, Any]:
    import gc

    from django.core.mail import EmailMultiAlternatives
    from django.db import connection

    from django_sendfleet import models
    from django_sendfleet.backends import QueuedEmailBackend

    tables = [models.SendLog._meta.db_table]
    if hasattr(models, "MessageContent"):
        tables.append(models.MessageContent._meta.db_table)
    with connection.cursor() as cursor:
        for table in tables:
            cursor.execute(f"DELETE FROM {connection.ops.quote_name(table)}")

    characters = spec["characters"]
    text = ("Your weekly newsletter, line by line. " * (characters // 38 + 1))[:characters]
    html = ("<p>Your <b>weekly</b> newsletter.</p>\n" * (characters // 38 + 1))[:characters]
    recipients = [f"reader{n}@example.com" for n in range(spec["recipients"])]
    messages = []
    for number in range(spec["messages"]):
        # A subject of its own: consecutive messages that say the same share one content row,
        # and the bench measures the case where they do not.
        subject = f"This week, #{number}"
        message = EmailMultiAlternatives(
            subject, text, "Shop <shop@example.com>", recipients[:1], bcc=recipients[1:]
        )
        message.attach_alternative(html, "text/html")
        messages.append(message)
    backend = QueuedEmailBackend()
    connection.ensure_connection()
    gc.collect()

    before = _rss_kb("VmRSS")
    Path("/proc/self/clear_refs").write_text("5")  # VmHWM := VmRSS
    started = time.perf_counter()
    sent = backend.send_messages(messages)
    seconds = time.perf_counter() - started
    peak = _rss_kb("VmHWM")

    assert sent == spec["messages"], sent
    pending = models.SendLog.objects.filter(status="pending").count()
    contents, content_characters = _stored_content(models)
    return {
        "growth_mb": (peak - before) / 1024,
        "pending": pending,
        "contents": contents,
        "content_characters": content_characters,
        "seconds": seconds,
    }


def _stored_content(models: Any) -> tuple[int | str, int]:
    """Content rows and their characters; for code before MessageContent, the rows' copies."""
    from django.db.models import Sum
    from django.db.models.functions import Length

    if hasattr(models, "MessageContent"):
        stored = models.MessageContent.objects.aggregate(
            text=Sum(Length("text")), html=Sum(Length("html"))
        )
        count = models.MessageContent.objects.count()
        return count, (stored["text"] or 0) + (stored["html"] or 0)
    total = sum(
        len(json.dumps(payload))
        for payload in models.SendLog.objects.values_list("payload", flat=True).iterator()
        if payload
    )
    return "none (a payload per row)", total


def _rss_kb(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1])
    raise RuntimeError(f"no {field} in /proc/self/status (Linux only)")


if __name__ == "__main__":
    raise SystemExit(main())
