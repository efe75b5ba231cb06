"""Is email through SendFleet going to work? Django system checks, and the deploy-time checks
behind ``manage.py sendfleet_check``.

The system checks run at every startup, so they only read settings: no network, no database.
The command's checks go further (the API, the database, a real test message). Each check is one
small function returning a ``CheckResult``; the command runs the lists ``MAILER_CHECKS`` (once
per SendFleet mailer) and ``PROJECT_CHECKS`` (once), so a new check is one function and one
list entry.
"""

from __future__ import annotations

import ipaddress
import re
import socket
import time
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from email.utils import parseaddr
from typing import Any
from urllib.parse import urlsplit

import requests
from django.apps import apps
from django.conf import settings
from django.core import checks as django_checks
from django.core.mail import EmailMessage
from django.db import DatabaseError, connections, router
from django.db.migrations.loader import MigrationLoader
from django.urls import reverse
from django.utils.module_loading import import_string

from . import error_table
from .backends import EmailBackend, QueuedEmailBackend
from .client import SendFleetClient
from .conf import DEFAULT_API_URL, SendFleetSettings, api_key_shape_warning, mailer_options
from .exceptions import (
    SendFleetConfigurationError,
    SendFleetDomainError,
    SendFleetError,
    SendFleetNetworkError,
    SendFleetRateLimited,
    SendFleetValidationError,
)
from .outcome import QUEUED
from .ratelimit import is_shared

OK, WARNING, ERROR = "ok", "warning", "error"
WEBHOOK_URL_NAME = "sendfleet-webhook"
DEFAULT_MAILER_BACKEND = "django.core.mail.backends.smtp.EmailBackend"  # as Django's
#: Above this many seconds a web request waits too long on a slow API.
TIMEOUT_MAX = 30.0
#: Below this many seconds a slow answer ends as "unknown": the email may have been sent.
TIMEOUT_MIN = 1.0
MAX_RETRY_WAIT_MAX = 60.0

KEY_MISSING_FIX = (
    "Create a key in Dashboard -> API Keys and provide it as the SENDFLEET_API_KEY environment "
    "variable, SENDFLEET['API_KEY'] or the mailer's 'api_key' option."
)
KEY_MALFORMED_FIX = (
    "Copy the whole key from Dashboard -> API Keys: '<prefix>.<secret>', the part after the "
    "dot included, without spaces or quotes."
)
KEY_SHAPE_FIX = (
    "'manage.py sendfleet_check' posts the key to the API: if it works, silence this with "
    "SILENCED_SYSTEM_CHECKS = ['sendfleet.W002']. " + KEY_MALFORMED_FIX
)
LEASE_FIX = (
    "Raise SENDFLEET['LEASE_SECONDS'] (default 300) above the longest send, or lower TIMEOUT "
    "or MAX_RETRY_WAIT."
)
PLAIN_HTTP_FIX = (
    f"Use https (the default is {DEFAULT_API_URL}): plain http sends the API key unencrypted. "
    "Only a loopback address (a local sandbox) may use http."
)
WEBHOOK_SECRET_FIX = (
    "Set SENDFLEET['WEBHOOK_SECRET'] to the endpoint's signing secret from the SendFleet "
    "dashboard. SendFleet does not retry, so every event refused until then is lost."
)
MIGRATE_FIX = (
    "Check DATABASES and that the database server is up, then run 'python manage.py migrate'."
)
SETTINGS_FIX = "Correct the setting the message names (see docs/configuration.md)."


@dataclass
class CheckResult:
    name: str
    level: str  # OK, WARNING or ERROR
    message: str
    fix: str = ""
    #: Facts for --json (message_id, prefix, counts...). Never the key.
    data: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Mailer:
    """A configured mailer whose backend is django-sendfleet's."""

    alias: str
    backend: str
    #: The OPTIONS the backend reads (the SendFleet ones).
    options: Mapping[str, Any] = field(default_factory=dict)

    @property
    def conf(self) -> SendFleetSettings:
        return SendFleetSettings(self.options)


# Finding the SendFleet mailers.


