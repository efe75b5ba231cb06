"""One email address from a header value: exactly one mailbox, sent as Django would send it.

Why: docs/internals.md#message-one-address-per-header-value
"""

from __future__ import annotations

import functools
import itertools
import re
from email import _header_value_parser as parser
from email.errors import HeaderParseError
from email.headerregistry import Address, HeaderRegistry
from typing import Any, NamedTuple

from django.core.exceptions import ValidationError
from django.core.validators import validate_email

from ..exceptions import SendFleetInvalidAddress, SendFleetInvalidMessage
from .text_safety import refuse_unsafe_header_text

#: The longest addr-spec there is (64 + "@" + 255; Django's validator allows no more).
MAX_ADDRESS_LENGTH = 320
#: The longest header value we parse: RFC 5322's line limit. Ample for any 320-character address
#: with a 156-character display name (SendFleet's ``from_name`` limit), quoted.
MAX_VALUE_LENGTH = 998

# The parser's defects that say nothing about the address: "J. R. R. Tolkien <jrrt@...>" has a
# period in an unquoted display name (obsolete syntax that Django 5.2's SMTP backend sends).
_HARMLESS_DEFECTS = frozenset({"period in 'phrase'"})

#: The most words, whitespace runs and symbols a value the full parser reads may have: a quoted
#: display name of 25 words with its address has about 60. Parsing 64 costs a few milliseconds
#: at worst, where 500 (in 998 characters) cost a tenth of a second.
MAX_PARTS = 64
# One part each: a run of atom characters, a run of whitespace, or any other single character.
_PART = re.compile(r'[^\s"(),.:;<>@\[\]\\]++|\s++|.', re.DOTALL)

# Most values are plain "addr", "<addr>" or "Name <addr>": those skip the email package's full
# parser, which costs about half a millisecond a value. The fast path takes only ASCII dot-atom
# addresses and names made of atoms, for which it finds exactly what the full parser finds
# (tests/message/test_addresses.py checks that with hypothesis). Possessive quantifiers throughout:
# nothing can backtrack, so a match attempt is linear in the value's length.
_ATEXT = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]"
_FAST_ADDRESS = re.compile(
    r"[ \t]*+"
    rf"(?:(?P<name>{_ATEXT}++(?:[ \t]++{_ATEXT}++)*+)?[ \t]*+(?P<angle><))?"
    rf"(?P<local>{_ATEXT}++(?:\.{_ATEXT}++)*+)"
    r"@(?P<domain>[A-Za-z0-9-]++(?:\.[A-Za-z0-9-]++)*+)"
    r"(?(angle)>)[ \t]*+"
)
_HEADER_PARSER = HeaderRegistry()


class ParsedAddress(NamedTuple):
    display_name: str
    #: The address as it is sent: ASCII, the domain IDNA-encoded.
    addr_spec: str


def parse_address(value: Any, field: str) -> ParsedAddress:
    """The one address of a header value (``"Name <addr>"``, ``addr``, an ``Address``...).

    Raises ``SendFleetInvalidAddress`` (a ``ValueError``) naming the field and the value unless
    the value is exactly one mailbox whose address the API accepts.
    """
    text = str(value)  # str(): lazy strings, Address objects
    try:
        return _parse_text(text, field)
    except SendFleetInvalidMessage as error:  # every reason below, line breaks included
        # "Invalid address": Django's SMTP backend's words, which apps and tests may match.
        shown = repr(text) if len(text) <= 80 else f"{text[:40]!r}..."
        reason = error.detail.removeprefix(f"{field}: ")
        raise SendFleetInvalidAddress(
            f"{field}: Invalid address {shown}: {reason}", field=field, value=text
        ) from None


@functools.lru_cache(maxsize=512)  # senders and reply-to addresses repeat across a batch
def _parse_text(text: str, field: str) -> ParsedAddress:
    if len(text) > MAX_VALUE_LENGTH:
        raise _refused(
            f"{len(text)} characters; an address header value may have at most {MAX_VALUE_LENGTH}."
        )
    refuse_unsafe_header_text(text, field)
    fast = None if "=?" in text else _FAST_ADDRESS.fullmatch(text)  # "=?": RFC 2047 encoded
    if fast:
        # ASCII throughout and a dot-atom local part: the address is sent as written (IDNA
        # leaves an ASCII domain alone; validate_email refuses the labels it would refuse).
        name = " ".join(fast["name"].split()) if fast["name"] else ""  # folded as the parser does
        return _checked(ParsedAddress(name, f"{fast['local']}@{fast['domain']}"), field, text)
    if _too_many_parts(text):
        raise _refused(
            f"more than {MAX_PARTS} words and symbols; write one address with a short display name."
        )
    return _parse_mailbox(text, field)


