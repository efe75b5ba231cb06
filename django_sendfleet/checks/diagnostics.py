"""The checks behind ``manage.py sendfleet_check``: is email through SendFleet going to work?

Unlike the system checks (``checks.py``), these may use the network and the database: the API
(does it accept the key?), the database (are the migrations applied?), a real test message.
Each check is one small function returning a ``CheckResult``; the command runs the lists
``MAILER_CHECKS`` (once per SendFleet mailer) and ``PROJECT_CHECKS`` (once), so a new check is
one function and one list entry.
"""

from __future__ import annotations

from collections.abc import Callable
from email.utils import parseaddr

from django.apps import apps
from django.conf import settings
from django.db import DatabaseError, connections, router
from django.db.migrations.loader import MigrationLoader
from django.utils.module_loading import import_string

from .. import error_table
from ..backends import QueuedEmailBackend
from ..conf import DEFAULT_API_URL, SendFleetSettings
from ..exceptions import SendFleetConfigurationError
from ..message.priority import PRIORITIES
from ..queued import backlog
from ..webhooks.accounts import signing_accounts
from .api_probe import check_api_accepts_key
from .check_result import ERROR, OK, WARNING, CheckResult
from .config_review import (
    KEY_MALFORMED_FIX,
    KEY_MISSING_FIX,
    LEASE_FIX,
    MAX_RETRY_WAIT_MAX,
    MIGRATE_FIX,
    PER_PROCESS_CACHE_FIX,
    PLAIN_HTTP_FIX,
    SETTINGS_FIX,
    TIMEOUT_MAX,
    TIMEOUT_MIN,
    WEBHOOK_SECRET_FIX,
    Mailer,
    is_plain_http_outside_loopback,
    key_problem,
    key_shape_warning,
    lease_problem,
    rate_limit_cache_problem,
    settings_problem,
    webhook_path,
)
from .error_reports import check_error_reports
from .reputation import check_reputation


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
        secrets = signing_accounts(SendFleetSettings()).secrets  # mailers' own too
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


def check_outbox() -> CheckResult | None:
    """Queued rows waiting, per priority and mailer; a warning when a high-priority row has
    waited longer than ``HIGH_PRIORITY_MAX_WAIT`` (workers down, too few, or busy)."""
    if not apps.is_installed("django_sendfleet"):
        return None
    try:
        figures = backlog.collect()
        late = backlog.late_high_priority(figures, SendFleetSettings())
    except SendFleetConfigurationError:
        return None  # check_settings reports it
    except DatabaseError as error:
        return CheckResult("outbox", WARNING, f"the outbox could not be read: {error}")
    data = {
        "waiting": {priority: figures.waiting(priority) for priority in PRIORITIES},
        "oldest_due_seconds": {p: figures.oldest_due_seconds(p) for p in PRIORITIES},
        "groups": [group.as_data() for group in figures.groups],
    }
    if late is None:
        return CheckResult("outbox", OK, figures.summary(), data=data)
    message = (
        f"the oldest due high-priority row has waited {backlog.duration(late.total_seconds())}, "
        f"longer than SENDFLEET['HIGH_PRIORITY_MAX_WAIT']; {figures.summary()}"
    )
    return CheckResult("outbox", WARNING, message, OUTBOX_FIX, data)


OUTBOX_FIX = (
    "Check that the task workers run and keep up (docs/queued.md, 'Priorities'): start more, "
    "run 'manage.py sendfleet_requeue' from cron for lost tasks, and mark newsletters BULK so "
    "that transactional mail goes first."
)


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
    from ..queued.tasks import send_queued_emails

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
    check_outbox,
    check_reputation,
    check_error_reports,
]
