"""The Django task that sends queued email: ``django.tasks`` on Django 6.0+, else the
``django-tasks`` backport. ``send_queued_emails`` is None when neither is installed.
"""

from __future__ import annotations

from typing import Any

try:
    from django.tasks import task
except ImportError:  # Django 5.2
    try:
        from django_tasks import task  # type: ignore[no-redef]
    except ImportError:
        task = None  # type: ignore[assignment]

send_queued_emails: Any = None

if task is not None:

    @task()
    def send_queued_emails(row_ids: list[int]) -> None:
        """Send the outbox rows with these ids (those still pending and due)."""
        from .queue import send_rows

        send_rows(row_ids)
