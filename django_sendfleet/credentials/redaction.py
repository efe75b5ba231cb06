"""Keeping secrets out of text that is raised, logged or stored."""

from __future__ import annotations

from collections.abc import Iterable

from .secret import Secret, revealed

REDACTED = "[redacted]"


def redact(text: str, secrets: Iterable[str | Secret[str]]) -> str:
    # Longest first: a whole key goes before its secret part would break it up.
    for secret in sorted(revealed(secrets), key=len, reverse=True):
        text = text.replace(secret, REDACTED)
    return text
