"""Forgetting a person on a big send log: time and peak memory, and the send path's lookup.

Fills a fresh database with ``--rows`` send log rows (200,000 customers, 5 rows each per
million; one row in 7 has its recipient capitalised, "Customer42@example.com", as an app may
write it), one webhook event per row (JSON body naming the recipient), a message content per
100 rows, 100,000 suppression entries and 10,000 forgotten addresses. The fill is one
INSERT ... SELECT per table with the indexes dropped, then built again.

Then, each in a fresh process (so that its peak RSS is the erasure's, not the fill's):

- ``sendfleet_forget --dry-run`` for one customer, then ``sendfleet_forget`` (batch size
  1,000), then again (nothing left to find), timed, with the growth of the process's peak RSS
  during the step (the kernel's ``VmHWM``, reset just before it through
  ``/proc/self/clear_refs``; Linux), and Python's peak allocation (tracemalloc) during a dry run
  after it;
- the suppression lookup of the send path (``suppressed_among``) for 1 and for 500 addresses,
  against the query it replaced (the suppression table alone), p50 of 200 interleaved runs.

    python bench/bench_forget.py [--rows 1000000]                   # SQLite, in a temp file
    DATABASE_URL=postgres://USER@HOST:PORT/DB python bench/bench_forget.py [--rows 1000000]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "testproject.settings")
os.environ.setdefault("DJANGO_DEBUG", "0")  # DEBUG would keep every query in memory

CUSTOMERS = 200_000
TARGET = "customer4200@example.com"  # rows 4200, 204200, ...: with content, some capitalised


def setup_django() -> None:
    import django

    django.setup()


def series(vendor: str, rows: int) -> str:
    """A FROM clause giving g = 1..rows."""
    if vendor == "postgresql":
        return f"generate_series(1, {rows}) AS s(g)"
    counted = f"SELECT 1 UNION ALL SELECT g + 1 FROM s WHERE g < {rows}"
    return f"(WITH RECURSIVE s(g) AS ({counted}) SELECT g FROM s) AS s"


def fill(rows: int) -> None:
    from django.apps import apps
    from django.core.management import call_command
    from django.db import connection

    from django_sendfleet.models import MessageContent, SendLog, Suppression, WebhookEvent

    # The app's tables only, emptied and made again: a database of its own is still advisable.
    existing = set(connection.introspection.table_names())
    models = apps.get_app_config("django_sendfleet").get_models()
    tables = [m._meta.db_table for m in models if m._meta.db_table in existing]
    with connection.cursor() as cursor:
        if tables and connection.vendor == "postgresql":
            cursor.execute(f"TRUNCATE {', '.join(tables)} CASCADE")
        for table in sorted(tables, key=lambda name: "webhookevent" not in name):
            cursor.execute(f"DELETE FROM {table}")  # events first: they refer to the log
    call_command("migrate", "django_sendfleet", "zero", verbosity=0)
    call_command("migrate", verbosity=0)
    vendor = connection.vendor
    pg = vendor == "postgresql"
    text = (lambda e: f"({e})::text") if pg else (lambda e: f"CAST({e} AS TEXT)")
    pad = (lambda e: f"lpad({text(e)}, 64, '0')") if pg else (lambda e: f"printf('%064d', {e})")
    now = "now()" if pg else "strftime('%Y-%m-%d %H:%M:%f', 'now')"
    recipient = (
        "CASE WHEN g % 7 = 0 THEN 'Customer' ELSE 'customer' END || "
        f"{text(f'g % {CUSTOMERS}')} || '@example.com'"
    )
    message_id = f"'msg-' || {text('g')}"
    log_columns = {
        "created_at": now,
        "updated_at": now,
        "mailer": "'default'",
        "message_id": message_id,
        "recipient": recipient,
        "from_email": "'shop@example.com'",
        "subject": "'Order ' || " + text("g") + " || ' shipped'",
        "status": "'delivered'",
        "http_status": "200",
        "mode": "'shared'",
        "attempts": "1",
        "duration_ms": "40",
        "content_id": "CASE WHEN g % 100 = 0 THEN g / 100 ELSE NULL END",
    }
    event_columns = {
        "received_at": now,
        "event_type": "'email.delivered'",
        "message_id": message_id,
        "recipient": recipient,
        "sender": "'shop@example.com'",
        "raw": ("(" if pg else "")
        + '\'{"event_type": "email.delivered", "message_id": "msg-\' || '
        + text("g")
        + ' || \'", "to": "\' || '
        + recipient
        + " || '\"}'"
        + (")::jsonb" if pg else ""),
        "digest": pad("g"),
        "outcome": "'applied'",
        "send_log_id": "g",
    }
    content_columns = {
        "created_at": now,
        "from_email": "'shop@example.com'",
        "subject": "'Your order ' || " + text("g"),
        "text": "'Thanks for your order ' || " + text("g"),
    }
    suppression_columns = {
        "email": "'bounced' || " + text("g") + " || '@example.org'",
        "reason": "'hard_bounce'",
        "source": "'webhook'",
        "created_at": now,
        "last_seen_at": now,
    }
    forgotten_columns = {"digest": pad("g + 1000000000"), "key_id": "'old'", "forgotten_at": now}
    from django_sendfleet.models.forgotten import ForgottenAddress

    with connection.cursor() as cursor:
        for model, columns, count in (
            (MessageContent, content_columns, rows // 100),
            (SendLog, log_columns, rows),
            (WebhookEvent, event_columns, rows),
            (Suppression, suppression_columns, 100_000),
            (ForgottenAddress, forgotten_columns, 10_000),
        ):
            _insert(cursor, connection, model, columns, count, series(vendor, count))
        cursor.execute(
            f"INSERT INTO {Suppression._meta.db_table} (email, reason, source, created_at, "
            f"last_seen_at, hits, note, message_id) VALUES ('{TARGET}', 'complaint', 'webhook', "
            f"{now}, {now}, 0, '', '')"
        )
        cursor.execute("ANALYZE" if not pg else "VACUUM ANALYZE")


def _insert(cursor: Any, connection: Any, model: Any, generated: dict, count: int, source: str):
    """One INSERT ... SELECT, the table's indexes (but its primary key's) dropped meanwhile."""
    table = model._meta.db_table
    columns, values, params = [], [], []
    for field in model._meta.concrete_fields:
        if field.primary_key:
            continue
        columns.append(connection.ops.quote_name(field.column))
        if field.column in generated or field.name in generated:
            values.append(generated.get(field.column, generated.get(field.name)))
        else:
            values.append("%s")
            params.append(field.get_db_prep_save(field.get_default(), connection))
    indexes = _indexes(cursor, connection, table)
    for name, _ in indexes:
        cursor.execute(f"DROP INDEX {connection.ops.quote_name(name)}")
    began = time.perf_counter()
    sql = f"INSERT INTO {table} ({', '.join(columns)}) SELECT {', '.join(values)} FROM {source}"
    cursor.execute(sql.replace("%", "%%").replace("%%s", "%s"), params)
    for _, definition in indexes:
        cursor.execute(definition)
    print(f"filled {table}: {count:,} rows in {time.perf_counter() - began:.1f} s", flush=True)


def _indexes(cursor: Any, connection: Any, table: str) -> list[tuple[str, str]]:
    if connection.vendor == "postgresql":
        cursor.execute(
            "SELECT indexname, indexdef FROM pg_indexes WHERE tablename = %s "
            "AND indexname NOT IN (SELECT conname FROM pg_constraint)",
            [table],
        )
    else:
        cursor.execute(
            "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND tbl_name = %s "
            "AND sql IS NOT NULL",
            [table],
        )
    return cursor.fetchall()


def measure(step: str) -> dict[str, Any]:
    """One step, in this (fresh) process: its time, peak RSS and Python peak allocation."""
    from django.db import connection

    from django_sendfleet.erasure import forget as erasure

    connection.ensure_connection()
    if step == "lookup":  # timings: without tracemalloc, which slows Python down
        return {"step": step, "p50_ms": lookup_costs()}
    before_kib = _reset_peak_rss()
    began = time.perf_counter()
    result = erasure.forget([TARGET], dry_run=step == "dry-run", wait=0).as_dict()
    seconds = time.perf_counter() - began
    growth_kib = _status_kib("VmHWM") - before_kib
    # Again, under tracemalloc (which slows Python down): the Python objects it allocated.
    tracemalloc.start()
    erasure.forget([TARGET], dry_run=True, wait=0)
    _, python_peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return {
        "step": step,
        "seconds": round(seconds, 2),
        "peak_rss_growth_mib": round(growth_kib / 1024, 1),
        "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "python_peak_mib_dry_run": round(python_peak / 2**20, 2),
        "result": result,
    }


def _reset_peak_rss() -> int:
    """Make the kernel's peak RSS (VmHWM) the current RSS; return it, in KiB."""
    with open("/proc/self/clear_refs", "w") as clear:
        clear.write("5")
    return _status_kib("VmRSS")