def configured_mailers() -> dict[str, Mapping[str, Any]]:
    """alias -> MAILERS entry; before Django 6.1's MAILERS, "default" -> EMAIL_BACKEND."""
    if hasattr(settings, "MAILERS"):
        return dict(settings.MAILERS)
    with warnings.catch_warnings():
        # Django 6.1 deprecates EMAIL_BACKEND; the project's own settings already warn.
        warnings.simplefilter("ignore", PendingDeprecationWarning)
        return {"default": {"BACKEND": settings.EMAIL_BACKEND}}


def is_sendfleet_backend(path: str) -> bool:
    try:
        backend = import_string(path)
    except ImportError:
        return False  # Django reports it when the mailer is used
    return isinstance(backend, type) and issubclass(backend, EmailBackend)


def sendfleet_mailers() -> list[Mailer]:
    """Every configured mailer whose BACKEND is (a subclass of) our ``EmailBackend``."""
    mailers = []
    for alias, config in configured_mailers().items():
        backend = config.get("BACKEND", DEFAULT_MAILER_BACKEND)
        if is_sendfleet_backend(backend):
            mailers.append(Mailer(alias, backend, mailer_options(alias)))
    return mailers


# Facts shared by the system checks and the command.


def key_problem(conf: SendFleetSettings) -> tuple[str, str] | None:
    """("missing" or "malformed", the error text) when the key is unusable, else None.

    Other configuration errors (a wrong SENDFLEET) are left to ``settings_problem``.
    """
    try:
        conf.api_key  # noqa: B018  (the property checks the key)
    except SendFleetConfigurationError as error:
        text = str(error)
        for kind in ("missing", "malformed"):
            if f"API key is {kind}" in text:
                return kind, text
    return None


def key_shape_warning(conf: SendFleetSettings) -> str | None:
    """Why a key that will be used does not look like SendFleet's (never the key), or None."""
    try:
        key = conf.api_key
    except SendFleetConfigurationError:
        return None  # missing or malformed: key_problem says so
    return api_key_shape_warning(key)


def longest_claimed_send(conf: SendFleetSettings) -> float:
    """The most seconds a queued worker holds one row's claim: a wait for the shared rate
    limiter's slot (at most MAX_RETRY_WAIT), then one attempt (connect plus read timeout; a
    single TIMEOUT applies to each). Retries are not in it: the worker reschedules them, and
    each is sent under a new claim."""
    timeout = conf.timeout
    connect, read = timeout if isinstance(timeout, tuple) else (timeout, timeout)
    limiter_wait = conf.max_retry_wait if conf.rate_limit is not None else 0.0
    return limiter_wait + connect + read


def lease_problem(conf: SendFleetSettings) -> str | None:
    """LEASE_SECONDS too short for the longest send, or None. A lease that expires during a
    send gets a row that was sent marked ``unknown``, with no message id."""
    try:
        lease, longest = conf.lease_seconds, longest_claimed_send(conf)
    except SendFleetConfigurationError:
        return None  # settings_problem reports it
    if lease > longest:
        return None
    return (
        f"SendFleet LEASE_SECONDS is {lease} s, but one queued send can take {longest:g} s "
        "(the rate limiter's wait up to MAX_RETRY_WAIT, then the connect and read TIMEOUT): "
        "its lease would expire while it is being sent, and a sent email would be recorded "
        "'unknown'."
    )


def settings_problem(conf: SendFleetSettings) -> str | None:
    """The first configuration error other than the key's, or None."""
    try:
        conf.validate()
    except SendFleetConfigurationError as error:
        problem = key_problem(conf)
        if problem is None or problem[1] != str(error):
            return str(error)
    return None


def is_loopback(host: str | None) -> bool:
    if not host:
        return False
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def is_plain_http_outside_loopback(url: str) -> bool:
    parts = urlsplit(url)
    return parts.scheme == "http" and not is_loopback(parts.hostname)


def webhook_path() -> str | None:
    """The routed path of the webhook view, or None when the project does not route it."""
    try:
        return reverse(WEBHOOK_URL_NAME)
    except Exception:  # NoReverseMatch; a broken URLconf is Django's own checks' business
        return None


# Django system checks: registered in apps.py, run at startup. Settings only.


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


