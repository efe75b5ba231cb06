"""Delivery events from SendFleet's webhook, once stored: applied to the send log and the
suppression list, then told to ``tracking`` receivers; failed ones retried.

Why: docs/internals.md#webhooks-applying-an-event-and-its-retries
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta

from django.db.models import F, Q
from django.utils import timezone

from .. import signals
from ..conf import SendFleetSettings
from ..conf.mailers import backend_class
from ..models import SendLog, WebhookEvent
from ..tracking import TrackingEvent
from .apply import Applied, apply, event_of
from .body import column_text
from .store import PROCESSING_LEASE, finish_storing
from .unknown_sends import resolve_unknown_sends

logger = logging.getLogger("django_sendfleet")

Outcome = WebhookEvent.Outcome
#: Outcomes that still have processing to do.
UNFINISHED = (Outcome.PENDING, Outcome.FAILED)
MAX_RETRY_DELAY = timedelta(hours=1)


def process_event(event_or_id: WebhookEvent | int) -> bool:
    """Apply a stored event (or the one with this id) and tell receivers; False if it failed
    or is not to be processed. A failure marks it ``failed`` (with the error) for a retry.
    """
    if isinstance(event_or_id, WebhookEvent):
        stored = event_or_id  # just stored: the claim checks it is still to be processed
    else:
        found = WebhookEvent.objects.filter(pk=event_or_id, outcome__in=UNFINISHED).first()
        if found is None:
            return False
        stored = found
    if not stored.event_type:  # kept as received only, when the database refused its fields
        try:
            finish_storing(stored, max_age=SendFleetSettings().webhook_max_age)
        except Exception as error:
            _mark_failed(stored, error)
            return False
        if stored.outcome not in UNFINISHED:
            return False  # unprocessable or too old after all
    try:
        done = apply([stored], lambda _: [stored] if _claim(stored) else [])
    except Exception as error:
        logger.exception("SendFleet webhook event %s could not be processed", stored.pk)
        _mark_failed(stored, error)
        return False
    if not done:
        return False  # another process took it first
    after_applying(done[0])
    return True


def after_applying(item: Applied) -> None:
    """Once an event's transaction is committed: tell receivers, then apply the events its
    send's row was waiting for."""
    stored, event = item.stored, item.event
    _tell_receivers(stored, event)
    if item.resolved_unknown_send:
        apply_waiting_events([stored.message_id])  # its events that came before this one
    elif (
        # Its row may have been committed after apply_events looked and before the send path
        # looked for waiting events (which saw this event still pending): look once more.
        stored.outcome == Outcome.UNKNOWN_MESSAGE
        and event.message_id
        and SendLog.objects.filter(message_id=event.message_id).exists()
    ):
        apply_waiting_events([event.message_id])


def retry_due_events(*, limit: int | None = None, ignore_backoff: bool = False) -> int:
    """Process pending and failed events that are due; the number applied.

    Due: failed events whose ``next_attempt_at`` has come (all failed events with
    ``ignore_backoff``), and pending ones whose own processing has not run in time.
    """
    now = timezone.now()
    due = Q(outcome__in=UNFINISHED, next_attempt_at__lte=now)
    if ignore_backoff:
        due |= Q(outcome=Outcome.FAILED)
    ids = WebhookEvent.objects.filter(due).order_by("next_attempt_at", "id")
    return sum(process_event(pk) for pk in ids.values_list("pk", flat=True)[:limit])


def apply_waiting_events(message_ids: Iterable[str]) -> None:
    """Apply stored events that arrived before their send was logged.

    The backend writes its log rows once per batch, after the requests, so SendFleet's first
    events can arrive before the row they update exists: they wait as ``unknown_message``.
    Called after the rows are committed. Applying an event twice is harmless (statuses only
    move forward, suppression is an upsert). Receivers were told when the event arrived; one
    that fails here is marked ``failed`` and retried (and its receivers told again).
    """
    ids = {message_id for message_id in message_ids if message_id}
    if not ids:
        return
    waiting = WebhookEvent.objects.filter(
        message_id__in=ids, outcome=Outcome.UNKNOWN_MESSAGE
    ).order_by("received_at", "id")
    for stored in waiting:
        try:
            event = event_of(stored)
            # Without a recipient in the event, suppression had to wait for the row too.
            suppressed_late = event.suppresses_recipient and not event.recipient
            done = apply([stored], _still_waiting)
        except Exception as error:
            logger.exception("SendFleet webhook event %s could not be applied", stored.pk)
            _mark_failed(stored, error)
            continue
        if not done:
            continue  # another caller applied it
        event = done[0].event
        if suppressed_late and event.recipient:
            _signal_webhook_suppression(stored, event.recipient)


def _still_waiting(candidates: Sequence[WebhookEvent]) -> list[WebhookEvent]:
    """Claim the events still waiting for their row (only one caller applies each)."""
    pks = [stored.pk for stored in candidates]
    waiting = WebhookEvent.objects.filter(pk__in=pks, outcome=Outcome.UNKNOWN_MESSAGE)
    if not waiting.update(outcome=Outcome.PENDING):
        return []
    return list(candidates)


def _claim(stored: WebhookEvent) -> bool:
    """Take the event's next attempt; False when another process took it first."""
    taken = WebhookEvent.objects.filter(
        pk=stored.pk, attempts=stored.attempts, outcome__in=UNFINISHED
    ).update(
        attempts=F("attempts") + 1,
        outcome=Outcome.PENDING,
        next_attempt_at=timezone.now() + PROCESSING_LEASE,
    )
    return bool(taken)


def _mark_failed(stored: WebhookEvent, error: Exception) -> None:
    """Record a failed attempt (its claim was rolled back with it) and when to try again."""
    attempts = stored.attempts + 1
    delay = min(timedelta(seconds=2**attempts), MAX_RETRY_DELAY)
    try:
        WebhookEvent.objects.filter(pk=stored.pk, attempts=stored.attempts).update(
            outcome=Outcome.FAILED,
            attempts=attempts,
            next_attempt_at=timezone.now() + delay,
            detail=column_text(f"{type(error).__name__}: {error}", 500),
        )
    except Exception:
        # The database is not answering: the event stays pending, and is retried once its
        # processing lease has run out.
        logger.exception("SendFleet webhook event %s: could not record the failure", stored.pk)


def resolve_and_apply_unknown_sends(now: datetime | None = None) -> int:
    """Resolve unknown sends whose events arrived before them; the number resolved."""
    resolved = resolve_unknown_sends(now or timezone.now())
    apply_waiting_events(resolved)
    return len(resolved)


def _sent_by(stored: WebhookEvent) -> tuple[type, str | None]:
    """The signals' sender and mailer for an event: those of the send it is about, when known
    (our ``EmailBackend`` and None for an event about a send we have no row for)."""
    mailer = stored.send_log.mailer if stored.send_log is not None else None
    return backend_class(mailer or ""), mailer


def _tell_receivers(stored: WebhookEvent, event: TrackingEvent) -> None:
    sender, mailer = _sent_by(stored)
    signals.tracking.send_robust(sender, event=event, esp_name=event.esp_name, mailer=mailer)
    if event.suppresses_recipient and event.recipient:
        _signal_webhook_suppression(stored, event.recipient)


def _signal_webhook_suppression(stored: WebhookEvent, recipient: str) -> None:
    sender, mailer = _sent_by(stored)
    signals.recipient_suppressed.send_robust(
        sender, message=None, recipient=recipient, error=None, source="webhook", mailer=mailer
    )
