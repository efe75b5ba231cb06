"""Waiting for SQLite's write lock without falling behind the writers that came later.

SQLite's own wait (its busy handler, which Django's ``timeout`` option sets) sleeps longer and
longer between tries: 1, 2, 5, 10, 15, 20, 25 ... then 100 ms. Under a burst of webhook events
a writer that has waited a while sleeps through the moments the lock is free, and writers that
came later take it first: in a burst of 1,000 events from 32 clients some answers waited
seconds. ``trying_often`` makes each try give up after about a millisecond, so its caller's
loop tries again at once, as often as the lock comes free; and the threads of one process take
turns (a lock of their own) instead of all trying, so that only one per process spends CPU on
it. Other databases are unaffected.
"""

from __future__ import annotations

import threading
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager

from django.db import DEFAULT_DB_ALIAS, connections

#: How long one try waits for the lock, in milliseconds.
TRY_MILLISECONDS = 1

_turns: defaultdict[str, threading.Lock] = defaultdict(threading.Lock)


@contextmanager
def trying_often(using: str = DEFAULT_DB_ALIAS) -> Iterator[None]:
    """Within the block, a write that finds SQLite's lock taken fails after about a
    millisecond (``OperationalError``: "database is locked"), for the caller to try again."""
    connection = connections[using]
    if connection.vendor != "sqlite":
        yield
        return
    with _turns[using]:
        with connection.cursor() as cursor:
            cursor.execute("PRAGMA busy_timeout")
            previous = int(cursor.fetchone()[0])
            cursor.execute(f"PRAGMA busy_timeout = {TRY_MILLISECONDS}")
        try:
            yield
        finally:
            with connection.cursor() as cursor:
                cursor.execute(f"PRAGMA busy_timeout = {previous}")
