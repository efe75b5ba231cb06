"""Forgetting a person: ``manage.py sendfleet_forget`` and the admin's "Forget these people".
The address stays suppressed; its rows are anonymised, its content and events reduced.

Why: docs/internals.md#erasure-forgetting-a-person
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from django.db import router, transaction
from django.db.models import Exists, OuterRef, Q
from django.utils import timezone

from .. import error_table
from ..models import MessageContent, SendLog, Suppression, forgotten
from ..models.forgotten import FORGOTTEN
from ..models.log_status import LogStatus
from ..records import content as message_content
from .events import EventEraser
from .match import AddressMatch, pk_ranges, with_lowered

logger = logging.getLogger("django_sendfleet")

#: Rows changed per transaction.
BATCH_SIZE = 1000
CANCELLED_CODE = error_table.SPECS_BY_CODE["recipient_suppressed"].code
CANCELLED_DETAIL = "Not sent: the recipient was forgotten (sendfleet_forget) and stays suppressed."
_OUTBOX = (LogStatus.PENDING, LogStatus.SENDING)


@dataclass
class ErasureReport:
    """What was removed (or with ``dry_run``, would be), per kind."""

    addresses: int = 0
    #: Send log rows anonymised, the cancelled outbox rows included.
    send_log_rows: int = 0
    #: Of those, rows of the outbox (``pending``) cancelled before they were sent.
    outbox_cancelled: int = 0
    #: Rows a worker is sending right now: not changed; forget again once they are sent.
    in_flight: int = 0
    message_contents: int = 0
    webhook_events: int = 0
    #: Suppression entries (in clear) deleted.
    suppressions: int = 0
    #: Keyed hashes stored: addresses not forgotten before.
    hashes_added: int = 0
    dry_run: bool = False

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def summary(self) -> str:
        """One sentence with every count (the admin's message, the log's line)."""
        erased = [
            _counted(self.send_log_rows, "send log row")
            + (
                f" ({self.outbox_cancelled} of them unsent, cancelled)"
                if self.outbox_cancelled
                else ""
            ),
            _counted(self.message_contents, "message content"),
            _counted(self.webhook_events, "webhook event"),
            _counted(self.suppressions, "suppression entry", "suppression entries"),
        ]
        done = "would be" if self.dry_run else "were"
        addresses = _counted(self.addresses, "address", "addresses")
        hashes = _counted(self.hashes_added, "keyed hash", "keyed hashes")
        added = "was" if self.hashes_added == 1 and not self.dry_run else done
        return (
            f"{addresses}: {', '.join(erased[:-1])} and {erased[-1]} {done} erased; "
            f"{hashes} {added} added, and they stay suppressed."
        )


def _counted(number: int, singular: str, plural: str = "") -> str:
    return f"{number} {singular if number == 1 else plural or singular + 's'}"


def forget(
    addresses: Iterable[str],
    *,
    batch_size: int = BATCH_SIZE,
    dry_run: bool = False,
    wait: float = 0.0,
) -> ErasureReport:
    """Erase what the tables hold about these addresses and keep them suppressed.

    ``wait``: seconds to wait for rows being sent right now to be finished (then they are
    erased too); those still being sent are counted in ``in_flight``.
    """
    if batch_size < 1:
        raise ValueError("batch_size must be 1 or more")
    given = [address for address in addresses if address.strip()]
    match = AddressMatch(given)
    report = ErasureReport(addresses=len(match.emails), dry_run=dry_run)
    if not match.emails:
        return report
    _keep_suppressed(match.emails, report)
    rows = _RowEraser(match, report, batch_size)
    rows.erase_all()
    rows.events.scan(match)
    deadline = time.monotonic() + wait
    while rows.in_flight and not dry_run and time.monotonic() < deadline:
        time.sleep(min(0.5, max(0.0, deadline - time.monotonic())))
        rows.erase_again_in_flight()
    report.in_flight = len(rows.in_flight)
    report.webhook_events = rows.events.reduced
    if not dry_run:
        logger.info("SendFleet forgot %s", report.summary())
    return report


def _keep_suppressed(emails: Sequence[str], report: ErasureReport) -> None:
    """Store the keyed hashes and delete the entries in clear, in one transaction."""
    listed = Suppression.objects.using(router.db_for_write(Suppression))
    if report.dry_run:
        report.suppressions = listed.filter(email__in=emails).count()
        report.hashes_added = len(emails) - len(forgotten.forgotten_among(emails))
        return
    with transaction.atomic(using=router.db_for_write(Suppression)):
        report.hashes_added = forgotten.remember(emails)
        report.suppressions, _ = listed.filter(email__in=emails).delete()


@dataclass
class _RowEraser:
    match: AddressMatch
    report: ErasureReport
    batch_size: int
    in_flight: set[int] = field(default_factory=set)
    events: EventEraser = field(init=False)
    #: Rows and content a dry run counted already.
    _counted: set[int] = field(default_factory=set)
    _contents_counted: set[int] = field(default_factory=set)

    def __post_init__(self) -> None:
        self.events = EventEraser(self.batch_size, self.report.dry_run)
        self.db = router.db_for_write(SendLog)
        self.log = SendLog.objects.using(self.db)

    def erase_all(self) -> None:
        # The exact forms first, through the recipient index: most rows, at once, a batch at
        # a time (after the last primary key seen: rows in flight keep matching).
        exact = self.log.filter(recipient__in=self.match.exact).order_by("pk")
        last = None
        while True:
            page = exact if last is None else exact.filter(pk__gt=last)
            pks = list(page.values_list("pk", flat=True)[: self.batch_size])
            if not pks:
                break
            self._erase(pks)
            last = pks[-1]
        # Then every other form, reading the table a range of primary keys at a time.
        about = with_lowered(self.log).filter(self.match.recipient_q())
        for start, end in pk_ranges(self.log):
            found = about.filter(pk__gte=start, pk__lt=end).order_by("pk")
            self._erase(found.values_list("pk", flat=True))

    def erase_again_in_flight(self) -> None:
        pks, self.in_flight = sorted(self.in_flight), set()
        self._erase(pks)

    def _erase(self, pks: Iterable[int]) -> None:
        pks = [pk for pk in pks if pk not in self.in_flight and pk not in self._counted]
        if self.report.dry_run:
            self._counted.update(pks)  # unchanged, so found again by the next lookup
        for start in range(0, len(pks), self.batch_size):
            self._erase_batch(pks[start : start + self.batch_size])

    def _erase_batch(self, pks: list[int]) -> None:
        with transaction.atomic(using=self.db):
            # Locked (PostgreSQL, MySQL) in key order, as the rollups lock them: a worker's
            # claim waits for this transaction, and then finds the row cancelled.
            rows = list(
                self.log.select_for_update()
                .filter(pk__in=pks)
                .exclude(recipient=FORGOTTEN)
                .order_by("pk")
                .values_list("pk", "status", "content_id", "message_id")
            )
            sending = {pk for pk, status, _, _ in rows if status == LogStatus.SENDING}
            pending = [pk for pk, status, _, _ in rows if status == LogStatus.PENDING]
            settled = [pk for pk, status, _, _ in rows if status not in _OUTBOX]
            contents = sorted({c for pk, _, c, _ in rows if c and pk not in sending})
            report = self.report
            if report.dry_run:
                cancelled, anonymised = len(pending), len(settled)
                report.message_contents += self._count_unshared(contents)
            else:
                cancelled, anonymised = self._anonymise(pending, settled)
                if cancelled < len(pending):
                    # Claimed by a worker since it was read (SQLite locks no rows): in flight.
                    left = self.log.filter(pk__in=pending).exclude(recipient=FORGOTTEN)
                    sending |= set(left.values_list("pk", flat=True))
                report.message_contents += _release(contents)
            self.in_flight |= sending
            report.send_log_rows += cancelled + anonymised
            report.outbox_cancelled += cancelled
        erased = [row for row in rows if row[0] not in sending]
        self.events.of_rows([row[0] for row in erased], [row[3] for row in erased])

    def _anonymise(self, pending: list[int], settled: list[int]) -> tuple[int, int]:
        """Cancel the pending rows and anonymise the settled ones: how many of each."""
        now = timezone.now()
        anonymous: dict[str, Any] = {
            "recipient": FORGOTTEN,
            "subject": "",
            "detail": "",
            "warnings": [],
            # The recipient's metadata (anymail's merge_metadata) is about the person; the
            # message's tags are not, and stay.
            "metadata": {},
            "content": None,
            "payload": None,
            "from_name": "",
            "reply_to": "",
            "text_body": "",
            "html_body": "",
            "updated_at": now,
        }
        cancelled = anonymised = 0
        if pending:
            # Only while still pending: a worker's claim and this are exclusive. The status
            # and error code change: the rollups move with them (SendLogQuerySet.update).
            cancelled = self.log.filter(pk__in=pending, status=LogStatus.PENDING).update(
                status=LogStatus.REJECTED,
                error_code=CANCELLED_CODE,
                not_before=None,
                **(anonymous | {"detail": CANCELLED_DETAIL}),
            )
        if settled:
            # No column a rollup counts by changes: the rollups are not touched.
            settled_rows = self.log.filter(pk__in=settled).exclude(status__in=_OUTBOX)
            anonymised = settled_rows.update(**anonymous)
        return cancelled, anonymised

    def _count_unshared(self, contents: list[int]) -> int:
        """Content that erasing would delete: no row about anyone else refers to it."""
        new = [pk for pk in contents if pk not in self._contents_counted]
        self._contents_counted.update(new)
        if not new:
            return 0
        others = (
            with_lowered(SendLog.objects.using(self.db))
            .filter(content_id=OuterRef("pk"))
            .exclude(self.match.recipient_q() & ~Q(status=LogStatus.SENDING))
        )
        unshared = MessageContent.objects.using(self.db).filter(pk__in=new)
        return unshared.exclude(Exists(others)).count()


def _release(contents: list[int]) -> int:
    """Delete the content no row refers to any more; how many went."""
    if not contents:
        return 0
    rows = MessageContent.objects.filter(pk__in=contents)
    before = rows.count()
    message_content.release(contents)
    return before - rows.count()
