"""The statuses a send log row moves through, and how send outcomes map onto them.

One of two status vocabularies. This one is a ``SendLog`` row's, which delivery events move on
(``delivered``, ``bounced``...). The other, ``outcome.py``, is what the sending app sees per
recipient of one send (``message.anymail_status``, shaped like django-anymail's).
"""

from __future__ import annotations

from django.db import models

from .. import outcome


class LogStatus(models.TextChoices):
    """Where a send log row stands: written, sent, accepted, then what delivery events said."""

    PENDING = "pending", "pending"  # written, not yet sent (queued sending)
    SENDING = "sending", "sending"  # claimed by a worker under a lease
    QUEUED = "queued", "queued"  # accepted by SendFleet
    DELIVERED = "delivered", "delivered"
    BOUNCED = "bounced", "bounced"
    COMPLAINED = "complained", "complained"
    FAILED = "failed", "failed"
    REJECTED = "rejected", "rejected"  # suppressed, locally or by the API
    UNKNOWN = "unknown", "unknown"  # may have been sent: check before resending
    CANCELLED = "cancelled", "cancelled"  # a scheduled send cancelled in the admin: never sent


_FROM_RECIPIENT_STATUS = {
    outcome.PENDING: LogStatus.PENDING,
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


# Delivery events only ever move a row forward in this order, so a late or out-of-order event
# never undoes a worse outcome: a "delivered" arriving after "bounced" leaves "bounced".
_DELIVERY_ORDER = (
    LogStatus.PENDING,
    LogStatus.SENDING,
    LogStatus.UNKNOWN,
    LogStatus.QUEUED,
    LogStatus.DELIVERED,
    LogStatus.FAILED,
    LogStatus.BOUNCED,
    LogStatus.COMPLAINED,
)


def delivery_rank(status: LogStatus) -> int:
    """How far on a status is in the order delivery events move rows."""
    return _DELIVERY_ORDER.index(status)


def statuses_an_event_may_replace(new: LogStatus) -> tuple[LogStatus, ...]:
    """The statuses a delivery event moving a row to ``new`` may overwrite."""
    return _DELIVERY_ORDER[: _DELIVERY_ORDER.index(new)]
