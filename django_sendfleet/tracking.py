"""SendFleet's delivery events, normalised into one shape receivers can rely on.

The fields follow django-anymail's ``AnymailTrackingEvent`` (``event_type``, ``timestamp``,
``message_id``, ``recipient``, ``description``, ``esp_event``...), so tracking receivers
written for anymail port with few changes.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from django.utils.dateparse import parse_datetime

#: SendFleet's ``event_type`` -> the normalised one.
EVENT_TYPES = {
    "email.sent": "sent",
    "email.delivered": "delivered",
    "email.failed": "failed",
    "email.bounced": "bounced",
    "email.complained": "complained",
}
_RECIPIENT_FIELDS = ("to", "recipient", "email")
_TIMESTAMP_FIELDS = ("timestamp", "created_at", "occurred_at")
_TRANSIENT_BOUNCE_TYPES = frozenset({"transient", "soft"})


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

    @property
    def suppresses_recipient(self) -> bool:
        """Hard bounces and complaints mean: never send to this address again."""
        return self.event_type == "complained" or (
            self.event_type == "bounced" and bool(self.permanent)
        )


def raw_event_type(raw: dict[str, Any], header_value: str | None) -> str | None:
    value = raw.get("event_type") or raw.get("type") or header_value
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
    )


def _text(value: Any) -> str | None:
    return value.strip() if isinstance(value, str) and value.strip() else None


def _timestamp(raw: dict[str, Any]) -> datetime | None:
    for field in _TIMESTAMP_FIELDS:
        value = raw.get(field)
        if isinstance(value, int | float) and not isinstance(value, bool):
            try:
                return datetime.fromtimestamp(value, UTC)
            except (OverflowError, OSError, ValueError):
                return None
        if isinstance(value, str):
            try:
                parsed = parse_datetime(value.replace("Z", "+00:00"))
            except ValueError:
                parsed = None
            if parsed is not None:
                return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    return None
