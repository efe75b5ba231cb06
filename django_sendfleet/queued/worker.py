"""The worker side of queued sending: claim outbox rows, send them, record what happened.

Why: docs/internals.md#queued-claiming-and-sending-outbox-rows
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.db.models import Q
from django.utils import timezone

from .. import signals
from ..api.client import SendFleetClient
from ..conf import SendFleetSettings, mailer_options
from ..conf.mailers import QUEUED_BACKEND, backend_class
from ..db.routing import atomic_for
from ..message import payloads
from ..message.addresses import domain_of
from ..message.payloads import Content, message_from_payload
from ..message.priority import PRIORITIES, RANKS, name_of
from ..models import MessageContent, SendLog
from ..models.log_status import LogStatus
from ..outcome import RecipientStatus, SendStatus
from ..ratelimit import SlidingWindowLimiter
from ..ratelimit.key_guard import KeyGuard
from ..records import content as message_content
from ..records.send_log import outcome_fields, stored_detail
from ..reputation.guard import ReputationGuard
from ..sending.recipient import (
    Deferred,
    RecipientSender,
    SuppressionCheck,
    finish_recipient,
)
from ..sending.retry import Reschedule
from ..webhooks.events import apply_waiting_events

logger = logging.getLogger("django_sendfleet")

#: The rank of the most urgent priority: nothing is sent before such a row.
MOST_URGENT = RANKS[PRIORITIES[0]]


@dataclass(frozen=True)
class Rescheduled:
    """Rows given back to the outbox, for a task at ``when`` on ``task_backend``."""

    row_ids: list[int]
    when: datetime
    task_backend: str


def outbox_payload(row: SendLog, content: Content | None) -> dict[str, Any]:
    """What the worker sends for an outbox row: its message's content, to its recipient.

    ``content`` is the row's ``MessageContent``. Rows queued before it existed (migration 0006)
    carry their whole payload instead; a row with neither gets an empty payload, which the API
    refuses (and the row fails) rather than anything being made up.
    """
    if content is not None:
        # The row's recipient is the address as it is sent (checked, and stored whole).
        return payloads.build_payload(content, row.recipient)
    return row.payload or {}


def send_rows(row_ids: Iterable[int]) -> list[Rescheduled]:
    """Send the claimable rows among these ids, each after any more urgent due row of the
    outbox; return the rows to send again later."""
    return _TaskRun(row_ids).send()


def claim(row_id: int, lease_seconds: int, now: datetime | None = None) -> SendLog | None:
    """Take a pending row due at ``now`` for this worker, or None if it is not there to take."""
    now = now or timezone.now()
    with atomic_for(SendLog):
        # skip_locked: a row another worker is claiming right now is simply not ours.
        locked = (
            SendLog.objects.select_for_update(skip_locked=True)
            .filter(_due(now), pk=row_id, status=LogStatus.PENDING)
            .values_list("pk", flat=True)
        )
        if not list(locked):
            return None
        return _take(row_id, lease_seconds, now)


def claim_more_urgent(rank: int, now: datetime | None = None) -> SendLog | None:
    """Take the most urgent due pending row of a rank below ``rank`` (``priority.py``), the
    oldest first; None when there is none to take."""
    now = now or timezone.now()
    candidates = (
        SendLog.objects.filter(_due(now), status=LogStatus.PENDING, priority__lt=rank)
        .order_by("priority", "pk")
        .values_list("pk", "mailer")
    )
    # Where select_for_update is ignored (SQLite) a candidate may be taken between the read
    # and the conditional update: then the next one is tried.
    for _ in range(5):
        with atomic_for(SendLog):
            found = list(candidates.select_for_update(skip_locked=True)[:1])
            if not found:
                return None
            [(row_id, mailer)] = found
            row = _take(row_id, _lease_seconds(mailer), now)
        if row is not None:
            return row
    return None


def _due(now: datetime) -> Q:
    return Q(not_before__isnull=True) | Q(not_before__lte=now)


def _take(row_id: int, lease_seconds: int, now: datetime) -> SendLog | None:
    """The claim itself: a conditional update, so it holds even where the database ignores
    select_for_update (SQLite). Called in the transaction that locked the row."""
    token = uuid.uuid4().hex
    claimed = SendLog.objects.filter(_due(now), pk=row_id, status=LogStatus.PENDING).update(
        status=LogStatus.SENDING,
        claim_token=token,
        lease_expires_at=now + timedelta(seconds=lease_seconds),
        updated_at=now,
    )
    if not claimed:
        return None
    return SendLog.objects.get(pk=row_id, claim_token=token)


def _lease_seconds(mailer: str) -> int:
    return SendFleetSettings(mailer_options(mailer)).lease_seconds


class _TaskRun:
    """One task's run: its own rows in order (the most urgent first), and before each of them
    every more urgent due row of the outbox, whichever task it belongs to.

    Rows stay tied to their own task: a row taken by another task's run is simply not there to
    claim when its own task runs, so no row is ever left without a task to send it. A run takes
    at most as many other rows as it has of its own, so a task ends within twice its rows'
    sends (RQ's DEFAULT_TIMEOUT, docs/queued.md).
    """

    def __init__(self, row_ids: Iterable[int]) -> None:
        self.rows = list(
            SendLog.objects.filter(pk__in=list(row_ids))
            .order_by("priority", "pk")
            .values_list("pk", "mailer", "priority", "bulk")
        )
        self.others_left = len(self.rows)
        self.workers: dict[tuple[str, bool], _MailerWorker] = {}

    def send(self) -> list[Rescheduled]:
        try:
            for row_id, mailer, rank, bulk in self.rows:
                self._send_more_urgent_than(rank)
                # One clock reading for the claim and the check after it: a row that fell due
                # between two readings would be neither claimed nor deferred.
                now = timezone.now()
                worker = self._worker(mailer, bulk)
                row = claim(row_id, worker.settings.lease_seconds, now)
                if row is not None:
                    worker.send_row(row)
                else:
                    worker.defer_if_early(row_id, now)
        finally:
            for worker in self.workers.values():
                worker.close()
        later = [item for worker in self.workers.values() for item in worker.later]
        return [
            Rescheduled(
                [row_id for row_id, at, b in later if (at, b) == (when, backend)], when, backend
            )
            for when, backend in sorted({(when, backend) for _, when, backend in later})
        ]

    def _send_more_urgent_than(self, rank: int) -> None:
        if rank <= MOST_URGENT:
            return  # nothing to look for: the common case of transactional tasks costs nothing
        while self.others_left > 0:
            row = claim_more_urgent(rank)
            if row is None:
                return
            self.others_left -= 1
            self._worker(row.mailer, row.bulk).send_row(row)

    def _worker(self, mailer: str, bulk: bool) -> _MailerWorker:
        worker = self.workers.get((mailer, bulk))
        if worker is None:
            worker = self.workers[(mailer, bulk)] = _MailerWorker(mailer, bulk)
        return worker


class _MailerWorker:
    """Sends the rows of one mailer, one claimed row at a time, over one connection."""

    def __init__(self, mailer: str, bulk: bool = False) -> None:
        self.mailer = mailer
        self.settings = settings = SendFleetSettings(mailer_options(mailer))
        #: Signals name the backend class that queued the rows, as the synchronous path does.
        self.backend_class = backend_class(mailer, QUEUED_BACKEND)
        self.suppressions = SuppressionCheck() if settings.check_suppressions else None
        self.sender = sender = RecipientSender(
            client=SendFleetClient.for_settings(settings),
            limiter=SlidingWindowLimiter.for_settings(settings),
            policy=Reschedule(settings.max_retry_wait),
            suppressions=self.suppressions,
            key_guard=KeyGuard.for_settings(settings),
            reputation=ReputationGuard.for_mailer(mailer, self._guarded_as(bulk)),
        )
        #: Rows given back to the outbox: (id, when, task backend).
        self.later: list[tuple[int, datetime, str]] = []
        #: The last content read: a task's rows are mostly one message's, read once.
        self._content: MessageContent | None = None
        sender.client.open()

    def _guarded_as(self, bulk: bool) -> SendFleetSettings:
        """The settings the reputation guard reads. A row queued through a connection opened
        with ``bulk=True`` (on Django 5.2 ``get_connection(..., bulk=True)``: the connection's
        option, not the mailer's) carries it, and is held as that connection's sends are."""
        if not bulk or self.settings.bulk:
            return self.settings
        return SendFleetSettings(mailer_options(self.mailer) | {"bulk": True})

    def close(self) -> None:
        self.sender.client.close()
        if self.suppressions is not None:
            self.suppressions.count_stopped()

    def defer_if_early(self, row_id: int, now: datetime) -> None:
        """A task run before its row is due (RQ's scheduler keeps whole seconds, a worker's
        clock may be ahead) schedules the row again for when it is due, instead of leaving it
        to ``sendfleet_requeue``."""
        not_before = (
            SendLog.objects.filter(pk=row_id, status=LogStatus.PENDING, not_before__gt=now)
            .values_list("not_before", flat=True)
            .first()
        )
        if not_before is not None:
            self.later.append((row_id, not_before, self.settings.task_backend))

    def send_row(self, row: SendLog) -> None:
        payload = outbox_payload(row, self._content_of(row))
        # The payload holds the address exactly as it is sent.
        recipient = payload.get("to") or row.recipient
        message = message_from_payload(payload) if payload else None
        if message is not None:
            # As the queued message set them (anymail's attributes), for signal receivers.
            message.tags = list(row.tags)  # type: ignore[attr-defined]
            message.metadata = dict(row.metadata)  # type: ignore[attr-defined]
        if self.suppressions is not None:
            self.suppressions.load([recipient])
        result = self.sender.send(
            recipient,
            payload,
            domain_of(row.from_email),
            attempts_before=row.attempts,
            message=message,
            priority=name_of(row.priority),
        )
        if isinstance(result, Deferred):
            self._release(row, result)
        else:
            self._finish(row, recipient, result, message)

    def _content_of(self, row: SendLog) -> MessageContent | None:
        if row.content_id is None:
            return None
        if self._content is None or self._content.pk != row.content_id:
            self._content = MessageContent.objects.get(pk=row.content_id)
        return self._content

    def _release(self, row: SendLog, deferred: Deferred) -> None:
        """Give the row back to the outbox until ``deferred.when``."""
        error = deferred.error
        SendLog.objects.filter(pk=row.pk, claim_token=row.claim_token).update(
            status=LogStatus.PENDING,
            not_before=deferred.when,
            attempts=deferred.attempts,
            http_status=error.status_code,
            error_code=error.error_code or "",
            detail=stored_detail(f"{deferred.reason}: {error.detail}", self.settings.secrets),
            claim_token="",
            lease_expires_at=None,
            updated_at=timezone.now(),
        )
        self.later.append((row.pk, deferred.when, self.settings.task_backend))
        logger.info("SendFleet queued send to %s %s", row.recipient, deferred.reason)

    def _finish(
        self,
        row: SendLog,
        recipient: str,
        result: RecipientStatus,
        message: Any,
    ) -> None:
        fields: dict[str, Any] = {
            **outcome_fields(result, self.settings.secrets),
            "claim_token": "",
            "lease_expires_at": None,
            "not_before": None,
            "updated_at": timezone.now(),
        }
        clears_content = not self.settings.log_content
        if clears_content:  # the content goes with the message's last row (release)
            fields |= {"payload": None, "content": None}
        with atomic_for(SendLog):
            finished = SendLog.objects.filter(pk=row.pk, claim_token=row.claim_token).update(
                **fields
            )
            if finished and clears_content:
                message_content.release([row.content_id])
        finish_recipient(
            backend_class=self.backend_class,
            mailer=self.mailer,
            message=message,
            recipient=recipient,
            from_domain=domain_of(row.from_email),
            result=result,
            suppressions=self.suppressions,
            tags=list(row.tags),
            metadata=dict(row.metadata),
        )
        status = SendStatus()
        status.record(recipient, result)
        signals.post_send.send_robust(
            self.backend_class,
            message=message,
            status=status,
            mailer=self.mailer,
            tags=list(row.tags),
            metadata=dict(row.metadata),
        )
        if result.message_id and self.settings.webhook_secrets:
            # Events SendFleet posted before this row had its message id waited for it.
            apply_waiting_events([result.message_id])
        logger.info(
            "SendFleet queued send to %s %s: message_id=%s attempts=%d",
            recipient,
            result.status,
            result.message_id,
            result.attempts,
        )
