"""Erase what the send log, message content, webhook events and suppression list hold about
addresses, and keep them suppressed by a keyed hash (docs/send-log.md, "Retention and erasure").
"""

from __future__ import annotations

import json
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from django_sendfleet.erasure.forget import BATCH_SIZE, ErasureReport, forget
from django_sendfleet.models import forgotten, normalise_email

#: The lines of the text report: (field, label).
_LINES = (
    ("send_log_rows", "send log rows anonymised"),
    ("outbox_cancelled", "  of which unsent (pending), cancelled"),
    ("message_contents", "message contents deleted"),
    ("webhook_events", "webhook events reduced to their digest"),
    ("suppressions", "suppression entries (in clear) deleted"),
    ("hashes_added", "keyed hashes added (stay suppressed)"),
    ("in_flight", "rows being sent right now, not erased yet"),
)


class Command(BaseCommand):
    help = (
        "Erase every send log row, message content, webhook event and suppression entry "
        "about these addresses; they stay suppressed by a keyed hash."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("addresses", nargs="+", metavar="ADDRESS")
        parser.add_argument(
            "--dry-run", action="store_true", help="count what would be erased, change nothing"
        )
        parser.add_argument("--json", action="store_true", help="print the counts as JSON")
        parser.add_argument(
            "--batch-size", type=int, default=BATCH_SIZE, help="rows changed per transaction"
        )
        parser.add_argument(
            "--wait",
            type=float,
            default=30.0,
            help="seconds to wait for rows being sent right now, to erase them too (default 30)",
        )
        parser.add_argument(
            "--lift",
            action="store_true",
            help="instead: no longer suppress these forgotten addresses (they asked for mail "
            "again); nothing erased comes back",
        )

    def handle(self, *args: Any, addresses: list[str], **options: Any) -> None:
        for address in addresses:
            if "@" not in address or len(address.strip()) > 320:
                raise CommandError("Each ADDRESS must be an email address.")
        if options["batch_size"] < 1:
            raise CommandError("--batch-size must be 1 or more.")
        if options["wait"] < 0:
            raise CommandError("--wait must be 0 or more.")
        if options["lift"]:
            self._lift(addresses, dry_run=options["dry_run"], as_json=options["json"])
            return
        report = forget(
            addresses,
            batch_size=options["batch_size"],
            dry_run=options["dry_run"],
            wait=options["wait"],
        )
        self._print(report, as_json=options["json"])
        if report.in_flight:
            # Not an error of the command's, but the erasure is not complete: say so in the
            # exit status, so that a script runs it again.
            raise CommandError(
                f"{report.in_flight} row(s) are being sent right now; run sendfleet_forget "
                "again once they are finished (at most the lease, LEASE_SECONDS)."
            )

    def _print(self, report: ErasureReport, *, as_json: bool) -> None:
        # Never the addresses: this output goes to terminals and logs.
        if as_json:
            self.stdout.write(json.dumps(report.as_dict(), sort_keys=True))
            return
        verb = "Would forget" if report.dry_run else "Forgot"
        self.stdout.write(f"{verb} {report.addresses} address(es).")
        for name, label in _LINES:
            self.stdout.write(f"{getattr(report, name):>10}  {label}")
        if not report.dry_run:
            self.stdout.write(
                self.style.SUCCESS(
                    "They stay suppressed: only a keyed hash of each address is kept."
                )
            )
        others = forgotten.entries_under_other_keys()
        if others:
            self.stderr.write(
                self.style.WARNING(
                    f"{others} forgotten address(es) were hashed with a SECRET_KEY that is "
                    "neither SECRET_KEY nor in SECRET_KEY_FALLBACKS: they are no longer "
                    "recognised, so no longer suppressed here."
                )
            )

    def _lift(self, addresses: list[str], *, dry_run: bool, as_json: bool) -> None:
        emails = sorted({normalise_email(address) for address in addresses})
        count = len(forgotten.forgotten_among(emails)) if dry_run else forgotten.lift(emails)
        if as_json:
            self.stdout.write(json.dumps({"lifted": count, "dry_run": dry_run}, sort_keys=True))
        else:
            verb = "Would lift" if dry_run else "Lifted"
            self.stdout.write(f"{verb} {count} forgotten address(es) off the suppression list.")
