"""Django's error reports never show the API key or a webhook secret.

A failure that reaches Django's error handling is rendered by ``ExceptionReporter``, with the
local variables of every frame of the exception and of the exceptions it chains to: the
technical 500 page (``is_email=False``), and the text and HTML parts of ``AdminEmailHandler``'s
mail (``is_email=True``, the HTML with ``include_html=True``). Each test makes a real failure
in a real request (the testproject's view that calls ``send_mail``, or the webhook view), lets
Django log it to ``django.request`` as in production (``DEBUG = False``), and looks for the
secrets in every rendering: the key, the part after its dot, and every webhook secret.
"""

from __future__ import annotations

import html
import json
import logging
import socket
from collections.abc import Iterator
from typing import Any

import pytest
import requests
from django.db import connection
from django.urls import reverse
from django.utils.log import AdminEmailHandler
from django.views.debug import ExceptionReporter

from django_sendfleet.exceptions import (
    SendFleetAuthenticationError,
    SendFleetConfigurationError,
    SendFleetNetworkError,
)
from django_sendfleet.models import WebhookEvent
from django_sendfleet.sandbox import REVOKED_API_KEY
from django_sendfleet.webhooks import sign

pytestmark = [pytest.mark.usefixtures("sendfleet_settings"), pytest.mark.django_db]

API_KEY = "sfreport.TheSecretHalfOfTheKeyNeverInReports01"
WEBHOOK_SECRETS = [  # rotating: both are secret
    "whsec_TheCurrentSigningSecretNeverInReports",
    "whsec_TheNextSigningSecretNeverInReports_2",
]


def forbidden(key: str) -> set[str]:
    """What must not appear: the key as configured and stripped, its secret part, the secrets."""
    stripped = key.strip()
    return {key, stripped, stripped.partition(".")[2], *WEBHOOK_SECRETS} - {""}


class ReportCatcher(AdminEmailHandler):
    """Django's ``AdminEmailHandler`` with ``include_html=True``, keeping its mail instead of
    sending it, and the technical 500 page rendered from the same record."""

    def __init__(self) -> None:
        super().__init__(include_html=True)
        self.reports: dict[str, str] = {}
        self.exceptions: list[BaseException] = []

    def emit(self, record: logging.LogRecord) -> None:
        assert record.exc_info is not None and record.exc_info[1] is not None
        self.exceptions.append(record.exc_info[1])
        request = getattr(record, "request", None)
        for is_email in (False, True):
            reporter = ExceptionReporter(request, *record.exc_info, is_email=is_email)
            self.reports[f"HTML, is_email={is_email}"] = reporter.get_traceback_html()
            self.reports[f"text, is_email={is_email}"] = reporter.get_traceback_text()
        super().emit(record)

    def send_mail(self, subject: str, message: str, *args: Any, **kwargs: Any) -> None:
        self.reports["admin mail: subject"] = subject
        self.reports["admin mail: text"] = message
        self.reports["admin mail: HTML"] = kwargs["html_message"]


@pytest.fixture
def reports(settings: Any, sandbox: Any, sendfleet_settings: dict[str, Any]) -> Iterator[Any]:
    """Production error handling (DEBUG off), the project configured with API_KEY and the
    webhook secrets, and a ReportCatcher on ``django.request``."""
    settings.DEBUG = False
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
    }
    assert "Traceback" in catcher.reports["admin mail: text"]  # the frames were rendered
    found = [
        (where, secret)
        for where, report in catcher.reports.items()
        for text in (report, html.unescape(report))
        for secret in secrets
        if secret in text
    ]
    assert not found, found


def send_receipt(client: Any) -> None:
    """A view that calls ``send_mail``, failing: Django answers 500 and logs the error."""
    client.raise_request_exception = False
    response = client.post(reverse("send-receipt"), {"email": "ann@example.com"})
    assert response.status_code == 500


def test_a_read_timeout_shows_no_secret(reports, client, sandbox, sendfleet_settings) -> None:
    """urllib3's frames hold the request's headers; the error must not lead to them."""
    sendfleet_settings["TIMEOUT"] = 0.3
    sandbox.inject_fault("slow:1")
    send_receipt(client)
    (error,) = reports.exceptions
    assert isinstance(error, SendFleetNetworkError) and error.may_have_been_sent
    assert error.__cause__ is None and error.__context__ is None
    assert error.cause.startswith("ReadTimeout: ")  # what happened, without the frames
    assert error.cause_type is requests.ReadTimeout
    assert_no_secret(reports, forbidden(API_KEY))


def test_a_refused_connection_shows_no_secret(reports, client, sendfleet_settings) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    sendfleet_settings["API_URL"] = f"http://127.0.0.1:{closed_port}/api/send/"
    send_receipt(client)
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
    sendfleet_settings["API_KEY"] = key
    send_receipt(client)
    (error,) = reports.exceptions
    assert isinstance(error, SendFleetConfigurationError)
    assert "malformed" in str(error)
    assert_no_secret(reports, forbidden(key) | forbidden(API_KEY))


def test_a_refused_key_shows_no_secret(reports, client, sendfleet_settings) -> None:
    """The 401's response, and the request it answers, stay on the error."""
    sendfleet_settings["API_KEY"] = REVOKED_API_KEY
    send_receipt(client)
    (error,) = reports.exceptions
    assert isinstance(error, SendFleetAuthenticationError) and error.response is not None
    assert error.response.request.headers["X-API-Key"] == REVOKED_API_KEY
    assert_no_secret(reports, forbidden(REVOKED_API_KEY) | forbidden(API_KEY))


@pytest.mark.parametrize(
    ("option", "value"),
    [("TIMEOUT", "ten"), ("RATE_LIMIT", "60/fortnight"), ("WEBHOOK_SECRET", [""])],
)
def test_a_misconfigured_option_shows_no_secret(
    option, value, reports, client, sendfleet_settings
) -> None:
    """The options are read from the dict that holds the key and the secrets."""
    sendfleet_settings[option] = value
    send_receipt(client)
    (error,) = reports.exceptions
    assert isinstance(error, SendFleetConfigurationError)
    assert_no_secret(reports, forbidden(API_KEY))


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
    assert reports.exceptions  # the database error reached Django's error handling
    assert_no_secret(reports, forbidden(API_KEY))
