"""Scheduled sends: outbox rows kept until their ``send_at`` (anymail's attribute), and
cancelling them before they go.

``QueuedEmailBackend`` writes a message with a future ``send_at`` as ``pending`` rows whose
``not_before`` is that time (``message/schedule.py``); the worker claims only due rows, so they
wait in the database (through worker restarts and deploys) and are sent at the first free slot
after it. A scheduled row is one that has not been tried yet: no attempt and no error code
(a row given back after a failure, or held, has them).

Cancelling is a conditional update from ``pending``: a row a worker has claimed meanwhile
(``sending``) is not cancelled, so a cancelled row is never sent, and a sent row never marked
cancelled.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from datetime import datetime

from django.db.models import Q, QuerySet
from django.utils import timezone

from ..db.routing import atomic_for
from ..models import SendLog
from ..models.log_status import LogStatus
from ..records import content as message_content

logger = logging.getLogger("django_sendfleet")

#: What a cancelled row's detail says.
CANCELLED_DETAIL = "Scheduled send cancelled before its time: never sent."


def scheduled(now: datetime | None = None) -> Q:
    """Rows waiting for their ``send_at``: pending, due later, never tried."""
    return Q(
        status=LogStatus.PENDING,
        not_before__gt=now or timezone.now(),
        attempts=0,
        error_code="",
    )


def scheduled_rows(now: datetime | None = None) -> QuerySet[SendLog]:
    return SendLog.objects.filter(scheduled(now))


def cancel(row_ids: Iterable[int], *, by: str = "") -> list[int]:
    """Cancel the scheduled rows among these ids; return the ids cancelled.

    Each becomes ``cancelled`` (its content released unless another row needs it) and is
    logged on the ``django_sendfleet`` logger; rows not scheduled (any more) are left alone.
    """
    now = timezone.now()
    cancelled: list[int] = []
    with atomic_for(SendLog):  # the database the routers pick for the send log
        rows = list(
            SendLog.objects.select_for_update()
            .filter(scheduled(now), pk__in=list(row_ids))
            .values_list("pk", "content_id", "recipient", "not_before")
        )
        for pk, content_id, recipient, not_before in rows:
            # Conditional: from pending only, so a row claimed since it was read is not touched.
            changed = SendLog.objects.filter(pk=pk, status=LogStatus.PENDING).update(
                status=LogStatus.CANCELLED,
                detail=CANCELLED_DETAIL,
                not_before=None,
                content=None,
                payload=None,
                updated_at=now,
            )
            if changed:
                cancelled.append(pk)
                message_content.release([content_id])
                logger.info(
                    "SendFleet scheduled send %s to %s (due %s) cancelled%s",
                    pk,
                    recipient,
                    not_before.isoformat() if not_before else "",
                    f" by {by}" if by else "",
                )
    return cancelled
