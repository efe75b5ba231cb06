"""After the webhook's answer: applying the events just stored, many per transaction.

The webhook view stores each event and answers at once; ``after_answer`` runs once the answer
is sent (``webhooks.AnswerThenProcess``). One thread per process applies events at a time:
it claims the events stored and not taken up yet, oldest first, and applies them in one
transaction (``event_apply``), a few statements for the whole batch. A thread that answers
meanwhile only says that there is more to do, and the applying thread looks again before it
stops: under a burst the other threads only store and answer, and each batch gathers the events
that came while the last was applied. Then, now and then, events due for a retry
(``events.retry_due_events``) and unknown sends whose events came first.

A batch that fails is processed again one event at a time (``events.process_event``), so only
an event that fails by itself is marked ``failed`` and retried.
"""

from __future__ import annotations

import functools
import logging
import threading
import time

from django.db import connections, router, transaction
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.models import QuerySet

from .event_apply import read_batch, write_batch
from .events import (
    after_applying,
    process_event,
    resolve_and_apply_unknown_sends,
    retry_due_events,
)
from .models import WebhookEvent

logger = logging.getLogger("django_sendfleet")

Outcome = WebhookEvent.Outcome

#: Events one transaction applies: a few statements for all of them, and a short hold of
#: SQLite's write lock, which the answers' own writes wait for.
BATCH_SIZE = 32
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
    """Whether a thread of this process is applying stored events, and whether one was asked
    to since it last looked."""

    lock = threading.Lock()
    wanted = False


_drain = _Drain()
retry_look = NowAndThen(RETRY_LOOK_SECONDS)
unknown_send_scan = NowAndThen(UNKNOWN_SEND_SCAN_SECONDS)


def after_answer(stored: WebhookEvent | None) -> None:
    """The work the webhook view leaves until its answer is sent: the events just stored (this
    one among them, unless None); then, now and then, the retries and the unknown sends."""
    _drain.wanted = True
    while _drain.wanted and _drain.lock.acquire(blocking=False):
        try:
            _drain.wanted = False
            apply_stored_events_until_done()
            while _drain.wanted:
                # Events came while applying: a burst. Let the next batch gather (applied a
                # little later; each was answered as soon as it was stored all the same).
                time.sleep(GATHER_SECONDS)
                _drain.wanted = False
                apply_stored_events_until_done()
            if retry_look.due():
                retry_due_events(limit=RETRIES_PER_LOOK)
            if unknown_send_scan.due():
                resolve_and_apply_unknown_sends()
        finally:
            _drain.lock.release()


def apply_stored_events_until_done() -> int:
    """Apply, in batches, the events stored and not taken up yet; the number found."""
    total = 0
    while True:
        found = apply_stored_events(limit=BATCH_SIZE)
        total += found
        if found < BATCH_SIZE:  # then the next batch gathers (after_answer), or none is due
            return total


def apply_stored_events(*, limit: int) -> int:
    """Claim and apply up to ``limit`` events stored and not taken up yet, in one transaction;
    the number found (claimed by this call or, meanwhile, by another process). What can be
    read is read before the transaction: on SQLite it holds the database's one write lock,
    which the answers wait for."""
    if not _any_stored():
        return 0
    candidates = list(_stored_events()[:limit])
    if not candidates:
        return 0
    claimed: list[WebhookEvent] = []
    try:
        batch = read_batch(candidates)
        with transaction.atomic(using=_database().alias):
            _one_batch_at_a_time()
            claimed = _claim(candidates)
            done = write_batch(batch.only({stored.pk for stored in claimed}))
    except Exception as error:
        logger.warning("SendFleet webhook: a batch of events failed (%r), one at a time now", error)
        for stored in claimed or candidates:
            process_event(stored.pk)
        return len(candidates)
    for item in done:
        after_applying(item)
    return len(candidates)


def _stored_events() -> QuerySet[WebhookEvent]:
    """Events stored and not taken up yet, oldest first."""
    return WebhookEvent.objects.filter(outcome=Outcome.PENDING, attempts=0).order_by("pk")


def _any_stored() -> bool:
    """Whether any event waits to be taken up: asked after every answer, so its SQL is built
    once per database (building it costs more than running it)."""
    connection = _database()
    sql, params = _any_stored_sql(connection.alias)
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchone() is not None


@functools.cache
def _any_stored_sql(alias: str) -> tuple[str, tuple]:
    query = _stored_events().using(alias).order_by().values("pk")[:1]
    return query.query.sql_with_params()


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
