"""A message's ``tags``, ``metadata`` and ``merge_metadata`` (django-anymail's attributes), as
the send log stores them: checked, bounded, and per recipient.

SendFleet's API has no field for any of them: nothing is sent. They are kept on each
recipient's send log row, handed to the signals, and set on each tracking event of the send
(``TrackingEvent.tags``, ``.metadata``), as anymail's tracking events carry them back.

Checked as anymail documents them: ``tags`` a list of strings, ``metadata`` a flat dict
(string keys, JSON scalar values), ``merge_metadata`` such a dict per recipient address, merged
over ``metadata`` (the recipient's values win). Bounded so that a row stays small: what cannot
be stored whole is refused with ``SendFleetInvalidMessage`` before any request, never cut.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any

from ..exceptions import SendFleetInvalidMessage
from .addresses import parse_address

#: At most this many tags, each of at most ``MAX_TAG_LENGTH`` characters.
MAX_TAGS = 50
MAX_TAG_LENGTH = 128
#: A recipient's metadata (``metadata`` merged with its ``merge_metadata``) as JSON: at most
#: this many characters, and at most ``MAX_METADATA_KEYS`` keys.
MAX_METADATA_CHARACTERS = 4000
MAX_METADATA_KEYS = 50
MAX_METADATA_KEY_LENGTH = 128

Metadata = dict[str, "str | int | float | bool | None"]


class Labels:
    """A message's tags and metadata, checked; ``for_recipient`` gives one recipient's.

    A plain class with slots: one is made for every message that has tags or metadata."""

    __slots__ = ("metadata", "per_recipient", "tags")

    def __init__(
        self,
        tags: tuple[str, ...] = (),
        metadata: Mapping[str, Any] | None = None,
        per_recipient: Mapping[str, Mapping[str, Any]] | None = None,
    ) -> None:
        self.tags = tags
        self.metadata: Mapping[str, Any] = metadata if metadata is not None else {}
        #: Lower-cased address -> that recipient's merge_metadata.
        self.per_recipient: Mapping[str, Mapping[str, Any]] = per_recipient or {}

    def for_recipient(self, recipient: str) -> dict[str, Any]:
        """The recipient's metadata: ``metadata``, its ``merge_metadata`` merged over it."""
        own = self.per_recipient.get(recipient.lower()) if self.per_recipient else None
        if own is None:
            return dict(self.metadata)
        return {**self.metadata, **own}


NO_LABELS = Labels()


def as_set(message: Any) -> dict[str, Any]:
    """``tags`` and ``metadata`` as the message sets them, unchecked (for ``pre_send``, sent
    before the message is checked): a list and a dict, empty when not set or not of that type."""
    tags = getattr(message, "tags", None)
    metadata = getattr(message, "metadata", None)
    return {
        "tags": list(tags) if isinstance(tags, list | tuple) else [],
        "metadata": dict(metadata) if isinstance(metadata, Mapping) else {},
    }


def labels_of(message: Any, is_set: Any) -> Labels:
    """The checked tags and metadata of a message (``is_set``: anymail's reading of a value).

    Raises ``SendFleetInvalidMessage`` naming the attribute for what anymail would refuse and
    for what is too big to store.
    """
    tags_value = getattr(message, "tags", None)
    metadata_value = getattr(message, "metadata", None)
    merge_value = getattr(message, "merge_metadata", None)
    if not (is_set(tags_value) or is_set(metadata_value) or is_set(merge_value)):
        return NO_LABELS
    tags = check_tags(tags_value) if is_set(tags_value) else ()
    metadata = check_metadata(metadata_value, "metadata") if is_set(metadata_value) else {}
    per_recipient: dict[str, Mapping[str, Any]] = {}
    if is_set(merge_value):
        if not isinstance(merge_value, Mapping):
            raise SendFleetInvalidMessage(
                f"merge_metadata: a dict of recipient address -> metadata, not "
                f"{type(merge_value).__name__}."
            )
        for address, values in merge_value.items():
            where = f"merge_metadata[{address!r}]"
            own = check_metadata(values, where)
            _check_size({**metadata, **own}, where + " merged over metadata")
            per_recipient[_address_key(address, where)] = own
    return Labels(tags=tags, metadata=metadata, per_recipient=per_recipient)


def check_tags(value: Any) -> tuple[str, ...]:
    """Tags as stored: a list (or tuple) of non-blank strings, bounded."""
    if type(value) not in (list, tuple) and (
        isinstance(value, str) or not isinstance(value, list | tuple)
    ):
        raise SendFleetInvalidMessage(
            f"tags: a list of strings, not {type(value).__name__} (anymail takes a list)."
        )
    if len(value) > MAX_TAGS:
        raise SendFleetInvalidMessage(f"tags: {len(value)} tags; at most {MAX_TAGS} are kept.")
    for tag in value:
        # The common tag first, in one expression: this runs for every tag of every message.
        if not (
            type(tag) is str
            and 0 < len(tag) <= MAX_TAG_LENGTH
            and tag.isascii()
            and "\x00" not in tag
            and not tag.isspace()
        ):
            _check_tag(tag)
    return tuple(value)


