"""Django's error reports never show the API key or a webhook secret, whatever DEBUG is.

A failure that reaches Django's error handling is rendered by ``ExceptionReporter``, with the
local variables of every frame of the exception and of the exceptions it chains to: the
technical 500 page (``is_email=False``; what the client gets when ``DEBUG`` is on), and the text
and HTML parts of ``AdminEmailHandler``'s mail (``is_email=True``, the HTML with
``include_html=True``). Each test makes a real failure in a real request (the testproject's
view that calls ``send_mail``, or the webhook view) against the sandbox over HTTP, lets Django
log it to ``django.request`` as it does in production and development, and looks for the
secrets in every rendering and in the response: the key, the part after its dot, and every
webhook secret. Django applies ``sensitive_variables`` only when ``DEBUG`` is off, so each test
runs with ``DEBUG`` off and on: the package's frames hold the secrets as ``Secret``s.

Django's own frames are Django's: a ``MAILERS`` entry's ``OPTIONS`` are local variables of
``create_connection``. ``SecretsReporterFilter`` (``DEFAULT_EXCEPTION_REPORTER_FILTER``)
cleanses them; the tests below show both what it cleanses and what Django shows without it.
"""

from __future__ import annotations

import contextlib
import html
import json
import logging
import socket
import sys
from collections.abc import Callable, Iterator
from io import StringIO
from typing import Any

import django
import pytest
import requests
from django.conf import settings as django_settings
from django.core import mail
from django.core.management import CommandError, call_command
from django.db import connection
from django.urls import reverse
from django.utils.datastructures import MultiValueDict
from django.utils.log import AdminEmailHandler
from django.views.debug import ExceptionReporter, get_default_exception_reporter_filter

from django_sendfleet.backends import base as backends
from django_sendfleet.credentials.secret import REDACTED
from django_sendfleet.exceptions import (
    SendFleetAuthenticationError,
    SendFleetConfigurationError,
    SendFleetNetworkError,
)
from django_sendfleet.models import WebhookEvent
from django_sendfleet.reporting import FILTER_PATH, SecretsReporterFilter
from django_sendfleet.sandbox import REVOKED_API_KEY
from django_sendfleet.webhooks.view import sign
from tests.support.docs_snippets import block_containing
from tests.support.messages import BACKEND

pytestmark = [
    pytest.mark.usefixtures("sendfleet_settings"),
    pytest.mark.django_db,
    pytest.mark.sendfleet_sandbox(socket=True),  # real HTTP: urllib3's frames, real timeouts
]

API_KEY = "sfreport.TheSecretHalfOfTheKeyNeverInReports01"
WEBHOOK_SECRETS = [  # rotating: both are secret
    "whsec_TheCurrentSigningSecretNeverInReports",
    "whsec_TheNextSigningSecretNeverInReports_2",
]
DJANGO_FILTER = "django.views.debug.SafeExceptionReporterFilter"
needs_mailers = pytest.mark.skipif(django.VERSION < (6, 1), reason="MAILERS is Django 6.1+")


def forbidden(key: str) -> set[str]:
    """What must not appear: the key as configured and stripped, its secret part, the secrets."""
    stripped = key.strip()
    return {key, stripped, stripped.partition(".")[2], *WEBHOOK_SECRETS} - {""}


class ReportCatcher(AdminEmailHandler):
    """Django's ``AdminEmailHandler`` with ``include_html=True``, keeping its mail instead of
    sending it, and the technical 500 page rendered from the same record; ``frames``: each
    frame's variables as the page renders them, by function name."""

    def __init__(self) -> None:
        super().__init__(include_html=True)
        self.reports: dict[str, str] = {}
        self.exceptions: list[BaseException] = []
        self.frames: list[tuple[str, str, dict[str, str]]] = []

    def emit(self, record: logging.LogRecord) -> None:
        assert record.exc_info is not None and record.exc_info[1] is not None
        self.exceptions.append(record.exc_info[1])
        request = getattr(record, "request", None)
        for is_email in (False, True):
            reporter = ExceptionReporter(request, *record.exc_info, is_email=is_email)
            self.reports[f"HTML, is_email={is_email}"] = reporter.get_traceback_html()
            self.reports[f"text, is_email={is_email}"] = reporter.get_traceback_text()
        for frame in ExceptionReporter(request, *record.exc_info).get_traceback_data()["frames"]:
            variables = dict(frame.get("vars", []))
            self.frames.append((frame["function"], frame["filename"], variables))
        super().emit(record)

    def send_mail(self, subject: str, message: str, *args: Any, **kwargs: Any) -> None:
        self.reports["admin mail: subject"] = subject
        self.reports["admin mail: text"] = message
        self.reports["admin mail: HTML"] = kwargs["html_message"]

    def variables(self, function: str) -> dict[str, str]:
        """The variables of the (first) frame of ``function``, as rendered."""
        found = [variables for name, _, variables in self.frames if name == function]
        assert found, f"no frame of {function}() in {[name for name, _, _ in self.frames]}"
        return found[0]

    def showing(self, secrets: set[str]) -> set[tuple[str, str]]:
        """(function, variable) of every frame variable whose rendering shows a secret."""
        return {
            (function, name)
            for function, _, variables in self.frames
            for name, shown in variables.items()
            if any(secret in text for text in (shown, html.unescape(shown)) for secret in secrets)
        }


