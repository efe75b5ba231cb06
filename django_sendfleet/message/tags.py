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
from dataclasses import dataclass, field
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


@dataclass(frozen=True)
class Labels:
    """A message's tags and metadata, checked; ``for_recipient`` gives one recipient's."""

    tags: tuple[str, ...] = ()
    metadata: Mapping[str, Any] = field(default_factory=dict)
    #: Lower-cased address -> that recipient's merge_metadata.
    per_recipient: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)

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
    else:
        _check_size(metadata, "metadata")
    return Labels(tags=tags, metadata=metadata, per_recipient=per_recipient)


def check_tags(value: Any) -> tuple[str, ...]:
    """Tags as stored: a list (or tuple) of non-blank strings, bounded."""
    if isinstance(value, str) or not isinstance(value, list | tuple):
        raise SendFleetInvalidMessage(
            f"tags: a list of strings, not {type(value).__name__} (anymail takes a list)."
        )
    if len(value) > MAX_TAGS:
        raise SendFleetInvalidMessage(f"tags: {len(value)} tags; at most {MAX_TAGS} are kept.")
    for tag in value:
        if not isinstance(tag, str):
            raise SendFleetInvalidMessage(f"tags: {tag!r} is not a string.")
        if not tag.strip():
            raise SendFleetInvalidMessage("tags: a tag may not be blank.")
        if len(tag) > MAX_TAG_LENGTH:
            raise SendFleetInvalidMessage(
                f"tags: a tag of {len(tag)} characters; at most {MAX_TAG_LENGTH}."
            )
        _refuse_unstorable(tag, "tags")
    return tuple(value)


def check_metadata(value: Any, where: str) -> dict[str, Any]:
    """A flat dict of string keys and JSON scalar values (str, int, float, bool, None)."""
    if not isinstance(value, Mapping):
        raise SendFleetInvalidMessage(f"{where}: a dict, not {type(value).__name__}.")
    if len(value) > MAX_METADATA_KEYS:
        raise SendFleetInvalidMessage(
            f"{where}: {len(value)} keys; at most {MAX_METADATA_KEYS} are kept."
        )
    checked: dict[str, Any] = {}
    for key, item in value.items():
        if not isinstance(key, str) or not key:
            raise SendFleetInvalidMessage(f"{where}: the key {key!r} is not a non-empty string.")
        if len(key) > MAX_METADATA_KEY_LENGTH:
            raise SendFleetInvalidMessage(
                f"{where}: a key of {len(key)} characters; at most {MAX_METADATA_KEY_LENGTH}."
            )
        _refuse_unstorable(key, where)
        if isinstance(item, str):
            _refuse_unstorable(item, f"{where}[{key!r}]")
        elif isinstance(item, float) and not math.isfinite(item):
            raise SendFleetInvalidMessage(f"{where}[{key!r}]: {item} is not valid JSON.")
        elif item is not None and not isinstance(item, bool | int | float):
            # Nested values: anymail's metadata is flat, and most ESPs refuse anything else.
            raise SendFleetInvalidMessage(
                f"{where}[{key!r}]: a {type(item).__name__}; metadata values are strings, "
                "numbers, booleans or None (a flat dict, as in anymail)."
            )
        checked[key] = item
    return checked


def _check_size(metadata: Mapping[str, Any], where: str) -> None:
    if not metadata:
        return
    size = len(json.dumps(metadata, ensure_ascii=False))
    if size > MAX_METADATA_CHARACTERS:
        raise SendFleetInvalidMessage(
            f"{where}: {size} characters as JSON; at most {MAX_METADATA_CHARACTERS} are kept."
        )


def _refuse_unstorable(text: str, where: str) -> None:
    # What no database's JSON column takes: NUL (PostgreSQL's jsonb) and lone surrogates.
    if "\x00" in text:
        raise SendFleetInvalidMessage(f"{where}: NUL characters cannot be stored.")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise SendFleetInvalidMessage(f"{where}: lone surrogates cannot be stored.") from None


def _address_key(address: Any, where: str) -> str:
    """A recipient's key, as its address is sent (anymail keys by the address of ``to``)."""
    if not isinstance(address, str):
        raise SendFleetInvalidMessage(f"{where}: the key is not an email address.")
    return parse_address(address, where).addr_spec.lower()
