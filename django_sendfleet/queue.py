"""The worker side of queued sending: claim outbox rows, send them, record what happened.

Rows are written by ``QueuedEmailBackend`` with status ``pending``. A task (``tasks.py``)
claims each row with ``select_for_update(skip_locked=True)`` and a conditional update that
gives it a unique claim token and a lease, so no two workers ever send the same row. A worker
killed mid-send leaves a row ``sending`` whose lease expires: ``sendfleet_requeue`` marks it
``unknown`` (it may have been sent; the API has no idempotency key) and never resends it.

Retries follow the error table, but instead of sleeping in the worker a retryable failure puts
the row back to ``pending`` with ``not_before`` and schedules a deferred task; the row's
``attempts`` carries the count across runs. Quota exhaustion holds rows until the 1st of next
month (UTC). Non-retryable errors fail the row and fire the signals.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from django.core.mail.backends.base import BaseEmailBackend
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from . import error_table, signals
from .batch import BatchGuard
from .client import Accepted, SendFleetClient
from .conf import SendFleetSettings, mailer_options
from .exceptions import (
    SendFleetConfigurationError,
    SendFleetError,
    SendFleetLeaseExpired,
    SendFleetRateLimitWait,
    SendFleetRecipientSuppressed,
    SendFleetUsageLimitExceeded,
)
from .failures import handle_failure
from .log import stored_detail
from .models import SendLog
from .outcome import QUEUED, REJECTED, RecipientStatus, SendStatus
from .payloads import message_from_payload
from .ratelimit import SlidingWindowLimiter
from .status import LogStatus, log_status_for
from .suppressions import count_stopped_sends, suppressed_among

logger = logging.getLogger("django_sendfleet")

#: How many row ids one task carries (requeue and big batches are split).
TASK_CHUNK = 100


class QueueWorker(BaseEmailBackend):
    """The ``sender`` of signals fired for queued sends."""


def require_tasks() -> None:
    from .tasks import send_queued_emails

    if send_queued_emails is None:
        raise SendFleetConfigurationError(
            "QueuedEmailBackend needs Django's Tasks framework: Django 6.0+, or on Django 5.2 "
            "the backport (pip install 'django-sendfleet[queue]' and add 'django_tasks' to "
            "INSTALLED_APPS), with a TASKS setting."
        )


def schedule(
    row_ids: Sequence[int], settings: SendFleetSettings, when: datetime | None = None
) -> None:
    """Enqueue the task for these rows now, or at ``when`` where the task backend can defer.

    Never raises: rows whose task could not be enqueued stay ``pending`` and
    ``sendfleet_requeue`` (run it from cron) sends them.
    """
    from .tasks import send_queued_emails

    assert send_queued_emails is not None
    try:
        task = send_queued_emails.using(backend=settings.task_backend)
        if when is not None:
            if not task.get_backend().supports_defer:
                return  # due rows are picked up by sendfleet_requeue
            task = task.using(run_after=when)
        for start in range(0, len(row_ids), TASK_CHUNK):
            task.enqueue(list(row_ids[start : start + TASK_CHUNK]))
    except Exception:
        logger.exception("SendFleet could not enqueue the task for %d rows", len(row_ids))


def send_rows(row_ids: Iterable[int]) -> None:
    """The task's body: send every claimable row among these ids."""
    rows_by_mailer: dict[str, list[int]] = {}
    for row_id, mailer in SendLog.objects.filter(pk__in=list(row_ids)).values_list("pk", "mailer"):
        rows_by_mailer.setdefault(mailer, []).append(row_id)
    for mailer, ids in rows_by_mailer.items():
        _Sender(mailer).send(sorted(ids))


def expire_leases(now: datetime | None = None) -> int:
    """Mark rows whose worker died mid-send ``unknown``; they are never resent."""
    now = now or timezone.now()
    expired = 0
    stale = SendLog.objects.filter(status=LogStatus.SENDING, lease_expires_at__lt=now)
    for row in stale:
        spec = error_table.SPECS_BY_CODE["lease_expired"]
        changed = SendLog.objects.filter(pk=row.pk, claim_token=row.claim_token).update(
            status=LogStatus.UNKNOWN,
            error_code=spec.code,
            detail=spec.meaning,
            claim_token="",
            lease_expires_at=None,
            payload=None if not _keeps_content(row.mailer) else row.payload,
            updated_at=now,
        )
        if changed:
            expired += 1
            error = SendFleetLeaseExpired(spec.meaning, recipient=row.recipient)
            signals.send_failed.send_robust(
                QueueWorker,
                message=message_from_payload(row.payload) if row.payload else None,
                recipient=row.recipient,
                error=error,
            )
    return expired