PER_PROCESS_CACHE_FIX = (
    "Point SENDFLEET['RATE_LIMIT_CACHE'] at a cache every process shares, such as Django's "
    "RedisCache (pip install redis). With one process only, this warning can be silenced "
    "with SILENCED_SYSTEM_CHECKS = ['sendfleet.W001']."
)


def rate_limit_cache_problem(conf: SendFleetSettings) -> str | None:
    """Why the shared rate limiter would not be shared, or None."""
    try:
        if conf.rate_limit is None:
            return None
        alias = conf.rate_limit_cache
    except SendFleetConfigurationError:
        return None  # sendfleet.E005
    if is_shared(alias):
        return None
    return (
        f"SendFleet's rate limiter keeps its log in the cache {alias!r}, which is per process: "
        "N web processes or workers can together send N times SENDFLEET['RATE_LIMIT'] and "
        "hit SendFleet's 429s."
    )


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
        secrets = SendFleetSettings().webhook_secrets
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


# The command's checks (manage.py sendfleet_check). These may use the network and the database.


def check_settings(mailer: Mailer) -> CheckResult | None:
    """Every option but the key (that one is ``check_api_key``'s); silent when all are valid."""
    problem = settings_problem(mailer.conf)
    return None if problem is None else CheckResult("settings", ERROR, problem, SETTINGS_FIX)


def check_api_key(mailer: Mailer) -> CheckResult | None:
    problem = key_problem(mailer.conf)
    if problem is not None:
        kind, text = problem
        fix = KEY_MISSING_FIX if kind == "missing" else KEY_MALFORMED_FIX
        return CheckResult("API key", ERROR, text, fix)
    try:
        prefix = mailer.conf.api_key_prefix
    except SendFleetConfigurationError:
        return None  # the settings themselves are wrong: check_settings says how
    warning = key_shape_warning(mailer.conf)
    if warning is not None:
        # The API check below still posts it: its answer says whether the key works.
        return CheckResult("API key", WARNING, warning, KEY_MALFORMED_FIX, {"prefix": prefix})
    message = f"prefix {prefix}, shaped <prefix>.<secret> (the secret is never shown)"
    return CheckResult("API key", OK, message, data={"prefix": prefix})


def check_lease(mailer: Mailer) -> CheckResult | None:
    """Silent unless LEASE_SECONDS is too short (system check sendfleet.E006)."""
    problem = lease_problem(mailer.conf)
    return None if problem is None else CheckResult("lease", ERROR, problem, LEASE_FIX)


def check_api_url(mailer: Mailer) -> CheckResult | None:
    try:
        url = mailer.conf.api_url
    except SendFleetConfigurationError:
        return None  # check_settings reports it
    if is_plain_http_outside_loopback(url):
        return CheckResult("API URL", ERROR, f"{url} is plain http", PLAIN_HTTP_FIX)
    if url.startswith("http://"):
        note = "plain http, allowed on loopback: a local sandbox, not SendFleet"
    elif url == DEFAULT_API_URL:
        note = "https, the default"
    else:
        note = "https, not the default"
    return CheckResult("API URL", OK, f"{url} ({note})", data={"url": url})


def check_timeouts(mailer: Mailer) -> CheckResult | None:
    try:
        timeout, max_wait = mailer.conf.timeout, mailer.conf.max_retry_wait
    except SendFleetConfigurationError:
        return None  # check_settings reports it
    parts = timeout if isinstance(timeout, tuple) else (timeout,)
    shown = " + ".join(f"{part:g}" for part in parts)
    facts = f"TIMEOUT {shown} s, MAX_RETRY_WAIT {max_wait:g} s"
    problems = []
    if sum(parts) > TIMEOUT_MAX:
        problems.append(f"a request can hang for over {TIMEOUT_MAX:g} s on a slow API")
    if parts[-1] < TIMEOUT_MIN:
        problems.append(
            f"a read timeout under {TIMEOUT_MIN:g} s turns slow answers into 'unknown' sends "
            "(the email may have been sent)"
        )
    if max_wait > MAX_RETRY_WAIT_MAX:
        problems.append(f"retries may hold a web request for over {MAX_RETRY_WAIT_MAX:g} s")
    data = {"timeout": list(parts), "max_retry_wait": max_wait}
    if not problems:
        return CheckResult("timeouts", OK, facts, data=data)
    return CheckResult(
        "timeouts",
        WARNING,
        f"{facts}: {'; '.join(problems)}",
        f"Set TIMEOUT between {TIMEOUT_MIN:g} and {TIMEOUT_MAX:g} s (default 10) and "
        f"MAX_RETRY_WAIT to {MAX_RETRY_WAIT_MAX:g} s or less (default 10), in SENDFLEET or "
        "the mailer's OPTIONS.",
        data,
    )


