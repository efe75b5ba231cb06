"""After the webhook's answer: applying the events just stored, many per transaction, one
batch in the answering thread and the rest of a burst in a thread of the process's own.

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
    """This process's events, stored and answered but not applied yet; whether a thread of
    this process is applying them (``lock``); and whether its burst thread runs."""

    lock = threading.Lock()
    waiting: deque[WebhookEvent] = deque()
    #: Guards ``burst_thread_running``, which the burst thread clears only when nothing waits.
    handoff = threading.Lock()
    burst_thread_running = False


_drain = _Drain()
retry_look = NowAndThen(RETRY_LOOK_SECONDS)
unknown_send_scan = NowAndThen(UNKNOWN_SEND_SCAN_SECONDS)


def applying() -> bool:
    """Whether this process has events it has not applied yet, or a thread of it is applying
    (their receivers included): the sandbox's ``wait_for_webhooks`` waits for it to end, for a
    server in its process."""
    return _drain.lock.locked() or _drain.burst_thread_running or bool(_drain.waiting)


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
    stored (this one among them, unless None), one batch at most; then, now and then, the
    retries and the unknown sends. What is left (a burst) goes to the process's burst thread.

    The answering thread does one batch and no more because the server runs this before it
    reads the next request of the same keep-alive connection: looping until a burst ends held
    that client's next event for the whole burst, past SendFleet's 5 s."""
    if stored is not None and len(_drain.waiting) < MAX_WAITING:
        _drain.waiting.append(stored)
    if not _drain.lock.acquire(blocking=False):
        # Another thread applies: it looks again after it releases the lock, so it finds
        # this event (appended before this try) or hands it to the burst thread.
        return
    try:
        _apply_batch_of_waiting()
        _look_now_and_then()
    finally:
        _drain.lock.release()
    if _drain.waiting:
        _hand_to_burst_thread()


def _look_now_and_then() -> None:
    if retry_look.due():
        retry_due_events(limit=RETRIES_PER_LOOK)
    if unknown_send_scan.due():
        resolve_and_apply_unknown_sends()


def _hand_to_burst_thread() -> None:
    """Start the process's burst thread, unless it runs (it looks again before it stops)."""
    with _drain.handoff:
        if _drain.burst_thread_running:
            return
        _drain.burst_thread_running = True
    shared = _shared_connections()
    try:
        threading.Thread(
            target=_burst_thread, args=(shared,), name="sendfleet-webhook-burst", daemon=True
        ).start()
    except BaseException:
        with _drain.handoff:
            _drain.burst_thread_running = False
        raise


def _shared_connections() -> dict[str, BaseDatabaseWrapper]:
    """The connections this thread shares with the threads it serves: Django's live server
    shares its test database's (an in-memory SQLite is one connection). The burst thread
    uses them too, as the server's threads do."""
    return {
        connection.alias: connection
        for connection in connections.all(initialized_only=True)
        if connection.allow_thread_sharing
    }


def _burst_thread(shared: dict[str, BaseDatabaseWrapper]) -> None:
    """Apply the waiting events, gathering a batch while they keep coming, until none wait.
    Events it holds when its process exits stay stored and ``pending`` for the retries, as
    when a process dies."""
    for alias, connection in shared.items():
        connections[alias] = connection
    stopped = False
    try:
        while True:
            with _drain.lock:  # the answering threads leave their events to it meanwhile
                _close_unusable_connections(shared)
                try:
                    _apply_waiting()
                    _look_now_and_then()
                except Exception:
                    logger.exception("SendFleet webhook: applying a burst of events failed")
            with _drain.handoff:
                # An answer that appended before this look and found the lock taken returned,
                # counting on this thread: stop only when none waits.
                if not _drain.waiting:
                    _drain.burst_thread_running = False
                    stopped = True
                    return
    finally:
        if not stopped:  # an error out of the loop: the next answer starts another
            with _drain.handoff:
                _drain.burst_thread_running = False
        for connection in connections.all(initialized_only=True):
            if connection.alias not in shared:  # this thread's own: no request_finished here
                connection.close()


def _close_unusable_connections(shared: dict[str, BaseDatabaseWrapper]) -> None:
    """As Django does at each request (``CONN_MAX_AGE``, errors): this thread's own only."""
    for connection in connections.all(initialized_only=True):
        if connection.alias not in shared:
            connection.close_if_unusable_or_obsolete()


def _apply_waiting() -> None:
    _apply_batches()
    while _drain.waiting:
        # Events came while applying: a burst. Let the next batch gather (applied a little
        # later; each was answered as soon as it was stored all the same).
        time.sleep(GATHER_SECONDS)
        _apply_batches()


def _apply_batch_of_waiting() -> None:
    waiting = _drain.waiting
    apply_batch([waiting.popleft() for _ in range(min(BATCH_SIZE, len(waiting)))])


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
