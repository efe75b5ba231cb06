"""The API key as a value: its two parts, whether its shape can be right, and what of it must
never be shown.

SendFleet shows keys as ``<prefix>.<secret>``: an 8-character prefix (the dashboard's name for a
key, safe to log) and a 32-character secret, but never the secret's alphabet, and its own
example key has a longer prefix. So a key of another shape is only warned about
(``shape_warning``) and sent as it is: SendFleet's 401 is the judge. Only a key that cannot be
right (empty, whitespace, no dot, not header-safe) is refused.
"""

from __future__ import annotations

import re
from typing import Any

from django.views.decorators.debug import sensitive_variables

from ..exceptions import SendFleetConfigurationError
from .secret import Secret, reveal

API_KEY_ENVIRONMENT_VARIABLE = "SENDFLEET_API_KEY"
API_KEY_PATTERN = re.compile(r"^[A-Za-z0-9_-]{1,64}\.[A-Za-z0-9_-]{32,128}$")
API_KEY_SECRET_LENGTH = 32


class ApiKey(Secret[str]):
    """A key that can be right: a ``Secret`` whose ``str()`` and ``repr()`` show the prefix."""

    __slots__ = ()

    def __init__(self, value: str | Secret[str]) -> None:
        super().__init__(reveal(value))

    @classmethod
    @sensitive_variables("raw")
    def parse(cls, raw: Any) -> ApiKey:
        """The key, or ``SendFleetConfigurationError`` saying why it cannot be (never shown).

        ``raw`` is the configured value as a ``Secret`` (``conf.py`` reads it so): a bare
        ``str`` here would be a local variable of this frame in an error report.
        """
        if not raw:
            raise SendFleetConfigurationError(
                "SendFleet API key is missing: set SENDFLEET['API_KEY'] (or the "
                f"{API_KEY_ENVIRONMENT_VARIABLE} environment variable, or the MAILERS "
                "'api_key' option)."
            )
        problem = _unusable_key_problem(reveal(raw))
        if problem is not None:
            raise SendFleetConfigurationError(
                f"SendFleet API key is malformed: {problem}. Expected '<prefix>.<secret>' as "
                "shown in Dashboard -> API Keys."
            )
        return cls(raw)

    @property
    def value(self) -> str:
        """The key itself: ``reveal()``, for the callers that hash or send it."""
        return self.reveal()

    @property
    def prefix(self) -> str:
        return self.reveal().partition(".")[0]

    @property
    def secret(self) -> Secret[str]:
        return Secret(self.reveal().partition(".")[2])

    @property
    def secrets(self) -> tuple[Secret[str], Secret[str]]:
        """What must never be logged, stored or shown: the whole key and its secret part."""
        return (self, self.secret)

    def shape_warning(self) -> str | None:
        return api_key_shape_warning(self.reveal())

    def __str__(self) -> str:
        return f"{self.prefix}.<secret>"

    def __repr__(self) -> str:
        return f"ApiKey(prefix={self.prefix!r})"


def _unusable_key_problem(key: Any) -> str | None:
    """Why a key cannot be SendFleet's, or None. Says how, never shows the key."""
    if not isinstance(key, str):
        return f"it is a {type(key).__name__}, not a string"
    if any(character.isspace() for character in key):
        return (
            "it contains whitespace (a space, tab or line break: a key read from a file or a "
            "secret store often ends with a newline)"
        )
    if "." not in key:
        return "it has no dot between the prefix and the secret"
    if not (key.isascii() and key.isprintable()):
        return "it contains characters an HTTP header cannot carry (only visible ASCII)"
    return None


def api_key_shape_warning(key: str) -> str | None:
    """How a usable key differs from the keys SendFleet shows, or None. Never shows the key."""
    if API_KEY_PATTERN.fullmatch(key):
        return None
    prefix, _, secret = key.partition(".")
    differences = []
    if key[0] in "\"'" or key[-1] in "\"'":
        differences.append("it starts or ends with a quote mark")
    if not prefix:
        differences.append("nothing comes before the dot")
    elif len(prefix) > 64:
        differences.append(f"the part before the dot has {len(prefix)} characters")
    if "." in secret:
        differences.append("it has more than one dot")
    if not 32 <= len(secret) <= 128:
        shown = f"SendFleet shows {API_KEY_SECRET_LENGTH}"
        differences.append(f"the part after the dot has {len(secret)} characters ({shown})")
    others = sum(1 for c in key if not (c.isascii() and (c.isalnum() or c in "_-.")))
    if others:
        differences.append(f"it has {others} character(s) other than letters, digits, _ and -")
    return (
        "The SendFleet API key does not look like the keys SendFleet shows "
        f"('<prefix>.<secret>' with a {API_KEY_SECRET_LENGTH}-character secret): "
        + "; ".join(differences)
        + ". It is sent as it is; if SendFleet refuses it (HTTP 401, which stops the batch), "
        "copy the whole key again from Dashboard -> API Keys."
    )
