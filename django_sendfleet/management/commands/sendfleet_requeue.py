"""Recover queued sending after lost tasks and dead workers. Safe to run from cron at any time."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from django_sendfleet.queued import outbox, tasks


class Command(BaseCommand):
    help = (
        "Mark rows whose worker died mid-send (lease expired) as 'unknown' - never resent - and "
        "enqueue tasks for due 'pending' rows whose task was lost. Never sends a row twice."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--older-than",
            type=float,
            default=60.0,
            help="only requeue pending rows untouched for this many seconds (default 60), so "
            "rows whose task is on its way are left alone",
        )
        parser.add_argument(
            "--key-fixed",
            action="store_true",
            help="the API key works again (or was replaced): stop pausing it after its 401 "
            "and send the queued rows held for it now",
        )

    def handle(self, *args: Any, older_than: float, key_fixed: bool, **options: Any) -> None:
        if older_than < 0:
            raise CommandError("--older-than must be 0 or more.")
        tasks.require_tasks()
        if key_fixed:
            released = outbox.release_key_holds()
            self.stdout.write(f"API key pause lifted; {released} held rows due now.")
            older_than = 0  # send them now, not after the usual grace period
        expired = outbox.expire_leases()
        requeued = outbox.requeue_pending(timedelta(seconds=older_than))
        self.stdout.write(
            f"{expired} rows whose worker stopped mid-send marked unknown; "
            f"{requeued} pending rows enqueued."
        )
