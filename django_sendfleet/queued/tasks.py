"""Queued sending on Django's Tasks framework: the task, and scheduling it.

``django.tasks`` on Django 6.0+, else the ``django-tasks`` backport; ``send_queued_emails`` is
None when neither is installed. The task runs the worker (``worker.py``) and schedules a
deferred task for every row the worker gave back to the outbox (a retry, a hold).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from ..exceptions import SendFleetConfigurationError
from . import worker

try:
    from django.tasks import task
except ImportError:  # Django 5.2
    try:
        from django_tasks import task  # type: ignore[no-redef]
    except ImportError:
        task = None  # type: ignore[assignment]

logger = logging.getLogger("django_sendfleet")

#: How many row ids one task carries (requeue and big batches are split).
TASK_CHUNK = 100

send_queued_emails: Any = None

if task is not None:

    @task()
    def send_queued_emails(row_ids: list[int]) -> None:
        """Send the outbox rows with these ids (those still pending and due)."""
        send_and_reschedule(row_ids)


def send_and_reschedule(row_ids: Sequence[int]) -> None:
    """The task's body, also the entry point for other task runners (Celery, cron)."""
    for later in worker.send_rows(row_ids):
        schedule(later.row_ids, later.task_backend, when=later.when)


def require_tasks() -> None:
    if send_queued_emails is None:
        raise SendFleetConfigurationError(
            "QueuedEmailBackend needs Django's Tasks framework: Django 6.0+, or on Django 5.2 "
            "the backport (pip install 'django-sendfleet[queue]' and add 'django_tasks' to "
            "INSTALLED_APPS), with a TASKS setting."
        )


def schedule(row_ids: Sequence[int], task_backend: str, when: datetime | None = None) -> None:
    """Enqueue the task for these rows now, or at ``when`` where the task backend can defer.

    Never raises: rows whose task could not be enqueued stay ``pending`` and
    ``sendfleet_requeue`` (run it from cron) sends them.
    """
    require_tasks()
    try:
        queued_task = send_queued_emails.using(backend=task_backend)
        if when is not None:
            if not queued_task.get_backend().supports_defer:
                return  # due rows are picked up by sendfleet_requeue
            queued_task = queued_task.using(run_after=when)
        for start in range(0, len(row_ids), TASK_CHUNK):
            queued_task.enqueue(list(row_ids[start : start + TASK_CHUNK]))
    except Exception:
        logger.exception("SendFleet could not enqueue the task for %d rows", len(row_ids))