@pytest.fixture(params=[False, True], ids=["DEBUG=False", "DEBUG=True"])
def debug(request: Any) -> bool:
    return request.param


@pytest.fixture
def use_filter(settings: Any) -> Iterator[Callable[[str], None]]:
    """Set DEFAULT_EXCEPTION_REPORTER_FILTER: Django reads it once per process (lru_cache)."""

    def use(path: str) -> None:
        settings.DEFAULT_EXCEPTION_REPORTER_FILTER = path
        get_default_exception_reporter_filter.cache_clear()

    yield use
    get_default_exception_reporter_filter.cache_clear()


@pytest.fixture
def reports(
    settings: Any, sandbox: Any, sendfleet_settings: dict[str, Any], debug: bool, use_filter: Any
) -> Iterator[ReportCatcher]:
    """Error handling with DEBUG off (production) or on (development: the 500 page is the
    technical one), Django's own filter, the project configured with API_KEY and the webhook
    secrets, and a ReportCatcher on ``django.request``."""
    settings.DEBUG = debug
    use_filter(DJANGO_FILTER)
    settings.ADMINS = []  # Django's own mail_admins handler stays quiet
    sandbox.add_key(API_KEY)
    sendfleet_settings.update(API_KEY=API_KEY, WEBHOOK_SECRET=WEBHOOK_SECRETS)
    catcher = ReportCatcher()
    logger = logging.getLogger("django.request")
    logger.addHandler(catcher)
    try:
        yield catcher
    finally:
        logger.removeHandler(catcher)


def assert_no_secret(catcher: ReportCatcher, secrets: set[str]) -> None:
    assert set(catcher.reports) == {
        "HTML, is_email=False",
        "text, is_email=False",
        "HTML, is_email=True",
        "text, is_email=True",
        "admin mail: subject",
        "admin mail: text",
        "admin mail: HTML",
        "response",
    }
    assert "Traceback" in catcher.reports["admin mail: text"]  # the frames were rendered
    if django_settings.DEBUG:
        assert "Traceback" in catcher.reports["response"]  # the technical 500 page
    found = [
        (where, secret)
        for where, report in catcher.reports.items()
        for text in (report, html.unescape(report))
        for secret in secrets
        if secret in text
    ]
    assert not found, found


def assert_redacted(shown: str) -> None:
    """A variable that holds a secret is rendered redacted: as a ``Secret`` (its repr, with
    DEBUG on) or as Django's substitute (``sensitive_variables``, with DEBUG off)."""
    assert REDACTED in shown, shown


def send_receipt(client: Any, catcher: ReportCatcher) -> None:
    """A view that calls ``send_mail``, failing: Django answers 500 and logs the error."""
    client.raise_request_exception = False
    response = client.post(reverse("send-receipt"), {"email": "ann@example.com"})
    assert response.status_code == 500
    catcher.reports["response"] = response.content.decode()


def test_a_read_timeout_shows_no_secret(reports, client, sandbox, sendfleet_settings) -> None:
    """urllib3's frames hold the request's headers; the error must not lead to them."""
    sendfleet_settings["TIMEOUT"] = 0.3
    sandbox.inject_fault("slow:1")
    send_receipt(client, reports)
    (error,) = reports.exceptions
    assert isinstance(error, SendFleetNetworkError) and error.may_have_been_sent
    assert error.__cause__ is None and error.__context__ is None
    assert error.cause.startswith("ReadTimeout: ")  # what happened, without the frames
    assert error.cause_type is requests.ReadTimeout
    assert_no_secret(reports, forbidden(API_KEY))
    assert "<SendFleetClient http://127.0.0.1:" in reports.variables("attempt")["self"]


