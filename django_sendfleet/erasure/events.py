"""Webhook events about a forgotten address: reduced to their digest, as pruning does.

An event's body (``raw``, or ``raw_body`` when it is kept as received) holds the recipient's
address, and its ``recipient`` and ``sender`` columns show it. Reduced, an event keeps its
digest (a replay of it is still recognised as a duplicate and changes nothing), its type,
times, outcome, message id and send log row; ``pruned_at`` says when it was reduced. An event
not processed yet cannot be any more without its body: it is marked ``unprocessable``.

``erasure.py`` finds events by the message ids and rows of the address's send log rows (both
indexed), and by the address in the recipient column or the body (a read of the table in
primary key ranges). SendFleet keeps posting events about a message for days after it was sent:
``reduce_late_events`` reduces those as they are applied (``webhooks/apply.py``, ``write_batch``).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from django.db import router, transaction
from django.db.models import Q, QuerySet
from django.utils import timezone

from ..models import WebhookEvent, normalise_email
from ..models.forgotten import FORGOTTEN, forgotten_among, keys_configured
from .match import AddressMatch, pk_ranges, with_lowered

Outcome = WebhookEvent.Outcome
_UNFINISHED = (Outcome.PENDING, Outcome.FAILED)
#: Ids or message ids per lookup: within every database's limit on query parameters.
_LOOKUP_CHUNK = 500
UNPROCESSED_DETAIL = "erased by sendfleet_forget before it was applied"


def reduced(now: datetime) -> dict[str, Any]:
    """The columns of a reduced event: what showed the address goes, the digest stays."""
    return {
        "raw": None,
        "raw_body": "",
        "recipient": "",
        "sender": "",
        "detail": "",
        "pruned_at": now,
    }


@dataclass
class EventEraser:
    """Reduces the events it is shown, ``batch_size`` per transaction; counts them."""

    batch_size: int
    dry_run: bool
    reduced: int = 0
    #: Events counted by a dry run (which changes nothing, so would see them again).
    _counted: set[int] = field(default_factory=set)

    def of_rows(self, row_ids: Sequence[int], message_ids: Sequence[str]) -> None:
        """The events of these send log rows: by their row, and by their message id."""
        for start in range(0, len(row_ids), _LOOKUP_CHUNK):
            self._reduce(Q(send_log_id__in=row_ids[start : start + _LOOKUP_CHUNK]))
        ids = [message_id for message_id in message_ids if message_id]
        for start in range(0, len(ids), _LOOKUP_CHUNK):
            self._reduce(Q(message_id__in=ids[start : start + _LOOKUP_CHUNK]))

    def scan(self, match: AddressMatch) -> None:
        """Every event naming an address in its recipient column or its body."""
        events = _unreduced(WebhookEvent.objects.using(_db()))
        candidates = with_lowered(events).filter(match.recipient_q() | match.body_q())
        lowered = set(match.lowered)
        for start, end in pk_ranges(events):
            found = (
                candidates.filter(pk__gte=start, pk__lt=end)
                .order_by()
                .values_list("pk", "recipient", "raw", "raw_body")
            )
            ids = [
                pk
                for pk, recipient, raw, raw_body in found
                if recipient.lower() in lowered
                or any(f"<{form}>" in recipient.lower() for form in lowered)
                or match.mentions(raw, raw_body)
            ]
            for chunk in range(0, len(ids), self.batch_size):
                self._reduce(Q(pk__in=ids[chunk : chunk + self.batch_size]))

    def _reduce(self, which: Q) -> None:
        db = _db()
        events = _unreduced(WebhookEvent.objects.using(db)).filter(which)
        if self.dry_run:
            new = set(events.values_list("pk", flat=True)) - self._counted
            self._counted |= new
            self.reduced += len(new)
            return
        while True:
            # In primary key order, a batch at a time: short transactions on a busy table.
            ids = list(events.order_by("pk").values_list("pk", flat=True)[: self.batch_size])
            if not ids:
                return
            self.reduced += reduce_events(ids, db)


def reduce_events(ids: Sequence[int], db: str | None = None) -> int:
    """Reduce these events (not reduced yet) in one transaction; how many were."""
    db = db or _db()
    now = timezone.now()
    with transaction.atomic(using=db):
        batch = WebhookEvent.objects.using(db).filter(pk__in=ids)
        unfinished = list(
            _unreduced(batch).filter(outcome__in=_UNFINISHED).values_list("pk", flat=True)
        )
        done = _unreduced(batch).update(**reduced(now))
        if unfinished:
            batch.filter(pk__in=unfinished).update(
                outcome=Outcome.UNPROCESSABLE, next_attempt_at=None, detail=UNPROCESSED_DETAIL
            )
    return done


def reduce_late_events(applied: Iterable[tuple[WebhookEvent, str | None]]) -> None:
    """Reduce the events of a batch just applied (each stored event with its recipient) that
    are about a forgotten address: its send log row was erased, or its recipient is a
    forgotten address. In the caller's transaction, after the events' outcomes are saved; one
    query when there are none."""
    items = list(applied)
    ids = [stored.pk for stored, _recipient in items if _row_forgotten(stored)]
    emails = {normalise_email(recipient) for _stored, recipient in items if recipient}
    gone: set[str] = set()
    per_query = 999 // keys_configured()
    ordered = sorted(emails)
    for start in range(0, len(ordered), per_query):
        gone |= forgotten_among(ordered[start : start + per_query])
    if gone:
        ids += [
            stored.pk
            for stored, recipient in items
            if recipient and normalise_email(recipient) in gone
        ]
    if ids:
        WebhookEvent.objects.filter(pk__in=sorted(set(ids))).update(**reduced(timezone.now()))


def _row_forgotten(stored: WebhookEvent) -> bool:
    row = stored.send_log
    return row is not None and row.recipient == FORGOTTEN


def _unreduced(events: QuerySet[WebhookEvent]) -> QuerySet[WebhookEvent]:
    return events.filter(pruned_at__isnull=True)


def _db() -> str:
    return router.db_for_write(WebhookEvent)
