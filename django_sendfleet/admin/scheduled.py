"""Scheduled sends in the send log's admin: a filter that lists them with their time, and an
action that cancels them before they go (``queued/scheduled.py``)."""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.contrib.auth import get_permission_codename
from django.db.models import QuerySet
from django.http import HttpRequest

from ..models import SendLog
from ..models.log_status import LogStatus
from ..queued import scheduled

#: Most rows one cancel may touch, as for the admin's other actions.
CANCEL_ROW_LIMIT = 500


class ScheduledFilter(admin.SimpleListFilter):
    """Rows waiting for their ``send_at``. Served by the outbox's partial index (pending rows)."""

    title = "scheduled"
    parameter_name = "scheduled"
    WAITING = "waiting"

    def lookups(self, request: HttpRequest, model_admin: admin.ModelAdmin) -> list[tuple[str, str]]:
        return [(self.WAITING, "waiting for send_at")]

    def queryset(self, request: HttpRequest, queryset: QuerySet[SendLog]) -> QuerySet[SendLog]:
        if self.value() == self.WAITING:
            return queryset.filter(scheduled.scheduled())
        return queryset


class CancelScheduled:
    """Mixed into the send log's ``ModelAdmin``: the column and the cancel action. Add
    ``"scheduled_for"`` to ``list_display`` and ``"cancel_scheduled"`` to ``actions``."""

    @admin.display(description="scheduled for")
    def scheduled_for(self, obj: SendLog) -> Any:
        """The row's ``send_at`` while it waits for it; empty otherwise."""
        waiting = obj.status == LogStatus.PENDING and not obj.attempts and not obj.error_code
        return obj.not_before if waiting and obj.not_before else ""

    def has_cancel_permission(self, request: HttpRequest) -> bool:
        """Cancelling changes what will be sent: it takes the change permission."""
        opts = SendLog._meta
        return request.user.has_perm(f"{opts.app_label}.{get_permission_codename('change', opts)}")

    @admin.action(description="Cancel selected scheduled sends", permissions=["cancel"])
    def cancel_scheduled(self, request: HttpRequest, queryset: QuerySet[SendLog]) -> None:
        model_admin: Any = self
        ids = list(queryset.values_list("pk", flat=True)[: CANCEL_ROW_LIMIT + 1])
        if len(ids) > CANCEL_ROW_LIMIT:
            model_admin.message_user(
                request,
                f"Select at most {CANCEL_ROW_LIMIT} rows for this action (filter the list first).",
                messages.ERROR,
            )
            return
        cancelled = scheduled.cancel(ids, by=request.user.get_username())
        for row in SendLog.objects.filter(pk__in=cancelled):
            model_admin.log_change(request, row, "Cancelled the scheduled send.")
        skipped = len(ids) - len(cancelled)
        text = f"Cancelled {len(cancelled)} scheduled send(s): they will not be sent."
        if skipped:
            text += (
                f" {skipped} selected were not waiting for their send_at (sent, being sent, or"
                " not scheduled) and were left alone."
            )
        model_admin.message_user(
            request, text, messages.SUCCESS if not skipped else messages.WARNING
        )