def _status_kib(name: str) -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(name + ":"):
                return int(line.split()[1])
    raise LookupError(name)


def lookup_costs(rounds: int = 200) -> dict[str, float]:
    """The send path's suppression lookup, p50 in ms, against the suppression table alone."""
    from django_sendfleet.models import Suppression

    def before(addresses: list[str]) -> set[str]:  # the lookup as it was before 0011
        return set(Suppression.objects.filter(email__in=addresses).values_list("email", flat=True))

    costs: dict[str, float] = {}
    # 499 addresses: one query of each; 500: two with hashes (499 per query), one without.
    for size in (1, 499, 500):
        addresses = [f"customer{n}@example.com" for n in range(size)]
        timings: dict[str, list[float]] = {"suppression table only": [], "with hashes": []}
        for round_number in range(rounds):
            pair = [
                ("suppression table only", before),
                ("with hashes", Suppression.objects.suppressed_among),
            ]
            for name, lookup in pair if round_number % 2 else reversed(pair):
                began = time.perf_counter()
                lookup(addresses)
                timings[name].append(time.perf_counter() - began)
        for name, values in timings.items():
            costs[f"{size} address(es), {name}"] = round(statistics.median(values) * 1000, 3)
    return costs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--step", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.step:
        setup_django()
        print(json.dumps(measure(args.step)))
        return
    env = dict(os.environ)
    temporary = None
    if not env.get("DATABASE_URL"):
        temporary = tempfile.mkdtemp(prefix="bench-forget-")
        env["DATABASE_URL"] = f"sqlite:///{temporary}/bench.sqlite3"
    os.environ.update(env)
    setup_django()
    from django.db import connection

    print(f"{connection.vendor}, {args.rows:,} send log rows and as many events", flush=True)
    fill(args.rows)
    connection.close()
    results = []
    for step in ("dry-run", "forget", "forget-again", "lookup"):
        command = [sys.executable, __file__, "--step", step]
        out = subprocess.run(command, env=env, check=True, capture_output=True, text=True).stdout
        results.append(json.loads(out.strip().splitlines()[-1]))
        print(json.dumps(results[-1]), flush=True)
    if temporary:
        for name in os.listdir(temporary):
            os.unlink(os.path.join(temporary, name))
        os.rmdir(temporary)


if __name__ == "__main__":
    main()
