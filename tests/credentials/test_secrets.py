"""The API key (whole, and its secret part) and the webhook signing secret never show.

Every failure path is driven (each API error and network failure of the fault matrix, for both
backends; configuration errors; webhook refusals; ``sendfleet_check`` as text and JSON; the
admin pages of the failed rows; ``repr()`` of the objects that hold the key), and the secrets
are looked for in:

- every log record of every logger, at DEBUG, urllib3, requests and the SQL sent to the
  database included (message, arguments, traceback);
- every exception raised or handed to a signal receiver (``str``, ``repr``, traceback, causes);
- every field of every ``SendLog``, ``Suppression`` and ``WebhookEvent`` row;
- admin pages, webhook answers and command output.
"""

from __future__ import annotations

import json
import logging
import os
import pprint
import traceback
from collections.abc import Iterator
from io import StringIO
from typing import Any

import django
import pytest
from django.core import mail
from django.core.cache import caches
from django.core.mail import EmailMessage
from django.core.management import CommandError, call_command
from django.db import connection
from django.test import override_settings
from django.urls import reverse
from django.views.debug import ExceptionReporter

import django_sendfleet
from django_sendfleet import signals
from django_sendfleet.api.client import SendFleetClient
from django_sendfleet.backends import EmailBackend, QueuedEmailBackend
from django_sendfleet.checks.config_review import sendfleet_mailers
from django_sendfleet.conf import SendFleetSettings, mailer_options
from django_sendfleet.credentials.secret import REDACTED, Secret
from django_sendfleet.exceptions import SendFleetConfigurationError, SendFleetError
from django_sendfleet.models import SendLog, Suppression, WebhookEvent
from django_sendfleet.ratelimit import SlidingWindowLimiter
from django_sendfleet.sandbox import (
    REVOKED_API_KEY,
)
from django_sendfleet.webhooks.view import sign
from tests.support.fault_matrix import MATRIX, World, answered_by, run_queued, run_sync
from tests.support.messages import SENDER
from tests.support.sandbox_keys import DEFAULT_KEYS
from tests.support.webhooks import post_webhook

pytestmark = [pytest.mark.usefixtures("sendfleet_settings"), pytest.mark.django_db]

PACKAGE = os.path.dirname(django_sendfleet.__file__) + os.sep
SANDBOX = os.path.join(PACKAGE, "sandbox") + os.sep

#: The key this project is configured with: registered in each test's sandbox.
API_KEY = "sfleak01.TheSecretHalfOfTheKeyMustNeverShow0123"
WEBHOOK_SECRET = "whsec_TheSigningSecretMustNeverShow_0123456789"

KNOWN_KEYS = [API_KEY, *DEFAULT_KEYS]


def secrets_of(key: str) -> set[str]:
    """The key, and the part after the dot on its own (the prefix is meant to be shown)."""
    return {key, key.partition(".")[2]}


