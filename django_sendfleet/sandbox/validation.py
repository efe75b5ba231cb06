"""Parsing and validating a ``POST /api/send/`` body the way SendFleet's DRF serializer does.

The messages, their order and the edge cases (trimmed whitespace, numbers accepted as
strings, ``null``) follow Django REST Framework's ``JSONParser``, ``Serializer``,
``CharField`` and ``EmailField``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from django.core.exceptions import ValidationError
from django.core.validators import validate_email

REQUIRED = "This field is required."
NULL = "This field may not be null."
BLANK = "This field may not be blank."
NOT_A_STRING = "Not a valid string."
INVALID_EMAIL = "Enter a valid email address."
NULL_CHARACTERS = "Null characters are not allowed."
TOO_LONG = "Ensure this field has no more than {max_length} characters."
SURROGATES = "Surrogate characters are not allowed: U+{code_point:X}."
NO_DATA = "No data provided"
NOT_A_DICT = "Invalid data. Expected a dictionary, but got {datatype}."

DEFAULT_SUBJECT = "(no subject)"


class JSONParseError(ValueError):
    """The body is not JSON; ``str()`` is DRF's ``ParseError`` detail."""


@dataclass(frozen=True)
class StringField:
    name: str
    required: bool = False
    max_length: int | None = None
    email: bool = False


SEND_FIELDS = (
    StringField("to", required=True, email=True),
    StringField("from_email", email=True),
    StringField("from_name", max_length=156),
    StringField("subject", max_length=256),
    StringField("message", required=True),
    StringField("html"),
    StringField("reply_to", email=True),
)


def parse_json_body(body: bytes) -> Any:
    if not body:
        # DRF hands an empty body to the serializer as an empty dict.
        return {}
    try:
        return json.loads(body.decode("utf-8"), parse_constant=_reject_constant)
    except ValueError as exc:
        raise JSONParseError(f"JSON parse error - {exc}") from exc


def _reject_constant(name: str) -> Any:
    raise ValueError(f"Out of range float values are not JSON compliant: {name!r}")


def validate_send_payload(data: Any) -> tuple[dict[str, str], dict[str, list[str]]]:
    """Return ``(cleaned_data, errors)``; ``errors`` is empty when the payload is valid."""
    if data is None:
        return {}, {"non_field_errors": [NO_DATA]}
    if not isinstance(data, dict):
        return {}, {"non_field_errors": [NOT_A_DICT.format(datatype=type(data).__name__)]}
    cleaned: dict[str, str] = {"subject": DEFAULT_SUBJECT}
    errors: dict[str, list[str]] = {}
    for field in SEND_FIELDS:
        if field.name not in data:
            if field.required:
                errors[field.name] = [REQUIRED]
            continue
        value, messages = clean_string(field, data[field.name])
        if messages:
            errors[field.name] = messages
        else:
            cleaned[field.name] = value
    return cleaned, errors


def clean_string(field: StringField, value: Any) -> tuple[str, list[str]]:
    """One present value through DRF's ``CharField.run_validation``: (value, error messages)."""
    if value is None:
        return "", [NULL]
    # Like CharField: blank is checked on the raw value; bool and containers are refused;
    # numbers become strings.
    if value == "" or str(value).strip() == "":
        return "", [BLANK]
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        return "", [NOT_A_STRING]
    text = str(value).strip()
    # DRF runs every validator and reports all of their messages.
    messages = []
    if field.max_length is not None and len(text) > field.max_length:
        messages.append(TOO_LONG.format(max_length=field.max_length))
    if "\x00" in text:
        messages.append(NULL_CHARACTERS)
    surrogate = next((char for char in text if 0xD800 <= ord(char) <= 0xDFFF), None)
    if surrogate is not None:
        messages.append(SURROGATES.format(code_point=ord(surrogate)))
    if field.email and not is_valid_email(text):
        messages.append(INVALID_EMAIL)
    return text, messages


def is_valid_email(address: str) -> bool:
    # Django's validator (the one DRF's EmailField uses) accepts IDN domains and needs no
    # settings as long as its lazy message is never rendered.
    try:
        validate_email(address)
    except ValidationError:
        return False
    return True
