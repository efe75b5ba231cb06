"""A value that must never be shown: the API key, a webhook signing secret.

Django's error reports (the technical 500 page when ``DEBUG`` is on, the admins' error mail when
it is off) show the ``repr`` of every local variable of every frame, and ``sensitive_variables``
hides them only when ``DEBUG`` is off. So django-sendfleet holds each secret as a ``Secret`` from
the moment a setting is read: its ``str`` and ``repr`` are redacted wherever it ends up, and
``reveal()`` is called only where the value itself is needed (the request's header, the
webhook's HMAC, redacting text).
"""

from __future__ import annotations

import hmac
import re
from collections.abc import Iterable, Mapping
from typing import Any, Generic, TypeVar

T = TypeVar("T")

#: What a redacted value shows: the same as Django's ``SafeExceptionReporterFilter``.
REDACTED = "********************"

#: Names (of settings, options, dict keys, variables) whose values are secrets.
SECRET_NAME = re.compile(
    r"api[-_]?key|secret|passw(?:or)?d|token|credential|signature|authorization|cookie"
    r"|private[-_]?key",
    re.IGNORECASE,
)


#: A value shaped like an API key (``<prefix>.<secret>``), whatever it is named.
KEY_SHAPED = re.compile(r"[A-Za-z0-9_-]+\.[A-Za-z0-9_-]{32,}")


def looks_secret(name: object) -> bool:
    """Whether a value named ``name`` is a secret (``api_key``, ``WEBHOOK_SECRET``, ...)."""
    return isinstance(name, str) and SECRET_NAME.search(name) is not None


def key_shaped(value: object) -> bool:
    return isinstance(value, str) and KEY_SHAPED.search(value) is not None


class Secret(Generic[T]):
    """A value whose ``str()`` and ``repr()`` never show it; ``reveal()`` gives it."""

    __slots__ = ("_value",)

    def __init__(self, value: T) -> None:
        self._value = value

    @classmethod
    def wrap(cls, value: T | Secret[T]) -> Secret[T]:
        """``value`` as a ``Secret``: itself when it is one already."""
        return value if isinstance(value, Secret) else cls(value)

    def reveal(self) -> T:
        """The value itself: only for what must use it (a header, an HMAC, redaction)."""
        return self._value

    def __repr__(self) -> str:
        return f"{type(self).__name__}({REDACTED!r})"

    # An f-string or a header built from a Secret by mistake carries the stars, not the key.
    __str__ = __repr__

    def __bool__(self) -> bool:
        return bool(self._value)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Secret):
            return NotImplemented
        mine, theirs = self._value, other._value
        if isinstance(mine, str) and isinstance(theirs, str):
            return hmac.compare_digest(mine.encode(), theirs.encode())
        return bool(mine == theirs)

    def __hash__(self) -> int:
        return hash(self._value)


def reveal(value: Any) -> Any:
    """A ``Secret``'s value, or ``value`` itself when it is not one."""
    return value.reveal() if isinstance(value, Secret) else value


def hide_secrets(options: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of a settings dict with every secret in it a ``Secret``: the value of each option
    named like one (``api_key``, ``WEBHOOK_SECRET``), and any value shaped like an API key (one
    pasted into the wrong option). Frames holding it may be in an error report."""
    return {
        name: Secret.wrap(value) if looks_secret(name) or key_shaped(value) else value
        for name, value in options.items()
    }


def revealed(secrets: Iterable[str | Secret[str]]) -> list[str]:
    """The non-empty values of ``secrets``: for redacting them from text."""
    return [text for text in map(reveal, secrets) if isinstance(text, str) and text]