class Watch:
    """Collects everything that could carry a secret; ``assert_clean()`` looks through it."""

    def __init__(self) -> None:
        self.forbidden: set[str] = {WEBHOOK_SECRET}.union(*map(secrets_of, KNOWN_KEYS))
        self.records: list[logging.LogRecord] = []
        self.texts: list[tuple[str, str]] = []

    def forbid_key(self, key: Any) -> None:
        if isinstance(key, str) and key:
            self.forbidden |= {s for s in secrets_of(key) if len(s.strip()) >= 8}

    def text(self, where: str, text: Any) -> None:
        self.texts.append((where, str(text)))

    def exception(self, where: str, error: BaseException | None) -> None:
        if error is not None:
            self.package_frames(where, error)
        seen = set()
        while error is not None and id(error) not in seen:  # the exception and its causes
            seen.add(id(error))
            self.text(f"{where}: str", str(error))
            self.text(f"{where}: repr", repr(error))
            self.text(f"{where}: args", repr(error.args))
            self.text(f"{where}: traceback", "".join(traceback.format_exception(error)))
            error = error.__cause__ or error.__context__

    def package_frames(self, where: str, error: BaseException) -> None:
        """The variables of the package's frames in the error's report (and its causes'), as
        Django's technical 500 page shows them with DEBUG on: ``sensitive_variables`` off."""
        with override_settings(DEBUG=True):
            reporter = ExceptionReporter(None, type(error), error, error.__traceback__)
            frames = reporter.get_traceback_frames()
        for frame in frames:
            filename = str(frame["filename"])
            if filename.startswith(PACKAGE) and not filename.startswith(SANDBOX):
                for name, value in frame["vars"]:
                    shown = pprint.pformat(value)
                    self.text(f"{where}: {frame['function']}() variable {name}", shown)

    def outcome(self, where: str, outcome: Any) -> None:
        if isinstance(outcome, BaseException):
            self.exception(where, outcome)
        else:
            self.text(where, repr(outcome))

    def rows(self) -> None:
        for model in (SendLog, Suppression, WebhookEvent):
            for row in model.objects.all():
                for field in model._meta.concrete_fields:
                    value = getattr(row, field.attname)
                    shown = json.dumps(value) if isinstance(value, dict | list) else str(value)
                    self.text(f"{model.__name__}.{field.name}", shown)
                    self.text(f"{model.__name__}.{field.name} (raw)", value)

    def admin_pages(self, client, everything: bool = False) -> None:
        """The pages showing the stored rows; ``everything``: the lists and dashboard too."""
        pages = []
        for model, rows in [
            ("sendlog", SendLog.objects.all()),
            ("suppression", Suppression.objects.all()),
            ("webhookevent", WebhookEvent.objects.all()),
        ]:
            ids = list(rows.values_list("pk", flat=True))
            if ids or everything:
                pages.append(reverse(f"admin:django_sendfleet_{model}_changelist"))
            pages += [reverse(f"admin:django_sendfleet_{model}_change", args=[pk]) for pk in ids]
        if everything:
            pages.append(reverse("admin:django_sendfleet_sendlog_dashboard"))
        for page in pages:
            response = client.get(page)
            assert response.status_code == 200, page
            self.text(f"admin page {page}", response.content.decode())

    def assert_clean(self, logs: bool = True) -> None:
        found = []
        for record in self.records if logs else ():
            parts = [record.getMessage(), repr(record.args)]
            if record.exc_info and record.exc_info[1] is not None:
                parts.append("".join(traceback.format_exception(record.exc_info[1])))
            if record.stack_info:
                parts.append(record.stack_info)
            for part in parts:
                found += [(f"log {record.name}", s, part) for s in self.forbidden if s in part]
        for where, text in self.texts:
            found += [(where, s, text) for s in self.forbidden if s in text]
        assert not found, "\n".join(f"{where}: {s!r} in {text[:500]!r}" for where, s, text in found)


class _ListHandler(logging.Handler):
    def __init__(self, records: list[logging.LogRecord]) -> None:
        super().__init__(logging.DEBUG)
        self.records = records

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


#: Loggers whose own level would hide their DEBUG records from the root logger's handler.
LOUD_LOGGERS = ["", "django", "django.request", "django.db.backends", "django_sendfleet"]
LOUD_LOGGERS += ["django_sendfleet.sandbox", "urllib3", "urllib3.connectionpool", "requests"]


@pytest.fixture
def watch(sandbox, sendfleet_settings) -> Iterator[Watch]:
    """Every log record at DEBUG (SQL included), and the project configured with API_KEY and
    WEBHOOK_SECRET."""
    sandbox.add_key(API_KEY)
    sendfleet_settings.update(API_KEY=API_KEY, WEBHOOK_SECRET=WEBHOOK_SECRET)
    watch = Watch()
    handler = _ListHandler(watch.records)
    levels = {name: logging.getLogger(name).level for name in LOUD_LOGGERS}
    for name in LOUD_LOGGERS:
        logging.getLogger(name).setLevel(logging.DEBUG)
    logging.getLogger().addHandler(handler)
    debug_cursor, connection.force_debug_cursor = connection.force_debug_cursor, True
    try:
        yield watch
    finally:
        connection.force_debug_cursor = debug_cursor
        logging.getLogger().removeHandler(handler)
        for name, level in levels.items():
            logging.getLogger(name).setLevel(level)
        caches["default"].clear()  # the rate limiter's log, when a test turned it on


