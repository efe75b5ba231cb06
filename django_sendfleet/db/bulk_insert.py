"""New rows of one model in one ``INSERT ... RETURNING``, cheaper than Django's ``bulk_create``.

Django compiles ``bulk_create`` value by value: each goes through ``pre_save``, expression
checks, ``get_db_prep_save`` and a placeholder of its own. For the send log's 24 columns that
costs about 0.2 ms a row on a small machine, more than SQLite takes to store the row, and a
batch of sends pays it on the send path. Here the statement's text is built once for each
(table, columns, number of rows), and a column's value is converted once per distinct value:
a batch's rows share most of theirs (the mailer, the status, the mode, the empty columns).

It does what ``bulk_create`` does for the case it takes (rows without a primary key, of a
model with one table and an auto-incremented key, plain values, on PostgreSQL or SQLite, which
return the new keys), and says no (``None``) to anything else, which then goes to
``bulk_create``.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from typing import Any

from django.db import connections, models
from django.db.models.fields import Field

#: Values converted once per column and value: immutable, hashable, and common to many rows.
_SHARED_TYPES = frozenset({str, int, bool, type(None)})


def insert(objs: Sequence[models.Model], using: str) -> list[models.Model] | None:
    """Insert the rows and give them their keys, as ``bulk_create`` would; or None (nothing is
    written) when this case is not one this module takes."""
    if not objs:
        return list(objs)
    prepared = prepare(objs, using)
    return None if prepared is None else prepared.run()


@dataclass
class PreparedInsert:
    """Rows converted for their database and statements built, ready to run: a caller that has
    to run it again (SQLite's lock was taken) pays for the conversion once."""

    objs: Sequence[models.Model]
    using: str
    per_statement: int
    columns: int
    params: list[Any]

    def run(self) -> list[models.Model]:
        """Insert the rows (committed at once outside a transaction) and give them their keys."""
        connection = connections[self.using]
        model = type(self.objs[0])
        keys: list[Any] = []
        with connection.cursor() as cursor:
            for start in range(0, len(self.objs), self.per_statement):
                rows = min(self.per_statement, len(self.objs) - start)
                cursor.execute(
                    _statement(model, connection, rows),
                    self.params[start * self.columns : (start + rows) * self.columns],
                )
                keys += [row[0] for row in cursor.fetchall()]
        for obj, key in zip(self.objs, keys, strict=True):
            obj.pk = key
            obj._state.adding = False
            obj._state.db = self.using
        return list(self.objs)


def prepare(objs: Sequence[models.Model], using: str) -> PreparedInsert | None:
    """The insert of these rows (at least one), ready to run; or None when this case is not
    one this module takes."""
    model = type(objs[0])
    connection = connections[using]
    plan = _plan_for(model, connection.vendor)
    if (
        plan is None
        or not connection.features.can_return_rows_from_bulk_insert
        or any(type(obj) is not model or obj.pk is not None for obj in objs)
    ):
        return None
    fields, auto_fields = plan
    # Per column: the field, where the row holds its value, whether pre_save() makes the
    # value (auto_now), and the column's values converted so far.
    columns: list[tuple[Field, str, bool, dict[Any, Any]]] = [
        (field, field.attname, field in auto_fields, {}) for field in fields
    ]
    params: list[Any] = []
    append = params.append
    for obj in objs:
        # As bulk_create does: an unsaved related object is refused (not in django-stubs).
        obj._prepare_related_fields_for_save(operation_name="bulk_create")  # type: ignore[attr-defined]
        for field, attname, made, converted in columns:
            value = field.pre_save(obj, add=True) if made else getattr(obj, attname)
            kind = type(value)
            if kind in _SHARED_TYPES or isinstance(value, enum.Enum):
                key = (kind, value)
                if key not in converted:
                    converted[key] = field.get_db_prep_save(value, connection)
                append(converted[key])
            elif hasattr(value, "resolve_expression"):
                return None  # an expression: Django compiles it
            else:
                append(field.get_db_prep_save(value, connection))
    per_statement = max(1, connection.ops.bulk_batch_size(fields, objs))
    return PreparedInsert(objs, using, per_statement, len(fields), params)


@cache
def _plan_for(
    model: type[models.Model], vendor: str
) -> tuple[tuple[Field, ...], frozenset[Field]] | None:
    """The columns to insert, and those whose ``pre_save`` sets a value; None if not taken."""
    opts = model._meta
    if (
        vendor not in ("postgresql", "sqlite")
        or opts.parents
        or opts.order_with_respect_to is not None
        or not isinstance(opts.pk, models.AutoField)
    ):
        return None
    fields = tuple(field for field in opts.concrete_fields if field is not opts.pk)
    if any(
        field.generated
        # A database default alone makes DatabaseDefault values; with a Python default too
        # (SendLog.priority: old code still writing during a deploy) rows hold plain values,
        # and one that holds an expression is left to Django below.
        or (field.has_db_default() and not field.has_default())
        or hasattr(field, "get_placeholder_sql")
        or hasattr(field, "get_placeholder")
        for field in fields
    ):
        return None  # their SQL is more than a placeholder
    auto_fields = frozenset(field for field in fields if _makes_its_value(field))
    return fields, auto_fields


def _makes_its_value(field: Field) -> bool:
    """Whether ``pre_save`` gives the column its value (auto_now), rather than the row's."""
    if isinstance(field, models.DateField):  # and DateTimeField: only with auto_now(_add)
        return field.auto_now or field.auto_now_add
    return type(field).pre_save is not Field.pre_save


#: Statement texts by (model, database vendor, rows); a few sizes recur (full chunks, the
#: last one), so a small bound is enough.
_statements: dict[tuple[type[models.Model], str, int], str] = {}
_MAX_STATEMENTS = 64


def _statement(model: type[models.Model], connection: Any, rows: int) -> str:
    key = (model, connection.vendor, rows)
    statement = _statements.get(key)
    if statement is None:
        plan = _plan_for(model, connection.vendor)
        assert plan is not None
        quote = connection.ops.quote_name
        columns = ", ".join(quote(field.column) for field in plan[0])
        row = "(" + ", ".join(["%s"] * len(plan[0])) + ")"
        statement = (
            f"INSERT INTO {quote(model._meta.db_table)} ({columns}) "
            f"VALUES {', '.join([row] * rows)} RETURNING {quote(model._meta.pk.column)}"
        )
        if len(_statements) >= _MAX_STATEMENTS:
            _statements.clear()
        _statements[key] = statement
    return statement
