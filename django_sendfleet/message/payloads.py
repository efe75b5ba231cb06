"""The JSON body of one ``POST /api/send/`` request: one per recipient.

Built from a message's content and one recipient: the content is an ``OutgoingMessage`` on the
synchronous path, and the ``MessageContent`` row an outbox row refers to on the queued path.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

from django.core.mail import EmailMultiAlternatives

if TYPE_CHECKING:
    from .outgoing import OutgoingMessage

_OPTIONAL_FIELDS = ("from_name", "subject", "html", "reply_to")


class Content(Protocol):
    """What a payload is made of besides its recipient: ``OutgoingMessage``, ``MessageContent``."""

    @property
    def from_email(self) -> str: ...
    @property
    def from_name(self) -> str | None: ...
    @property
    def subject(self) -> str | None: ...
    @property
    def text(self) -> str: ...
    @property
    def html(self) -> str | None: ...
    @property
    def reply_to(self) -> str | None: ...


def build_payload(message: Content, recipient: str) -> dict[str, Any]:
    """The payload for one recipient. Optional fields are left out when empty."""
    payload: dict[str, Any] = {
        "to": recipient,
        "from_email": message.from_email,
        "message": message.text,
    }
    for field in _OPTIONAL_FIELDS:
        value = getattr(message, field)
        if value:
            payload[field] = value
    return payload


def build_payloads(message: OutgoingMessage) -> dict[str, dict[str, Any]]:
    """Recipient -> payload, in recipient order."""
    return {recipient: build_payload(message, recipient) for recipient in message.recipients}


def message_from_payload(payload: dict[str, Any]) -> EmailMultiAlternatives:
    """A Django message equivalent to a stored payload, for signal receivers of queued sends."""
    sender = payload.get("from_email", "")
    if payload.get("from_name"):
        quoted_name = payload["from_name"].replace("\\", "\\\\").replace('"', '\\"')
        sender = f'"{quoted_name}" <{sender}>'
    message = EmailMultiAlternatives(
        subject=payload.get("subject", ""),
        body=payload.get("message", ""),
        from_email=sender,
        to=[payload["to"]],
        reply_to=[payload["reply_to"]] if payload.get("reply_to") else None,
    )
    if payload.get("html"):
        message.attach_alternative(payload["html"], "text/html")
    return message
