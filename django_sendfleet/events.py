"""Delivery events from SendFleet's webhook, once stored (``event_store.py``): applied to the
send log and the suppression list, then told to ``tracking`` receivers.

The webhook view answers as soon as the event is stored, and ``after_answer`` runs once the
answer is sent: it processes the event, then retries events whose processing failed or never
ran. A processing attempt is claimed (compare-and-set on ``attempts``) in the transaction that
applies the event, so two processes never apply one attempt twice. A failed attempt leaves the
event ``failed`` with ``next_attempt_at`` further off after each failure (2 s doubling, at most
an hour); the retries of later events and ``manage.py sendfleet_retry_events`` take it up, so
no event stays failed for good. Receivers are told once the event is applied: at most once
(a process that dies between the two leaves them untold).

The send path calls ``apply_waiting_events`` for events that arrived before their send was
recorded.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterable
from dataclasses import replace
from datetime import datetime, timedelta

from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone

from . import signals
from .conf import SendFleetSettings
from .event_store import PROCESSING_LEASE, finish_storing
from .exceptions import SendFleetSoftBounce
from .log_status import LogStatus, statuses_an_event_may_replace
from .mailers import backend_class
from .models import SendLog, Suppression, WebhookEvent
from .suppressions import suppress
from .tracking import TrackingEvent, normalise, raw_event_type
from .unknown_sends import claim_unknown_send, resolve_unknown_sends
from .webhook_body import column_text, parse_body, unescape_body

logger = logging.getLogger("django_sendfleet")

Outcome = WebhookEvent.Outcome
#: Outcomes that still have processing to do.
UNFINISHED = (Outcome.PENDING, Outcome.FAILED)
#: Due events each answered event retries after its own.
RETRIES_PER_ANSWER = 5
MAX_RETRY_DELAY = timedelta(hours=1)
#: How often one process looks for unknown sends whose events arrived first.
UNKNOWN_SEND_SCAN_SECONDS = 30.0

_STATUS_FOR_EVENT = {
    "sent": LogStatus.QUEUED,  # proves an "unknown" send did reach SendFleet
    "delivered": LogStatus.DELIVERED,
    "failed": LogStatus.FAILED,
    "bounced": LogStatus.BOUNCED,
    "complained": LogStatus.COMPLAINED,
}
_scan_lock = threading.Lock()
_last_scan = -UNKNOWN_SEND_SCAN_SECONDS


def after_answer(stored: WebhookEvent | None) -> None:
    """The work the webhook view leaves until its answer is sent: the event it stored (None
    when there is nothing to apply), then events due for a retry, then unknown sends whose
    events came first."""
    if stored is not None:
        process_event(stored)
    retry_due_events(limit=RETRIES_PER_ANSWER)
    _scan_unknown_sends_now_and_then()


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
        with transaction.atomic():
            # The claim is the transaction's first statement, a write: on SQLite the
            # transaction takes the write lock now (waiting for it) instead of failing with
            # "database is locked" when a later write would upgrade its read lock.
            if not _claim(stored):
                return False
            event, resolved_unknown_send = _apply(stored, event_of(stored))
    except Exception as error:
        logger.exception("SendFleet webhook event %s could not be processed", stored.pk)
        _mark_failed(stored, error)
        return False
    _tell_receivers(stored, event)
    if resolved_unknown_send:
        apply_waiting_events([stored.message_id])  # its events that came before this one
    elif (
        # Its row may have been committed after _apply looked and before the send path
        # looked for waiting events (which saw this event still pending): look once more.
        stored.outcome == Outcome.UNKNOWN_MESSAGE
        and event.message_id
        and SendLog.objects.filter(message_id=event.message_id).exists()
    ):
        apply_waiting_events([event.message_id])
    return True


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
        event = event_of(stored)
        # Without a recipient in the event, suppression had to wait for the row too.
        suppressed_late = event.suppresses_recipient and not event.recipient
        try:
            with transaction.atomic():
                # A write first (see process_event); also, only one caller applies it.
                taken = WebhookEvent.objects.filter(
                    pk=stored.pk, outcome=Outcome.UNKNOWN_MESSAGE
                ).update(outcome=Outcome.PENDING)
                if not taken:
                    continue
                event, _ = _apply(stored, event)
        except Exception as error:
            logger.exception("SendFleet webhook event %s could not be applied", stored.pk)
            _mark_failed(stored, error)
            continue
        if suppressed_late and event.recipient:
            _signal_webhook_suppression(stored, event.recipient)


def event_of(stored: WebhookEvent) -> TrackingEvent:
    """The stored event, normalised: from its JSON, or parsed again from the body kept."""
    raw = stored.raw if stored.raw is not None else parse_body(unescape_body(stored.raw_body)).event
    if raw is None:
        raise ValueError("the stored body is not a JSON object")
    return normalise(raw, raw_event_type(raw) or stored.event_type)


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


def _scan_unknown_sends_now_and_then(now: datetime | None = None) -> None:
    global _last_scan
    with _scan_lock:
        if time.monotonic() - _last_scan < UNKNOWN_SEND_SCAN_SECONDS:
            return
        _last_scan = time.monotonic()
    resolve_and_apply_unknown_sends(now)


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


def _apply(stored: WebhookEvent, event: TrackingEvent) -> tuple[TrackingEvent, bool]:
    """Apply the event in the caller's transaction; with whether it resolved an unknown send."""
    row = SendLog.objects.filter(message_id=event.message_id).first() if event.message_id else None
    resolved_unknown_send = False
    if row is None and event.event_type in _STATUS_FOR_EVENT:
        row = claim_unknown_send(event.message_id, event.recipient, event.sender, timezone.now())
        resolved_unknown_send = row is not None
    if row is not None and not event.recipient:
        # SendFleet's docs don't name the recipient field: fall back to the send we logged.
        event = replace(event, recipient=row.recipient)
        stored.recipient = row.recipient
    new_status = _STATUS_FOR_EVENT.get(event.event_type)
    if new_status is not None and row is not None:
        # A soft bounce says so in the row's error code: the bounce rate counts hard ones only.
        soft = event.event_type == "bounced" and not event.permanent
        marked = {"error_code": SendFleetSoftBounce.error_code} if soft else {}
        SendLog.objects.filter(
            pk=row.pk, status__in=statuses_an_event_may_replace(new_status)
        ).update(status=new_status, updated_at=timezone.now(), **marked)
    if event.suppresses_recipient and event.recipient:
        reason = (
            Suppression.Reason.COMPLAINT
            if event.event_type == "complained"
            else Suppression.Reason.HARD_BOUNCE
        )
        suppress(event.recipient, reason, source="webhook", message_id=event.message_id or "")
    if event.event_type == "unknown":
        outcome = Outcome.UNKNOWN_TYPE
        logger.warning("SendFleet webhook event of unknown type %r stored", stored.event_type)
    elif row is None:
        outcome = Outcome.UNKNOWN_MESSAGE
        logger.info("SendFleet webhook event for unknown message id %r", event.message_id)
    else:
        outcome = Outcome.APPLIED
    stored.outcome = outcome
    stored.send_log = row
    stored.detail = ""
    stored.save(update_fields=["outcome", "send_log", "recipient", "detail"])
    return event, resolved_unknown_send