@pytest.fixture
def signalled(watch) -> list[BaseException]:
    """Errors handed to send_failed / send_forbidden / recipient_suppressed receivers."""
    errors: list[BaseException] = []

    def receiver(sender, **kwargs):
        if isinstance(kwargs.get("error"), BaseException):
            errors.append(kwargs["error"])

    connected = (signals.send_failed, signals.send_forbidden, signals.recipient_suppressed)
    for signal in connected:
        signal.connect(receiver, weak=False)
    yield errors
    for signal in connected:
        signal.disconnect(receiver)


# Every failure of the fault matrix, through each backend, then the admin pages of its rows.


@pytest.mark.parametrize("backend", ["EmailBackend", "QueuedEmailBackend"])
@pytest.mark.parametrize("case", MATRIX, ids=lambda c: c.id)
def test_no_failure_shows_a_secret(
    case,
    backend,
    watch,
    signalled,
    sandbox,
    sendfleet_settings,
    monkeypatch,
    admin_client,
    django_capture_on_commit_callbacks,
):
    world = World(sandbox, sendfleet_settings, monkeypatch)
    try:
        case.arrange(world)
        watch.forbid_key(sendfleet_settings["API_KEY"])  # some cases use a key of their own
        if backend == "EmailBackend":
            outcome, _ = run_sync(case, world)
        else:
            outcome, _ = run_queued(case, world, django_capture_on_commit_callbacks)
    finally:
        for cleanup in world.cleanups:
            cleanup()
    watch.outcome("send_messages", outcome)
    for error in signalled:
        watch.exception("signal receiver's error", error)
    expected_signals = case.queued[1] if case.queued and backend != "EmailBackend" else case.signals
    assert bool(signalled) == bool(expected_signals)  # the failure paths did run
    watch.rows()
    watch.admin_pages(admin_client)
    watch.assert_clean()


def test_messages_failing_many_ways_at_once_show_no_secret(
    watch, signalled, sandbox, sendfleet_settings, admin_client, retry_waits
):
    """Accepted, suppressed, invalid, retried-then-failed and domain-refused recipients, and a
    message refused locally, with LOG_CONTENT on; then every admin page, the dashboard too."""
    sendfleet_settings["LOG_CONTENT"] = True
    sandbox.inject_fault(502, 10)
    messages = [
        EmailMessage("A", "Body", SENDER, ["ann@example.com", "suppressed@example.net", "bad@"]),
        EmailMessage("B", "Body", "shop@unverified.example", ["bob@example.com"]),
        EmailMessage("C" * 300, "Body", SENDER, ["carol@example.com"]),
    ]
    for message in messages:
        try:
            outcome = EmailBackend().send_messages([message])
        except SendFleetError as error:
            outcome = error
        watch.outcome("send_messages", outcome)
        for error in message.anymail_status.errors():
            watch.exception("anymail_status", error)
    for error in signalled:
        watch.exception("signal receiver's error", error)
    watch.rows()
    watch.admin_pages(admin_client, everything=True)
    watch.assert_clean()


# Configuration errors.

MALFORMED_KEYS = [
    API_KEY + " ",
    " " + API_KEY,
    API_KEY + "\t",
    API_KEY.replace(".", ""),
    API_KEY.replace(".", ". "),
    API_KEY + "\r\n",
    "Bearer " + API_KEY,
]
#: Keys of a shape SendFleet does not show but might issue (it never documents the secret's
#: alphabet): a warning, then sent as they are. SendFleet's 401 refuses these.
UNUSUAL_KEYS = [API_KEY[:-10], f'"{API_KEY}"']


@pytest.mark.parametrize("key", MALFORMED_KEYS, ids=repr)
def test_a_malformed_key_is_refused_without_showing_it(key, watch, sendfleet_settings, sandbox):
    sendfleet_settings["API_KEY"] = key
    watch.forbid_key(key)
    for make in (EmailBackend, QueuedEmailBackend):
        with pytest.raises(SendFleetConfigurationError) as caught:
            make().send_messages([EmailMessage("Hi", "Body", SENDER, ["ann@example.com"])])
        watch.exception(make.__name__, caught.value)
    with pytest.raises(SendFleetConfigurationError) as caught:
        SendFleetSettings().validate()
    watch.exception("validate()", caught.value)
    watch.text("system checks", "\n".join(run_system_checks()))
    assert sandbox.requests == []
    watch.rows()
    watch.assert_clean()


