"""``merge_data`` and ``merge_global_data`` (django-anymail's batch sends), rendered locally.

SendFleet sends each recipient its own request, so each recipient's subject, text and HTML are
rendered with that recipient's values before the request, where anymail's ESPs render them at
the ESP. Placeholders are ``{{name}}`` (SES's template form; spaces inside the braces allowed).

- One pass: each placeholder of the template is replaced by its value, and a value is never
  read again, so a value holding ``{{other}}`` (or template code) is sent as it is.
- A value is HTML-escaped once in the HTML body, and verbatim in the text and the subject.
- A recipient's own value (``merge_data[address]``) wins over ``merge_global_data``.
- A placeholder with no value refuses the whole message before any request: ``Dear {{name}}``
  is never sent. So does a value the subject cannot carry (a line break).
- ``to`` recipients get their own values; ``cc`` and ``bcc`` recipients get the message
  rendered with ``merge_global_data`` only (their own copy, never another recipient's values);
  a placeholder the global data does not fill refuses the message.

Without ``merge_data`` and ``merge_global_data``, nothing is rendered: braces are sent as written.
"""

from __future__ import annotations

import html
import re
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from ..exceptions import SendFleetInvalidMessage
from .addresses import parse_address
from .text_safety import refuse_unsafe_header_text, refuse_unsafe_text

#: ``{{name}}`` or ``{{ name }}``: a name of letters, digits, ``_``, ``-`` and ``.``. A bounded
#: run of spaces and one character class each: nothing to backtrack over.
PLACEHOLDER = re.compile(r"\{\{ {0,8}([A-Za-z_][A-Za-z0-9_.\-]{0,99}) {0,8}\}\}")

_SCALARS = (str, int, float, Decimal)


@dataclass(frozen=True)
class Rendered:
    """One recipient's subject, text and HTML."""

    subject: str | None
    text: str
    html: str | None


@dataclass(frozen=True)
class MergeData:
    """A message's merge values, checked: global values, and ``to`` recipients' own."""

    global_values: Mapping[str, str]
    #: Lower-cased address -> that recipient's values (``to`` recipients only).
    per_recipient: Mapping[str, Mapping[str, str]]

    def values_for(self, recipient: str) -> Mapping[str, str]:
        own = self.per_recipient.get(recipient.lower())
        return {**self.global_values, **own} if own else self.global_values


def placeholders(template: str | None) -> set[str]:
    """The names of the placeholders in a template."""
    return {match.group(1) for match in PLACEHOLDER.finditer(template)} if template else set()


def render(template: str, values: Mapping[str, str], *, escape: bool = False) -> str:
    """The template with each placeholder replaced by its value, in one pass (values are
    never read as placeholders). ``escape``: HTML-escape each value (the HTML body)."""

    def value_of(match: re.Match[str]) -> str:
        value = values[match.group(1)]  # checked by ``check_values`` before any rendering
        return html.escape(value, quote=True) if escape else value

    return PLACEHOLDER.sub(value_of, template)


def merge_data_of(message: Any, is_set: Any, to: set[str]) -> MergeData | None:
    """The checked merge values of a message; None when it sets neither attribute.

    ``to``: the lower-cased addresses of its ``to`` recipients, those ``merge_data`` applies to.
    """
    data = getattr(message, "merge_data", None)
    global_data = getattr(message, "merge_global_data", None)
    if not (is_set(data) or is_set(global_data)):
        return None
    global_values = _values(global_data, "merge_global_data") if is_set(global_data) else {}
    per_recipient: dict[str, Mapping[str, str]] = {}
    if is_set(data):
        if not isinstance(data, Mapping):
            raise SendFleetInvalidMessage(
                f"merge_data: a dict of recipient address -> values, not {type(data).__name__}."
            )
        for address, values in data.items():
            where = f"merge_data[{address!r}]"
            if not isinstance(address, str):
                raise SendFleetInvalidMessage(f"{where}: the key is not an email address.")
            key = parse_address(address, where).addr_spec.lower()
            if key in to:  # anymail's rule: merge_data is for to recipients
                per_recipient[key] = _values(values, where)
    return MergeData(global_values, per_recipient)


def check_rendering(
    merge: MergeData,
    recipients: tuple[str, ...],
    subject: str | None,
    text: str,
    html_body: str | None,
    *,
    max_subject_length: int,
) -> None:
    """Refuse the message, before any request, if any recipient's rendering would be wrong: a
    placeholder without a value, a subject value that cannot be in a header, or a subject
    too long once rendered."""
    needed = placeholders(subject) | placeholders(text) | placeholders(html_body)
    in_subject = placeholders(subject)
    # A text of placeholders only could render blank, which the API refuses: found here.
    only_placeholders = not PLACEHOLDER.sub("", text).strip()
    for recipient in recipients:
        values = merge.values_for(recipient)
        missing = sorted(needed - values.keys())
        if missing:
            whose = "" if recipient.lower() in merge.per_recipient else " (global data only)"
            raise SendFleetInvalidMessage(
                f"merge data: no value for {', '.join('{{' + n + '}}' for n in missing)} "
                f"for {recipient}{whose}; nothing was sent."
            )
        for name in in_subject:
            refuse_unsafe_header_text(values[name], f"merge data {name!r} for the subject")
        if only_placeholders and not render(text, values).strip():
            raise SendFleetInvalidMessage(
                f"body: blank once rendered for {recipient}; SendFleet requires a non-blank "
                "plain-text body."
            )
        if in_subject and subject:
            length = len(render(subject, values))
            if length > max_subject_length:
                raise SendFleetInvalidMessage(
                    f"subject: {length} characters once rendered for {recipient}; SendFleet "
                    f"allows at most {max_subject_length}."
                )


def render_for(
    merge: MergeData, recipient: str, subject: str | None, text: str, html_body: str | None
) -> Rendered:
    """One recipient's subject, text and HTML (checked by ``check_rendering``)."""
    values = merge.values_for(recipient)
    return Rendered(
        subject=render(subject, values) if subject else subject,
        text=render(text, values),
        html=render(html_body, values, escape=True) if html_body else html_body,
    )


def _values(value: Any, where: str) -> dict[str, str]:
    if not isinstance(value, Mapping):
        raise SendFleetInvalidMessage(f"{where}: a dict of values, not {type(value).__name__}.")
    checked: dict[str, str] = {}
    for name, item in value.items():
        if not isinstance(name, str):
            raise SendFleetInvalidMessage(f"{where}: the key {name!r} is not a string.")
        if isinstance(item, bool) or not isinstance(item, _SCALARS):
            # None or a structure has no one text a placeholder could become.
            raise SendFleetInvalidMessage(
                f"{where}[{name!r}]: a {type(item).__name__}; merge values are strings or numbers."
            )
        text = str(item)
        refuse_unsafe_text(text, f"{where}[{name!r}]")
        checked[name] = text
    return checked
