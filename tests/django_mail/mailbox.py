"""What SendFleet received, as the email messages Django's tests read.

Each accepted ``POST /api/send/`` is one email to one recipient. ``message_from_payload`` turns
its JSON payload back into the message it describes, built and serialized by Django itself
(``EmailMultiAlternatives.message()``) and parsed as Django's tests parse the locmem backend's
mail, so a test's assertions read what reached the API and nothing else.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from email.headerregistry import Address
from email.message import Message
from typing import Any

from django.core.mail import EmailMultiAlternatives

#: Every field of the API's send payload (docs/sending.md), and the part of an email it becomes.
#: A field missing here is refused by ``message_from_payload``: the mailbox never drops one.
PAYLOAD_FIELDS = {
    "to": "To",
    "from_email": "From (address)",
    "from_name": "From (display name)",
    "subject": "Subject",
    "message": "text/plain body",
    "html": "text/html alternative",
    "reply_to": "Reply-To",
}


def message_from_payload(payload: dict[str, Any], parse: Callable[[bytes], Message]) -> Message:
    """The email one payload asks SendFleet to deliver. ``parse``: the Django tests' own
    ``message_from_bytes``, so the message is read back exactly as their locmem mail is."""
    unknown = sorted(set(payload) - set(PAYLOAD_FIELDS))
    if unknown:
        raise AssertionError(f"The mailbox does not know the payload fields {unknown}.")
    sender = payload.get("from_email", "")
    if payload.get("from_name"):
        sender = str(Address(display_name=payload["from_name"], addr_spec=sender))
    email = EmailMultiAlternatives(
        subject=payload.get("subject", ""),
        body=payload["message"],
        from_email=sender,
        to=[payload["to"]],
        reply_to=[payload["reply_to"]] if "reply_to" in payload else None,
    )
    if "html" in payload:
        email.attach_alternative(payload["html"], "text/html")
    return parse(email.message().as_bytes())


def envelopes(payloads: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """SMTP envelopes (``mail_from``, ``rcpt_tos``) equivalent to the requests: consecutive
    requests with the same content are one message sent to several recipients."""
    result: list[dict[str, Any]] = []
    previous: dict[str, Any] | None = None
    for payload in payloads:
        content = {key: value for key, value in payload.items() if key != "to"}
        if previous is None or content != previous:
            result.append({"mail_from": payload.get("from_email", ""), "rcpt_tos": []})
        result[-1]["rcpt_tos"].append(payload["to"])
        previous = content
    return result