@pytest.mark.parametrize("key", UNUSUAL_KEYS, ids=repr)
def test_an_unusual_key_is_sent_for_sendfleet_to_judge_and_never_shown(
    key, watch, sendfleet_settings, sandbox
):
    sendfleet_settings["API_KEY"] = key
    watch.forbid_key(key)
    with pytest.raises(SendFleetError) as caught:
        EmailBackend().send_messages([EmailMessage("Hi", "Body", SENDER, ["ann@example.com"])])
    watch.exception("EmailBackend", caught.value)
    watch.text("system checks", "\n".join(run_system_checks()))
    watch.text("sendfleet_check", "\n".join(run_command("sendfleet_check")))
    watch.text("sendfleet_check --json", "\n".join(run_command("sendfleet_check", "--json")))
    assert [request.status for request in sandbox.requests] == [401] * 3  # send, two checks
    watch.rows()
    watch.assert_clean()


def test_a_key_read_with_its_trailing_newline_never_shows(
    watch, signalled, sendfleet_settings, sandbox, admin_client
):
    """The everyday way to get a key with a trailing newline: reading it from a file or a
    Docker/Kubernetes secret without .strip()."""
    sendfleet_settings["API_KEY"] = API_KEY + "\n"
    try:
        outcome = EmailBackend().send_messages(
            [EmailMessage("Hi", "Body", SENDER, ["ann@example.com"])]
        )
    except (SendFleetError, SendFleetConfigurationError) as error:
        outcome = error
    watch.outcome("send_messages", outcome)
    for error in signalled:
        watch.exception("signal receiver's error", error)
    watch.text("sendfleet_check", "\n".join(run_command("sendfleet_check")))
    watch.text("sendfleet_check --json", "\n".join(run_command("sendfleet_check", "--json")))
    watch.rows()
    watch.admin_pages(admin_client)
    watch.assert_clean()
    assert isinstance(outcome, SendFleetConfigurationError)  # refused as malformed, not sent


@pytest.mark.parametrize(
    ("option", "value"),
    [
        # The key pasted into the wrong option.
        pytest.param("TIMEOUT", API_KEY),
        pytest.param("API_URL", API_KEY),
        pytest.param("RATE_LIMIT", API_KEY),
        ("WEBHOOK_SECRET", [WEBHOOK_SECRET, ""]),
        ("RATE_LIMIT_CACHE", "nope"),
        ("NOT_AN_OPTION", 1),
    ],
)
def test_a_misconfigured_option_shows_no_secret(option, value, watch, sendfleet_settings):
    sendfleet_settings[option] = value
    with pytest.raises(SendFleetConfigurationError) as caught:
        SendFleetSettings().validate()
    watch.exception(option, caught.value)
    with pytest.raises(SendFleetConfigurationError) as caught:
        EmailBackend().send_messages([EmailMessage("Hi", "Body", SENDER, ["ann@example.com"])])
    watch.exception("send_messages", caught.value)
    watch.text("system checks", "\n".join(run_system_checks()))
    watch.text("sendfleet_check", "\n".join(run_command("sendfleet_check")))
    watch.assert_clean()


# The webhook: refusals, and the events it stores.