def test_a_refused_connection_shows_no_secret(reports, client, sendfleet_settings) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    sendfleet_settings["API_URL"] = f"http://127.0.0.1:{closed_port}/api/send/"
    send_receipt(client, reports)
    (error,) = reports.exceptions
    assert isinstance(error, SendFleetNetworkError) and not error.may_have_been_sent
    assert error.__cause__ is None and error.__context__ is None
    assert error.cause.startswith("ConnectionError: ")
    assert error.cause_type is requests.ConnectionError
    assert_no_secret(reports, forbidden(API_KEY))


@pytest.mark.parametrize(
    "key", [API_KEY + " ", API_KEY + "\n", "\t" + API_KEY, API_KEY.replace(".", "")], ids=repr
)
def test_a_malformed_key_shows_no_secret(key, reports, client, sendfleet_settings) -> None:
    """With DEBUG on, ``sensitive_variables`` does nothing: the key reaches ``ApiKey.parse`` as
    a ``Secret``."""
    sendfleet_settings["API_KEY"] = key
    send_receipt(client, reports)
    (error,) = reports.exceptions
    assert isinstance(error, SendFleetConfigurationError)
    assert "malformed" in str(error)
    assert_no_secret(reports, forbidden(key) | forbidden(API_KEY))
    assert_redacted(reports.variables("parse")["raw"])
    assert_redacted(reports.variables("api_key")["raw"])


def test_a_refused_key_shows_no_secret(reports, client, sendfleet_settings) -> None:
    """The 401's response, and the request it answers, stay on the error."""
    sendfleet_settings["API_KEY"] = REVOKED_API_KEY
    send_receipt(client, reports)
    (error,) = reports.exceptions
    assert isinstance(error, SendFleetAuthenticationError) and error.response is not None
    assert error.response.request.headers["X-API-Key"] == REVOKED_API_KEY
    assert_no_secret(reports, forbidden(REVOKED_API_KEY) | forbidden(API_KEY))


@pytest.mark.parametrize(
    ("option", "value"),
    [
        ("TIMEOUT", "ten"),
        ("RATE_LIMIT", "60/fortnight"),
        ("WEBHOOK_SECRET", [""]),
        # The key pasted into the wrong option: the parser that refuses it is not in the report.
        # (Into an option Django's settings list does not cleanse by name, such as TIMEOUT, it
        # shows there: tests/credentials/test_secrets.py checks the package's frames for those.)
        ("API_URL", API_KEY),
    ],
    ids=["TIMEOUT", "RATE_LIMIT", "WEBHOOK_SECRET", "the key as API_URL"],
)
def test_a_misconfigured_option_shows_no_secret(
    option, value, reports, client, sendfleet_settings
) -> None:
    """The options are read from the dict that holds the key and the secrets: the frame that
    reads them holds a copy with the secrets as ``Secret``s."""
    sendfleet_settings[option] = value
    send_receipt(client, reports)
    (error,) = reports.exceptions
    assert isinstance(error, SendFleetConfigurationError)
    assert_no_secret(reports, forbidden(API_KEY))
    assert_redacted(reports.variables("_get")["configured"])


def test_a_database_error_in_the_webhook_view_shows_no_secret(reports, client) -> None:
    body = json.dumps({"event_type": "email.delivered", "message_id": "m-1", "to": "a@x.org"})
    signature = sign(body.encode(), WEBHOOK_SECRETS[1])
    with connection.cursor() as cursor:  # undone with the test's transaction
        cursor.execute(f"DROP TABLE {connection.ops.quote_name(WebhookEvent._meta.db_table)}")
    client.raise_request_exception = False
    response = client.post(
        reverse("sendfleet-webhook"),
        data=body,
        content_type="application/json",
        HTTP_X_SENDFLEET_SIGNATURE=signature,
    )
    assert response.status_code == 500
    reports.reports["response"] = response.content.decode()
    assert reports.exceptions  # the database error reached Django's error handling
    assert_no_secret(reports, forbidden(API_KEY))
    assert_redacted(reports.variables("webhook_view")["secrets"])


# A misspelt MAILERS option (Django 6.1): InvalidMailer, raised from the backend's __init__.

MISSPELT = {
    "an option beside the key": {"api_key": API_KEY, "timout": 5},
    "the key's own name": {"apikey": API_KEY},
}
#: The frames of Django's own that hold a MAILERS entry's OPTIONS: Django's to cleanse.
DJANGO_FRAMES = {("create_connection", "config"), ("create_connection", "options")}


