"""Process webhook events whose processing failed or never ran (stored, then the process that
answered them died). Safe to run from cron at any
time: each attempt is claimed, so an event is never applied twice at once."""

from __future__ import annotations

from collections import Counter
from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from django_sendfleet.models import WebhookEvent
from django_sendfleet.webhooks.drain import apply_stored_events_until_done
from django_sendfleet.webhooks.events import (
    UNFINISHED,
    resolve_and_apply_unknown_sends,
    retry_due_events,
)


class Command(BaseCommand):
    help = (
        "Apply webhook events left 'failed' (all of them, without waiting for their next "
        "automatic retry) or 'pending' (stored but never processed), and resolve 'unknown' sends "
        "whose events arrived before them."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--wait-for-backoff",
            action="store_true",
            help="only failed events whose next automatic retry is due",
        )

    def handle(self, *args: Any, wait_for_backoff: bool, **options: Any) -> None:
        applied = apply_stored_events_until_done()
        applied += retry_due_events(ignore_backoff=not wait_for_backoff)
        resolved = resolve_and_apply_unknown_sends()
        left = Counter(
            WebhookEvent.objects.filter(outcome__in=UNFINISHED).values_list("outcome", flat=True)
        )
        self.stdout.write(
            f"{applied} events processed; {resolved} unknown sends resolved; "
            f"{left[WebhookEvent.Outcome.FAILED]} still failed, "
            f"{left[WebhookEvent.Outcome.PENDING]} pending."
        )