def test_webhook_refusals_show_neither_the_secret_nor_the_right_signature(
    watch, client, sendfleet_settings, admin_client
):
    body = json.dumps({"event_type": "email.delivered", "message_id": "m-1", "to": "a@x.org"})
    body = body.encode()
    right = sign(body, WEBHOOK_SECRET)
    watch.forbidden |= {right, right.removeprefix("sha256=")}  # never disclose it to a guesser
    wrong = sign(body, "a-guess")
    not_json = b"not json"
    refusals = [
        (body, {}),  # no signature
        (body, {"HTTP_X_SENDFLEET_SIGNATURE": wrong}),
        (body, {"HTTP_X_SENDFLEET_SIGNATURE": wrong.removeprefix("sha256=")}),
        (body, {"HTTP_X_SENDFLEET_SIGNATURE": "sha1=" + right.removeprefix("sha256=")[:40]}),
        (body, {"HTTP_X_SENDFLEET_SIGNATURE": right[:-1]}),
        (body + b" ", {"HTTP_X_SENDFLEET_SIGNATURE": wrong}),
        (b"x" * 300_000, {"HTTP_X_SENDFLEET_SIGNATURE": wrong}),
    ]
    for payload, headers in refusals:
        response = post_webhook(client, payload, **headers)
        assert response.status_code in (400, 403)
        watch.text("webhook answer", response.content.decode())
        watch.text("webhook answer headers", repr(response.headers))
    # With no secret configured at all, events are refused too.
    sendfleet_settings.pop("WEBHOOK_SECRET")
    response = post_webhook(client, body, HTTP_X_SENDFLEET_SIGNATURE=right)
    assert response.status_code == 403
    watch.text("webhook answer", response.content.decode())
    # An accepted event is stored: its row and admin page are looked at too.
    sendfleet_settings["WEBHOOK_SECRET"] = [WEBHOOK_SECRET, WEBHOOK_SECRET + "-next"]
    watch.forbidden.add(WEBHOOK_SECRET + "-next")
    assert post_webhook(client, body, HTTP_X_SENDFLEET_SIGNATURE=right).status_code == 200
    # A signed body that is not JSON is stored as received (SendFleet never retries).
    signed_not_json = {"HTTP_X_SENDFLEET_SIGNATURE": sign(not_json, WEBHOOK_SECRET)}
    assert post_webhook(client, not_json, **signed_not_json).status_code == 200
    assert WebhookEvent.objects.count() == 2
    watch.rows()
    watch.admin_pages(admin_client, everything=True)
    watch.assert_clean()


# manage.py sendfleet_check, as text and as JSON.


def run_command(*args: str) -> tuple[str, str]:
    """What the command wrote to stdout; and to stderr, with the error it ended with."""
    out, err = StringIO(), StringIO()
    try:
        call_command(*args, stdout=out, stderr=err, no_color=True)
    except (CommandError, SystemExit) as error:
        err.write(f"\n{type(error).__name__}: {error!r} {error}")
    return out.getvalue(), err.getvalue()


def run_system_checks() -> tuple[str, str]:
    """``manage.py check``, its database checks on the database this test uses: the settings'
    second database ("mail", for the router tests) exists only when a test asks for it."""
    return run_command("check", "--fail-level", "CRITICAL", "--database", "default")


def unreachable(world: World) -> None:
    world.settings["API_URL"] = "http://127.0.0.1:9/api/send/"  # discard: nothing listens


CHECK_SCENARIOS = {
    "key works": None,
    "key revoked": lambda world: world.settings.update(API_KEY=REVOKED_API_KEY),
    "key unknown": lambda world: world.settings.update(API_KEY="sfunkno1." + "U" * 40),
    "key malformed": lambda world: world.settings.update(API_KEY=API_KEY + " "),
    "key missing": lambda world: world.settings.pop("API_KEY"),
    "API unreachable": unreachable,
    "API is not SendFleet": answered_by(500, b'{"detail": "boom"}', "application/json"),
    # The command redacts its output whatever the answers say (see the echo tests below).
    "API echoes the key": answered_by(
        401, json.dumps({"detail": f"Bad key {API_KEY}"}).encode(), "application/json"
    ),
}


CHECK_ARGS = [
    (),
    ("--json",),
    ("--send-test", "suppressed@example.net"),
    ("--json", "--send-test", "ann@example.com"),
    ("--send-test", "ann@example.com", "--from", "shop@unverified.example"),
]


def check_params():
    for scenario in CHECK_SCENARIOS:
        for args in CHECK_ARGS:
            yield pytest.param(scenario, args, id=" ".join((scenario, *args)))


