"""Which mailers a project configures, and which backend class sends for each.

Django 6.1 configures mailers in ``MAILERS`` (alias -> ``BACKEND`` and ``OPTIONS``); before
that there is one, ``EMAIL_BACKEND``, which we call ``"default"``. Backend classes are looked
up by their dotted path, so this module imports no backend.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from typing import Any

from django.conf import settings
from django.utils.module_loading import import_string

#: The backend a mailer entry without BACKEND gets (Django 6.1 requires BACKEND, but be safe).
DEFAULT_MAILER_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
SENDFLEET_BACKEND = "django_sendfleet.backends.EmailBackend"
QUEUED_BACKEND = "django_sendfleet.backends.QueuedEmailBackend"


def configured_mailers() -> dict[str, Mapping[str, Any]]:
    """alias -> MAILERS entry; before Django 6.1's MAILERS, "default" -> EMAIL_BACKEND."""
    if hasattr(settings, "MAILERS"):
        return dict(settings.MAILERS)
    with warnings.catch_warnings():
        # Django 6.1 deprecates EMAIL_BACKEND; the project's own settings already warn.
        warnings.simplefilter("ignore", PendingDeprecationWarning)
        return {"default": {"BACKEND": settings.EMAIL_BACKEND}}


def backend_path(alias: str) -> str:
    entry = configured_mailers().get(alias) or {}
    return str(entry.get("BACKEND", DEFAULT_MAILER_BACKEND))


def is_sendfleet_backend(path: str, base: str = SENDFLEET_BACKEND) -> bool:
    """Whether the dotted path names ``base`` (our ``EmailBackend``) or a subclass of it."""
    try:
        backend = import_string(path)
    except ImportError:
        return False  # Django reports it when the mailer is used
    return isinstance(backend, type) and issubclass(backend, import_string(base))


def backend_class(alias: str, base: str = SENDFLEET_BACKEND) -> type:
    """The class that sends for this mailer: the ``sender`` of its signals.

    ``base`` when the alias is not (or no longer) configured with it or a subclass: rows queued
    under a since-renamed mailer, say, still signal with the kind of backend that sent them.
    """
    path = backend_path(alias)
    return import_string(path if is_sendfleet_backend(path, base) else base)
