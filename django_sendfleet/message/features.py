"""What a message asks for that the SendFleet API has no field for, and nothing local stands in for.

The API carries a sender, one recipient, a subject, a text and an HTML body, and one reply-to
address. Everything else a message can carry (attachments, headers, other alternatives, and the
attributes django-anymail adds, such as ``send_at`` or ``merge_data``) would be lost on the way,
and losing it silently sends the wrong email: a message scheduled for tomorrow goes out now, a
template's placeholders go out unfilled. So each is refused with ``SendFleetUnsupportedFeature``
before any request, as anymail's own backends do, unless ``IGNORE_UNSUPPORTED_FEATURES`` is on;
then each dropped feature is logged once for the message.

Some of anymail's attributes have no API field but are done locally (``LOCAL_ATTRIBUTES``):
``tags``, ``metadata`` and ``merge_metadata`` are kept on the send log (``tags.py``),
``merge_data`` and ``merge_global_data`` rendered per recipient (``merge.py``), and ``send_at``
kept by the queued backend's outbox (``schedule.py``). Only a future ``send_at`` on a backend
that cannot wait is refused here.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sized
from typing import Any

from django.core.mail import EmailMessage

from ..exceptions import SendFleetUnsupportedFeature
from . import schedule
from .addresses import header_addresses

logger = logging.getLogger("django_sendfleet")

#: django-anymail's message attributes (``AnymailMessage``, ``BasePayload.anymail_message_attrs``)
#: and what each asks of the email service. docs/migrating-from-anymail.md says what each becomes.
ANYMAIL_ATTRIBUTES: Mapping[str, str] = {
    "send_at": "scheduled sending",
    "merge_data": "per-recipient template data",
    "merge_global_data": "template data",
    "merge_metadata": "per-recipient metadata",
    "merge_headers": "per-recipient headers",
    "template_id": "a template stored at the email service",
    "tags": "tags",
    "metadata": "metadata",
    "track_clicks": "click tracking",
    "track_opens": "open tracking",
    "esp_extra": "parameters for the email service's API",
    "envelope_sender": "an envelope sender (Return-Path)",
}
#: anymail's attributes done here without an API field: not refused.
LOCAL_ATTRIBUTES = frozenset(
    {"send_at", "tags", "metadata", "merge_metadata", "merge_data", "merge_global_data"}
)
IGNORE_HINT = (
    "Remove them, or set SENDFLEET['IGNORE_UNSUPPORTED_FEATURES'] = True to drop them "
    "(each dropped feature is logged)."
)
ANYMAIL_HINT = "'Migrating from django-anymail' in the docs says what each anymail feature becomes."


def check_unsupported_features(
    message: EmailMessage, *, ignore_unsupported_features: bool, can_schedule: bool = False
) -> tuple[str, ...]:
    """The features of ``message`` that will be dropped; raise unless they may be.

    Raises ``SendFleetUnsupportedFeature`` naming every unsupported feature when
    ``ignore_unsupported_features`` is off; otherwise logs one warning per dropped feature.
    ``can_schedule``: the backend holds a message until its ``send_at`` (the queued one).
    """
    features = unsupported_features(message, can_schedule=can_schedule)
    if not features:
        return ()
    if not ignore_unsupported_features:
        hints = [IGNORE_HINT]
        if any(feature.startswith("send_at ") for feature in features):
            hints.insert(0, schedule.QUEUED_HINT)
        if any(feature.split(" ")[0] in ANYMAIL_ATTRIBUTES for feature in features):
            hints.append(ANYMAIL_HINT)
        raise SendFleetUnsupportedFeature(
            "SendFleet cannot send " + ", ".join(features) + ". " + " ".join(hints)
        )
    for feature in features:
        logger.warning(
            "SendFleet dropped %s from the message %r (IGNORE_UNSUPPORTED_FEATURES is on)",
            feature,
            str(message.subject or ""),
        )
    return tuple(features)


def unsupported_features(message: EmailMessage, *, can_schedule: bool = False) -> list[str]:
    """Each feature of the message the API cannot carry, named as the message's attribute.

    ``send_at`` is one only when it is in the future and the backend cannot wait for it."""
    features = []
    inline = sum(1 for attachment in message.attachments if _is_inline(attachment))
    if len(message.attachments) > inline:
        features.append(f"attachments ({len(message.attachments) - inline})")
    if inline:
        features.append(f"inline images in attachments ({inline})")
    headers = sorted(h for h in message.extra_headers if h.lower() != "reply-to")
    if headers:
        features.append("custom headers (" + ", ".join(headers) + ")")
    other_alternatives = sorted(
        {mimetype for _, mimetype in alternatives(message) if mimetype != "text/html"}
    )
    if other_alternatives:
        features.append("alternatives of type " + ", ".join(other_alternatives))
    html_count = sum(1 for _, mimetype in alternatives(message) if mimetype == "text/html")
    if html_count + (message.content_subtype == "html") > 1:
        features.append("more than one HTML body")
    if _reply_to_count(message) > 1:
        features.append("more than one reply_to address")
    for name in _set_anymail_attributes(message):
        if name not in LOCAL_ATTRIBUTES or (
            name == "send_at" and not can_schedule and schedule.is_future(message, is_set)
        ):
            features.append(f"{name} ({ANYMAIL_ATTRIBUTES[name]})")
    return features


def is_set(value: Any) -> bool:
    """Whether an anymail attribute asks for something, as anymail reads it: not None and not
    anymail's ``UNSET`` marker. An empty value (``tags=[]``, ``metadata={}``) asks for nothing."""
    if value is None:
        return False
    if type(value) in _PLAIN_CONTAINERS:  # the common case, without the ABC checks below
        return len(value) > 0
    if _is_anymail_unset(value):
        return False
    return not isinstance(value, Sized) or len(value) > 0


