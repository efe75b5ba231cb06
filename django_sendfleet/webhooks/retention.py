"""How long webhook events are kept: ``sendfleet_prune`` prunes them with the send log.

An event received before the cutoff keeps only what recognises it if it is posted again: its
digest, with its type, times and outcome. Its body, message id, recipient and sender go (they
are personal data). A replay of a pruned event is then answered ``duplicate`` and changes
nothing: a year-old complaint cannot suppress an address again after the suppression was
lifted. An event signed longer ago than ``WEBHOOK_MAX_AGE`` is deleted entirely, since a replay
of it is refused by its age. Pending and failed events are kept whole until processed.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db.models import QuerySet
from django.utils import timezone

from ..models import WebhookEvent
from ..models.send_log import PRUNED_FIELDS

_UNFINISHED = (WebhookEvent.Outcome.PENDING, WebhookEvent.Outcome.FAILED)


@dataclass(frozen=True)
class PrunedEvents:
    reduced_to_digest: int
    deleted: int


def prune_events(
    cutoff: datetime, *, max_age: timedelta | None, batch_size: int, dry_run: bool = False
) -> PrunedEvents:
    """Prune the events received before ``cutoff``; with ``dry_run``, only count them."""
    old = WebhookEvent.objects.filter(received_at__lt=cutoff).exclude(outcome__in=_UNFINISHED)
    reducible = old.filter(pruned_at__isnull=True)
    deletable = old.none()
    if max_age is not None:
        signed_before = timezone.now() - max_age
        deletable = old.filter(signed_at__lt=signed_before)
        reducible = reducible.exclude(signed_at__lt=signed_before)  # keeps those without a time
    if dry_run:
        return PrunedEvents(reducible.count(), deletable.count())
    reduced = _in_batches(reducible, batch_size, delete=False)
    return PrunedEvents(reduced, _in_batches(deletable, batch_size, delete=True))


def _in_batches(events: QuerySet[WebhookEvent], batch_size: int, *, delete: bool) -> int:
    done = 0
    while True:
        # Small batches keep each transaction and lock short on a busy table.
        ids = list(events.order_by("received_at").values_list("id", flat=True)[:batch_size])
        if not ids:
            return done
        batch = WebhookEvent.objects.filter(id__in=ids)
        if delete:
            done += batch.delete_whole()[0]
        else:
            done += batch.update(**PRUNED_FIELDS, pruned_at=timezone.now())
