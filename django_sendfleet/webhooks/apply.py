"""Applying stored webhook events to the send log and the suppression list, many at a time.

``apply`` is the one entry: it reads, claims (each caller passes its rule) and writes, in one
transaction, on events: one event retried, or a batch of events just stored. A batch costs a few
statements whatever its size: the rows its events are about in one query, one UPDATE per new
status, the events' outcomes in one bulk update (a hard bounce's suppression is its own
upsert). Delivery events only move a row forward (``log_status``), so the events of one
message in a batch come to their furthest status, set by the first event that reached it:
the same row as applying them one at a time, in the order they were stored.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime

from django.db.models import OuterRef, Subquery
from django.utils import timezone

from ..db.routing import atomic_for
from ..erasure.events import reduce_late_events
from ..exceptions import SendFleetSoftBounce
from ..models import SendLog, Suppression, WebhookEvent
from ..models.forgotten import FORGOTTEN
from ..models.log_status import LogStatus, delivery_rank, statuses_an_event_may_replace
from ..tracking import TrackingEvent, normalise, raw_event_type
from .accounts import mailers_of
from .body import parse_body, unescape_body
from .unknown_sends import claim_unknown_send

logger = logging.getLogger("django_sendfleet")

Outcome = WebhookEvent.Outcome

STATUS_FOR_EVENT = {
    "sent": LogStatus.QUEUED,  # proves an "unknown" send did reach SendFleet
    "delivered": LogStatus.DELIVERED,
    "failed": LogStatus.FAILED,
    "bounced": LogStatus.BOUNCED,
    "complained": LogStatus.COMPLAINED,
}


_ROW_FIELDS = (
    "pk",
    "message_id",
    "recipient",
    "mailer",
    "status",
    "created_at",
    "tags",
    "metadata",
)


@dataclass
class Applied:
    """An event once applied: as stored (with its outcome) and as normalised."""

    stored: WebhookEvent
    event: TrackingEvent
    resolved_unknown_send: bool = False


@dataclass
class _RowChange:
    status: LogStatus
    soft_bounce: bool


def event_of(stored: WebhookEvent) -> TrackingEvent:
    """The stored event, normalised: from its JSON, or parsed again from the body kept."""
    raw = stored.raw if stored.raw is not None else parse_body(unescape_body(stored.raw_body)).event
    if raw is None:
        raise ValueError("the stored body is not a JSON object")
    return normalise(raw, raw_event_type(raw) or stored.event_type)


@dataclass
class Batch:
    """Stored events, read and normalised, with the send log rows they are about."""

    items: list[Applied]
    rows: dict[str, SendLog]

    def only(self, pks: set[int]) -> Batch:
        """The batch's events with these ids (those its caller managed to claim)."""
        return Batch([item for item in self.items if item.stored.pk in pks], self.rows)


def read_batch(stored_events: Sequence[WebhookEvent]) -> Batch:
    """Read what applying the events needs: their normalised events and their rows. Reads
    only, so a caller can do it before it takes a write lock (SQLite's is the database's)."""
    items = [Applied(stored, event_of(stored)) for stored in stored_events]
    return Batch(items, _rows_by_message_id({item.event.message_id for item in items}))


def apply(
    candidates: Sequence[WebhookEvent],
    claim: Callable[[Sequence[WebhookEvent]], Sequence[WebhookEvent]],
) -> list[Applied]:
    """The one way stored events are applied, one event being a batch of one: read them (and
    their rows) before the transaction, then in one transaction ``claim`` those still this
    caller's to apply (each caller's own rule: just stored, due for a retry, waiting for its
    row) and write what they do. The caller tells receivers once it has committed."""
    batch = read_batch(candidates)
    with atomic_for(WebhookEvent):
        # The claim is the transaction's first statement, a write: on SQLite the transaction
        # takes the write lock now (waiting for it) instead of failing with "database is
        # locked" when a later write would upgrade its read lock.
        claimed = claim(candidates)
        return write_batch(batch.only({stored.pk for stored in claimed}))


