"""What a Django ``EmailMessage`` becomes before it is sent: an ``OutgoingMessage``.

This is where a message is checked against what the API accepts, so that nothing the API would
refuse costs a request: lengths, addresses, CR/LF in header values, a blank body, and features
the API has no field for.
"""

from __future__ import annotations

import functools
import logging
import re
from dataclasses import dataclass
from email.errors import HeaderParseError
from email.headerregistry import Address, HeaderRegistry
from typing import Any, NamedTuple

from django.core.exceptions import ValidationError
from django.core.mail import EmailMessage
from django.core.validators import validate_email

from . import features
from .exceptions import SendFleetInvalidMessage
from .plaintext import html_to_text

logger = logging.getLogger("django_sendfleet")

MAX_SUBJECT_LENGTH = 256
MAX_FROM_NAME_LENGTH = 156
_HEADER_PARSER = HeaderRegistry()


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
    #: (address as given, why it was refused) for recipients that cannot be sent to.
    invalid_recipients: tuple[tuple[str, str], ...] = ()
    #: Features dropped because IGNORE_UNSUPPORTED_FEATURES is on.
    dropped_features: tuple[str, ...] = ()

    @property
    def from_domain(self) -> str:
        return self.from_email.rpartition("@")[2].lower()


class ParsedAddress(NamedTuple):
    display_name: str
    addr_spec: str


# Most addresses are plain "addr" or "Name <addr>": those skip the email package's full RFC 5322
# parser, which costs about half a millisecond per address. Anything with quotes, commas,
# comments or encoded words still goes through it.
_SIMPLE_ADDRESS = re.compile(
    r"^\s*(?:(?P<name>[^<>\"(),;:@\\]*?)\s*<(?P<bracketed>[^<>\s\"(),;:\\]+)>"
    r"|(?P<bare>[^<>\s\"(),;:\\]+))\s*$"
)


def parse_address(value: Any, field: str) -> ParsedAddress:
    """One address from a header value (``"Name <addr>"`` or ``addr``), validated as the API does.

    Raises ``SendFleetInvalidMessage`` naming the field.
    """
    if isinstance(value, Address):
        return _validated(ParsedAddress(value.display_name, value.addr_spec), field, value)
    return _parse_address_text(str(value), field)  # str(): lazy strings


@functools.lru_cache(maxsize=512)  # senders and reply-to addresses repeat across a batch
def _parse_address_text(text: str, field: str) -> ParsedAddress:
    _refuse_unsafe_text(text, field)
    simple = _SIMPLE_ADDRESS.match(text)
    if simple and "=?" in (simple["name"] or ""):
        simple = None  # an RFC 2047 encoded display name: the email package decodes it
    if simple:
        name = simple["name"] or ""
        address = ParsedAddress(name, simple["bracketed"] or simple["bare"])
    else:
        try:
            addresses = _HEADER_PARSER("to", text).addresses  # type: ignore[attr-defined]
        except (HeaderParseError, IndexError, ValueError, TypeError) as error:
            raise SendFleetInvalidMessage(f"{field}: cannot parse {text!r}: {error}") from None
        if len(addresses) != 1:
            raise SendFleetInvalidMessage(f"{field}: expected one address, got {text!r}.")
        address = ParsedAddress(addresses[0].display_name, addresses[0].addr_spec)
    return _validated(address, field, text)


def _validated(address: ParsedAddress, field: str, given: Any) -> ParsedAddress:
    for part in address:
        _refuse_unsafe_text(part, field)
    try:
        validate_email(address.addr_spec)
    except ValidationError:
        raise SendFleetInvalidMessage(
            f"{field}: {str(given)!r} is not a valid email address."
        ) from None
    return address


def prepare_message(message: EmailMessage, *, ignore_unsupported_features: bool) -> OutgoingMessage:
    """Check a Django message against the API and turn it into an ``OutgoingMessage``.

    Raises ``SendFleetInvalidMessage`` or ``SendFleetUnsupportedFeature``; no request is made for
    a message that fails here.
    """
    dropped = features.check_unsupported_features(
        message, ignore_unsupported_features=ignore_unsupported_features
    )

    sender = parse_address(message.from_email, "from_email")
    from_name = _optional_text(sender.display_name, "from_name", MAX_FROM_NAME_LENGTH)
    subject = _optional_text(message.subject, "subject", MAX_SUBJECT_LENGTH)
    reply_to_values = features.reply_to_values(message)
    reply_to = parse_address(reply_to_values[0], "reply_to").addr_spec if reply_to_values else None

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
        _refuse_unsafe_body(html, "html")
        if not html.strip():
            html = None
    _refuse_unsafe_body(body, "body")
    if not body.strip():
        if html is None:
            raise SendFleetInvalidMessage(
                "body: SendFleet requires a non-blank plain-text body (or an HTML alternative)."
            )
        body = html_to_text(html)

    recipients, invalid = _recipients(message)
    return OutgoingMessage(
        from_email=sender.addr_spec,
        from_name=from_name,
        subject=subject,
        text=body,
        html=html,
        reply_to=reply_to,
        recipients=recipients,
        invalid_recipients=invalid,
        dropped_features=dropped,
    )


def _recipients(message: EmailMessage) -> tuple[tuple[str, ...], tuple[tuple[str, str], ...]]:
    seen: set[str] = set()
    valid: list[str] = []
    invalid: list[tuple[str, str]] = []
    for field, values in (("to", message.to), ("cc", message.cc), ("bcc", message.bcc)):
        for value in values:
            if not value:
                continue  # as EmailMessage.recipients() does
            try:
                address = parse_address(value, field).addr_spec
            except SendFleetInvalidMessage as error:
                invalid.append((str(value), error.detail))
                continue
            if address.lower() not in seen:
                seen.add(address.lower())
                valid.append(address)
    return tuple(valid), tuple(invalid)


def _optional_text(value: Any, field: str, max_length: int) -> str | None:
    if value is None:
        return None
    text = str(value)
    _refuse_unsafe_text(text, field)
    if not text.strip():
        return None  # the API's default applies; a blank string would be a 400
    if len(text.strip()) > max_length:
        raise SendFleetInvalidMessage(
            f"{field}: {len(text.strip())} characters; SendFleet allows at most {max_length}."
        )
    return text


def _refuse_unsafe_text(text: str, field: str) -> None:
    """Header values: no line breaks (header injection) and nothing the API's fields refuse."""
    if "\r" in text or "\n" in text:
        raise SendFleetInvalidMessage(f"{field}: line breaks are not allowed in a header value.")
    _refuse_unsafe_body(text, field)


def _refuse_unsafe_body(text: str, field: str) -> None:
    if "\x00" in text:
        raise SendFleetInvalidMessage(f"{field}: NUL characters are not allowed.")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise SendFleetInvalidMessage(
            f"{field}: lone surrogate characters are not allowed."
        ) from None