def requeue_pending(settings: SendFleetSettings, older_than: timedelta) -> int:
    """Enqueue tasks for due ``pending`` rows whose task was lost. Safe to repeat: claims are
    exclusive, so a row enqueued twice is still sent once."""
    now = timezone.now()
    due = (
        SendLog.objects.filter(status=LogStatus.PENDING, updated_at__lte=now - older_than)
        .filter(Q(not_before__isnull=True) | Q(not_before__lte=now))
        .order_by("pk")
        .values_list("pk", flat=True)
    )
    ids = list(due)
    if ids:
        schedule(ids, settings)
    return len(ids)


def claim(row_id: int, lease_seconds: int) -> SendLog | None:
    """Take a due pending row for this worker, or None if it is not there to take."""
    token = uuid.uuid4().hex
    now = timezone.now()
    due = Q(not_before__isnull=True) | Q(not_before__lte=now)
    with transaction.atomic():
        # skip_locked: a row another worker is claiming right now is simply not ours.
        locked = (
            SendLog.objects.select_for_update(skip_locked=True)
            .filter(due, pk=row_id, status=LogStatus.PENDING)
            .values_list("pk", flat=True)
        )
        if not list(locked):
            return None
        # The conditional update is the claim itself, so it holds even where the database
        # ignores select_for_update (SQLite).
        claimed = SendLog.objects.filter(due, pk=row_id, status=LogStatus.PENDING).update(
            status=LogStatus.SENDING,
            claim_token=token,
            lease_expires_at=now + timedelta(seconds=lease_seconds),
            updated_at=now,
        )
    if not claimed:
        return None
    return SendLog.objects.get(pk=row_id, claim_token=token)


def _keeps_content(mailer: str) -> bool:
    return SendFleetSettings(mailer_options(mailer)).log_content


def _start_of_next_month(now: datetime) -> datetime:
    now = now.astimezone(UTC)
    year, month = (now.year + 1, 1) if now.month == 12 else (now.year, now.month + 1)
    return datetime(year, month, 1, tzinfo=UTC)


@dataclass
class _Retry:
    """Put the row back to pending until ``when``."""

    when: datetime
    reason: str