def check_api_accepts_key(mailer: Mailer) -> CheckResult | None:
    """Post an empty payload: the API authenticates before it validates, so 400 = key works."""
    conf = mailer.conf
    if key_problem(conf) is not None or settings_problem(conf) is not None:
        return None  # not contacted: check_api_key or check_settings says why
    prefix, url = conf.api_key_prefix, conf.api_url
    if is_plain_http_outside_loopback(url):
        return None  # the key would cross the network unencrypted: check_api_url says so
    client = SendFleetClient(
        api_url=url, api_key=conf.api_key, timeout=conf.timeout, max_retry_wait=0
    )
    started = time.monotonic()
    try:
        client.send({})
    except SendFleetValidationError:
        ms = _ms_since(started)
        message = f"key {prefix} authenticated by {url} in {ms} ms (400 to an empty payload)"
        return CheckResult("API", OK, message, data={"status": 400, "ms": ms})
    except SendFleetError as error:
        return _api_problem(error, prefix, url, _ms_since(started))
    ms = _ms_since(started)
    return CheckResult(
        "API",
        WARNING,
        f"{url} accepted an empty payload in {ms} ms: it does not behave like SendFleet's API",
        error_table.SPECS_BY_CODE["malformed_response"].fix,
        {"ms": ms},
    )


def _api_problem(error: SendFleetError, prefix: str, url: str, ms: int) -> CheckResult:
    fix = error_table.spec_for_error(error).fix
    data = {"status": error.status_code, "error_code": error.error_code, "ms": ms}
    if isinstance(error, SendFleetNetworkError):
        message = f"no answer from {url}: {_network_reason(error)} (after {ms} ms)"
    elif error.status_code == 401:
        message = f"key {prefix} rejected by {url}: HTTP 401 {error.detail} ({ms} ms)"
    else:
        message = f"{url} answered HTTP {error.status_code} [{error.error_code}] {error.detail}"
        message += f" ({ms} ms)"
    if isinstance(error, SendFleetRateLimited):  # throttled after authentication: the key works
        return CheckResult("API", WARNING, f"key {prefix} works but {message}", fix, data)
    return CheckResult("API", ERROR, message, fix, data)


def _network_reason(error: SendFleetNetworkError) -> str:
    kind = error.cause_type or BaseException  # the requests error's class (it is not chained)
    if issubclass(kind, requests.ConnectTimeout):
        return "the connection timed out (TIMEOUT)"
    if issubclass(kind, requests.ReadTimeout):
        return "no answer within the read timeout (TIMEOUT)"
    text = error.cause or str(error)
    if issubclass(kind, requests.ConnectionError) and "NameResolutionError" in text:
        return "the host name does not resolve"
    found = re.search(r"\[Errno -?\d+\] [^'\")]+", text)
    return found.group(0) if found else error.detail


