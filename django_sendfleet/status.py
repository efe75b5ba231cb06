"""The statuses a send log row moves through, and how send outcomes map onto them."""

from __future__ import annotations

from django.db import models

from . import outcome


class LogStatus(models.TextChoices):
    PENDING = "pending", "pending"  # written, not yet sent (queued sending)
    QUEUED = "queued", "queued"  # accepted by SendFleet
    DELIVERED = "delivered", "delivered"
    BOUNCED = "bounced", "bounced"
    COMPLAINED = "complained", "complained"
    FAILED = "failed", "failed"
    REJECTED = "rejected", "rejected"  # suppressed, locally or by the API
    UNKNOWN = "unknown", "unknown"  # may have been sent: check before resending


_FROM_RECIPIENT_STATUS = {
    outcome.QUEUED: LogStatus.QUEUED,
    outcome.REJECTED: LogStatus.REJECTED,
    outcome.INVALID: LogStatus.FAILED,
    outcome.FAILED: LogStatus.FAILED,
    outcome.UNKNOWN: LogStatus.UNKNOWN,
}

#: Statuses an operator should look at.
PROBLEM_STATUSES = (
    LogStatus.FAILED,
    LogStatus.REJECTED,
    LogStatus.UNKNOWN,
    LogStatus.BOUNCED,
    LogStatus.COMPLAINED,
)


def log_status_for(recipient_status: str) -> LogStatus:
    return _FROM_RECIPIENT_STATUS[recipient_status]
