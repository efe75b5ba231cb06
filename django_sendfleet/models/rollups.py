"""Per-day rollups of the send log: how many rows each (day, mailer, mode, status, error code)
has, kept current in the transaction of every change to the log.

Why: docs/internals.md#models-per-day-rollups
"""

from __future__ import annotations

import datetime
import enum
from collections import Counter
from collections.abc import Collection, Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, NamedTuple

from django.conf import settings
from django.db import IntegrityError, NotSupportedError, connections, models, router, transaction
from django.db.models import F, Sum
from django.utils import timezone

from ..db import bulk_insert

#: The columns a rollup is keyed by besides the day, named as on ``SendLog``.
KEY_FIELDS = ("mailer", "mode", "status", "error_code")
#: The ``SendLog`` columns a row's key is made of.
SOURCE_FIELDS = ("created_at", *KEY_FIELDS)
#: Rows locked, changed or counted per statement: within every database's parameter limit.
CHUNK = 2000


class Key(NamedTuple):
    day: datetime.date
    mailer: str
    mode: str
    status: str
    error_code: str


class SendRollupManager(models.Manager["SendRollup"]):
    """Reading the rollups: ``SendRollup.objects.totals(...)``, ``SendRollup.objects.today()``."""

    def totals(
        self, first_day: datetime.date, last_day: datetime.date, by: Sequence[str]
    ) -> dict[tuple[Any, ...], int]:
        """Rows created from ``first_day`` to ``last_day`` (both included), summed per ``by``
        (any of ``day``, ``mailer``, ``mode``, ``status``, ``error_code``), on this manager's
        database. Keys with no rows are left out."""
        return totals(first_day, last_day, by, using=self.db)

    def today(self) -> datetime.date:
        """Today's day as the rollups count days: in ``settings.TIME_ZONE``."""
        return today()


class SendRollup(models.Model):
    """How many send log rows were created on ``day`` and now have this mailer, mode, status
    and error code."""

    objects = SendRollupManager()

    day = models.DateField(help_text="The rows' creation date in settings.TIME_ZONE.")
    mailer = models.CharField(max_length=100, blank=True)
    mode = models.CharField(max_length=8, blank=True)
    status = models.CharField(max_length=16)
    error_code = models.CharField(max_length=40, blank=True)
    sends = models.BigIntegerField(default=0, help_text="Send log rows with this key.")

    class Meta:
        verbose_name = "send log rollup"
        constraints = [
            # The upsert's conflict target, and the index of every read (by a range of days).
            models.UniqueConstraint(fields=["day", *KEY_FIELDS], name="sendfleet_rollup_key"),
        ]

    def __str__(self) -> str:
        return f"{self.day} {self.mailer} {self.mode} {self.status} {self.error_code}: {self.sends}"


def day_timezone() -> datetime.tzinfo:
    return timezone.get_default_timezone()


def day_of(created_at: datetime.datetime) -> datetime.date:
    if settings.USE_TZ and timezone.is_aware(created_at):
        return timezone.localtime(created_at, day_timezone()).date()
    return created_at.date()


def today() -> datetime.date:
    return day_of(timezone.now())


def start_of(day: datetime.date) -> datetime.datetime:
    """The first moment of ``day``, as the log's ``created_at`` compares with it."""
    start = datetime.datetime.combine(day, datetime.time.min)
    return timezone.make_aware(start, day_timezone()) if settings.USE_TZ else start


def totals(
    first_day: datetime.date,
    last_day: datetime.date,
    by: Sequence[str],
    using: str | None = None,
) -> dict[tuple[Any, ...], int]:
    """Rows created from ``first_day`` to ``last_day`` (both included), summed per ``by``
    (any of ``day`` and ``KEY_FIELDS``). Keys with no rows are left out."""
    unknown = set(by) - {"day", *KEY_FIELDS}
    if unknown:
        raise ValueError(f"Rollups are not kept by {sorted(unknown)}.")
    rows = (
        SendRollup.objects.using(using)
        .filter(day__gte=first_day, day__lte=last_day)
        .values_list(*by)
        .annotate(total=Sum("sends"))
        .order_by()
    )
    return {tuple(row[:-1]): row[-1] for row in rows if row[-1]}


def counted(
    first_day: datetime.date | None = None,
    last_day: datetime.date | None = None,
    using: str | None = None,
) -> Counter[Key]:
    """Every non-zero rollup in the range (all days when a bound is None)."""
    rows = SendRollup.objects.using(using).exclude(sends=0)
    if first_day is not None:
        rows = rows.filter(day__gte=first_day)
    if last_day is not None:
        rows = rows.filter(day__lte=last_day)
    return Counter(
        {Key(*row[:-1]): row[-1] for row in rows.values_list("day", *KEY_FIELDS, "sends")}
    )


