"""Check the per-day rollups against the send log, or rebuild them from it."""

from __future__ import annotations

import datetime
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from django_sendfleet.models import rollups
from django_sendfleet.records import rollup_rebuild


class Command(BaseCommand):
    help = (
        "Compare the send log's per-day rollups (the dashboard's counts) with a fresh count of "
        "the log, or with --rebuild recount them from the log: after installing, or to repair "
        "them after rows were written or changed with raw SQL."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--rebuild",
            action="store_true",
            help="recount the rollups from the log, a day at a time",
        )
        parser.add_argument(
            "--days", type=int, help="only the last DAYS days, today included (default: all)"
        )

    def handle(self, *args: Any, rebuild: bool, days: int | None, **options: Any) -> None:
        if days is not None and days < 1:
            raise CommandError("--days must be 1 or more.")
        first_day = rollups.today() - datetime.timedelta(days=days - 1) if days else None
        if rebuild:
            done = rollup_rebuild.rebuild(first_day)
            self.stdout.write(self.style.SUCCESS(f"Rebuilt the rollups of {done} day(s)."))
            return
        differences = rollup_rebuild.differences(first_day)
        for key, (in_rollups, in_log) in differences.items():
            self.stdout.write(
                f"{key.day} mailer={key.mailer!r} mode={key.mode!r} status={key.status} "
                f"error_code={key.error_code!r}: rollup {in_rollups}, log {in_log}"
            )
        if differences:
            raise CommandError(
                f"{len(differences)} rollup(s) differ from the log: run with --rebuild."
            )
        self.stdout.write(self.style.SUCCESS("The rollups match the log."))
