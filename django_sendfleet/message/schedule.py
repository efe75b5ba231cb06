"""``send_at`` (django-anymail's scheduled sending), read as anymail reads it.

SendFleet's API cannot schedule; the queued backend's outbox can: its rows wait until their
due time (``SendLog.not_before``). So a future ``send_at`` is kept by ``QueuedEmailBackend``
and refused by ``EmailBackend``, which could only send it now. A past ``send_at`` is sent now
(anymail's rule).

As in anymail: a ``datetime`` without a timezone is in Django's current timezone; a ``date`` is
its midnight (the start of that day) in the current timezone.
"""

from __future__ import annotations

from datetime import date, datetime, time
from typing import Any

from django.utils import timezone

from ..exceptions import SendFleetInvalidMessage

QUEUED_HINT = (
    "EmailBackend sends at once and cannot hold a message until send_at: send it through "
    "django_sendfleet.backends.QueuedEmailBackend, whose outbox keeps it until then."
)


def send_at_of(message: Any, is_set: Any) -> datetime | None:
    """The aware time the message asks to be sent at, or None when it does not ask."""
    value = getattr(message, "send_at", None)
    if not is_set(value):
        return None
    if isinstance(value, datetime):
        moment = value
    elif isinstance(value, date):
        moment = datetime.combine(value, time.min)
    else:
        raise SendFleetInvalidMessage(f"send_at: a datetime or a date, not {type(value).__name__}.")
    if timezone.is_naive(moment):
        moment = timezone.make_aware(moment, timezone.get_current_timezone())
    return moment


def is_future(message: Any, is_set: Any) -> bool:
    """Whether the message asks to be sent later than now."""
    moment = send_at_of(message, is_set)
    return moment is not None and moment > timezone.now()


def due_time(message: Any, is_set: Any) -> datetime | None:
    """When the message is due: None for now (no ``send_at``, or one already past)."""
    moment = send_at_of(message, is_set)
    if moment is None or moment <= timezone.now():
        return None
    return moment