def check_send_test(mailer: Mailer, *, to: str, from_email: str | None = None) -> CheckResult:
    """Send one real message through the normal backend (so it is logged, and suppressions
    apply), and report what SendFleet answered."""
    backend = EmailBackend(alias=mailer.alias, **mailer.options)
    message = EmailMessage(
        subject=f"SendFleet check from {socket.gethostname()}",
        body="This message was sent by 'manage.py sendfleet_check --send-test'.",
        from_email=from_email,
        to=[to],
    )
    sender = parseaddr(message.from_email)[1]
    raised: Exception | None = None
    try:
        backend.send_messages([message])
    except (SendFleetError, SendFleetConfigurationError, DatabaseError) as error:
        raised = error
    status = getattr(message, "anymail_status", None)  # unset when open() raised
    results = list(status.recipients.values()) if status is not None else []
    result = results[0] if results else None
    data: dict[str, Any] = {"to": to, "from_email": sender}
    if result is not None and result.status == QUEUED:
        data.update(message_id=result.message_id, mode=result.mode, warnings=result.warnings)
        sent = f"queued to {to} from {sender}: message_id {result.message_id}, mode {result.mode}"
        if raised is not None:
            text = f"{sent}, but then: {raised}"
            return CheckResult("test message", ERROR, text, _fix_for(raised), data)
        if result.warnings:
            count = len(result.warnings)
            message_text = f"{sent}, with {count} warning(s) from SendFleet"
            return CheckResult(
                "test message", WARNING, message_text, " ".join(result.warnings), data
            )
        return CheckResult("test message", OK, sent, data=data)
    error = (result.error if result is not None else None) or raised
    if isinstance(error, SendFleetError):
        data.update(status=error.status_code, error_code=error.error_code)
        if isinstance(error, SendFleetDomainError):
            sender += f" (domain {sender.rpartition('@')[2]})"
    text = f"not sent from {sender} to {to}: {_describe(error)}"
    return CheckResult("test message", ERROR, text, _fix_for(error), data)


def _describe(error: Exception | None) -> str:
    if not isinstance(error, SendFleetError):
        return str(error)
    status = f"HTTP {error.status_code} " if error.status_code else ""
    return f"{status}[{error.error_code}] {error.detail}"


def _fix_for(error: Exception | None) -> str:
    if isinstance(error, SendFleetError):
        return error_table.spec_for_error(error).fix
    if isinstance(error, DatabaseError):
        return MIGRATE_FIX
    return SETTINGS_FIX


def check_from_email() -> CheckResult:
    return _check_sender("DEFAULT_FROM_EMAIL", ERROR, "--send-test proves it")


def check_server_email() -> CheckResult:
    """mail_admins(), error mail and AdminEmailHandler send from SERVER_EMAIL, whose default
    root@localhost SendFleet cannot send from. A warning: without ADMINS nothing uses it."""
    return _check_sender(
        "SERVER_EMAIL",
        WARNING,
        "--send-test with --from proves it",
        ": mail_admins(), error reports and AdminEmailHandler would fail",
    )


def _check_sender(setting: str, level: str, proof: str, consequence: str = "") -> CheckResult:
    value = getattr(settings, setting)
    address = parseaddr(str(value))[1]
    domain = address.rpartition("@")[2]
    if "@" not in address or "." not in domain:
        return CheckResult(
            setting,
            level,
            f"{value!r} has no domain SendFleet can send from{consequence}",
            error_table.SPECS_BY_CODE["domain_not_registered"].fix,
        )
    return CheckResult(
        setting,
        OK,
        f"{address}: check that {domain} is registered, TXT- and DKIM-verified in Dashboard -> "
        f"Domains ({proof})",
        data={"address": address, "domain": domain},
    )


def check_database() -> CheckResult:
    if not apps.is_installed("django_sendfleet"):
        return CheckResult("database", OK, "not used: django_sendfleet is not in INSTALLED_APPS")
    models = list(apps.get_app_config("django_sendfleet").get_models())
    alias = router.db_for_write(models[0])
    try:
        loader = MigrationLoader(connections[alias], ignore_no_migrations=True)
        pending = sorted(
            name
            for app, name in loader.graph.nodes
            if app == "django_sendfleet" and (app, name) not in loader.applied_migrations
        )
        if pending:
            return CheckResult(
                "database",
                ERROR,
                f"database {alias!r}: migrations not applied: {', '.join(pending)}",
                "Run 'python manage.py migrate django_sendfleet'.",
                {"database": alias, "unapplied": pending},
            )
        counts = {model: model._default_manager.using(alias).count() for model in models}
    except DatabaseError as error:
        return CheckResult(
            "database",
            ERROR,
            f"database {alias!r}: {error}",
            MIGRATE_FIX,
            {"database": alias},
        )
    shown = ", ".join(f"{m._meta.verbose_name_plural} {n}" for m, n in counts.items())
    return CheckResult(
        "database",
        OK,
        f"database {alias!r}: migrations applied; rows: {shown}",
        data={"database": alias, "rows": {m._meta.model_name: n for m, n in counts.items()}},
    )


