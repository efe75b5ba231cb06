"""What the database does with a query: the plan PostgreSQL (or SQLite) chooses."""

from __future__ import annotations

from django.db import connection


def assert_uses_an_index(sql: str) -> None:
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            # A tiny test table is cheaper to read whole; forbid that to see what it can use.
            cursor.execute("SET LOCAL enable_seqscan = off")
            cursor.execute(f"EXPLAIN {sql}")
            plan = "\n".join(row[0] for row in cursor.fetchall())
            assert "Seq Scan on django_sendfleet_sendlog" not in plan, (sql, plan)
        elif connection.vendor == "sqlite":
            cursor.execute(f"EXPLAIN QUERY PLAN {sql}")
            steps = [row[-1] for row in cursor.fetchall()]
            scans = [s for s in steps if "django_sendfleet_sendlog" in s]
            assert scans and all("INDEX" in s for s in scans), (sql, steps)