def _too_many_parts(text: str) -> bool:
    parts = itertools.islice(_PART.finditer(text), MAX_PARTS + 1)  # stops early: linear
    return sum(1 for _ in parts) > MAX_PARTS


def _parse_mailbox(text: str, field: str) -> ParsedAddress:
    """The email package's RFC 5322 mailbox parser, as Django's ``sanitize_address`` uses it."""
    try:
        token, rest = parser.get_mailbox(text)
        # The token's properties walk the parse tree and fail on some broken ones ("0@[").
        name, local_part, domain = token.display_name or "", token.local_part, token.domain
        defects = [str(d) for d in token.all_defects]
    except (HeaderParseError, IndexError, ValueError, TypeError, AttributeError):
        # The parser's own text ("string index out of range") would say nothing to a reader.
        raise _refused("not an email address.") from None
    if rest:
        raise _refused(
            f"not exactly one email address ({rest[:40]!r} follows the first): write one "
            "address, with any display name quoted."
        )
    if local_part and not local_part.isascii():
        raise _refused(_NON_ASCII_LOCAL_PART)
    refuse_unsafe_header_text(name, field)  # decoded encoded words may hide a line break
    defects = [defect for defect in defects if defect not in _HARMLESS_DEFECTS]
    if defects:
        raise _refused(f"not a valid email address ({'; '.join(defects)}).")
    return _as_sent(name, local_part, domain, field, text)


def _as_sent(
    name: str, local_part: str | None, domain: str | None, field: str, text: str
) -> ParsedAddress:
    """The address as the API will receive it, checked as the API checks it."""
    if not local_part or not domain:
        raise _refused("not a valid email address.")
    if not local_part.isascii():
        raise _refused(_NON_ASCII_LOCAL_PART)
    try:
        # As Django's punycode(): Python's IDNA 2003 codec, applied to every domain.
        ascii_domain = domain.encode("idna").decode("ascii")
        addr_spec = Address(username=local_part, domain=ascii_domain).addr_spec
    except (UnicodeError, ValueError):
        raise _refused(f"the domain {domain!r} is not a valid (IDNA) domain name.") from None
    refuse_unsafe_header_text(addr_spec, field)  # decoded encoded words may hide anything
    return _checked(ParsedAddress(name, addr_spec), field, text)


def _checked(address: ParsedAddress, field: str, text: str) -> ParsedAddress:
    """The address if the API accepts it as sent: its length, then the API's validator."""
    if len(address.addr_spec) > MAX_ADDRESS_LENGTH:
        raise _refused(
            f"the address is {len(address.addr_spec)} characters as sent; at most "
            f"{MAX_ADDRESS_LENGTH} are allowed."
        )
    try:
        validate_email(address.addr_spec)
    except ValidationError:
        raise _refused("not a valid email address.") from None
    return address


def _refused(reason: str) -> SendFleetInvalidMessage:
    """Why a value is refused; ``parse_address`` names the field and the value."""
    return SendFleetInvalidMessage(reason)


# Django's SMTP backend's own words first, so that code matching them works here too.
_NON_ASCII_LOCAL_PART = (
    "local-part contains non-ASCII characters (the part before the @ must be ASCII: SendFleet "
    "cannot send to an address with a non-ASCII local part; only the domain may be "
    "international)."
)


def header_addresses(value: Any) -> list[Any]:
    """The addresses a header that may list several (``Reply-To``) gives, one item each: only
    to count them; what is sent is parsed whole (``features.reply_to_values``).

    Anything but a clean list of mailboxes (a group, a parser defect, a value too long to parse)
    comes back whole, as one item, for ``parse_address`` to refuse: the list parser would
    otherwise pick an address out of a display name.
    """
    text = str(value)
    if len(text) > MAX_VALUE_LENGTH or _too_many_parts(text):
        return [value]
    try:
        # The parser's objects fail on some broken values ("x:;b": AttributeError).
        header = _HEADER_PARSER("reply-to", text)
        defects = [d for d in header.defects if str(d) not in _HARMLESS_DEFECTS]
        groups = header.groups  # type: ignore[attr-defined]
        if defects or any(group.display_name is not None for group in groups):
            return [value]
        return list(header.addresses)  # type: ignore[attr-defined]
    except (HeaderParseError, IndexError, ValueError, TypeError, AttributeError):
        return [value]


def with_ascii_domain(address: str) -> str:
    """``address`` with its domain IDNA-encoded, as it is sent; unchanged if that fails."""
    local_part, at, domain = address.rpartition("@")
    if not at or domain.isascii():
        return address
    try:
        return f"{local_part}@{domain.encode('idna').decode('ascii')}"
    except UnicodeError:
        return address


def domain_of(address: str) -> str:
    """A checked address's domain, in lower case: the sender domain as the batch guard,
    ``send_forbidden`` and the admin see it."""
    return address.rpartition("@")[2].lower()
