"""Storing a verified webhook body: every one is kept, and committed before it is acknowledged.

Why: docs/internals.md#webhooks-storing-every-verified-body
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from django.db import (
    DatabaseError,
    IntegrityError,
    OperationalError,
    connections,
    router,
    transaction,
)
from django.utils import timezone

from ..db import bulk_insert
from ..db.routing import atomic_for
from ..db.sqlite_lock import trying_often
from ..message.addresses import MAX_ADDRESS_LENGTH
from ..models import SendLog, WebhookEvent
from ..tracking import TrackingEvent, normalise, raw_event_type
from .accounts import bound_to
from .body import column_text, escape_body, is_storable_text, parse_body, unescape_body

logger = logging.getLogger("django_sendfleet")

#: How long storing an event keeps trying while the database is locked.
STORE_PATIENCE_SECONDS = 20.0
#: How long an event's own processing (after the answer) may take before the retries take it.
PROCESSING_LEASE = timedelta(seconds=60)
_MESSAGE_ID_LENGTH = SendLog._meta.get_field("message_id").max_length or 100
_DETAIL_LENGTH = WebhookEvent._meta.get_field("detail").max_length or 500

Outcome = WebhookEvent.Outcome


def digest_of(body: bytes) -> str:
    """What recognises the same delivery arriving again, even after the event is pruned."""
    return hashlib.sha256(body).hexdigest()


def store_event(
    body: bytes, *, max_age: timedelta | None, mailers: frozenset[str] | None = None
) -> WebhookEvent | None:
    """Store a verified body, committed; None if the same body was stored before.
    ``mailers``: those the signing account's events may touch (None: every mailer)."""
    digest = digest_of(body)
    now = timezone.now()
    using = router.db_for_write(WebhookEvent)
    bound = bound_to(mailers)
    event = WebhookEvent(digest=digest, mailers=bound, **_fields(body, max_age, now))
    insert = _insert(event, using)
    started = time.monotonic()
    warned = False
    tries = 0
    with trying_often(using):
        while True:
            try:
                return insert()
            except IntegrityError as error:
                if WebhookEvent.objects.filter(digest=digest).exists():
                    return None
                failure: DatabaseError = error
            except OperationalError as error:
                # Another writer holds a lock: try again. Past SendFleet's 5 s the answer is
                # lost, but the event is still worth keeping. Any other operational error (a
                # missing table, a refused connection) would fail the same way every time:
                # it is raised at once, for the 500 it deserves.
                waited = time.monotonic() - started
                if _is_lock_error(error, using) and waited < STORE_PATIENCE_SECONDS:
                    if waited > 1 and not warned:
                        logger.warning("SendFleet webhook event not stored yet: %r", error)
                        warned = True
                    _pause_before_retry(using, tries)
                    tries += 1
                    continue
                raise
            except DatabaseError as error:
                failure = error
            break
    # The database refused a value of the event this code did not foresee: keep the body
    # itself, and read it again when the event is retried.
    logger.error("SendFleet webhook event stored as received only: %r", failure)
    with atomic_for(WebhookEvent):
        return WebhookEvent.objects.create(
            digest=digest,
            mailers=bound,
            received_at=now,
            raw_body=escape_body(body),
            outcome=Outcome.FAILED,
            next_attempt_at=now,
            detail=column_text(f"stored as received: {failure!r}", _DETAIL_LENGTH),
        )


#: PostgreSQL's SQLSTATEs for a lock another transaction holds: lock_not_available,
#: serialization_failure, deadlock_detected.
_POSTGRES_LOCK_STATES = frozenset({"55P03", "40001", "40P01"})
#: The pause between tries on databases other than SQLite, growing to the last.
_PAUSES_SECONDS = (0.005, 0.01, 0.02, 0.05, 0.1)


def _is_lock_error(error: OperationalError, using: str) -> bool:
    """Whether the error says another writer holds a lock (worth trying again)."""
    cause = error.__cause__
    if connections[using].vendor == "sqlite":
        name = getattr(cause, "sqlite_errorname", "")  # Python 3.11+
        if name:
            return name.startswith(("SQLITE_BUSY", "SQLITE_LOCKED"))
        return "locked" in str(error)  # "database is locked", "database table is locked"
    state = getattr(cause, "sqlstate", None) or getattr(cause, "pgcode", None)
    return state in _POSTGRES_LOCK_STATES


def _pause_before_retry(using: str, tries: int) -> None:
    """On SQLite the failed try has already waited its millisecond for the lock
    (``trying_often``): trying again at once takes the lock as soon as it is free. Elsewhere
    a lock error comes back at once, so wait a little longer each time."""
    if connections[using].vendor != "sqlite":
        time.sleep(_PAUSES_SECONDS[min(tries, len(_PAUSES_SECONDS) - 1)])