@needs_mailers
@pytest.mark.parametrize("options", MISSPELT.values(), ids=MISSPELT.keys())
def test_a_misspelt_option_shows_the_key_in_no_frame_of_the_package(
    options, reports, client, settings
) -> None:
    """Without SecretsReporterFilter, only Django's own frames show the key: the backend's
    ``__init__`` and Django's ``BaseEmailBackend.__init__`` (given what the backend passes up)
    hold it as a ``Secret``."""
    settings.MAILERS = {"default": {"BACKEND": BACKEND, "OPTIONS": options}}
    send_receipt(client, reports)
    (error,) = reports.exceptions
    assert isinstance(error, mail.InvalidMailer)
    assert reports.showing(forbidden(API_KEY)) == DJANGO_FRAMES
    [backend_frame] = [
        variables
        for function, filename, variables in reports.frames
        if function == "__init__" and filename == backends.__file__
    ]
    assert_redacted(backend_frame["options"] + backend_frame["kwargs"])


@needs_mailers
@pytest.mark.parametrize("options", MISSPELT.values(), ids=MISSPELT.keys())
def test_a_misspelt_option_shows_no_secret_with_the_filter(
    options, reports, client, settings, use_filter
) -> None:
    """The filter as docs/configuration.md says to set it."""
    documented: dict[str, Any] = {}
    exec(block_containing("docs/configuration.md", "DEFAULT_EXCEPTION_REPORTER_FILTER"), documented)
    assert documented["DEFAULT_EXCEPTION_REPORTER_FILTER"] == FILTER_PATH
    use_filter(FILTER_PATH)
    settings.MAILERS = {"default": {"BACKEND": BACKEND, "OPTIONS": options}}
    send_receipt(client, reports)
    (error,) = reports.exceptions
    assert isinstance(error, mail.InvalidMailer)
    assert_no_secret(reports, forbidden(API_KEY))
    (name,) = [name for name in options if name != "timout"]
    for variable in ("config", "options"):
        shown = reports.variables("create_connection")[variable]
        assert f"'{name}': '{REDACTED}'" in shown, shown
    if "timout" in options:  # the rest is shown
        assert "'timout': 5" in reports.variables("create_connection")["options"]


@needs_mailers
def test_the_filter_cleanses_djangos_smtp_backend_password_too(
    reports, client, settings, use_filter
) -> None:
    """Django's SMTP backend holds a ``password`` OPTION in the same frames, and its own
    ``__init__`` has a ``password`` parameter."""
    password = "smtp-PasswordThatMustNeverShow-42"
    use_filter(FILTER_PATH)
    settings.MAILERS = {
        "default": {
            "BACKEND": "django.core.mail.backends.smtp.EmailBackend",
            "OPTIONS": {"host": "127.0.0.1", "password": password, "use_tsl": True},
        }
    }
    send_receipt(client, reports)
    (error,) = reports.exceptions
    assert isinstance(error, mail.InvalidMailer)
    assert_no_secret(reports, forbidden(API_KEY) | {password})
    assert reports.variables("__init__")["password"] == repr(REDACTED)


# The filter itself, on the frames of a real exception.


class Settings:
    """Something that is not a dict or a list: rendered by its repr, which is its business."""

    def __repr__(self) -> str:
        return "<Settings>"


def frame_variables(report_filter: str, use_filter: Any, **variables: Any) -> dict[str, str]:
    """The variables of a raising frame, as the technical 500 page renders them: ``holding``
    (``variables``), ``more`` (the same, as keyword arguments) and ``token``."""
    use_filter(report_filter)

    def failing(holding: dict[str, Any], **more: Any) -> None:
        token = more.get("token")  # a variable named like a secret
        assert token is None or token
        raise RuntimeError("boom")

    try:
        failing(variables, **variables)
    except RuntimeError:
        reporter = ExceptionReporter(None, *sys.exc_info())
        frames = reporter.get_traceback_data()["frames"]
    (frame,) = [frame for frame in frames if frame["function"] == "failing"]
    return dict(frame["vars"])


NESTED = {
    "OPTIONS": {"API_KEY": "k-1", "Password": "p-1", "host": "smtp.example.com"},
    "chain": [{"x_auth_token": "t-1", "port": 25}, ("name", {"client_secret": "s-1"})],
    "DB_PASSWD": "p-2",
    "X-Api-Key": "k-2",
    "plain": Settings(),
}
NESTED_SECRETS = ["k-1", "p-1", "t-1", "s-1", "p-2", "k-2"]


