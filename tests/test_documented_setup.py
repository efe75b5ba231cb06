"""The setup the README and the quick start show, followed literally, works."""

import logging
import os
import subprocess
import sys

import django
import pytest
from django.utils.log import AdminEmailHandler

from django_sendfleet.exceptions import SendFleetDomainNotVerified
from django_sendfleet.sandbox import SANDBOX_API_KEY, UNVERIFIED_DOMAIN
from tests.docs_snippets import ROOT, block_containing, python_blocks

needs_mailers = pytest.mark.skipif(django.VERSION < (6, 1), reason="MAILERS is Django 6.1+")
SETTINGS_SECTIONS = [("README.md", "Install and configure"), ("docs/quickstart.md", "2. Configure")]


def start_project(tmp_path, settings_code: str) -> subprocess.CompletedProcess:
    """``django-admin startproject``, ``settings_code`` appended to its settings.py, then
    ``manage.py check``, with only the API key in the environment (no webhook secret: a BYOC
    account has none)."""
    subprocess.run(
        [sys.executable, "-m", "django", "startproject", "mysite", str(tmp_path)],
        check=True,
        capture_output=True,
    )
    settings_file = tmp_path / "mysite" / "settings.py"
    settings_file.write_text(settings_file.read_text() + "\n" + settings_code)
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("SENDFLEET_", "DJANGO_SETTINGS_MODULE"))
    }
    env |= {"SENDFLEET_API_KEY": SANDBOX_API_KEY, "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, "manage.py", "check"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.parametrize(("document", "section"), SETTINGS_SECTIONS)
def test_the_settings_shown_first_are_for_django_6_1(document, section):
    first = python_blocks(document, section)[0]
    assert "MAILERS = {" in first and "EMAIL_BACKEND" not in first


@pytest.mark.parametrize(("document", "section"), SETTINGS_SECTIONS)
def test_the_settings_for_this_django_work_in_a_new_project(tmp_path, document, section):
    if django.VERSION >= (6, 1):
        code = python_blocks(document, section)[0]
    else:
        code = block_containing(document, "EMAIL_BACKEND =", section)
    checked = start_project(tmp_path, code)
    assert checked.returncode == 0, checked.stderr
    # Only the warning that a new project's LocMemCache is per process (the rate limiter's).
    assert "ERRORS" not in checked.stderr
    assert "(sendfleet.W001)" in checked.stderr and "identified 1 issue" in checked.stderr


@needs_mailers
def test_email_backend_beside_the_mailers_startproject_wrote_is_refused(tmp_path):
    """Why the docs lead with MAILERS on Django 6.1."""
    checked = start_project(tmp_path, 'EMAIL_BACKEND = "django_sendfleet.backends.EmailBackend"\n')
    assert checked.returncode != 0
    assert "Deprecated email settings are not allowed when MAILERS is defined" in checked.stderr


@needs_mailers
@pytest.mark.django_db
def test_the_error_mail_settings_keep_a_failed_report_from_raising(
    settings, sandbox, sendfleet_settings
):
    """docs/quickstart.md, "Error mail on Django 6.1", as written."""
    namespace: dict = {"MAILERS": dict(settings.MAILERS)}
    exec(block_containing("docs/quickstart.md", "AdminEmailHandler"), namespace)
    settings.MAILERS = namespace["MAILERS"]
    handler_settings = namespace["LOGGING"]["handlers"]["mail_admins"]
    assert "mail_admins" in namespace["LOGGING"]["loggers"]["django"]["handlers"]
    settings.ADMINS = ["ops@example.com"]
    settings.SERVER_EMAIL = f"errors@{UNVERIFIED_DOMAIN}"  # SendFleet refuses it: 403
    record = logging.LogRecord("django.request", logging.ERROR, __file__, 1, "Boom", None, None)

    AdminEmailHandler(using=handler_settings["using"]).emit(record)  # does not raise

    assert [request.status for request in sandbox.requests] == [403]
    # Django 6.1's handler without it: the failed report raises out of the logging call.
    with pytest.raises(SendFleetDomainNotVerified):
        AdminEmailHandler().emit(record)