# Keeping them current


def key_of(source: Sequence[Any]) -> Key:
    """The key of a row from its ``SOURCE_FIELDS`` values."""
    created_at, *rest = source
    return Key(day_of(created_at), *(_plain(value) for value in rest))


def _plain(value: Any) -> Any:
    # A LogStatus member is stored as its value; keys compare and hash as plain values.
    return value.value if isinstance(value, enum.Enum) else value


def _source_of(row: models.Model) -> tuple[Any, ...]:
    return tuple(getattr(row, name) for name in SOURCE_FIELDS)


def apply(deltas: Counter[Key], using: str) -> None:
    """Add each delta to its key's count, in the caller's transaction."""
    changes = sorted((key, delta) for key, delta in deltas.items() if delta)
    if not changes:
        return
    connection = connections[using]
    if connection.vendor not in ("postgresql", "sqlite"):
        _apply_portably(changes, using)
        return
    quote = connection.ops.quote_name
    table = quote(SendRollup._meta.db_table)
    key_columns = ", ".join(quote(name) for name in Key._fields)
    sends = quote("sends")
    for start in range(0, len(changes), CHUNK // len(Key._fields)):
        chunk = changes[start : start + CHUNK // len(Key._fields)]
        values = ", ".join(["(" + ", ".join(["%s"] * (len(Key._fields) + 1)) + ")"] * len(chunk))
        params: list[Any] = []
        for key, delta in chunk:
            params += [connection.ops.adapt_datefield_value(key.day), *key[1:], delta]
        with connection.cursor() as cursor:
            cursor.execute(
                f"INSERT INTO {table} ({key_columns}, {sends}) VALUES {values} "
                f"ON CONFLICT ({key_columns}) "
                f"DO UPDATE SET {sends} = {table}.{sends} + EXCLUDED.{sends}",
                params,
            )


def _apply_portably(changes: list[tuple[Key, int]], using: str) -> None:
    """The same upsert through the ORM, for databases without ``ON CONFLICT``."""
    rollups = SendRollup.objects.using(using)
    for key, delta in changes:
        same_key = rollups.filter(**key._asdict())
        if same_key.update(sends=F("sends") + delta):
            continue
        try:
            with transaction.atomic(using=using):  # a savepoint: another may insert it first
                rollups.create(**key._asdict(), sends=delta)
        except IntegrityError:
            same_key.update(sends=F("sends") + delta)


def _moves(before: dict[Any, Key], after: dict[Any, Key | None]) -> Counter[Key]:
    deltas: Counter[Key] = Counter()
    for pk, key in before.items():
        deltas[key] -= 1
        new = after.get(pk)
        if new is not None:
            deltas[new] += 1
    return deltas


def _chunks(items: Sequence[Any]) -> Iterator[Sequence[Any]]:
    for start in range(0, len(items), CHUNK):
        yield items[start : start + CHUNK]


class SendLogQuerySet(models.QuerySet):
    """``SendLog.objects``: its writes keep the rollups current, in the same transaction.

    ``update`` and ``delete`` lock the rows they change (``SELECT ... FOR UPDATE``, in primary
    key order), so the counts move for exactly the rows changed however many writers there are.
    """

    def bulk_create(
        self,
        objs: Iterable[Any],
        batch_size: int | None = None,
        ignore_conflicts: bool = False,
        update_conflicts: bool = False,
        update_fields: Collection[str] | None = None,
        unique_fields: Collection[str] | None = None,
    ) -> list[Any]:
        if ignore_conflicts or update_conflicts:
            # Which rows were inserted is not known afterwards: the counts could not follow.
            raise NotSupportedError("SendLog rows are counted: bulk_create on conflict is not.")
        self._for_write = True
        objs = list(objs)
        with transaction.atomic(using=self.db, savepoint=False):
            # The send log's batches take the cheaper path; what it does not take, Django does.
            rows = None if batch_size is not None else bulk_insert.insert(objs, self.db)
            if rows is None:
                rows = super().bulk_create(objs, batch_size=batch_size)
            apply(Counter(key_of(_source_of(row)) for row in rows), self.db)
        return rows

    def update(self, **kwargs: Any) -> int:
        changes = {name: kwargs[name] for name in SOURCE_FIELDS if name in kwargs}
        if not changes:
            return super().update(**kwargs)
        if self.query.combinator:
            raise NotSupportedError(f"update() after {self.query.combinator}() is not supported.")
        if self.query.is_sliced:
            raise TypeError("Cannot update a query once a slice has been taken.")
        self._for_write = True
        with transaction.atomic(using=self.db, savepoint=False):
            before = self._lock()
            pks = list(before)
            updated = 0
            for chunk in _chunks(pks):
                updated += models.QuerySet.update(self._by_pk(chunk), **kwargs)
            after: dict[Any, Key | None]
            if any(hasattr(value, "resolve_expression") for value in changes.values()):
                after = self._keys(pks)  # computed by the database: read them back
            else:
                after = {pk: _changed(key, changes) for pk, key in before.items()}
            apply(_moves(before, after), self.db)
        return updated

    update.alters_data = True  # type: ignore[attr-defined]

    def delete(self) -> tuple[int, dict[str, int]]:
        if self.query.combinator:
            raise NotSupportedError(f"delete() after {self.query.combinator}() is not supported.")
        if self.query.is_sliced:
            raise TypeError("Cannot use 'limit' or 'offset' with delete().")
        if getattr(self, "_fields", None) is not None:  # Django's own check: values().delete()
            raise TypeError("Cannot call delete() after .values() or .values_list()")
        self._for_write = True
        with transaction.atomic(using=self.db, savepoint=False):
            before = self._lock()
            deleted: Counter[str] = Counter()
            for chunk in _chunks(list(before)):
                _, by_model = models.QuerySet.delete(self._by_pk(chunk))
                deleted.update(by_model)
            apply(_moves(before, {}), self.db)
        return sum(deleted.values()), dict(deleted)

    delete.alters_data = True  # type: ignore[attr-defined]
    delete.queryset_only = True  # type: ignore[attr-defined]

    def _lock(self) -> dict[Any, Key]:
        """The matching rows' keys, the rows locked until the transaction ends."""
        locked = self.select_for_update().order_by("pk").values_list("pk", *SOURCE_FIELDS)
        return {pk: key_of(source) for pk, *source in locked}

    def _by_pk(self, pks: Sequence[Any]) -> models.QuerySet:
        return self.model._base_manager.using(self.db).filter(pk__in=pks)

    def _keys(self, pks: Sequence[Any]) -> dict[Any, Key | None]:
        keys: dict[Any, Key | None] = {}
        for chunk in _chunks(pks):
            for pk, *source in self._by_pk(chunk).values_list("pk", *SOURCE_FIELDS):
                keys[pk] = key_of(source)
        return keys


def _changed(key: Key, changes: dict[str, Any]) -> Key:
    if "created_at" in changes:
        key = key._replace(day=day_of(changes["created_at"]))
    return key._replace(**{name: _plain(v) for name, v in changes.items() if name in KEY_FIELDS})


# One model instance: SendLog.save() and SendLog.delete()


@contextmanager
def saving(row: models.Model, *args: Any, **kwargs: Any) -> Iterator[None]:
    """Around ``Model.save(*args, **kwargs)``: count the row as it is saved."""
    # Django 5.2 still takes save()'s arguments by position (deprecated, gone in 6.0).
    names = ("force_insert", "force_update", "using", "update_fields")[: len(args)]
    options = dict(zip(names, args, strict=True)) | kwargs
    update_fields = options.get("update_fields")
    if update_fields is not None and not set(SOURCE_FIELDS).intersection(update_fields):
        yield  # none of the key's columns is written
        return
    using = options.get("using") or router.db_for_write(type(row), instance=row)
    with transaction.atomic(using=using, savepoint=False):
        before = _locked_key(row, using)
        yield
        if before is not None and update_fields is not None:
            # Only these columns were written: the others keep what the database holds.
            written = {name: getattr(row, name) for name in update_fields if name in SOURCE_FIELDS}
            after = _changed(before, written)
        else:
            after = key_of(_source_of(row))
        deltas = Counter({after: 1})
        if before is not None:
            deltas[before] -= 1
        apply(deltas, using)


@contextmanager
def deleting(row: models.Model, using: str | None = None, *args: Any) -> Iterator[None]:
    """Around ``Model.delete(using, keep_parents)``: uncount the row."""
    using = using or router.db_for_write(type(row), instance=row)
    with transaction.atomic(using=using, savepoint=False):
        before = _locked_key(row, using)
        yield
        if before is not None:
            apply(Counter({before: -1}), using)


def _locked_key(row: models.Model, using: str) -> Key | None:
    """The key the database holds for this row, locked until the transaction ends."""
    if row.pk is None:
        return None
    rows = type(row)._base_manager.using(using).select_for_update().filter(pk=row.pk)
    source = rows.values_list(*SOURCE_FIELDS).first()
    return None if source is None else key_of(source)
