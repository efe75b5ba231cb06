"""Queued sending's task, where task runners look for it: ``django_sendfleet.tasks``.

``send_queued_emails`` is the Django Tasks task (None without Django's Tasks framework);
``send_and_reschedule`` its body, the entry point for other runners (Celery, cron). Both live
in ``queued/tasks.py``; this path stays, so tasks enqueued by an earlier release still run.
"""

from .queued.held import release_held_sends
from .queued.tasks import send_and_reschedule, send_queued_emails

__all__ = ["release_held_sends", "send_and_reschedule", "send_queued_emails"]
