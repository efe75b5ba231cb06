"""The JSON body of one ``POST /api/send/`` request: one per recipient."""

from __future__ import annotations

from typing import Any

from .message import OutgoingMessage


def build_payloads(message: OutgoingMessage) -> dict[str, dict[str, Any]]:
    """Recipient -> payload, in recipient order. Optional fields are left out when empty."""
    shared: dict[str, Any] = {"from_email": message.from_email, "message": message.text}
    optional = {
        "from_name": message.from_name,
        "subject": message.subject,
        "html": message.html,
        "reply_to": message.reply_to,
    }
    shared.update((field, value) for field, value in optional.items() if value)
    return {recipient: {"to": recipient, **shared} for recipient in message.recipients}
