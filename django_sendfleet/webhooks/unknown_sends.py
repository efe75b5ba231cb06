"""Webhook events that resolve an ``unknown`` send.

Why: docs/internals.md#webhooks-resolving-unknown-sends
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from django.db.models import QuerySet

from ..models import SendLog, WebhookEvent
from ..models.log_status import LogStatus
from ..tracking import EVENT_TYPES

logger = logging.getLogger("django_sendfleet")

#: How far back an unknown row and the events that may resolve it are looked for.
UNKNOWN_SEND_WINDOW = timedelta(days=2)
#: Most unknown rows one ``resolve_unknown_sends`` looks at.
_ROWS_PER_SCAN = 100


def claim_unknown_send(
    message_id: str | None,
    recipient: str | None,
    sender: str | None,
    now: datetime,
    mailers: frozenset[str] | None = None,
) -> SendLog | None:
    """The one unknown row an event for ``message_id`` (an id no row has) is about, now
    recording that id; None when no row, or more than one thing, could be meant. ``mailers``:
    the only mailers whose rows the event may touch (None: any)."""
    if not (message_id and recipient and sender):
        return None
    unknown = _unknown_rows(recipient, sender, now)
    if mailers is not None:
        unknown = unknown.filter(mailer__in=mailers)
    rows = list(unknown[:2])
    if len(rows) != 1:
        return None
    if _unlogged_message_ids(recipient, sender, now) - {message_id}:
        return None  # events about another send we have no row for: which one is this row?
    return _record_message_id(rows[0], message_id, now)


def resolve_unknown_sends(now: datetime) -> list[str]:
    """Unknown rows whose events arrived first: the message ids they now record."""
    resolved = []
    rows = SendLog.objects.filter(
        status=LogStatus.UNKNOWN, message_id="", created_at__gte=now - UNKNOWN_SEND_WINDOW
    ).order_by("created_at", "id")
    for row in rows[:_ROWS_PER_SCAN]:
        if _unknown_rows(row.recipient, row.from_email, now).count() != 1:
            continue
        message_ids = _unlogged_message_ids(row.recipient, row.from_email, now)
        if len(message_ids) != 1:
            continue
        [message_id] = message_ids
        if _record_message_id(row, message_id, now) is not None:
            resolved.append(message_id)
    return resolved


def _unknown_rows(recipient: str, sender: str, now: datetime) -> QuerySet[SendLog]:
    return SendLog.objects.filter(
        status=LogStatus.UNKNOWN,
        message_id="",
        created_at__gte=now - UNKNOWN_SEND_WINDOW,
        recipient__iexact=recipient,
        from_email__iexact=sender,
    )


def _unlogged_message_ids(recipient: str, sender: str, now: datetime) -> set[str]:
    """Message ids no row has, of the window's events to this recipient from this sender."""
    waiting = (
        WebhookEvent.objects.filter(
            outcome=WebhookEvent.Outcome.UNKNOWN_MESSAGE,
            event_type__in=tuple(EVENT_TYPES),
            received_at__gte=now - UNKNOWN_SEND_WINDOW,
            recipient__iexact=recipient,
            sender__iexact=sender,
        )
        .exclude(message_id="")
        .values_list("message_id", flat=True)
        .distinct()
    )
    ids = set(waiting[:10])  # two are enough to be ambiguous
    logged = set(SendLog.objects.filter(message_id__in=ids).values_list("message_id", flat=True))
    return ids - logged


def _record_message_id(row: SendLog, message_id: str, now: datetime) -> SendLog | None:
    recorded = SendLog.objects.filter(pk=row.pk, status=LogStatus.UNKNOWN, message_id="").update(
        message_id=message_id, updated_at=now
    )
    if not recorded:
        return None  # resolved meanwhile
    logger.info(
        "SendFleet unknown send to %s resolved by a webhook event: message_id=%s",
        row.recipient,
        message_id,
    )
    row.message_id = message_id
    return row
