"""The outbox of queued sending: rows written by ``QueuedEmailBackend`` and their recovery.

``write_rows`` stores a batch's rows (and their messages' content, once per message) in the
caller's transaction and enqueues their task when it commits, so a rolled-back transaction
sends nothing. ``expire_leases`` and ``requeue_pending`` (run by ``sendfleet_requeue``) recover
from dead workers and lost tasks.
"""

from __future__ import annotations

import contextlib
import functools
from datetime import datetime, timedelta

from django.db.models import Q
from django.utils import timezone

from .. import error_table, signals
from ..conf import SendFleetSettings, mailer_options
from ..conf.mailers import QUEUED_BACKEND, backend_class, configured_mailers
from ..db.routing import atomic_for, on_commit_for
from ..exceptions import SendFleetConfigurationError, SendFleetLeaseExpired
from ..message.payloads import message_from_payload
from ..models import MessageContent, SendLog
from ..models.log_status import LogStatus
from ..ratelimit.key_guard import KeyGuard
from ..records import content as message_content
from .tasks import schedule
from .worker import outbox_payload

#: The error codes of rows held while SendFleet refuses the API key.
KEY_HOLD_CODES = ("authentication_failed", "key_refused")


def write_rows(contents: list[MessageContent], rows: list[SendLog], task_backend: str) -> None:
    """Store the rows and new content now; enqueue the task for the pending rows when the
    transaction commits.

    Called for each chunk of a ``send_messages`` call, inside the transaction that
    ``QueuedEmailBackend`` holds for the whole call. Unlike a log of sends already made, the
    outbox must not fail quietly: errors raise. A row scheduled for later (``send_at``: its
    ``not_before``) gets a task deferred until then.
    """
    message_content.insert_with_rows(contents, rows)
    by_due_time: dict[datetime | None, list[int]] = {}
    for row in rows:
        if row.status == LogStatus.PENDING:
            by_due_time.setdefault(row.not_before, []).append(row.pk)
    for due, pending in by_due_time.items():
        on_commit_for(SendLog, functools.partial(schedule, pending, task_backend, when=due))


def expire_leases(now: datetime | None = None) -> int:
    """Mark rows whose worker died mid-send ``unknown``; they are never resent."""
    now = now or timezone.now()
    expired = 0
    spec = error_table.SPECS_BY_CODE["lease_expired"]
    stale = SendLog.objects.filter(status=LogStatus.SENDING, lease_expires_at__lt=now)
    for row in stale.select_related("content"):
        keeps_content = SendFleetSettings(mailer_options(row.mailer)).log_content
        payload = outbox_payload(row, row.content)
        cleared = {} if keeps_content else {"payload": None, "content": None}
        with atomic_for(SendLog):
            changed = SendLog.objects.filter(pk=row.pk, claim_token=row.claim_token).update(
                status=LogStatus.UNKNOWN,
                error_code=spec.code,
                detail=spec.meaning,
                claim_token="",
                lease_expires_at=None,
                updated_at=now,
                **cleared,
            )
            if changed and cleared:
                message_content.release([row.content_id])
        if changed:
            expired += 1
            recipient = payload.get("to") or row.recipient
            signals.send_failed.send_robust(
                backend_class(row.mailer, QUEUED_BACKEND),
                message=message_from_payload(payload) if payload else None,
                recipient=recipient,
                error=SendFleetLeaseExpired(spec.meaning, recipient=recipient),
                mailer=row.mailer,
                tags=list(row.tags),
                metadata=dict(row.metadata),
            )
    return expired


def release_key_holds() -> int:
    """Lift every mailer's API key pause and make the rows held for it due now.

    For ``sendfleet_requeue --key-fixed``: after a 401 the key is not used for a while
    (``key_guard.py``) and queued rows wait; once the key works again, they need not.
    """
    for alias in configured_mailers():
        settings = SendFleetSettings(mailer_options(alias))
        with contextlib.suppress(SendFleetConfigurationError):
            KeyGuard.for_settings(settings).clear()
    return SendLog.objects.filter(
        status=LogStatus.PENDING, error_code__in=KEY_HOLD_CODES, not_before__isnull=False
    ).update(not_before=timezone.now(), updated_at=timezone.now())


def requeue_pending(older_than: timedelta) -> int:
    """Enqueue tasks for due ``pending`` rows whose task was lost. Safe to repeat: claims are
    exclusive, so a row enqueued twice is still sent once."""
    now = timezone.now()
    due = (
        SendLog.objects.filter(status=LogStatus.PENDING, updated_at__lte=now - older_than)
        .filter(Q(not_before__isnull=True) | Q(not_before__lte=now))
        .order_by("pk")
        .values_list("pk", "mailer")
    )
    backend_of_mailer: dict[str, str] = {}
    by_backend: dict[str, list[int]] = {}
    for row_id, mailer in due:
        if mailer not in backend_of_mailer:
            backend_of_mailer[mailer] = SendFleetSettings(mailer_options(mailer)).task_backend
        by_backend.setdefault(backend_of_mailer[mailer], []).append(row_id)
    for task_backend, ids in by_backend.items():
        schedule(ids, task_backend)
    return sum(len(ids) for ids in by_backend.values())
