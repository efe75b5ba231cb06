"""The send log's tag filter (django-anymail's ``tags``, kept on each row: message/tags.py).

Fast on a big log: its choices are the tags of the newest rows (one query along the
changelist's own index, never ``SELECT DISTINCT`` over the table), and its query is served by
an index: on PostgreSQL the GIN index of migration 0014 (``tags @> '["tag"]'``); elsewhere the
changelist's order walks ``sendfleet_log_created`` and tests each row's tags, stopping once the
page (and the paginator's bounded count) is full.
"""

from __future__ import annotations

from django.contrib import admin
from django.db import connections
from django.db.models import BooleanField, QuerySet
from django.db.models.expressions import RawSQL
from django.http import HttpRequest

from ..models import SendLog

#: The newest rows whose tags make the filter's choices.
CHOICES_FROM_ROWS = 1000
#: At most this many choices are listed (a tag typed in the URL, ``?tag=...``, always works).
MAX_CHOICES = 50


class TagFilter(admin.SimpleListFilter):
    title = "tag"
    parameter_name = "tag"

    def lookups(self, request: HttpRequest, model_admin: admin.ModelAdmin) -> list[tuple[str, str]]:
        newest = model_admin.get_queryset(request).order_by("-created_at", "-id")
        tags: set[str] = set()
        for row_tags in newest.values_list("tags", flat=True)[:CHOICES_FROM_ROWS]:
            tags.update(tag for tag in row_tags or () if isinstance(tag, str))
        chosen = sorted(tags)[:MAX_CHOICES]
        value = self.value()
        if value and value not in chosen:
            chosen.append(value)
        return [(tag, tag) for tag in chosen]

    def queryset(self, request: HttpRequest, queryset: QuerySet[SendLog]) -> QuerySet[SendLog]:
        value = self.value()
        return with_tag(queryset, value) if value else queryset


def with_tag(queryset: QuerySet[SendLog], tag: str) -> QuerySet[SendLog]:
    """The rows whose tags include ``tag`` (exactly)."""
    if connections[queryset.db].vendor == "sqlite":
        # SQLite's JSON has no containment operator (Django's __contains is not supported).
        table = SendLog._meta.db_table
        member = RawSQL(
            f'EXISTS (SELECT 1 FROM json_each("{table}"."tags") WHERE json_each.value = %s)',
            (tag,),
            output_field=BooleanField(),
        )
        return queryset.filter(member)
    return queryset.filter(tags__contains=[tag])
