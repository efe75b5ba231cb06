"""Django system checks for django-sendfleet: registered in apps.py, run at every startup.

They only read settings (``config_review.py``): no network, no database. The deeper checks,
against the API and the database, are ``manage.py sendfleet_check``'s (``diagnostics.py``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.core import checks as django_checks

from ..conf import SendFleetSettings
from ..exceptions import SendFleetConfigurationError
from ..webhooks.accounts import signing_accounts
from .config_review import (
    KEY_MALFORMED_FIX,
    KEY_MISSING_FIX,
    KEY_SHAPE_FIX,
    LEASE_FIX,
    PER_PROCESS_CACHE_FIX,
    PLAIN_HTTP_FIX,
    SETTINGS_FIX,
    WEBHOOK_SECRET_FIX,
    is_plain_http_outside_loopback,
    key_problem,
    key_shape_warning,
    lease_problem,
    rate_limit_cache_problem,
    sendfleet_mailers,
    settings_problem,
    webhook_path,
)


def system_targets() -> list[tuple[str, SendFleetSettings]]:
    """(label, settings) to check: each SendFleet mailer, else SENDFLEET when it is set."""
    targets = [(f"mailer '{m.alias}'", m.conf) for m in sendfleet_mailers()]
    if not targets and getattr(settings, "SENDFLEET", None):
        targets.append(("settings.SENDFLEET", SendFleetSettings()))
    return targets


def check_key_setting(label: str, conf: SendFleetSettings) -> list[django_checks.CheckMessage]:
    problem = key_problem(conf)
    if problem is None:
        return []
    kind, text = problem
    if kind == "missing":
        return [django_checks.Error(text, hint=KEY_MISSING_FIX, obj=label, id="sendfleet.E001")]
    return [django_checks.Error(text, hint=KEY_MALFORMED_FIX, obj=label, id="sendfleet.E002")]


def check_key_shape_setting(
    label: str, conf: SendFleetSettings
) -> list[django_checks.CheckMessage]:
    """A warning, never an error: SendFleet does not document the secret's alphabet, so an
    unusual key may still be right, and sending goes on with it."""
    warning = key_shape_warning(conf)
    if warning is None:
        return []
    return [django_checks.Warning(warning, hint=KEY_SHAPE_FIX, obj=label, id="sendfleet.W002")]


def check_lease_setting(label: str, conf: SendFleetSettings) -> list[django_checks.CheckMessage]:
    problem = lease_problem(conf)
    if problem is None:
        return []
    return [django_checks.Error(problem, hint=LEASE_FIX, obj=label, id="sendfleet.E006")]


def check_url_setting(label: str, conf: SendFleetSettings) -> list[django_checks.CheckMessage]:
    try:
        url = conf.api_url
    except SendFleetConfigurationError:
        return []  # sendfleet.E005
    if not is_plain_http_outside_loopback(url):
        return []
    message = f"The SendFleet API URL {url} is plain http outside loopback."
    return [django_checks.Error(message, hint=PLAIN_HTTP_FIX, obj=label, id="sendfleet.E003")]


def check_other_settings(label: str, conf: SendFleetSettings) -> list[django_checks.CheckMessage]:
    problem = settings_problem(conf)
    if problem is None:
        return []
    return [django_checks.Error(problem, hint=SETTINGS_FIX, obj=label, id="sendfleet.E005")]


def check_log_content(label: str, conf: SendFleetSettings) -> list[django_checks.CheckMessage]:
    try:
        on = conf.log_content
    except SendFleetConfigurationError:
        return []  # sendfleet.E005
    if not on:
        return []
    return [
        django_checks.Info(
            "SendFleet LOG_CONTENT is on: the send log stores every message's body, which "
            "often holds personal data.",
            hint="Turn it off unless you need the content; prune the log with "
            "'manage.py sendfleet_prune --days N'.",
            obj=label,
            id="sendfleet.I001",
        )
    ]


def check_rate_limit_cache_setting(
    label: str, conf: SendFleetSettings
) -> list[django_checks.CheckMessage]:
    problem = rate_limit_cache_problem(conf)
    if problem is None:
        return []
    return [
        django_checks.Warning(problem, hint=PER_PROCESS_CACHE_FIX, obj=label, id="sendfleet.W001")
    ]


def check_webhook_secret_setting() -> list[django_checks.CheckMessage]:
    path = webhook_path()
    if path is None:
        return []
    try:
        secrets = signing_accounts(SendFleetSettings()).secrets  # mailers' own too
    except SendFleetConfigurationError:
        return []  # sendfleet.E005
    if secrets:
        return []
    message = (
        f"The SendFleet webhook is routed at {path} but SENDFLEET['WEBHOOK_SECRET'] is not set."
    )
    return [
        django_checks.Error(
            message, hint=WEBHOOK_SECRET_FIX, obj="settings.SENDFLEET", id="sendfleet.E004"
        )
    ]


#: Run for each mailer (or for SENDFLEET alone); add new per-mailer system checks here.
SYSTEM_CHECKS_PER_TARGET: list[
    Callable[[str, SendFleetSettings], list[django_checks.CheckMessage]]
] = [
    check_key_setting,
    check_key_shape_setting,
    check_url_setting,
    check_other_settings,
    check_lease_setting,
    check_log_content,
    check_rate_limit_cache_setting,
]
#: Run once; add new project-wide system checks here.
SYSTEM_CHECKS_ONCE: list[Callable[[], list[django_checks.CheckMessage]]] = [
    check_webhook_secret_setting
]


def system_checks(app_configs: Any = None, **kwargs: Any) -> list[django_checks.CheckMessage]:
    """Registered by ``SendFleetConfig.ready()``. Silent when the project doesn't use SendFleet."""
    targets = system_targets()
    if not targets:
        return []
    messages = []
    for label, conf in targets:
        for check in SYSTEM_CHECKS_PER_TARGET:
            messages.extend(check(label, conf))
    for check in SYSTEM_CHECKS_ONCE:
        messages.extend(check())
    return messages
