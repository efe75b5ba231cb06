"""System check: webhook events on SQLite need the settings that let writers wait in turn.

Webhook requests write while the app sends, and SendFleet posts events concurrently. With
Django's default SQLite options a transaction that reads before it writes fails at once with
"database is locked" when another writer holds the lock, and readers block writers. The
documented options (docs/webhooks.md) make every transaction take the write lock when it begins
and wait for it (``transaction_mode`` IMMEDIATE, a ``timeout``), and let readers read while one
writes (WAL). Settings only: no database is opened.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core import checks
from django.db import connections, router
from django.urls import NoReverseMatch, reverse

from ..models import WebhookEvent

CHECK_ID = "sendfleet.W003"
FIX = (
    "Set DATABASES[...]['OPTIONS'] = {'transaction_mode': 'IMMEDIATE', 'timeout': 20, "
    "'init_command': 'PRAGMA journal_mode=WAL;'} (Django 5.1+; see docs/webhooks.md, SQLite)."
)


def missing_sqlite_options(options: dict[str, Any]) -> list[str]:
    """What SQLite ``OPTIONS`` lack of the documented ones for concurrent webhook writes."""
    missing = []
    if str(options.get("transaction_mode", "")).upper() != "IMMEDIATE":
        missing.append("transaction_mode 'IMMEDIATE'")
    if "timeout" not in options:
        missing.append("a 'timeout' (seconds a writer waits for the lock)")
    init_command = str(options.get("init_command", "")).lower().replace(" ", "")
    if "journal_mode=wal" not in init_command:
        missing.append("'PRAGMA journal_mode=WAL;' in 'init_command'")
    return missing


def check_webhook_sqlite_options(
    app_configs: Any = None, **kwargs: Any
) -> list[checks.CheckMessage]:
    if not getattr(settings, "ROOT_URLCONF", None):
        return []  # a settings module for workers only: no URLs, so no webhook routed here
    try:
        path = reverse("sendfleet-webhook")
    except NoReverseMatch:
        return []  # no webhook routed: no concurrent event writes
    alias = router.db_for_write(WebhookEvent)
    connection = connections[alias]  # not opened: vendor and settings only
    if connection.vendor != "sqlite":
        return []
    missing = missing_sqlite_options(connection.settings_dict.get("OPTIONS") or {})
    if not missing:
        return []
    message = (
        f"The SendFleet webhook is routed at {path} and its events are written to SQLite "
        f"database '{alias}' without {', '.join(missing)}: concurrent events can fail with "
        "'database is locked' and wait for the retries."
    )
    return [checks.Warning(message, hint=FIX, obj=f"DATABASES['{alias}']", id=CHECK_ID)]