@pytest.mark.parametrize("debug_on", [False, True], ids=["DEBUG=False", "DEBUG=True"])
def test_the_filter_cleanses_values_under_secret_keys_at_any_depth(
    settings, use_filter, debug_on
) -> None:
    settings.DEBUG = debug_on
    shown = frame_variables(FILTER_PATH, use_filter, token="t-9")
    assert shown["token"] == repr(REDACTED)  # a variable named like a secret
    nested = frame_variables(FILTER_PATH, use_filter, **NESTED)["holding"]
    for secret in NESTED_SECRETS:
        assert repr(secret) not in nested
    for name in ("API_KEY", "Password", "x_auth_token", "client_secret", "DB_PASSWD", "X-Api-Key"):
        assert f"'{name}': '{REDACTED}'" in nested
    for kept in ("'host': 'smtp.example.com'", "'port': 25", "'name'", "<Settings>"):
        assert kept in nested
    # The values themselves are not changed: only what the report shows.
    assert NESTED["OPTIONS"]["API_KEY"] == "k-1" and NESTED["chain"][0]["x_auth_token"] == "t-1"
    # Django's own filter shows them (with DEBUG off too: they are not sensitive_variables).
    unfiltered = frame_variables(DJANGO_FILTER, use_filter, **NESTED)["holding"]
    assert all(repr(secret) in unfiltered for secret in NESTED_SECRETS)


def test_the_filter_handles_cycles_other_mappings_and_leaves_the_rest_alone() -> None:
    cleanse = SecretsReporterFilter().cleanse
    looped: dict[str, Any] = {"api_key": "k-1"}
    looped["self"] = looped
    cleansed = cleanse(looped)
    assert cleansed["api_key"] == REDACTED and "k-1" not in repr(cleansed)
    assert looped["api_key"] == "k-1"
    headers = requests.structures.CaseInsensitiveDict({"X-API-Key": "k-2", "Accept": "json"})
    assert cleanse(headers) == {"X-API-Key": REDACTED, "Accept": "json"}
    post = MultiValueDict({"password": ["p-1", "p-2"], "user": ["ann"]})
    assert cleanse(post).getlist("password") == [REDACTED] and cleanse(post)["user"] == "ann"
    assert post.getlist("password") == ["p-1", "p-2"]
    deep: Any = {"api_key": "k-3"}
    for _ in range(50):
        deep = [deep]
    assert "k-3" not in repr(cleanse(deep))
    untouched = {"host": "x", "ports": [1, 2], "nested": ({"a": 1},)}
    assert cleanse(untouched) is untouched  # nothing secret: the very object, type and all


# sendfleet_check recommends the filter.


def check_line() -> dict[str, Any]:
    out = StringIO()
    with contextlib.suppress(CommandError):  # the exit status: other checks may fail
        call_command("sendfleet_check", "--json", stdout=out)
    [line] = [c for c in json.loads(out.getvalue())["checks"] if c["name"] == "error reports"]
    return line


@needs_mailers
def test_sendfleet_check_warns_of_secrets_in_mailers_options_without_the_filter(
    settings, sandbox, use_filter
) -> None:
    use_filter(DJANGO_FILTER)
    settings.MAILERS = {
        "default": {"BACKEND": BACKEND},
        "marketing": {"BACKEND": BACKEND, "OPTIONS": {"api_key": API_KEY, "timeout": 5}},
        "smtp": {
            "BACKEND": "django.core.mail.backends.smtp.EmailBackend",
            "OPTIONS": {"username": "u", "password": "smtp-pass-never-shown"},
        },
    }
    line = check_line()
    assert line["level"] == "warning"
    assert "MAILERS['marketing'] OPTIONS api_key" in line["message"]
    assert "MAILERS['smtp'] OPTIONS password" in line["message"]
    assert FILTER_PATH in line["fix"]
    assert line["data"]["secret_options"] == {"marketing": ["api_key"], "smtp": ["password"]}
    assert API_KEY.partition(".")[2] not in json.dumps(line)
    assert "smtp-pass-never-shown" not in json.dumps(line)
    use_filter(FILTER_PATH)
    assert check_line()["level"] == "ok"


def test_sendfleet_check_recommends_the_filter_until_it_is_set(
    settings, sandbox, use_filter
) -> None:
    use_filter(DJANGO_FILTER)
    line = check_line()
    assert line["level"] == "ok" and "recommended" in line["message"]
    assert FILTER_PATH in line["message"]
    use_filter(FILTER_PATH)
    line = check_line()
    assert line["level"] == "ok" and "recommended" not in line["message"]
    assert line["data"] == {"filter": FILTER_PATH}
