"""What a Django ``EmailMessage`` becomes before it is sent: an ``OutgoingMessage``.

This is where a message is checked against what the API accepts, so that nothing the API would
refuse costs a request: lengths (of the text as sent), addresses (``addresses``), line breaks in
header values (``text_safety``), a blank body, and features the API has no field for
(``features``).
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from django.core.mail import EmailMessage

from ..exceptions import SendFleetError, SendFleetInvalidMessage
from . import features, merge, schedule
from .addresses import domain_of, parse_address
from .plaintext import html_to_text
from .tags import NO_LABELS, Labels, labels_of
from .text_safety import refuse_unsafe_header_text, refuse_unsafe_text

logger = logging.getLogger("django_sendfleet")

MAX_SUBJECT_LENGTH = 256
MAX_FROM_NAME_LENGTH = 156


@dataclass(frozen=True)
class OutgoingMessage:
    """A message as the API will receive it, minus the recipient of each request."""

    from_email: str
    from_name: str | None
    subject: str | None
    text: str
    html: str | None
    reply_to: str | None
    #: Bare addresses, in order, without case-insensitive duplicates across to, cc and bcc.
    recipients: tuple[str, ...]
    #: Features dropped because IGNORE_UNSUPPORTED_FEATURES is on.
    dropped_features: tuple[str, ...] = ()
    #: tags, metadata and merge_metadata, kept on the send log (``tags.py``).
    labels: Labels = NO_LABELS
    #: merge_data and merge_global_data: each recipient's content is rendered (``merge.py``).
    merge_data: merge.MergeData | None = None
    #: A future send_at (``schedule.py``): the outbox row's due time. None: now.
    send_at: datetime | None = None
    #: The last recipient's rendered content: the payload and the log row both ask for it.
    _rendered: list[Any] = dataclasses.field(
        default_factory=list, init=False, compare=False, repr=False
    )

    @property
    def from_domain(self) -> str:
        return domain_of(self.from_email)

    def content_for(self, recipient: str) -> OutgoingMessage:
        """What this recipient is sent: the message itself, or with merge data, the message
        rendered with the recipient's values (one per recipient, so never shared)."""
        if self.merge_data is None:
            return self
        if self._rendered and self._rendered[0] == recipient:
            cached: OutgoingMessage = self._rendered[1]
            return cached
        rendered = merge.render_for(self.merge_data, recipient, self.subject, self.text, self.html)
        content = replace(
            self, subject=rendered.subject, text=rendered.text, html=rendered.html, merge_data=None
        )
        self._rendered[:] = [recipient, content]
        return content


#: Recipient values already parsed in a batch: (field, value) -> the address as it is sent.
ParsedRecipients = dict[tuple[str, str], str]

_RECIPIENT_FIELDS = ("to", "cc", "bcc")


def parse_recipients(messages: Iterable[EmailMessage]) -> ParsedRecipients:
    """The recipients of these messages that parse, each parsed once for the whole batch: their
    addresses make the batch's one suppression query, and ``prepare_message`` takes them from
    here. A value that does not parse is left out, and refused with its reason later."""
    parsed: ParsedRecipients = {}
    for message in messages:
        for field in _RECIPIENT_FIELDS:
            for value in getattr(message, field):
                if value and isinstance(value, str) and (field, value) not in parsed:
                    with contextlib.suppress(SendFleetError):
                        parsed[field, value] = parse_address(value, field).addr_spec
    return parsed


def prepare_message(
    message: EmailMessage,
    *,
    ignore_unsupported_features: bool,
    parsed: ParsedRecipients | None = None,
    can_schedule: bool = False,
) -> OutgoingMessage:
    """Check a Django message against the API and turn it into an ``OutgoingMessage``.

    Raises ``SendFleetInvalidMessage`` (``SendFleetInvalidAddress`` for an address, a recipient's
    included) or ``SendFleetUnsupportedFeature``; no request is made for a message that fails
    here. ``parsed``: recipients the batch parsed already (``parse_recipients``).
    ``can_schedule``: the backend keeps a message until a future ``send_at`` (the queued one).
    """
    dropped = features.check_unsupported_features(
        message,
        ignore_unsupported_features=ignore_unsupported_features,
        can_schedule=can_schedule,
    )

    sender = parse_address(message.from_email, "from_email")
    from_name = _sent_text(sender.display_name, "from_name", MAX_FROM_NAME_LENGTH)
    subject = _sent_text(message.subject, "subject", MAX_SUBJECT_LENGTH)
    reply_to_values = features.reply_to_values(message)
    reply_to = parse_address(reply_to_values[0], "reply_to").addr_spec if reply_to_values else None
    # Addresses before bodies, as Django's SMTP backend checks them before building the message.
    recipients, to_count = _recipients(message, parsed or {})

    html = None
    html_alternatives = [
        content for content, mimetype in features.alternatives(message) if mimetype == "text/html"
    ]
    body = str(message.body or "")
    if message.content_subtype == "html":
        html, body = body, ""
    elif html_alternatives:
        html = str(html_alternatives[0])
    if html is not None:
        refuse_unsafe_text(html, "html")
        if not html.strip():
            html = None
    refuse_unsafe_text(body, "body")
    if not body.strip():
        if html is None:
            raise SendFleetInvalidMessage(
                "body: SendFleet requires a non-blank plain-text body (or an HTML alternative)."
            )
        body = html_to_text(html)

    labels = labels_of(message, features.is_set)
    to = {address.lower() for address in recipients[:to_count]}
    merge_data = merge.merge_data_of(message, features.is_set, to)
    if merge_data is not None:
        merge.check_rendering(
            merge_data, recipients, subject, body, html, max_subject_length=MAX_SUBJECT_LENGTH
        )
    return OutgoingMessage(
        from_email=sender.addr_spec,
        from_name=from_name,
        subject=subject,
        text=body,
        html=html,
        reply_to=reply_to,
        recipients=recipients,
        dropped_features=dropped,
        labels=labels,
        merge_data=merge_data,
        send_at=schedule.due_time(message, features.is_set) if can_schedule else None,
    )


def _recipients(message: EmailMessage, parsed: ParsedRecipients) -> tuple[tuple[str, ...], int]:
    """Every recipient's address as sent, without case-insensitive duplicates, and how many of
    them (the first ones) are ``to`` recipients.

    One address that cannot be sent refuses the whole message (``SendFleetInvalidAddress``,
    naming the field and the value), as Django's SMTP backend and django-anymail do: sending to
    the others would hide from the app that a recipient it named was dropped.
    """
    seen: set[str] = set()
    valid: list[str] = []
    to_count = 0
    for field_name in _RECIPIENT_FIELDS:
        if field_name == "cc":
            to_count = len(valid)
        for value in getattr(message, field_name):
            if not value:
                continue  # as EmailMessage.recipients() does
            known = parsed.get((field_name, value)) if isinstance(value, str) else None
            address = known or parse_address(value, field_name).addr_spec
            if address.lower() not in seen:
                seen.add(address.lower())
                valid.append(address)
    return tuple(valid), to_count


def _sent_text(value: Any, field: str, max_length: int) -> str | None:
    """A subject or display name as it is sent, checked at the length that is sent.

    Trimmed of surrounding whitespace, as the API trims it before checking its limit (and
    before storing it); None when blank, so that the API's default applies.
    """
    if value is None:
        return None
    text = str(value)
    refuse_unsafe_header_text(text, field)
    text = text.strip()
    if not text:
        return None
    if len(text) > max_length:
        raise SendFleetInvalidMessage(
            f"{field}: {len(text)} characters; SendFleet allows at most {max_length}."
        )
    return text