def _check_tag(tag: Any) -> None:
    if not isinstance(tag, str):
        raise SendFleetInvalidMessage(f"tags: {tag!r} is not a string.")
    if not tag.strip():
        raise SendFleetInvalidMessage("tags: a tag may not be blank.")
    if len(tag) > MAX_TAG_LENGTH:
        raise SendFleetInvalidMessage(
            f"tags: a tag of {len(tag)} characters; at most {MAX_TAG_LENGTH}."
        )
    _refuse_unstorable(tag, "tags")


def check_metadata(value: Any, where: str) -> dict[str, Any]:
    """A flat dict of string keys and JSON scalar values (str, int, float, bool, None)."""
    if type(value) is not dict and not isinstance(value, Mapping):
        raise SendFleetInvalidMessage(f"{where}: a dict, not {type(value).__name__}.")
    if len(value) > MAX_METADATA_KEYS:
        raise SendFleetInvalidMessage(
            f"{where}: {len(value)} keys; at most {MAX_METADATA_KEYS} are kept."
        )
    checked: dict[str, Any] = {}
    characters = 0  # of keys and string values: what the JSON's size is bounded by
    # Plain types are checked first, by type: this runs for every message that has metadata.
    for key, item in value.items():
        if not (type(key) is str and 0 < len(key) <= MAX_METADATA_KEY_LENGTH and key.isascii()) or (
            "\x00" in key
        ):
            _check_key(key, where)
        characters += len(key)
        kind = type(item)
        if kind is str:
            characters += len(item)
            if not item.isascii() or "\x00" in item:
                _refuse_unstorable(item, where, key)
        elif kind is int:
            if not _MIN_INT <= item <= _MAX_INT:
                # Beyond what every database's JSON keeps exactly (SQLite's is 64-bit).
                raise SendFleetInvalidMessage(f"{where}[{key!r}]: an integer beyond 64 bits.")
        elif kind is float:
            if not math.isfinite(item):
                raise SendFleetInvalidMessage(f"{where}[{key!r}]: {item} is not valid JSON.")
        elif item is not None and kind is not bool:
            item = _other_value(item, where, key)
            if type(item) is str:
                characters += len(item)
        checked[key] = item
    # An upper bound first: metadata far below the limit (nearly all) is not encoded here.
    if (
        2 + _MOST_PER_ITEM * len(checked) + _MOST_PER_CHARACTER * characters
        > MAX_METADATA_CHARACTERS
    ):
        _check_size(checked, where)
    return checked


def _check_key(key: Any, where: str) -> None:
    if not isinstance(key, str) or not key:
        raise SendFleetInvalidMessage(f"{where}: the key {key!r} is not a non-empty string.")
    if len(key) > MAX_METADATA_KEY_LENGTH:
        raise SendFleetInvalidMessage(
            f"{where}: a key of {len(key)} characters; at most {MAX_METADATA_KEY_LENGTH}."
        )
    _refuse_unstorable(key, where)


def _other_value(item: Any, where: str, key: str) -> Any:
    """A value not of a plain type: a subclass of one (``SafeString``, an ``IntEnum``) is
    stored as that type's value; anything else is refused."""
    for kind, as_plain in _PLAIN.items():
        if isinstance(item, kind):
            # The base type's own conversion: a plain value whatever the subclass overrides.
            return check_metadata({key: as_plain(item)}, where)[key]
    # Nested values: anymail's metadata is flat, and most ESPs refuse anything else.
    raise SendFleetInvalidMessage(
        f"{where}[{key!r}]: a {type(item).__name__}; metadata values are strings, "
        "numbers, booleans or None (a flat dict, as in anymail)."
    )


_MIN_INT, _MAX_INT = -(2**63), 2**63 - 1
_PLAIN: dict[type, Any] = {str: str.__str__, int: int.__int__, float: float.__float__}
#: The most characters JSON writes for one character of a string (a control character:
#: ``\u0000``), and for a number or a key's quotes and separators.
_MOST_PER_CHARACTER = 6
_MOST_PER_ITEM = 32


def _check_size(metadata: Mapping[str, Any], where: str) -> None:
    size = len(json.dumps(metadata, ensure_ascii=False))
    if size > MAX_METADATA_CHARACTERS:
        raise SendFleetInvalidMessage(
            f"{where}: {size} characters as JSON; at most {MAX_METADATA_CHARACTERS} are kept."
        )


def _refuse_unstorable(text: str, where: str, key: str | None = None) -> None:
    # What no database's JSON column takes: NUL (PostgreSQL's jsonb) and lone surrogates.
    # (``where`` and ``key`` make the message only when there is one: this runs per value.)
    if "\x00" in text:
        raise SendFleetInvalidMessage(f"{_where(where, key)}: NUL characters cannot be stored.")
    if text.isascii():
        return  # no surrogate: the common case costs one flag read
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise SendFleetInvalidMessage(
            f"{_where(where, key)}: lone surrogates cannot be stored."
        ) from None


def _where(where: str, key: str | None) -> str:
    return where if key is None else f"{where}[{key!r}]"


def _address_key(address: Any, where: str) -> str:
    """A recipient's key, as its address is sent (anymail keys by the address of ``to``)."""
    if not isinstance(address, str):
        raise SendFleetInvalidMessage(f"{where}: the key is not an email address.")
    return parse_address(address, where).addr_spec.lower()
