"""The send log's tag filter (issue 22) on a big table: each tag page's time, and the index
each of its queries uses.

Fills PostgreSQL with ``--rows`` rows as ``bench_admin.py`` does, tags them (``welcome`` on one
row in 10, ``rare`` on one in 10,000, both with a second tag), then requests the changelist
filtered by each tag, and by a tag no row has, ``--requests`` times each through Django's test
Client as a superuser. Reports the p50 per page, and EXPLAINs every query of each page: none
may read the log sequentially. Goal: under 200 ms a page.

    DATABASE_URL=postgres://USER@HOST:PORT/DB python bench/bench_admin_tags.py [--rows 1000000]
        [--requests 15] [--refill]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time

import bench_admin  # sets up the path and settings as bench_admin.py runs (bench/ is on sys.path)

TABLE = bench_admin.TABLE


def tag_rows() -> None:
    from django.db import connection

    tagged = [(["welcome", "onboarding"], 10, 0), (["receipt", "rare"], 10_000, 7)]
    with connection.cursor() as cursor:
        for tags, every, offset in tagged:
            cursor.execute(
                f"UPDATE {TABLE} SET tags = %s::jsonb WHERE id %% %s = %s",
                [json.dumps(tags), every, offset],
            )
        cursor.execute(f"VACUUM ANALYZE {TABLE}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--requests", type=int, default=15)
    parser.add_argument("--refill", action="store_true")
    args = parser.parse_args()

    import django

    django.setup()
    from django.contrib.auth.models import User
    from django.core.management import call_command
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext, setup_test_environment

    if connection.vendor != "postgresql":
        print("Set DATABASE_URL to a PostgreSQL database.", file=sys.stderr)
        return 2
    call_command("migrate", verbosity=0)
    with connection.cursor() as cursor:
        cursor.execute("SELECT reltuples::bigint FROM pg_class WHERE oid = %s::regclass", [TABLE])
        estimated = cursor.fetchone()[0]
    if args.refill or abs(estimated - args.rows) > args.rows * 0.01:
        started = time.perf_counter()
        print(f"Filling {args.rows:,} rows...", flush=True)
        bench_admin.fill(args.rows)
        tag_rows()
        print(f"  filled and tagged in {time.perf_counter() - started:.0f} s", flush=True)

    setup_test_environment()  # responses carry their context (the rows listed)
    user, _ = User.objects.get_or_create(
        username="bench", defaults={"is_staff": True, "is_superuser": True}
    )
    client = Client()
    client.force_login(user)
    pages = {
        "unfiltered (for reference)": {},
        "tag = welcome (1 row in 10)": {"tag": "welcome"},
        "tag = rare (1 row in 10,000)": {"tag": "rare"},
        "tag = none-such (no row)": {"tag": "none-such"},
    }
    print(f"{'page':34} {'p50 ms':>8}  rows listed  indexes used")
    for name, query in pages.items():
        with CaptureQueriesContext(connection) as queries:
            response = client.get("/admin/django_sendfleet/sendlog/", query)
        assert response.status_code == 200, response.status_code
        listed = len(response.context["cl"].result_list)
        sqls = [
            q["sql"]
            for q in queries
            if f'FROM "{TABLE}"' in q["sql"] and not q["sql"].startswith("EXPLAIN")
        ]
        indexes, seq_scans = bench_admin.explain_log_queries(sqls)
        assert not seq_scans, seq_scans
        timings = []
        for _ in range(args.requests):
            began = time.perf_counter()
            client.get("/admin/django_sendfleet/sendlog/", query)
            timings.append(time.perf_counter() - began)
        p50 = statistics.median(timings) * 1000
        print(f"{name:34} {p50:8.1f}  {listed:11}  {', '.join(indexes)}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
