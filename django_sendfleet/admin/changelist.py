"""What keeps the send log's admin changelist fast on millions of rows: a count estimated from
the planner's statistics instead of ``COUNT(*)``, and list filters that match an index and
never list their choices with ``SELECT DISTINCT`` (their choices come from the error table and
the status vocabulary).
"""

from __future__ import annotations

import json
from typing import Any, cast

from django.contrib import admin
from django.core.paginator import Paginator
from django.db import connections
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils.functional import cached_property

from ..error_table import ERROR_TABLE
from ..models import SendLog
from ..models.log_status import PROBLEM_STATUSES, LogStatus


def estimated_row_count(queryset: QuerySet[Any]) -> int | None:
    """PostgreSQL's estimate of the rows the queryset matches; None on other databases.

    Unfiltered: the table's ``reltuples`` (kept by ANALYZE/autovacuum). Filtered: the planner's
    row estimate from ``EXPLAIN``. Neither reads the table.
    """
    connection = connections[queryset.db]
    if connection.vendor != "postgresql":
        return None
    with connection.cursor() as cursor:
        if not queryset.query.where:
            table = connection.ops.quote_name(queryset.model._meta.db_table)
            cursor.execute(
                "SELECT reltuples::bigint FROM pg_class WHERE oid = %s::regclass", [table]
            )
            return int(cursor.fetchone()[0])
        sql, params = queryset.order_by().query.get_compiler(using=queryset.db).as_sql()
        cursor.execute(f"EXPLAIN (FORMAT JSON) {sql}", params)
        plan = cursor.fetchone()[0]
        if isinstance(plan, str):  # psycopg 2 returns the JSON text
            plan = json.loads(plan)
        return int(plan[0]["Plan"]["Plan Rows"])


class EstimatedCountPaginator(Paginator):
    """Counts exactly up to ``exact_count_limit`` rows and estimates past that.

    A ``COUNT(*)`` of a big table reads all of it. Counting at most limit + 1 rows stays cheap
    and is exact for small results (a search, a rare error code); above the limit PostgreSQL's
    estimate is used, and other databases show limit + 1. The limit is above the changelist's
    ``list_max_show_all``, so an estimate can never make it show "all" of a large result.
    """

    exact_count_limit = 1000
    count_is_estimate = False

    @cached_property
    def count(self) -> int:
        queryset = cast("QuerySet[Any]", self.object_list)
        # Sliced, the count keeps the list's ORDER BY: it walks the same index as the page.
        capped = queryset[: self.exact_count_limit + 1].count()
        if capped <= self.exact_count_limit:
            return capped
        self.count_is_estimate = True
        return max(estimated_row_count(queryset) or 0, capped)


class StatusFilter(admin.SimpleListFilter):
    title = "status"
    parameter_name = "status"
    NEEDS_ATTENTION = "problems"

    def lookups(self, request: HttpRequest, model_admin: admin.ModelAdmin) -> list[tuple[str, str]]:
        return [(self.NEEDS_ATTENTION, "needs attention"), *LogStatus.choices]

    def queryset(self, request: HttpRequest, queryset: QuerySet[SendLog]) -> QuerySet[SendLog]:
        value = self.value()
        if value == self.NEEDS_ATTENTION:
            return queryset.filter(status__in=PROBLEM_STATUSES)
        if value:
            return queryset.filter(status=value)
        return queryset


class ErrorCodeFilter(admin.SimpleListFilter):
    """The codes come from the error table, not from ``SELECT DISTINCT`` over the log."""

    title = "error code"
    parameter_name = "error_code"

    def lookups(self, request: HttpRequest, model_admin: admin.ModelAdmin) -> list[tuple[str, str]]:
        return [(spec.code, spec.code) for spec in ERROR_TABLE]

    def queryset(self, request: HttpRequest, queryset: QuerySet[SendLog]) -> QuerySet[SendLog]:
        value = self.value()
        return queryset.filter(error_code=value) if value else queryset


class ModeFilter(admin.SimpleListFilter):
    """SendFleet's two sending modes, plus sends that never got an answer (no mode)."""

    title = "mode"
    parameter_name = "mode"
    NOT_SENT = "none"

    def lookups(self, request: HttpRequest, model_admin: admin.ModelAdmin) -> list[tuple[str, str]]:
        return [("shared", "Shared SES"), ("byoc", "BYOC"), (self.NOT_SENT, "no answer")]

    def queryset(self, request: HttpRequest, queryset: QuerySet[SendLog]) -> QuerySet[SendLog]:
        value = self.value()
        if value == self.NOT_SENT:
            return queryset.filter(mode="")
        return queryset.filter(mode=value) if value else queryset
