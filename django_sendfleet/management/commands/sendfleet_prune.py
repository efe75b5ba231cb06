"""Delete old send log rows in batches, and reduce old webhook events to their digest.
Suppressions and unsent (pending) rows are kept."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone

from django_sendfleet.conf import SendFleetSettings
from django_sendfleet.db.routing import atomic_for
from django_sendfleet.models import SendLog
from django_sendfleet.models.log_status import LogStatus
from django_sendfleet.records import content as message_content
from django_sendfleet.webhooks.retention import PrunedEvents, prune_events

#: Rows that still have work to do are never pruned, however old.
KEPT_STATUSES = (LogStatus.PENDING,)


class Command(BaseCommand):
    help = "Delete send log rows older than --days, in batches. Never touches suppressions."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--days", type=int, required=True, help="keep this many days")
        parser.add_argument("--batch-size", type=int, default=5000)
        parser.add_argument("--dry-run", action="store_true", help="count, delete nothing")

    def handle(self, *args: Any, days: int, batch_size: int, dry_run: bool, **options: Any) -> None:
        if days < 1:
            raise CommandError("--days must be 1 or more.")
        if batch_size < 1:
            raise CommandError("--batch-size must be 1 or more.")
        cutoff = timezone.now() - timedelta(days=days)
        old = SendLog.objects.filter(created_at__lt=cutoff).exclude(status__in=KEPT_STATUSES)
        # Webhook events too: reduced to the digest that recognises a replay (event_retention).
        max_age = SendFleetSettings().webhook_max_age
        if dry_run:
            events = prune_events(cutoff, max_age=max_age, batch_size=batch_size, dry_run=True)
            self.stdout.write(
                f"{old.count()} rows older than {cutoff:%Y-%m-%d %H:%M} would go; "
                f"{_events_summary(events)}"
            )
            return
        deleted = 0
        while True:
            # Small batches keep each transaction and lock short on a busy table.
            ids = list(old.order_by("created_at").values_list("id", flat=True)[:batch_size])
            if not ids:
                break
            batch = SendLog.objects.filter(id__in=ids)
            contents = list(batch.filter(content__isnull=False).values_list("content", flat=True))
            with atomic_for(SendLog):
                deleted += batch.delete()[0]
                message_content.release(contents)  # logged content no row refers to any more
            self.stdout.write(f"deleted {deleted} rows so far")
        events = prune_events(cutoff, max_age=max_age, batch_size=batch_size)
        self.stdout.write(
            self.style.SUCCESS(
                f"Deleted {deleted} send log rows older than {days} days; {_events_summary(events)}"
            )
        )


def _events_summary(events: PrunedEvents) -> str:
    return (
        f"webhook events: {events.reduced_to_digest} reduced to their digest, "
        f"{events.deleted} signed before WEBHOOK_MAX_AGE deleted."
    )
