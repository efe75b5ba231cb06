"""Recounting the per-day rollups from the send log: to check them, and to repair them after
writes that bypassed the ORM (raw SQL, a restore of the log from a backup).

``rebuild`` replaces the rollups of one day at a time, each in its own short transaction. On
PostgreSQL it first takes the rollup table in ``EXCLUSIVE`` mode, which waits for the
transactions that already counted a change and holds back those about to: a change is then
either in the recount or counted on top of it, never both. On SQLite a transaction is the only
writer. On other databases, rebuild while nothing sends.
"""

from __future__ import annotations

import datetime
from collections import Counter

from django.db import DEFAULT_DB_ALIAS, connections, transaction
from django.db.models import Count, Max, Min
from django.db.models.functions import TruncDate

from ..models import SendLog
from ..models.rollups import KEY_FIELDS, Key, SendRollup, counted, day_of, day_timezone, start_of


def counted_in_log(
    first_day: datetime.date | None = None,
    last_day: datetime.date | None = None,
    using: str = DEFAULT_DB_ALIAS,
) -> Counter[Key]:
    """What the rollups should hold: the log's rows grouped by day and key."""
    rows = SendLog.objects.using(using)
    if first_day is not None:
        rows = rows.filter(created_at__gte=start_of(first_day))
    if last_day is not None:
        rows = rows.filter(created_at__lt=start_of(last_day + datetime.timedelta(days=1)))
    grouped = (
        rows.annotate(day=TruncDate("created_at", tzinfo=day_timezone()))
        .values_list("day", *KEY_FIELDS)
        .annotate(sends=Count("pk"))
        .order_by()
    )
    return Counter({Key(*row[:-1]): row[-1] for row in grouped})


def differences(
    first_day: datetime.date | None = None,
    last_day: datetime.date | None = None,
    using: str = DEFAULT_DB_ALIAS,
) -> dict[Key, tuple[int, int]]:
    """Keys whose rollup is off: (rollup, rows in the log) for each."""
    in_rollups = counted(first_day, last_day, using=using)
    in_log = counted_in_log(first_day, last_day, using=using)
    return {
        key: (in_rollups[key], in_log[key])
        for key in sorted(in_rollups.keys() | in_log.keys())
        if in_rollups[key] != in_log[key]
    }


def rebuild(
    first_day: datetime.date | None = None,
    last_day: datetime.date | None = None,
    using: str = DEFAULT_DB_ALIAS,
) -> int:
    """Recount the rollups of these days (by default every day either has); the days done."""
    span = _days_held(using)
    if span is None:
        return 0
    first_day = max(first_day or span[0], span[0])
    last_day = min(last_day or span[1], span[1])
    day = first_day
    while day <= last_day:
        _rebuild_day(day, using)
        day += datetime.timedelta(days=1)
    return max((last_day - first_day).days + 1, 0)


def _days_held(using: str) -> tuple[datetime.date, datetime.date] | None:
    """The first and last day of the log or the rollups."""
    log = SendLog.objects.using(using).aggregate(first=Min("created_at"), last=Max("created_at"))
    rollups = SendRollup.objects.using(using).aggregate(first=Min("day"), last=Max("day"))
    firsts = [d for d in (rollups["first"], log["first"] and day_of(log["first"])) if d]
    lasts = [d for d in (rollups["last"], log["last"] and day_of(log["last"])) if d]
    return (min(firsts), max(lasts)) if firsts else None


def _rebuild_day(day: datetime.date, using: str) -> None:
    connection = connections[using]
    with transaction.atomic(using=using):
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                table = connection.ops.quote_name(SendRollup._meta.db_table)
                cursor.execute(f"LOCK TABLE {table} IN EXCLUSIVE MODE")
        # Deleting first: on SQLite that makes this transaction the writer before it reads.
        SendRollup.objects.using(using).filter(day=day).delete()
        SendRollup.objects.using(using).bulk_create(
            SendRollup(**key._asdict(), sends=sends)
            for key, sends in counted_in_log(day, day, using=using).items()
        )
