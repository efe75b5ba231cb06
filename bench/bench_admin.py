"""Send log changelist and dashboard speed on a big table, each against a baseline.

Fills PostgreSQL with ``--rows`` send log rows (one INSERT ... SELECT over generate_series:
90 days of sends with a realistic mix of statuses, error codes and modes; the indexes are
dropped during the fill and built after it), then counts the per-day rollups from them
(``sendfleet_rollups --rebuild``, timed). Then, each side by side in the same process:

- the changelist: each page N times through Django's test Client, logged in as a superuser,
  alternating between our ``SendLogAdmin`` (at /admin/) and a plain ``ModelAdmin`` with the
  same columns, filters and search fields but Django's defaults otherwise (at /plain/, a second
  AdminSite). Reports the p50 per page and the ratio, and EXPLAINs every query our changelist
  runs to check that each one is served by an index;
- the dashboard: ``dashboard.collect()`` (from the rollups) against the aggregate over the log
  it replaced (``collect_from_log``, below), checked to give the same dashboard, and the whole
  dashboard page with each;
- what the rollups cost on writes: ``bulk_create`` of 100 rows and a one-row status update
  through ``SendLog.objects`` against Django's plain ``QuerySet`` methods (rolled back).

    DATABASE_URL=postgres://USER@HOST:PORT/DB python bench/bench_admin.py [--rows 1000000]
        [--requests 15] [--refill]
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import statistics
import sys
import time
import types
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "testproject.settings")
os.environ.setdefault("DJANGO_DEBUG", "0")  # DEBUG would keep every query in memory

TABLE = "django_sendfleet_sendlog"

# (status, error_code, http_status, mode, share of rows). The codes are real error table rows.
MIX: list[tuple[str, str, int | None, str, float]] = [
    ("delivered", "", 200, "shared", 0.62),
    ("delivered", "", 200, "byoc", 0.08),
    ("queued", "", 200, "shared", 0.15),
    ("bounced", "", 200, "shared", 0.03),
    ("complained", "", 200, "shared", 0.005),
    ("rejected", "recipient_suppressed", 422, "", 0.03),
    ("failed", "domain_not_verified", 403, "", 0.02),
    ("failed", "rate_limited", 429, "", 0.015),
    ("failed", "queue_error", 502, "", 0.01),
    ("failed", "server_error", 500, "", 0.005),
    ("failed", "dkim_not_verified", 403, "", 0.005),
    ("failed", "usage_limit_exceeded", 429, "", 0.003),
    ("failed", "authentication_failed", 401, "", 0.002),
    ("unknown", "network_error", None, "", 0.008),
    ("failed", "invalid_message", None, "", 0.004),
    ("pending", "", None, "", 0.008),
]


def fill(rows: int) -> None:
    """Write ``rows`` rows in one statement, in time order as a real log is written.

    The table's indexes (but its primary key) are dropped first and built again after: building
    an index once is many times faster than updating it row by row.
    """
    from django.db import connection

    from django_sendfleet.models import SendLog

    generated = {
        "created_at": "created_at",
        "updated_at": "created_at",
        "mailer": "'default'",
        "message_id": "CASE WHEN mode = '' THEN '' ELSE md5(g::text) END",
        "recipient": "'customer' || (g %% 200000) || '@example.com'",
        "from_email": "'shop@example.com'",
        "subject": "'Order ' || g || ' shipped'",
        "status": "status",
        "http_status": "http_status",
        "error_code": "error_code",
        "mode": "mode",
        "attempts": "CASE WHEN error_code = 'queue_error' THEN 4 ELSE 1 END",
        "duration_ms": "40 + g %% 200",
    }
    columns, values, params = [], [], []
    for field in SendLog._meta.concrete_fields:
        if field.primary_key:
            continue
        columns.append(connection.ops.quote_name(field.column))
        if field.name in generated:
            values.append(generated[field.name])
        else:  # any other column gets the model's default, so new columns need no change here
            values.append("%s")
            params.append(field.get_db_prep_save(field.get_default(), connection))
    drawn = ", ".join(
        f"{mix_case(index)} AS {name}"
        for index, name in enumerate(("status", "error_code", "http_status", "mode"))
    )
    with connection.cursor() as cursor:
        cursor.execute(f"TRUNCATE {TABLE} RESTART IDENTITY CASCADE")
        cursor.execute(
            "SELECT indexname, indexdef FROM pg_indexes WHERE tablename = %s "
            "AND indexname NOT IN (SELECT conname FROM pg_constraint)",
            [TABLE],
        )
        indexes = cursor.fetchall()
        for name, _ in indexes:
            cursor.execute(f"DROP INDEX {connection.ops.quote_name(name)}")
        cursor.execute(
            f"""
            INSERT INTO {TABLE} ({", ".join(columns)})
            SELECT {", ".join(values)}
            FROM (
                SELECT g, created_at, {drawn}
                FROM (
                    SELECT g, random() AS r, now() - random() * interval '90 days' AS created_at
                    FROM generate_series(1, %s) AS g
                ) AS random_draws
            ) AS generated
            ORDER BY created_at
            """,
            [*params, rows],
        )
        for _, definition in indexes:
            cursor.execute(definition)
        cursor.execute(f"VACUUM ANALYZE {TABLE}")


def mix_case(column: int) -> str:
    """A CASE picking the MIX row's ``column`` value by the row's random draw ``r``."""
    total = sum(row[-1] for row in MIX)
    whens, cumulative = [], 0.0
    for row in MIX:
        cumulative += row[-1]
        whens.append(f"WHEN r < {cumulative / total:.6f} THEN {literal(row[column])}")
    return "CASE " + " ".join(whens) + " END"


def literal(value: str | int | None) -> str:
    if value is None:
        return "NULL::integer"
    return str(value) if isinstance(value, int) else f"'{value}'"


def collect_from_log(today: datetime.date | None = None) -> Any:
    """The dashboard as it was counted before the rollups: one aggregate over 30 days of log."""
    from django.db.models import Count
    from django.db.models.functions import TruncDate

    from django_sendfleet.admin import dashboard
    from django_sendfleet.models import SendLog, rollups

    today = today or rollups.today()
    first_day = today - datetime.timedelta(days=dashboard.DAYS - 1)
    rows = (
        SendLog.objects.filter(created_at__gte=rollups.start_of(first_day))
        .annotate(day=TruncDate("created_at", tzinfo=rollups.day_timezone()))
        .values_list("day", "status", "error_code")
        .annotate(sends=Count("id"))
        .order_by()
    )
    return dashboard.summarise(first_day, rows)


def p50_ms(timings: list[float]) -> float:
    return statistics.median(timings) * 1000


def interleaved(contenders: dict[str, Any], rounds: int) -> dict[str, list[float]]:
    """Time each callable ``rounds`` times, alternating their order every round."""
    names = list(contenders)
    timings: dict[str, list[float]] = {name: [] for name in names}
    for round_number in range(rounds):
        for name in names if round_number % 2 == 0 else reversed(names):
            began = time.perf_counter()
            contenders[name]()
            timings[name].append(time.perf_counter() - began)
    return timings


def write_costs(rounds: int) -> dict[str, list[float]]:
    """Writes through SendLog.objects (rollups counted) against Django's plain QuerySet."""
    from django.db import transaction
    from django.db.models import QuerySet

    from django_sendfleet.models import SendLog

    last = SendLog.objects.order_by("-pk").values_list("pk", flat=True)[:200]
    row_ids = list(last)

    def batch() -> list[Any]:
        return [
            SendLog(mailer="default", recipient=f"bench{n}@example.com", status="queued")
            for n in range(100)
        ]

    def rolled_back(work: Any) -> Any:
        def run() -> None:
            with transaction.atomic():
                work()
                transaction.set_rollback(True)

        return run

    statuses = iter(["delivered", "bounced"] * rounds * 4)
    ids = iter(row_ids * rounds * 4)
    return interleaved(
        {
            "bulk_create 100, ours": rolled_back(lambda: SendLog.objects.bulk_create(batch())),
            "bulk_create 100, plain": rolled_back(
                lambda: QuerySet.bulk_create(SendLog.objects.all(), batch())
            ),
            "status update, ours": rolled_back(
                lambda: SendLog.objects.filter(pk=next(ids)).update(status=next(statuses))
            ),
            "status update, plain": rolled_back(
                lambda: QuerySet.update(SendLog.objects.filter(pk=next(ids)), status=next(statuses))
            ),
        },
        rounds,
    )