def _insert(event: WebhookEvent, using: str) -> Callable[[], WebhookEvent]:
    """What inserts the event, committed when it returns. Its values are converted and its
    statement built once: on SQLite the caller may run it many times before the lock lets it,
    and building it costs more than running it."""
    prepared = bulk_insert.prepare([event], using)

    def run() -> WebhookEvent:
        if prepared is None:
            event.save(force_insert=True, using=using)
        else:
            prepared.run()
        return event

    def insert() -> WebhookEvent:
        if connections[using].in_atomic_block:
            # Inside the caller's transaction: a savepoint keeps it usable after an error.
            with transaction.atomic(using=using):
                return run()
        # One statement, its own transaction: SQLite holds its write lock only while the
        # statement runs, in one call that never waits for Python's GIL (a BEGIN ... COMMIT
        # would, between its statements, behind the process's other threads, with the lock held).
        return run()

    return insert


def finish_storing(stored: WebhookEvent, *, max_age: timedelta | None) -> None:
    """Fill in the fields of an event ``store_event`` could only keep as received (it has no
    ``event_type`` yet). A database error other than a passing one (a lock) marks it
    unprocessable, with the error: it would fail again every time."""
    fields = _fields(unescape_body(stored.raw_body), max_age, stored.received_at)
    if fields["outcome"] == Outcome.PENDING:
        fields["outcome"] = stored.outcome  # processing goes on under the caller's claim
    if "raw" in fields:
        fields["raw_body"] = ""
    try:
        with atomic_for(WebhookEvent):
            WebhookEvent.objects.filter(pk=stored.pk).update(**fields)
    except OperationalError:
        raise
    except DatabaseError as error:
        WebhookEvent.objects.filter(pk=stored.pk).update(
            outcome=Outcome.UNPROCESSABLE,
            detail=column_text(f"could not be stored as an event: {error!r}", _DETAIL_LENGTH),
        )
        return
    for name, value in fields.items():
        setattr(stored, name, value)


def _fields(body: bytes, max_age: timedelta | None, now: datetime) -> dict[str, Any]:
    received = parse_body(body)
    fields: dict[str, Any] = {"received_at": now}
    if received.storable_as_json:
        fields["raw"] = received.event
    else:
        fields["raw_body"] = escape_body(body)
    problem, event = received.problem, None
    if received.event is not None:
        raw_type = raw_event_type(received.event)
        if raw_type is None:
            problem = "the signed body has no event_type"
        else:
            fields["event_type"] = column_text(raw_type, 64)
            event = normalise(received.event, raw_type)
            fields |= _event_fields(event)
            problem = _identity_problem(event)
    if event is None or problem:
        return fields | {"outcome": Outcome.UNPROCESSABLE, "detail": problem}
    if max_age is not None and _signed_before(event.timestamp, now - max_age):
        detail = f"signed at {event.timestamp}, longer ago than WEBHOOK_MAX_AGE"
        return fields | {"outcome": Outcome.TOO_OLD, "detail": column_text(detail, _DETAIL_LENGTH)}
    return fields | {"outcome": Outcome.PENDING, "next_attempt_at": now + PROCESSING_LEASE}


def _event_fields(event: TrackingEvent) -> dict[str, Any]:
    sender = event.sender or ""
    if not (is_storable_text(sender) and len(sender) <= MAX_ADDRESS_LENGTH):
        sender = ""  # only used to resolve unknown sends: without it, none is resolved
    return {
        "message_id": column_text(event.message_id or "", _MESSAGE_ID_LENGTH),
        "recipient": column_text(event.recipient or "", MAX_ADDRESS_LENGTH),
        "sender": sender,
        "signed_at": _utc(event.timestamp),
    }


def _identity_problem(event: TrackingEvent) -> str:
    """Why the event cannot be about any send of ours ("" if it can be)."""
    for name, value, limit in (
        ("message_id", event.message_id, _MESSAGE_ID_LENGTH),
        ("recipient", event.recipient, MAX_ADDRESS_LENGTH),
    ):
        if value is None:
            continue
        if not is_storable_text(value):
            return f"its {name} holds a NUL character or a lone surrogate"
        if len(value) > limit:
            return f"its {name} is longer than {limit} characters"
    return ""


def _signed_before(moment: datetime | None, cutoff: datetime) -> bool:
    if moment is None:
        return False  # the body has no time: only its digest recognises a replay
    try:
        return moment < cutoff
    except (OverflowError, ValueError):
        return True  # no time a clock can show is recent


def _utc(moment: datetime | None) -> datetime | None:
    """The event's time in UTC, or None when it is not one a database column can hold."""
    if moment is None:
        return None
    try:
        moment = moment.astimezone(UTC)
    except (OverflowError, ValueError):
        return None
    return moment if 1900 <= moment.year <= 9000 else None
