"""The reputation levels as every process sees them: stored, changed once, and announced.

Why: docs/internals.md#reputation-levels-stored-changed-once-announced
"""

from __future__ import annotations

import logging
import threading
import time
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from datetime import datetime

from django.db import DatabaseError, transaction
from django.utils import timezone

from .. import signals
from ..conf import SendFleetSettings
from ..conf.mailers import backend_class
from ..db.durable import outside_the_callers_transaction
from ..db.routing import atomic_for, db_for
from ..models import ReputationLevel
from . import rates as reputation
from .levels import DANGER, UNKNOWN, WARNING, rank
from .rates import Rates, Snapshot, percent

logger = logging.getLogger("django_sendfleet")

#: How old this process's figures may be when it sends.
REFRESH_SECONDS = 10.0
#: After a failed refresh (the database away), how long sends go unguarded before the next try.
RETRY_AFTER_FAILURE_SECONDS = 30.0


Scope = tuple[str, str]  # (mode, mailer): mailer "" for the account mode


@dataclass(frozen=True)
class Change:
    scope: Scope
    previous: str
    level: str
    rates: Rates | None
    #: No row stores this scope's level yet.
    new: bool = False


@dataclass(frozen=True)
class Current:
    """The figures of one refresh, and what the stored levels said then."""

    snapshot: Snapshot
    #: Account modes whose danger an operator released.
    released: frozenset[str]
    #: ``time.monotonic()`` of the refresh.
    taken: float


_current: Current | None = None
_failed_at: float | None = None
_refreshing = threading.RLock()  # re-entrant: a receiver may ask for the figures


def current(max_age: float = REFRESH_SECONDS) -> Current | None:
    """This process's figures, refreshed (and changes announced) when older than ``max_age``.

    None when they cannot be read (the database is away): the guard then holds nothing.
    """
    seen = _current
    if _fresh(seen, max_age) or _failed_recently():
        return seen
    # One thread refreshes; the others go on with what they have, if anything.
    if not _refreshing.acquire(blocking=seen is None):
        return seen
    try:
        seen = _current
        return seen if _fresh(seen, max_age) else _refresh()
    finally:
        _refreshing.release()


def check_now() -> Current | None:
    """Refresh now, whatever this process's figures' age: for operators and tests."""
    with _refreshing:
        return _refresh()


def forget() -> None:
    """Drop this process's figures (tests; after a release)."""
    global _current, _failed_at
    _current = _failed_at = None


def _fresh(seen: Current | None, max_age: float) -> bool:
    return seen is not None and time.monotonic() - seen.taken < max_age


def _failed_recently() -> bool:
    failed_at = _failed_at
    return failed_at is not None and time.monotonic() - failed_at < RETRY_AFTER_FAILURE_SECONDS


def _refresh() -> Current | None:
    global _current, _failed_at
    settings = SendFleetSettings()
    try:
        with savepoint_in_callers_transaction():
            stored = {(row.mode, row.mailer): row for row in ReputationLevel.objects.all()}
            snapshot = reputation.compute(settings.reputation, bool(settings.webhook_secrets))
        differing = differences(stored, snapshot)
        # Written only when a level differs: most refreshes write nothing.
        changes = (
            outside_the_callers_transaction(
                lambda: record(differing), using=db_for(ReputationLevel)
            )
            if differing
            else []
        )
    except Exception as error:
        # The figures are an aid: failing to read them must never stop or break a send.
        _failed_at = time.monotonic()
        logger.log(
            logging.WARNING if isinstance(error, DatabaseError) else logging.ERROR,
            "SendFleet could not read the reputation levels (%s: %s); bulk mailers are not "
            "guarded until it can",
            type(error).__name__,
            error,
            exc_info=not isinstance(error, DatabaseError),
        )
        return _current
    released = frozenset(
        mode for (mode, mailer), row in stored.items() if not mailer and row.released
    )
    _current = Current(snapshot, released, time.monotonic())
    _failed_at = None
    for change in changes:
        announce(change)
    return _current