_PLAIN_CONTAINERS = frozenset({list, tuple, dict, str})


def alternatives(message: EmailMessage) -> list[tuple[Any, str]]:
    """(content, mimetype) of each alternative; none for a plain ``EmailMessage``."""
    return [(alt[0], alt[1]) for alt in getattr(message, "alternatives", None) or []]


def reply_to_values(message: EmailMessage) -> list[Any]:
    """The reply-to values the message asks for (a Reply-To header wins, as in Django).

    A header comes back whole, one value, for ``parse_address`` to take as exactly one mailbox
    or refuse, as strictly as an item of ``reply_to``: splitting it would let a display name
    with a comma (``"attacker@evil.example, Ann <ann@example.com>"``) choose the reply-to.
    """
    header = _reply_to_header(message)
    return [header] if header is not None else list(message.reply_to)


def _reply_to_count(message: EmailMessage) -> int:
    """How many addresses the message asks to be replied to: a header may list several."""
    header = _reply_to_header(message)
    return len(header_addresses(header)) if header is not None else len(message.reply_to)


def _reply_to_header(message: EmailMessage) -> Any | None:
    for name, value in message.extra_headers.items():
        if name.lower() == "reply-to":
            return value
    return None


def _set_anymail_attributes(message: EmailMessage) -> list[str]:
    return [name for name in ANYMAIL_ATTRIBUTES if is_set(getattr(message, name, None))]


def _is_anymail_unset(value: Any) -> bool:
    # anymail.utils.UNSET is a class, AnymailMessage's default for every attribute. Recognised
    # by name so that anymail need not be installed.
    return isinstance(value, type) and (value.__module__, value.__name__) == (
        "anymail.utils",
        "UNSET",
    )


def _is_inline(attachment: Any) -> bool:
    """An inline image (anymail's ``attach_inline_image``): a MIME part shown in the body."""
    disposition = getattr(attachment, "get_content_disposition", None)
    return callable(disposition) and disposition() == "inline"