def plan_nodes(plan: dict[str, Any]) -> list[dict[str, Any]]:
    return [plan, *(node for child in plan.get("Plans", []) for node in plan_nodes(child))]


def explain_log_queries(sqls: list[str]) -> tuple[list[str], list[str]]:
    """Index scans and sequential scans of the log, over the given queries' plans."""
    from django.db import connection

    indexes, seq_scans = [], []
    with connection.cursor() as cursor:
        for sql in sqls:
            cursor.execute(f"EXPLAIN (FORMAT JSON) {sql}")
            plan = cursor.fetchone()[0]
            plan = json.loads(plan) if isinstance(plan, str) else plan
            for node in plan_nodes(plan[0]["Plan"]):  # every query here reads only the log
                if node["Node Type"] == "Seq Scan":
                    seq_scans.append(sql)
                if node.get("Index Name"):
                    indexes.append(node["Index Name"])
    return sorted(set(indexes)), seq_scans


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--requests", type=int, default=15, help="timed requests per page")
    parser.add_argument("--refill", action="store_true", help="refill even if the count fits")
    args = parser.parse_args()

    import django
    from django.conf import settings

    django.setup()
    from django.contrib import admin
    from django.contrib.auth.models import User
    from django.core.management import call_command
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext
    from django.urls import clear_url_caches, path
    from django.utils import timezone

    from django_sendfleet.admin import dashboard
    from django_sendfleet.admin.registration import SendLogAdmin
    from django_sendfleet.models import SendLog
    from django_sendfleet.models.rollups import SendRollup
    from django_sendfleet.records import rollup_rebuild

    if connection.vendor != "postgresql":
        print("Set DATABASE_URL to a PostgreSQL database.", file=sys.stderr)
        return 2
    call_command("migrate", verbosity=0)

    class PlainSendLogAdmin(admin.ModelAdmin):
        """What one writes without thinking of the table's size: Django's defaults."""

        # The same columns; a column ours computes (scheduled_for) is the field it shows.
        list_display = tuple(
            "not_before" if column == "scheduled_for" else column
            for column in SendLogAdmin.list_display
        )
        list_filter = ("status", "error_code", "mode", "created_at")
        search_fields = ("recipient", "message_id")

    plain_site = admin.AdminSite(name="plain")
    plain_site.register(SendLog, PlainSendLogAdmin)
    urls = types.ModuleType("bench_admin_urls")
    urls.urlpatterns = [path("admin/", admin.site.urls), path("plain/", plain_site.urls)]
    sys.modules[urls.__name__] = urls
    settings.ROOT_URLCONF = urls.__name__
    clear_url_caches()

    started = time.perf_counter()
    with connection.cursor() as cursor:
        cursor.execute("SELECT reltuples::bigint FROM pg_class WHERE oid = %s::regclass", [TABLE])
        estimated_rows = cursor.fetchone()[0]
    refill = args.refill or abs(estimated_rows - args.rows) > args.rows * 0.01
    if refill:
        print(f"Filling {args.rows:,} rows...", flush=True)
        fill(args.rows)
        print(f"  filled in {time.perf_counter() - started:.0f} s", flush=True)
    if refill or not SendRollup.objects.exists():
        # The fill is raw SQL, which the rollups do not follow: count them as an install would.
        began = time.perf_counter()
        days = rollup_rebuild.rebuild()
        print(
            f"Rollups rebuilt from the log ({days} days) in {time.perf_counter() - began:.1f} s",
            flush=True,
        )

    user, _ = User.objects.get_or_create(
        username="bench", defaults={"is_staff": True, "is_superuser": True}
    )
    client = Client()
    client.force_login(user)

    week_ago = str(timezone.now() - datetime.timedelta(days=7))
    recipient = "customer4242@example.com"
    problems = "failed,rejected,unknown,bounced,complained"
    # (name, our query, the plain admin's query for the same rows)
    pages: list[tuple[str, dict[str, str], dict[str, str]]] = [
        ("unfiltered", {}, {}),
        ("status = failed", {"status": "failed"}, {"status__exact": "failed"}),
        ("status needs attention", {"status": "problems"}, {"status__in": problems}),
        ("error code", {"error_code": "rate_limited"}, {"error_code": "rate_limited"}),
        ("mode = byoc", {"mode": "byoc"}, {"mode": "byoc"}),
        ("date: past 7 days", {"created_at__gte": week_ago}, {"created_at__gte": week_ago}),
        ("search: exact recipient", {"q": recipient}, {"q": recipient}),
        ("page 50", {"p": "50"}, {"p": "50"}),
    ]

    def get(prefix: str, query: dict[str, str]) -> float:
        began = time.perf_counter()
        response = client.get(f"/{prefix}/django_sendfleet/sendlog/", query)
        elapsed = time.perf_counter() - began
        assert response.status_code == 200, (prefix, query, response.status_code)
        return elapsed

    print("\nOur changelist's queries on the log (EXPLAIN):")
    all_indexed = True
    for name, ours, _ in pages:
        with CaptureQueriesContext(connection) as queries:
            get("admin", ours)
        sqls = [
            q["sql"]
            for q in queries
            if f'FROM "{TABLE}"' in q["sql"] and not q["sql"].startswith("EXPLAIN")
        ]
        full_counts = [s for s in sqls if "COUNT(" in s.upper() and "LIMIT" not in s.upper()]
        indexes, seq_scans = explain_log_queries(sqls)
        all_indexed &= not seq_scans and not full_counts
        verdict = "ok" if not seq_scans and not full_counts else "SEQ SCAN / FULL COUNT"
        print(f"  {name:26} {len(sqls)} queries, indexes: {', '.join(indexes)}  [{verdict}]")

    for _, ours, plain in pages:  # warm up both
        get("admin", ours)
        get("plain", plain)
    timings: dict[tuple[str, str], list[float]] = {}
    for round_number in range(args.requests):
        for name, ours, plain in pages:
            pair = [("admin", ours), ("plain", plain)]
            for prefix, query in pair if round_number % 2 == 0 else reversed(pair):
                timings.setdefault((name, prefix), []).append(get(prefix, query))
    # The dashboard: from the rollups against the aggregate over the log, side by side.
    ours, log = dashboard.collect(), collect_from_log()
    assert ours.sends_by_day == log.sends_by_day, "the rollups disagree with the log"
    assert dict(ours.errors) == dict(log.errors), "the rollups disagree with the log"
    counting = interleaved(
        {"rollups": dashboard.collect, "log": collect_from_log}, max(args.requests, 5)
    )
    from_rollups = dashboard.collect

    def page_with(collect: Any) -> Any:
        def get_page() -> None:
            dashboard.collect = collect  # the admin's dashboard view calls dashboard.collect()
            try:
                response = client.get("/admin/django_sendfleet/sendlog/dashboard/")
            finally:
                dashboard.collect = from_rollups
            assert response.status_code == 200

        return get_page

    page = interleaved(
        {"rollups": page_with(from_rollups), "log": page_with(collect_from_log)},
        max(args.requests, 5),
    )
    writes = write_costs(max(args.requests, 5) * 4)

    rows = SendLog.objects.count()
    print(
        f"\n{rows:,} rows; p50 of {args.requests} requests per page, interleaved "
        f"(Django {django.get_version()}, PostgreSQL {connection.pg_version // 10000})\n"
    )
    print("| page | ours p50 (ms) | plain ModelAdmin p50 (ms) | speed-up |")
    print("|---|---|---|---|")
    ratios = []
    for name, _, _ in pages:
        ours = statistics.median(timings[(name, "admin")]) * 1000
        plain = statistics.median(timings[(name, "plain")]) * 1000
        ratios.append(plain / ours)
        print(f"| {name} | {ours:.0f} | {plain:.0f} | {plain / ours:.0f}x |")
    slowest = max(statistics.median(timings[(n, "admin")]) for n, _, _ in pages) * 1000
    print(
        f"\nSlowest page of ours: {slowest:.0f} ms (goal < 200); smallest speed-up: "
        f"{min(ratios):.1f}x; every query on an index: {all_indexed}"
    )

    print("\n| dashboard | from the rollups p50 (ms) | from the log p50 (ms) | speed-up |")
    print("|---|---|---|---|")
    for name, timed in (("collect()", counting), ("whole page", page)):
        ours, log = p50_ms(timed["rollups"]), p50_ms(timed["log"])
        print(f"| {name} | {ours:.1f} | {log:.0f} | {log / ours:.0f}x |")
    print(f"Dashboard page from the rollups: {p50_ms(page['rollups']):.0f} ms (goal < 100)")

    print("\n| write | through SendLog.objects p50 (ms) | plain QuerySet p50 (ms) | ratio |")
    print("|---|---|---|---|")
    for name in ("bulk_create 100", "status update"):
        ours, plain = p50_ms(writes[f"{name}, ours"]), p50_ms(writes[f"{name}, plain"])
        print(f"| {name} | {ours:.2f} | {plain:.2f} | {ours / plain:.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