def savepoint_in_callers_transaction() -> AbstractContextManager[object]:
    """A savepoint where the caller has a transaction open, so that a failed read cannot break
    it; nothing otherwise (``atomic()`` would make SQLite's IMMEDIATE mode take the write lock
    for a read)."""
    using = db_for(ReputationLevel)
    in_transaction = transaction.get_connection(using).in_atomic_block
    return transaction.atomic(using=using) if in_transaction else nullcontext()


def scopes_of(snapshot: Snapshot) -> dict[Scope, Rates]:
    return {(mode, ""): rates for mode, rates in snapshot.accounts.items()} | {
        (mode, mailer): rates for (mode, mailer), rates in snapshot.mailers.items()
    }


def differences(stored: dict[Scope, ReputationLevel], snapshot: Snapshot) -> list[Change]:
    """The levels that differ from ``stored`` (read before the snapshot was computed). A scope
    no longer in the window becomes unknown."""
    rates_by_scope = scopes_of(snapshot)
    found = []
    for scope in sorted(stored.keys() | rates_by_scope.keys()):
        rates = rates_by_scope.get(scope)
        level = rates.level if rates is not None else UNKNOWN
        previous = stored[scope].level if scope in stored else UNKNOWN
        if level != previous:
            found.append(Change(scope, previous, level, rates, new=scope not in stored))
    return found


def record(differing: list[Change]) -> list[Change]:
    """Store these levels; return the changes this process made (another may have made some)."""
    now = timezone.now()
    made = []
    with atomic_for(ReputationLevel):  # a savepoint, where the caller has a transaction
        for change in differing:
            mode, mailer = change.scope
            if change.new:
                # Another process may create it first: then its level decides below.
                ReputationLevel.objects.bulk_create(
                    [ReputationLevel(mode=mode, mailer=mailer, level=UNKNOWN, changed_at=now)],
                    ignore_conflicts=True,
                )
            # The compare-and-set: of the processes that read ``previous``, one changes it.
            rows = ReputationLevel.objects.filter(mode=mode, mailer=mailer, level=change.previous)
            if rows.update(level=change.level, changed_at=now):
                made.append(change)
    return made


def announce(change: Change) -> None:
    """The signal and the log line for one change, made once across processes."""
    mode, mailer = change.scope
    signals.reputation_changed.send_robust(
        backend_class(mailer),
        mode=mode,
        mailer=mailer or None,
        level=change.level,
        previous=change.previous,
        rates=change.rates,
    )
    rates = change.rates
    figures = (
        f"bounce rate {percent(rates.bounce.value)}, complaint rate "
        f"{percent(rates.complaint.value)} over {rates.counts.sends} sends"
        if rates is not None
        else "no sends in the window"
    )
    worse = rank(change.level) > rank(change.previous) and change.level in (WARNING, DANGER)
    logger.log(
        logging.WARNING if worse else logging.INFO,
        "SendFleet reputation of %s %s: %s -> %s (%s, last %d days)%s",
        mode,
        f"mailer {mailer!r}" if mailer else "account",
        change.previous,
        change.level,
        figures,
        reputation.WINDOW_DAYS,
        "; bulk mailers are held" if change.level == DANGER and not mailer else "",
    )


def release(now: datetime | None = None) -> list[str]:
    """An operator releases the held sends: each account mode now at danger is released
    until its level next changes. Returns those modes."""
    now = now or timezone.now()
    rows = ReputationLevel.objects.filter(mailer="", level=DANGER)
    modes = sorted(rows.values_list("mode", flat=True))
    rows.update(released_at=now)
    forget()
    return modes


def held_modes(modes: set[str]) -> set[str]:
    """Of these account modes, those the stored levels say hold bulk sends now: a direct read,
    so that a release or a fall seen by another process counts at once."""
    rows = ReputationLevel.objects.filter(mailer="", mode__in=modes, level=DANGER)
    return {row.mode for row in rows if not row.released}
