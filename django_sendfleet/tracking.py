"""SendFleet's delivery events, normalised into one shape receivers can rely on.

The fields follow django-anymail's ``AnymailTrackingEvent`` (``event_type``, ``timestamp``,
``message_id``, ``recipient``, ``description``, ``esp_event``...), so tracking receivers
written for anymail port with few changes.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parseaddr
from typing import Any

from django.utils.dateparse import parse_datetime

__all__ = [
    "EVENT_TYPES",
    "TrackingEvent",
]

#: SendFleet's ``event_type`` -> the normalised one.
EVENT_TYPES = {
    "email.sent": "sent",
    "email.delivered": "delivered",
    "email.failed": "failed",
    "email.bounced": "bounced",
    "email.complained": "complained",
}
_RECIPIENT_FIELDS = ("to", "recipient", "email")
#: SendFleet's docs name no sender field; its send API calls the sender ``from_email``.
_SENDER_FIELDS = ("from_email", "from", "sender")
_TIMESTAMP_FIELDS = ("timestamp", "created_at", "occurred_at")
_TRANSIENT_BOUNCE_TYPES = frozenset({"transient", "soft"})
#: Longer than any date SendFleet writes: a longer value is not parsed (nor fed to a regex).
_MAX_TIMESTAMP_LENGTH = 64


@dataclass(frozen=True)
class TrackingEvent:
    event_type: str  # sent, delivered, failed, bounced, complained or unknown
    timestamp: datetime | None
    message_id: str | None
    recipient: str | None
    description: str
    #: For bounces: True for a permanent (hard) bounce. SendFleet may not say: then True.
    permanent: bool | None
    #: The event exactly as SendFleet sent it.
    esp_event: dict[str, Any]
    esp_name: str = "SendFleet"
    #: The sender's address, when the event names one (not a field of anymail's events).
    sender: str | None = None
    #: The send's tags and its recipient's metadata (anymail's ``tags``, ``metadata``,
    #: ``merge_metadata``), from its send log row: SendFleet's events do not carry them.
    #: ``[]`` and ``{}`` when the message set none, or no row has the event's message id.
    tags: list[str] = dataclasses.field(default_factory=list)
    metadata: dict[str, Any] = dataclasses.field(default_factory=dict)

    @property
    def suppresses_recipient(self) -> bool:
        """Hard bounces and complaints mean: never send to this address again."""
        return self.event_type == "complained" or (
            self.event_type == "bounced" and bool(self.permanent)
        )


def raw_event_type(raw: dict[str, Any]) -> str | None:
    """The event's type as the signed body gives it. The ``X-SendFleet-Event`` header is not
    signed, so it never decides what an event means."""
    value = raw.get("event_type") or raw.get("type")
    return value if isinstance(value, str) and value.strip() else None


def normalise(raw: dict[str, Any], raw_type: str) -> TrackingEvent:
    event_type = EVENT_TYPES.get(raw_type, "unknown")
    bounce_type = str(raw.get("bounce_type") or raw.get("bounceType") or "").lower()
    return TrackingEvent(
        event_type=event_type,
        timestamp=_timestamp(raw),
        message_id=_text(raw.get("message_id")),
        recipient=next((_text(raw[f]) for f in _RECIPIENT_FIELDS if _text(raw.get(f))), None),
        description=_text(raw.get("description") or raw.get("reason") or raw.get("detail")) or "",
        permanent=(bounce_type not in _TRANSIENT_BOUNCE_TYPES) if event_type == "bounced" else None,
        esp_event=raw,
        sender=next((_address(raw[f]) for f in _SENDER_FIELDS if _address(raw.get(f))), None),
    )


def _text(value: Any) -> str | None:
    return value.strip() if isinstance(value, str) and value.strip() else None


def _address(value: Any) -> str | None:
    """The address in ``addr`` or ``Name <addr>``, bounded before it is parsed."""
    text = _text(value)
    if text is None or len(text) > 1000:
        return None
    return _text(parseaddr(text)[1])


def _timestamp(raw: dict[str, Any]) -> datetime | None:
    for field in _TIMESTAMP_FIELDS:
        value = raw.get(field)
        if isinstance(value, int | float) and not isinstance(value, bool):
            try:
                return datetime.fromtimestamp(value, UTC)
            except (OverflowError, OSError, ValueError):
                return None
        if isinstance(value, str) and len(value) <= _MAX_TIMESTAMP_LENGTH:
            try:
                parsed = parse_datetime(value.replace("Z", "+00:00"))
            except ValueError:
                parsed = None
            if parsed is not None:
                return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    return None
