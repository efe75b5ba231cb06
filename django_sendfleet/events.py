"""Delivery events from SendFleet's webhook: stored, then applied to the send log and the
suppression list. The HTTP endpoint that receives them is ``webhooks.py``; the send path calls
``apply_waiting_events`` for events that arrived before their send was recorded.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import replace

from django.db import IntegrityError, transaction
from django.utils import timezone

from . import signals
from .addresses import MAX_ADDRESS_LENGTH
from .mailers import backend_class
from .models import SendLog, Suppression, WebhookEvent
from .status import LogStatus, statuses_an_event_may_replace
from .suppressions import suppress
from .tracking import TrackingEvent, normalise

logger = logging.getLogger("django_sendfleet")

_STATUS_FOR_EVENT = {
    "sent": LogStatus.QUEUED,  # proves an "unknown" send did reach SendFleet
    "delivered": LogStatus.DELIVERED,
    "failed": LogStatus.FAILED,
    "bounced": LogStatus.BOUNCED,
    "complained": LogStatus.COMPLAINED,
}


def store_event(event: TrackingEvent, raw_type: str, digest: str) -> WebhookEvent | None:
    """Store the event (committed before anything else happens); None if already stored."""
    try:
        with transaction.atomic():
            return WebhookEvent.objects.create(
                event_type=raw_type[:64],
                message_id=(event.message_id or "")[:100],
                recipient=(event.recipient or "")[:MAX_ADDRESS_LENGTH],  # raw keeps it all
                raw=event.esp_event,
                digest=digest,
            )
    except IntegrityError:
        if WebhookEvent.objects.filter(digest=digest).exists():
            return None
        raise


def process_event(stored: WebhookEvent, event: TrackingEvent) -> None:
    """Apply a stored event to the send log and the suppression list, then tell receivers.

    A failure here leaves the event stored with outcome ``failed`` for review in the admin;
    the answer is still 200, since SendFleet would not retry anyway.
    """
    try:
        with transaction.atomic():
            event = _apply(stored, event)
    except Exception:
        logger.exception("SendFleet webhook event %s could not be processed", stored.pk)
        WebhookEvent.objects.filter(pk=stored.pk).update(outcome=WebhookEvent.Outcome.FAILED)
        return
    sender, mailer = _sent_by(stored)
    signals.tracking.send_robust(sender, event=event, esp_name=event.esp_name, mailer=mailer)
    if event.suppresses_recipient and event.recipient:
        _signal_webhook_suppression(stored, event.recipient)


def apply_waiting_events(message_ids: Iterable[str]) -> None:
    """Apply stored events that arrived before their send was logged.

    The backend writes its log rows once per batch, after the requests, so SendFleet's first
    events can arrive before the row they update exists: they wait as ``unknown_message``.
    Called after the rows are committed. Events still ``pending`` are included: one stored
    before this query may have looked for its row before the rows were committed. Applying
    an event twice is harmless (statuses only move forward, suppression is an upsert).
    """
    ids = {message_id for message_id in message_ids if message_id}
    if not ids:
        return
    waiting = WebhookEvent.objects.filter(
        message_id__in=ids,
        outcome__in=(WebhookEvent.Outcome.PENDING, WebhookEvent.Outcome.UNKNOWN_MESSAGE),
    ).order_by("received_at", "id")
    for stored in waiting:
        event = normalise(stored.raw, stored.event_type)
        # Without a recipient in the event, suppression had to wait for the row too.
        suppressed_late = event.suppresses_recipient and not event.recipient
        with transaction.atomic():
            event = _apply(stored, event)
        if suppressed_late and event.recipient:
            _signal_webhook_suppression(stored, event.recipient)


def _sent_by(stored: WebhookEvent) -> tuple[type, str | None]:
    """The signals' sender and mailer for an event: those of the send it is about, when known
    (our ``EmailBackend`` and None for an event about a send we have no row for)."""
    mailer = stored.send_log.mailer if stored.send_log is not None else None
    return backend_class(mailer or ""), mailer


def _signal_webhook_suppression(stored: WebhookEvent, recipient: str) -> None:
    sender, mailer = _sent_by(stored)
    signals.recipient_suppressed.send_robust(
        sender, message=None, recipient=recipient, error=None, source="webhook", mailer=mailer
    )


def _apply(stored: WebhookEvent, event: TrackingEvent) -> TrackingEvent:
    row = SendLog.objects.filter(message_id=event.message_id).first() if event.message_id else None
    if row is not None and not event.recipient:
        # SendFleet's docs don't name the recipient field: fall back to the send we logged.
        event = replace(event, recipient=row.recipient)
        stored.recipient = row.recipient
    new_status = _STATUS_FOR_EVENT.get(event.event_type)
    if new_status is not None and row is not None:
        SendLog.objects.filter(
            pk=row.pk, status__in=statuses_an_event_may_replace(new_status)
        ).update(status=new_status, updated_at=timezone.now())
    if event.suppresses_recipient and event.recipient:
        reason = (
            Suppression.Reason.COMPLAINT
            if event.event_type == "complained"
            else Suppression.Reason.HARD_BOUNCE
        )
        suppress(event.recipient, reason, source="webhook", message_id=event.message_id or "")
    if event.event_type == "unknown":
        outcome = WebhookEvent.Outcome.UNKNOWN_TYPE
        logger.warning("SendFleet webhook event of unknown type %r stored", stored.event_type)
    elif row is None:
        outcome = WebhookEvent.Outcome.UNKNOWN_MESSAGE
        logger.info("SendFleet webhook event for unknown message id %r", event.message_id)
    else:
        outcome = WebhookEvent.Outcome.APPLIED
    stored.outcome = outcome
    stored.send_log = row
    stored.save(update_fields=["outcome", "send_log", "recipient"])
    return event
