"""A verified webhook body as it is kept: the parsed event when the body is one, and the body's
own text when it cannot be parsed or stored as JSON.

SendFleet never retries, so a body whose signature checks out is stored whatever it holds. Not
everything JSON can express can be stored as JSON: PostgreSQL's ``jsonb`` refuses NaN and
Infinity, the NUL character (``\\u0000``) and lone surrogates, SQLite's JSON check refuses NaN,
and Python's parser gives up on deep nesting. Such a body is kept as text (``raw_body``),
escaped so that it turns back into the exact bytes that were signed: PostgreSQL's ``text``
cannot hold NUL either, nor can any text column hold bytes that are not UTF-8.
"""

from __future__ import annotations

import base64
import json
import math
from dataclasses import dataclass
from typing import Any

#: SendFleet's events are flat objects; a JSON value nested deeper than this is kept as text.
MAX_JSON_DEPTH = 32
#: Marks an escaped body; a body that itself starts with it is escaped too, so both round-trip.
ESCAPED_PREFIX = "base64:"


@dataclass(frozen=True)
class ReceivedBody:
    #: The parsed JSON object, or None when the body is not one.
    event: dict[str, Any] | None
    #: Why the body cannot be processed as an event ("" when it can).
    problem: str = ""

    @property
    def storable_as_json(self) -> bool:
        return self.event is not None and is_storable_json(self.event)


def parse_body(body: bytes) -> ReceivedBody:
    """The event in a verified body, or why there is none. Never raises."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        return ReceivedBody(None, "the body is not UTF-8 text")
    try:
        value = json.loads(text)
    except RecursionError:
        return ReceivedBody(None, "the body is nested too deeply to parse")
    except ValueError:  # JSONDecodeError, and integers longer than Python converts
        return ReceivedBody(None, "the body is not JSON")
    if not isinstance(value, dict):
        return ReceivedBody(None, "the body is not a JSON object")
    return ReceivedBody(value)


def is_storable_json(value: Any) -> bool:
    """Whether every database stores this value in a JSON column and gives it back equal:
    finite numbers, text without NUL or lone surrogates, at most ``MAX_JSON_DEPTH`` deep."""
    pending: list[tuple[Any, int]] = [(value, 1)]  # a stack, not recursion: depth is hostile
    while pending:
        item, depth = pending.pop()
        if isinstance(item, dict | list) and depth > MAX_JSON_DEPTH:
            return False
        if isinstance(item, dict):
            if not all(is_storable_text(key) for key in item):
                return False
            pending.extend((child, depth + 1) for child in item.values())
        elif isinstance(item, list):
            pending.extend((child, depth + 1) for child in item)
        elif isinstance(item, str):
            if not is_storable_text(item):
                return False
        elif isinstance(item, float) and not math.isfinite(item):  # NaN, Infinity
            return False
    return True


def is_storable_text(text: str) -> bool:
    """No NUL (PostgreSQL's text refuses it) and no lone surrogate (not UTF-8)."""
    if "\x00" in text:
        return False
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def column_text(value: str, max_length: int) -> str:
    """Text for a column that shows a field of the event: storable, within the column."""
    text = value.replace("\x00", "\ufffd").encode("utf-8", "replace").decode("utf-8")
    return text if len(text) <= max_length else text[: max_length - 1] + "…"


def escape_body(body: bytes) -> str:
    """The body as storable text: itself when it is UTF-8 without NUL, else base64 after
    ``ESCAPED_PREFIX``. ``unescape_body`` gives back the exact bytes."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        text = None
    if text is not None and "\x00" not in text and not text.startswith(ESCAPED_PREFIX):
        return text
    return ESCAPED_PREFIX + base64.b64encode(body).decode("ascii")


def unescape_body(text: str) -> bytes:
    if text.startswith(ESCAPED_PREFIX):
        return base64.b64decode(text[len(ESCAPED_PREFIX) :])
    return text.encode("utf-8")
