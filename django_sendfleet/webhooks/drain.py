"""After the webhook's answer: applying the events just stored, many per transaction.

Why: docs/internals.md#webhooks-applying-after-the-answer
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Sequence

from django.db import connections, router
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.models import QuerySet

from ..models import WebhookEvent
from .apply import apply
from .events import after_applying, process_event, resolve_and_apply_unknown_sends, retry_due_events

logger = logging.getLogger("django_sendfleet")

Outcome = WebhookEvent.Outcome

#: Events one transaction applies: a few statements for all of them (about 3 ms of CPU per
#: transaction on a small machine, plus about 0.08 ms per event), and a hold of SQLite's write
#: lock, which the answers' own writes wait for, of under 20 ms.
BATCH_SIZE = 128
#: Events a process keeps waiting in memory; past that (applying cannot keep up), an event
#: stays stored for the retries and ``sendfleet_retry_events``, as when its process dies.
MAX_WAITING = 10_000
#: Under a burst, how long the applying thread lets the next batch gather.
GATHER_SECONDS = 0.2
#: Due events retried each time, and how often a process looks for them.
RETRIES_PER_LOOK = 5
RETRY_LOOK_SECONDS = 1.0
#: How often one process looks for unknown sends whose events arrived first.
UNKNOWN_SEND_SCAN_SECONDS = 30.0
#: The PostgreSQL advisory lock batches take (any constant of our own).
BATCH_LOCK_KEY = 0x5EDF1EE7


class NowAndThen:
    """True at most once per ``interval`` seconds in this process."""

    def __init__(self, interval: float) -> None:
        self.interval = interval
        self.last = -float("inf")
        self._lock = threading.Lock()

    def due(self) -> bool:
        with self._lock:
            if time.monotonic() - self.last < self.interval:
                return False
            self.last = time.monotonic()
            return True


class _Drain:
    """This process's events, stored and answered but not applied yet; and whether a thread
    of this process is applying them."""

    lock = threading.Lock()
    waiting: deque[WebhookEvent] = deque()


_drain = _Drain()
retry_look = NowAndThen(RETRY_LOOK_SECONDS)
unknown_send_scan = NowAndThen(UNKNOWN_SEND_SCAN_SECONDS)


def applying() -> bool:
    """Whether a thread of this process is applying events now (their receivers included):
    the sandbox's ``wait_for_webhooks`` waits for it to end, for a server in its process."""
    return _drain.lock.locked()


def forget_waiting(timeout: float = 10.0) -> bool:
    """Drop the events this process stored and has not applied, and let the next event make
    the now-and-then looks: for test isolation (the sandbox's helpers), whose tests roll those
    events back. Waits up to ``timeout`` for a batch being applied; False if it still is."""
    if not _drain.lock.acquire(timeout=timeout):
        return False
    try:
        _drain.waiting.clear()
        retry_look.last = unknown_send_scan.last = -float("inf")
    finally:
        _drain.lock.release()
    return True


def after_answer(stored: WebhookEvent | None) -> None:
    """The work the webhook view leaves until its answer is sent: the events this process
    stored (this one among them, unless None); then, now and then, the retries and the unknown
    sends."""
    if stored is not None and len(_drain.waiting) < MAX_WAITING:
        _drain.waiting.append(stored)
    while _drain.lock.acquire(blocking=False):
        try:
            _apply_waiting()
            if retry_look.due():
                retry_due_events(limit=RETRIES_PER_LOOK)
            if unknown_send_scan.due():
                resolve_and_apply_unknown_sends()
        finally:
            _drain.lock.release()
        if not _drain.waiting:
            return
        # Events came after the last look and before the release: their threads found the
        # lock taken, and left them to this one.


def _apply_waiting() -> None:
    _apply_batches()
    while _drain.waiting:
        # Events came while applying: a burst. Let the next batch gather (applied a little
        # later; each was answered as soon as it was stored all the same).
        time.sleep(GATHER_SECONDS)
        _apply_batches()


def _apply_batches() -> None:
    """Apply full batches while there are, then what is left (the next gathers meanwhile)."""
    waiting = _drain.waiting
    while True:
        batch = [waiting.popleft() for _ in range(min(BATCH_SIZE, len(waiting)))]
        apply_batch(batch)
        if len(batch) < BATCH_SIZE:
            return


def apply_stored_events_until_done() -> int:
    """Apply, in batches, the events stored and not taken up yet by any process (one that
    died, or a server that never ran ``after_answer``); the number found."""
    total = 0
    while True:
        candidates = list(_stored_events()[:BATCH_SIZE])
        apply_batch(candidates)
        total += len(candidates)
        if len(candidates) < BATCH_SIZE:
            return total


def apply_batch(candidates: list[WebhookEvent]) -> None:
    """Claim and apply, in one transaction, those of these stored events no one has taken up
    since. What can be read is read before the transaction: on SQLite it holds the database's
    one write lock, which the answers wait for."""
    if not candidates:
        return
    claimed: list[WebhookEvent] = []

    def claim_first_time(events: Sequence[WebhookEvent]) -> list[WebhookEvent]:
        _one_batch_at_a_time()
        claimed.extend(_claim(list(events)))
        return claimed

    try:
        done = apply(candidates, claim_first_time)
    except Exception as error:
        logger.warning("SendFleet webhook: a batch of events failed (%r), one at a time now", error)
        for stored in claimed or candidates:
            process_event(stored.pk)
        return
    for item in done:
        after_applying(item)


def _stored_events() -> QuerySet[WebhookEvent]:
    """Events stored and not taken up yet, oldest first."""
    return WebhookEvent.objects.filter(outcome=Outcome.PENDING, attempts=0).order_by("pk")


def _database() -> BaseDatabaseWrapper:
    """The connection events are written with."""
    return connections[router.db_for_write(WebhookEvent)]


def _one_batch_at_a_time() -> None:
    """On PostgreSQL, batches from several processes wait for each other (a lock held until
    the transaction ends): two at once would change the same rollup and send log rows in
    different orders, and deadlock. SQLite has one writer at a time anyway."""
    connection = _database()
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [BATCH_LOCK_KEY])


def _claim(candidates: list[WebhookEvent]) -> list[WebhookEvent]:
    """Claim, in the caller's transaction, those of the events no one else has taken up since
    they were read (counting the attempt)."""
    pks = [stored.pk for stored in candidates]
    taken = _stored_events().filter(pk__in=pks).update(attempts=1)
    if taken != len(candidates):
        # Others took some meanwhile (they commit a claim with its outcome, never pending), or
        # on PostgreSQL are applying them (this UPDATE waited for them): the rest are ours.
        ours = set(
            WebhookEvent.objects.filter(
                pk__in=pks, outcome=Outcome.PENDING, attempts=1
            ).values_list("pk", flat=True)
        )
        candidates = [stored for stored in candidates if stored.pk in ours]
    for stored in candidates:
        stored.attempts = 1
    return candidates
