"""Writes that record what already happened, made so the caller's rollback cannot undo them.

Why: docs/internals.md#db-writes-a-rollback-cannot-undo
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import TypeVar

from django.db import DEFAULT_DB_ALIAS, connections, transaction

logger = logging.getLogger("django_sendfleet")

T = TypeVar("T")

#: How long the separate connection waits for a row lock before giving up.
LOCK_TIMEOUT_SECONDS = 2


def in_callers_transaction(using: str = DEFAULT_DB_ALIAS) -> bool:
    """Whether the caller has a transaction open, outside Django's ``TestCase``.

    Under a ``TestCase`` every write must stay in its transaction, or it would outlive the test.
    """
    connection = connections[using]
    return connection.in_atomic_block and not any(
        getattr(block, "_from_testcase", False) for block in connection.atomic_blocks
    )


def outside_the_callers_transaction(work: Callable[[], T], using: str = DEFAULT_DB_ALIAS) -> T:
    """Run ``work`` (database writes) so that they commit now; see the module's docstring."""
    if connections[using].vendor == "sqlite" or not in_callers_transaction(using):
        return work()
    outcome: dict[str, object] = {}

    def run() -> None:
        connection = connections[using]
        try:
            _bound_lock_waits(using)
            with transaction.atomic(using=using):
                outcome["value"] = work()
        except Exception as error:
            outcome["error"] = error
        finally:
            connection.close()

    thread = threading.Thread(target=run, name="sendfleet-record", daemon=True)
    thread.start()
    thread.join()
    if "error" in outcome:
        error = outcome["error"]
        logger.warning(
            "SendFleet could not record outside the caller's transaction (%s: %s); recording "
            "inside it, so a rollback would remove the record",
            type(error).__name__,
            error,
        )
        return work()
    return outcome["value"]  # type: ignore[return-value]


def _bound_lock_waits(using: str) -> None:
    connection = connections[using]
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(f"SET lock_timeout = '{LOCK_TIMEOUT_SECONDS}s'")
        elif connection.vendor == "mysql":
            cursor.execute(f"SET SESSION innodb_lock_wait_timeout = {LOCK_TIMEOUT_SECONDS}")
