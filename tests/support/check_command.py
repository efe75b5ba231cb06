"""Running manage.py sendfleet_check in tests; its fixture (webhook_configured) is registered by
tests/conftest.py.
"""

import json
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.urls import include, path

from django_sendfleet.sandbox import (
    REVOKED_API_KEY,
    SANDBOX_API_KEY,
)

OTHER_KEY = "sbxothr1.SecondKeyOfTheDefaultAccount00001"


SECRETS = [key.partition(".")[2] for key in (SANDBOX_API_KEY, REVOKED_API_KEY, OTHER_KEY)]


class WebhookRouted:
    urlpatterns = [path("sendfleet/", include("django_sendfleet.urls"))]


@pytest.fixture
def webhook_configured(settings, sendfleet_settings):
    """A project that routes the webhook and has its secret, unless a test says otherwise."""
    settings.ROOT_URLCONF = WebhookRouted
    settings.DEFAULT_FROM_EMAIL = "Shop <shop@example.com>"
    sendfleet_settings["WEBHOOK_SECRET"] = "whsec_test"


def run_check(*args):
    """(exit status, stdout) of the command; asserts no key secret is in the output."""
    out = StringIO()
    try:
        call_command("sendfleet_check", *args, stdout=out, stderr=StringIO(), no_color=True)
        status = 0
    except CommandError as error:
        status = error.returncode
    text = out.getvalue()
    for secret in SECRETS:
        assert secret not in text
    return status, text


def run_json(*args):
    status, text = run_check("--json", *args)
    report = json.loads(text)
    assert report["exit_status"] == status
    return status, report


def result(report, name, mailer="default"):
    [found] = [c for c in report["checks"] if c["name"] == name and c["mailer"] in (mailer, None)]
    return found
