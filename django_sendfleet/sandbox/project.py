"""What the project under test configures, read for the sandbox's test helpers (``testing.py``).

Django's test environment replaces every mailer with the locmem backend (``EMAIL_BACKEND``
before 6.1, each ``MAILERS`` entry on 6.1) and keeps the project's own configuration aside.
The helpers read it from there, so that each SendFleet mailer of the project sends to the
sandbox with its own options, the other mailers stay as the test environment left them, and
the sandbox knows the domains the project sends from.
"""

from __future__ import annotations

from collections.abc import Mapping
from email.utils import parseaddr
from typing import Any

from django.conf import settings
from django.test import utils as test_utils

from ..conf.mailers import is_sendfleet_backend
from .base import BaseSandbox
from .defaults import SANDBOX_API_KEY

BACKEND = "django_sendfleet.backends.EmailBackend"
LOCMEM = "django.core.mail.backends.locmem.EmailBackend"
#: Options a test's sandbox sets for every SendFleet mailer, through ``SENDFLEET`` (so a test
#: changing ``SENDFLEET`` changes them): a mailer's own values would win over the dict.
SANDBOX_OPTIONS = ("api_key", "api_url", "rate_limit")


def _saved(name: str) -> Any:
    """The project's own value of a setting Django's test environment replaced, or None."""
    saved = getattr(getattr(test_utils, "_TestState", None), "saved_data", None)
    return getattr(saved, name, None)


def _is_sendfleet(entry: Mapping[str, Any] | None) -> bool:
    return entry is not None and is_sendfleet_backend(str(entry.get("BACKEND", "")))


def _pointed_at_sandbox(entry: Mapping[str, Any]) -> dict[str, Any]:
    options = {
        name: value
        for name, value in (entry.get("OPTIONS") or {}).items()
        if name not in SANDBOX_OPTIONS
    }
    return {**entry, "OPTIONS": options}


def sandbox_mailers() -> dict[str, Any]:
    """``MAILERS`` (Django 6.1) for a test's sandbox: each mailer as it is now, except that one
    Django's test environment swapped for locmem is the project's again if it is SendFleet's;
    each SendFleet mailer keeps its backend and options but the key, URL and rate limit; and
    "default" is SendFleet's ``EmailBackend`` if it is not a SendFleet mailer already."""
    current: dict[str, Any] = dict(settings.MAILERS)
    configured: Mapping[str, Any] = _saved("mailers") or current
    mailers: dict[str, Any] = {}
    for alias, entry in current.items():
        swapped = dict(entry) == {"BACKEND": LOCMEM}
        if swapped and _is_sendfleet(configured.get(alias)):
            entry = configured[alias]
        mailers[alias] = _pointed_at_sandbox(entry) if _is_sendfleet(entry) else entry
    if not _is_sendfleet(mailers.get("default")):
        mailers["default"] = {"BACKEND": BACKEND}
    return mailers


def sandbox_email_backend() -> str:
    """``EMAIL_BACKEND`` (before Django 6.1) for a test's sandbox: the project's, if it is
    SendFleet's (the queued backend stays queued), else SendFleet's ``EmailBackend``."""
    for path in (settings.EMAIL_BACKEND, _saved("email_backend")):
        if path and is_sendfleet_backend(str(path)):
            return str(path)
    return BACKEND


def backend_settings(sandbox: BaseSandbox, sendfleet: Mapping[str, Any] | None) -> dict[str, Any]:
    """The settings that send through django-sendfleet to ``sandbox``: the mailers (above),
    and your ``SENDFLEET`` (``sendfleet``) with the sandbox's URL and key and the rate limiter
    off (turn it on in a test about pacing)."""
    values: dict[str, Any] = {
        "SENDFLEET": {
            **(sendfleet or {}),
            "API_KEY": SANDBOX_API_KEY,
            "API_URL": sandbox.url,
            "RATE_LIMIT": None,
        }
    }
    if hasattr(settings, "MAILERS"):
        values["MAILERS"] = sandbox_mailers()
    else:
        values["EMAIL_BACKEND"] = sandbox_email_backend()
    return values


def sender_domains() -> list[str]:
    """The domains the project sends from: ``DEFAULT_FROM_EMAIL``'s and ``SERVER_EMAIL``'s.
    Django's defaults (``webmaster@localhost``, ``root@localhost``) have no domain SendFleet
    could send from, and are left out: the sandbox refuses them as SendFleet would."""
    domains: list[str] = []
    for name in ("DEFAULT_FROM_EMAIL", "SERVER_EMAIL"):
        address = parseaddr(str(getattr(settings, name, "") or ""))[1]
        domain = address.rpartition("@")[2].strip().rstrip(".").lower()
        if "@" in address and "." in domain and domain not in domains:
            domains.append(domain)
    return domains