def write_batch(batch: Batch) -> list[Applied]:
    """Apply a batch read by ``read_batch`` (its events claimed since) in the caller's
    transaction. A row read before is only ever moved forward from what it holds now."""
    now = timezone.now()
    applied, rows = batch.items, dict(batch.rows)
    changes: dict[int, _RowChange] = {}
    unsaved: list[WebhookEvent] = []
    filled_in: set[int] = set()  # events whose recipient came from their row
    suppressions: list[tuple[str, str, str]] = []
    for item in applied:
        event = item.event
        bound = mailers_of(item.stored.mailers)  # the signing account's mailers
        row = rows.get(event.message_id) if event.message_id else None
        if row is not None and bound is not None and row.mailer not in bound:
            row = None  # another account's send: this event's secret cannot touch it
        if row is None and event.event_type in STATUS_FOR_EVENT:
            # Which unknown send is meant depends on the events already waiting, this batch's
            # earlier ones included: those are saved first.
            _save(unsaved, filled_in)
            row = claim_unknown_send(
                event.message_id, event.recipient, event.sender, now, mailers=bound
            )
            if row is not None:
                rows[row.message_id] = row
                item.resolved_unknown_send = True
        if row is not None and not event.recipient and row.recipient != FORGOTTEN:
            # SendFleet's docs don't name the recipient field: fall back to the send we logged.
            item.event = event = replace(event, recipient=row.recipient)
            item.stored.recipient = row.recipient
            filled_in.add(item.stored.pk)
        if row is not None and (row.tags or row.metadata):
            # The send's tags and metadata, as anymail's events carry them back.
            item.event = event = replace(event, tags=list(row.tags), metadata=dict(row.metadata))
        new_status = STATUS_FOR_EVENT.get(event.event_type)
        if new_status is not None and row is not None:
            _move_forward(changes, row.pk, new_status, event)
        recipient = (event.recipient or "").lower()
        if bound is not None and (row is None or recipient != row.recipient.lower()):
            # Bound to an account: only the recipient of that account's own send.
            event_suppresses = False
        else:
            event_suppresses = event.suppresses_recipient
        if event_suppresses and event.recipient:
            reason = (
                Suppression.Reason.COMPLAINT
                if event.event_type == "complained"
                else Suppression.Reason.HARD_BOUNCE
            )
            suppressions.append((event.recipient, reason, event.message_id or ""))
        item.stored.outcome = _outcome(item.stored, event, row)
        item.stored.send_log = row
        item.stored.detail = ""
        unsaved.append(item.stored)
    _update_rows(changes, now)
    Suppression.objects.suppress_many(suppressions, source="webhook")
    _save(unsaved, filled_in)
    # About a forgotten address: body and address go (erasure).
    reduce_late_events((item.stored, item.event.recipient) for item in applied)
    return applied


def _rows_by_message_id(message_ids: set[str | None]) -> dict[str, SendLog]:
    wanted = [message_id for message_id in message_ids if message_id]
    rows: dict[str, SendLog] = {}
    if wanted:
        # The newest row for an id, should there ever be two (the model's ordering). Only the
        # columns applying and telling receivers read.
        found = SendLog.objects.filter(message_id__in=wanted).only(*_ROW_FIELDS)
        for row in found:
            rows.setdefault(row.message_id, row)
    return rows


def _move_forward(
    changes: dict[int, _RowChange], row_pk: int, status: LogStatus, event: TrackingEvent
) -> None:
    """Note a row's new status if it is further on than the batch's earlier events took it."""
    earlier = changes.get(row_pk)
    if earlier is None or delivery_rank(status) > delivery_rank(earlier.status):
        # A soft bounce says so in the row's error code: the bounce rate counts hard ones only.
        soft = event.event_type == "bounced" and not event.permanent
        changes[row_pk] = _RowChange(status, soft)


def _update_rows(changes: dict[int, _RowChange], now: datetime) -> None:
    groups: dict[tuple[LogStatus, bool], list[int]] = {}
    for row_pk, change in changes.items():
        groups.setdefault((change.status, change.soft_bounce), []).append(row_pk)
    for (status, soft_bounce), row_pks in sorted(groups.items()):
        marked = {"error_code": SendFleetSoftBounce.error_code} if soft_bounce else {}
        # Only forward from what the row holds now, whoever changed it since it was read.
        SendLog.objects.filter(
            pk__in=sorted(row_pks), status__in=statuses_an_event_may_replace(status)
        ).update(status=status, updated_at=now, **marked)


def _outcome(stored: WebhookEvent, event: TrackingEvent, row: SendLog | None) -> str:
    if event.event_type == "unknown":
        logger.warning("SendFleet webhook event of unknown type %r stored", stored.event_type)
        return Outcome.UNKNOWN_TYPE
    if row is None:
        logger.info("SendFleet webhook event for unknown message id %r", event.message_id)
        return Outcome.UNKNOWN_MESSAGE
    return Outcome.APPLIED


def _save(events: list[WebhookEvent], filled_in: set[int]) -> None:
    """Save the events' outcomes: one UPDATE per outcome, whatever the number of events (a
    bulk_update's CASE per row and field costs more to build than the work it saves)."""
    groups: dict[tuple[str, bool], list[int]] = {}
    for stored in events:
        groups.setdefault((stored.outcome, stored.send_log is not None), []).append(stored.pk)
        if stored.pk in filled_in:
            WebhookEvent.objects.filter(pk=stored.pk).update(recipient=stored.recipient)
    for (outcome, about_a_row), pks in sorted(groups.items()):
        # The row each event is about: the newest with its message id, as _rows_by_message_id
        # found it (or recorded the id on, for an unknown send), in this transaction.
        row = SendLog.objects.filter(message_id=OuterRef("message_id")).values("pk")[:1]
        WebhookEvent.objects.filter(pk__in=sorted(pks)).update(
            outcome=outcome, detail="", send_log=Subquery(row) if about_a_row else None
        )
    events.clear()
    filled_in.clear()