class _Sender:
    """Sends the rows of one mailer, one claimed row at a time."""

    def __init__(self, mailer: str) -> None:
        self.mailer = mailer
        self.settings = SendFleetSettings(mailer_options(mailer))
        self.guard = BatchGuard()
        self.limiter = SlidingWindowLimiter.for_settings(self.settings)
        self.later: list[tuple[int, datetime]] = []

    def send(self, row_ids: list[int]) -> None:
        settings = self.settings
        client = SendFleetClient(
            api_url=settings.api_url,
            api_key=settings.api_key,
            timeout=settings.timeout,
            max_retry_wait=0,  # no sleeping in the worker: retries are rescheduled
        )
        client.open()
        try:
            for row_id in row_ids:
                row = claim(row_id, settings.lease_seconds)
                if row is not None:
                    self._send_row(row, client)
        finally:
            client.close()
        for when in sorted({when for _, when in self.later}):
            ids = [row_id for row_id, at in self.later if at == when]
            schedule(ids, settings, when=when)

    def _send_row(self, row: SendLog, client: SendFleetClient) -> None:
        payload: dict[str, Any] = row.payload or {}
        domain = row.from_email.rpartition("@")[2].lower()
        # The payload holds the address as it will be sent; the log column may be shortened.
        recipient = payload.get("to") or row.recipient
        if self.settings.check_suppressions and suppressed_among([recipient]):
            count_stopped_sends([recipient])
            error: SendFleetError = SendFleetRecipientSuppressed(
                "On the local suppression list: not sent.", recipient=recipient
            )
            self._finish(row, RecipientStatus(REJECTED, error=error), payload)
            return
        blocker = self.guard.blocker(domain)
        if blocker is not None:
            self._after_error(row, blocker, payload, attempted=False)
            return
        if self.limiter is not None:
            try:
                self.limiter.acquire(self.settings.max_retry_wait)
            except SendFleetRateLimitWait as wait:
                # Not an attempt: nothing was sent. Come back when a slot is free.
                when = timezone.now() + timedelta(seconds=wait.retry_after)
                self._release(row, _Retry(when, "waiting for the shared rate limit"), wait)
                return
        started = timezone.now()
        try:
            accepted = client.attempt(payload, attempt=row.attempts + 1)
        except SendFleetError as error:
            row.attempts += 1
            error.attempts = row.attempts
            row.duration_ms = _elapsed_ms(started)
            self.guard.record(error, domain)
            self._after_error(row, error, payload, attempted=True)
            return
        row.attempts += 1
        row.duration_ms = _elapsed_ms(started)
        self._finish(row, _queued(accepted, row.attempts), payload)

    def _after_error(
        self, row: SendLog, error: SendFleetError, payload: dict[str, Any], attempted: bool
    ) -> None:
        retry = self._retry_for(error, row) if attempted or _holds(error) else None
        if retry is None:
            spec = error_table.spec_for_error(error)
            result = RecipientStatus(spec.recipient_status, error=error, attempts=row.attempts)
            self._finish(row, result, payload)
            return
        self._release(row, retry, error)

    def _release(self, row: SendLog, retry: _Retry, error: SendFleetError) -> None:
        """Give the row back to the outbox until ``retry.when``, and schedule a task then."""
        SendLog.objects.filter(pk=row.pk, claim_token=row.claim_token).update(
            status=LogStatus.PENDING,
            not_before=retry.when,
            attempts=row.attempts,
            http_status=error.status_code,
            error_code=error.error_code or "",
            detail=stored_detail(f"{retry.reason}: {error.detail}", self.settings.secrets),
            claim_token="",
            lease_expires_at=None,
            updated_at=timezone.now(),
        )
        self.later.append((row.pk, retry.when))
        logger.info("SendFleet queued send to %s %s", row.recipient, retry.reason)

    def _retry_for(self, error: SendFleetError, row: SendLog) -> _Retry | None:
        now = timezone.now()
        if _holds(error):
            return _Retry(_start_of_next_month(now), "held until the monthly quota resets")
        wait = error_table.retry_wait(error, row.attempts)
        if wait is None:
            return None
        return _Retry(now + timedelta(seconds=wait), f"retry {row.attempts} in {wait:.1f} s")

    def _finish(self, row: SendLog, result: RecipientStatus, payload: dict[str, Any]) -> None:
        error = result.error
        keep_content = self.settings.log_content
        fields: dict[str, Any] = {
            "status": log_status_for(result.status),
            "message_id": result.message_id or "",
            "mode": result.mode or "",
            "warnings": result.warnings,
            "attempts": row.attempts,
            "duration_ms": row.duration_ms,
            "http_status": (error.status_code if error else 200) if row.attempts else None,
            "error_code": (error.error_code or "") if error else "",
            "detail": stored_detail(error.detail, self.settings.secrets) if error else "",
            "payload": payload if keep_content else None,
            "claim_token": "",
            "lease_expires_at": None,
            "not_before": None,
            "updated_at": timezone.now(),
        }
        SendLog.objects.filter(pk=row.pk, claim_token=row.claim_token).update(**fields)
        message = message_from_payload(payload) if payload else None
        if error is not None:
            handle_failure(
                QueueWorker,
                message,
                payload.get("to") or row.recipient,
                error,
                row.from_email.rpartition("@")[2],
            )
        status = SendStatus()
        status.record(row.recipient, result)
        signals.post_send.send_robust(QueueWorker, message=message, status=status)
        logger.info(
            "SendFleet queued send to %s %s: message_id=%s attempts=%d",
            row.recipient,
            result.status,
            result.message_id,
            row.attempts,
        )


def _holds(error: SendFleetError) -> bool:
    """Quota exhaustion is not a failure of the message: hold it until the quota resets."""
    return isinstance(error, SendFleetUsageLimitExceeded)


def _queued(accepted: Accepted, attempts: int) -> RecipientStatus:
    return RecipientStatus(
        QUEUED,
        message_id=accepted.message_id,
        attempts=attempts,
        mode=accepted.mode,
        warnings=accepted.warnings,
        esp_response=accepted.response,
    )


def _elapsed_ms(started: datetime) -> int:
    return round((timezone.now() - started).total_seconds() * 1000)