def check_webhooks() -> CheckResult | None:
    path = webhook_path()
    try:
        # "or ()": conf returns the unparsed default, None, when WEBHOOK_SECRET is unset.
        secrets = SendFleetSettings().webhook_secrets or ()
    except SendFleetConfigurationError:
        return None  # check_settings reports it
    data = {"path": path, "secrets": len(secrets)}
    if path and secrets:
        message = f"routed at {path}, {len(secrets)} signing secret(s) set"
        return CheckResult("webhooks", OK, message, data=data)
    if path:
        message = f"routed at {path}, but SENDFLEET['WEBHOOK_SECRET'] is not set: events refused"
        return CheckResult("webhooks", ERROR, message, WEBHOOK_SECRET_FIX, data)
    if secrets:
        return CheckResult(
            "webhooks",
            WARNING,
            "SENDFLEET['WEBHOOK_SECRET'] is set but the webhook URL is not routed",
            "Add path('sendfleet/', include('django_sendfleet.urls')) to the URLconf, and "
            "register https://<your host>/sendfleet/webhook/ in the SendFleet dashboard.",
            data,
        )
    return CheckResult("webhooks", OK, "not used (URL not routed, no WEBHOOK_SECRET)", data=data)


#: Run for each SendFleet mailer, in order. --send-test adds ``check_send_test``.
def check_rate_limiter(mailer: Mailer) -> CheckResult | None:
    problem = rate_limit_cache_problem(mailer.conf)
    if problem is not None:
        return CheckResult("rate limiter", WARNING, problem, PER_PROCESS_CACHE_FIX)
    try:
        rate, alias = mailer.conf.rate_limit, mailer.conf.rate_limit_cache
    except SendFleetConfigurationError:
        return None  # reported by check_settings
    if rate is None:
        return CheckResult("rate limiter", OK, "off (SENDFLEET['RATE_LIMIT'] is None)")
    return CheckResult(
        "rate limiter", OK, f"{rate[0]} per {rate[1]:g} s, shared through cache {alias!r}"
    )


def check_task_backend(mailer: Mailer) -> CheckResult | None:
    """For queued mailers: the Tasks framework is there and the task backend is configured."""
    if not issubclass(import_string(mailer.backend), QueuedEmailBackend):
        return None
    from .tasks import send_queued_emails

    if send_queued_emails is None:
        return CheckResult(
            "task backend",
            ERROR,
            "QueuedEmailBackend needs Django's Tasks framework, which is not installed.",
            "Use Django 6.0+, or on 5.2 pip install 'django-sendfleet[queue]' and add "
            "'django_tasks' to INSTALLED_APPS.",
        )
    try:
        alias = mailer.conf.task_backend
        backend = send_queued_emails.using(backend=alias).get_backend()
    except Exception as error:  # InvalidTaskBackend (either package), bad settings
        return CheckResult(
            "task backend", ERROR, f"The task backend cannot be loaded: {error}", TASKS_FIX
        )
    name = type(backend).__name__
    if name in ("ImmediateBackend", "DummyBackend"):
        return CheckResult(
            "task backend",
            WARNING,
            f"TASKS[{alias!r}] is {name}: "
            + ("sends run inside the request." if name == "ImmediateBackend" else "nothing runs."),
            TASKS_FIX,
        )
    defer = "defers retries" if backend.supports_defer else "cannot defer: run sendfleet_requeue"
    return CheckResult("task backend", OK, f"TASKS[{alias!r}] is {name} ({defer})")


TASKS_FIX = (
    "Configure a worker-based task backend in settings.TASKS, such as django-tasks-db's "
    "DatabaseBackend with 'manage.py db_worker' (see docs/queued.md), and run "
    "'manage.py sendfleet_requeue' from cron."
)

MAILER_CHECKS: list[Callable[[Mailer], CheckResult | None]] = [
    check_settings,
    check_api_key,
    check_api_url,
    check_timeouts,
    check_lease,
    check_api_accepts_key,
    check_rate_limiter,
    check_task_backend,
]
#: Run once; add new project-wide checks here.
PROJECT_CHECKS: list[Callable[[], CheckResult | None]] = [
    check_from_email,
    check_server_email,
    check_database,
    check_webhooks,
]


def _ms_since(started: float) -> int:
    return round((time.monotonic() - started) * 1000)