@pytest.mark.parametrize(("scenario", "args"), list(check_params()))
def test_sendfleet_check_output_shows_no_secret(
    scenario,
    args,
    watch,
    sandbox,
    sendfleet_settings,
    monkeypatch,
    settings,
    admin_client,
    retry_waits,
):
    settings.DEFAULT_FROM_EMAIL = SENDER
    world = World(sandbox, sendfleet_settings, monkeypatch)
    arrange = CHECK_SCENARIOS[scenario]
    try:
        if arrange is not None:
            arrange(world)
        watch.forbid_key(sendfleet_settings.get("API_KEY"))
        output = run_command("sendfleet_check", *args)
    finally:
        for cleanup in world.cleanups:
            cleanup()
    out, err = output
    watch.text("sendfleet_check stdout", out)
    watch.text("sendfleet_check stderr", err)
    if "--json" in args:
        assert json.loads(out)["checks"]
    watch.rows()
    watch.admin_pages(admin_client)
    watch.assert_clean()


# repr() of everything that holds the key.


@pytest.mark.parametrize("with_mailer_options", [False, True])
def test_objects_holding_the_key_do_not_show_it(
    with_mailer_options, watch, sendfleet_settings, settings
):
    options: dict[str, Any] = {}
    if with_mailer_options:
        if django.VERSION < (6, 1):
            pytest.skip("MAILERS OPTIONS are Django 6.1+")
        options = {"api_key": API_KEY}
        sendfleet_settings.pop("API_KEY")
    sendfleet_settings["RATE_LIMIT"] = "60/min"
    backend = EmailBackend(**options)
    queued = QueuedEmailBackend(**options)
    backend.open()
    try:
        client = backend.client
        assert client is not None
        conf = backend.settings
        objects = [backend, queued, client, conf, SendFleetSettings(options)]
        objects += [SlidingWindowLimiter.for_settings(conf), backend.limiter]
        objects += [SendFleetClient(api_url="https://x.example/", api_key=API_KEY, timeout=1)]
        # What the settings give: held as Secrets (an error report shows them as variables).
        objects += [conf.api_key, conf.webhook_secrets, conf.secrets, conf.api_key.secret]
        for thing in objects:
            watch.text(f"repr({type(thing).__name__})", repr(thing))
            watch.text(f"str({type(thing).__name__})", str(thing))
        limiter = backend.limiter
        assert limiter is not None
        watch.text("the limiter's cache key", limiter.cache_key)
        watch.text("the limiter's conf prefix", conf.api_key_prefix)
    finally:
        backend.close()
    watch.assert_clean()


# Defence in depth: an answer that echoes the key back (a gateway's error page, say).


@pytest.fixture
def echoing_answer(watch, signalled, sandbox, sendfleet_settings, monkeypatch):
    """Send through a server answering 401 with the request's key in its detail; return what
    was raised and handed to signal receivers."""
    body = json.dumps({"detail": f"Invalid API key {API_KEY!r} for this gateway."}).encode()
    world = World(sandbox, sendfleet_settings, monkeypatch)
    answered_by(401, body, "application/json")(world)
    try:
        try:
            outcome = EmailBackend().send_messages(
                [EmailMessage("Hi", "Body", SENDER, ["ann@example.com"])]
            )
        except SendFleetError as error:
            outcome = error
    finally:
        for cleanup in world.cleanups:
            cleanup()
    assert world.elsewhere == [401]
    return [outcome, *signalled]


def test_an_echoed_key_is_redacted_from_what_is_stored_and_shown(
    echoing_answer, watch, admin_client
):
    watch.rows()
    watch.admin_pages(admin_client)
    watch.assert_clean()
    assert "[redacted]" in SendLog.objects.get().detail


def test_an_echoed_key_is_redacted_from_exceptions_and_logs(echoing_answer, watch):
    for error in echoing_answer:
        watch.exception("raised or signalled", error)
    watch.assert_clean()


# Secrets are held as ``Secret``s from the moment a setting is read (Django's error reports show
# every frame's variables, and ``sensitive_variables`` works only with DEBUG off).


def shown_forms(value: Any) -> dict[str, str]:
    """Every way a value is turned into text by what reports, logs or formats it."""
    return {
        "str": str(value),
        "repr": repr(value),
        "format": f"{value}",
        "%s": "%s" % (value,),  # noqa: UP031  (logging's way)
        "pformat": pprint.pformat(value),  # Django's error reports
        "in a dict": repr({"key": value}),
        "json default=str": json.dumps({"key": value}, default=str),
    }


def test_a_secret_shows_redacted_and_reveals_its_value() -> None:
    secret = Secret(API_KEY)
    for how, shown in shown_forms(secret).items():
        assert API_KEY not in shown and API_KEY.partition(".")[2] not in shown, how
        assert REDACTED in shown, how
    assert secret.reveal() == API_KEY
    assert Secret.wrap(secret) is secret and Secret.wrap(API_KEY) == secret
    assert secret != Secret(API_KEY + "x") and secret != API_KEY  # a Secret is not its text
    assert len({secret, Secret(API_KEY)}) == 1
    assert bool(secret) and not Secret("") and not Secret(None)


MAILER_KEY = "sfmailr1.TheMarketingMailersSecretHalfNeverShown"


def configure_everywhere(settings, sendfleet_settings, monkeypatch, where: str) -> str:
    """Configure the key in one of the places it is read from; return the mailer alias."""
    sendfleet_settings.pop("API_KEY")
    if where == "SENDFLEET":
        sendfleet_settings["API_KEY"] = API_KEY
    elif where == "environment":
        monkeypatch.setenv("SENDFLEET_API_KEY", API_KEY)
    else:
        if django.VERSION < (6, 1):
            pytest.skip("MAILERS OPTIONS are Django 6.1+")
        settings.MAILERS = {
            **settings.MAILERS,
            "marketing": {
                "BACKEND": "django_sendfleet.backends.EmailBackend",
                "OPTIONS": {"api_key": API_KEY, "api_url": sendfleet_settings["API_URL"]},
            },
        }
        return "marketing"
    return "default"


@pytest.mark.parametrize("where", ["SENDFLEET", "environment", "MAILERS OPTIONS"])
def test_the_key_and_webhook_secrets_are_secrets_from_the_moment_they_are_read(
    where, watch, settings, sendfleet_settings, monkeypatch, sandbox
) -> None:
    alias = configure_everywhere(settings, sendfleet_settings, monkeypatch, where)
    conf = SendFleetSettings(mailer_options(alias))
    key, webhook_secrets = conf.api_key, conf.webhook_secrets
    assert isinstance(key, Secret) and key.reveal() == API_KEY
    assert [type(s) for s in webhook_secrets] == [Secret]
    assert [s.reveal() for s in webhook_secrets] == [WEBHOOK_SECRET]
    assert all(isinstance(s, Secret) for s in conf.secrets)
    held = {
        "api_key": key,
        "webhook_secrets": webhook_secrets,
        "secrets": conf.secrets,
        "mailer_options": mailer_options(alias),
        "mailers": sendfleet_mailers(),
        "the settings' own options": conf._options,
    }
    for name, value in held.items():
        for how, shown in shown_forms(value).items():
            watch.text(f"{name} ({how})", shown)
    watch.assert_clean()
    # Revealed where it is used: the request's header authenticates, the HMAC verifies.
    backend = mail.mailers[alias] if django.VERSION >= (6, 1) else EmailBackend()
    backend.send_messages([EmailMessage("Hi", "Body", SENDER, ["ann@x.org"])])
    assert [request.status for request in sandbox.requests] == [200]
    body = b'{"event_type": "email.delivered", "message_id": "m-1", "to": "ann@x.org"}'
    assert sign(body, webhook_secrets[0]) == sign(body, WEBHOOK_SECRET)


@pytest.mark.skipif(django.VERSION < (6, 1), reason="MAILERS OPTIONS are Django 6.1+")
def test_a_misspelt_option_keeps_the_key_a_secret_in_what_the_backend_passes_to_django(
    watch, sandbox
) -> None:
    """Django refuses unknown options by name; the value of one named like a secret reaches
    ``BaseEmailBackend.__init__`` (a frame of the error's report) as a Secret."""
    with pytest.raises(mail.InvalidMailer) as caught:
        EmailBackend(alias="default", apikey=API_KEY, timout=5)
    assert "'apikey'" in str(caught.value) and "'timout'" in str(caught.value)
    watch.exception("InvalidMailer", caught.value)
    for frame, _ in traceback.walk_tb(caught.value.__traceback__):
        for name, value in frame.f_locals.items():
            watch.text(f"{frame.f_code.co_name}: {name}", pprint.pformat(value))
    watch.assert_clean()
