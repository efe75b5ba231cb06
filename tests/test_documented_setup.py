"""The setup the README and the quick start show, followed literally, works."""

import logging
import os
import re
import shlex
import subprocess
import sys
import warnings
from pathlib import Path

import django
import pytest
from django.core import mail
from django.core.mail import EmailMessage
from django.urls import reverse
from django.utils.log import AdminEmailHandler

from django_sendfleet.backends import EmailBackend
from django_sendfleet.exceptions import SendFleetDomainNotVerified
from django_sendfleet.sandbox import SANDBOX_API_KEY, UNVERIFIED_DOMAIN, Sandbox
from tests.support.docs_snippets import (
    ROOT,
    block_containing,
    command_blocks,
    python_blocks,
    shell_session,
)

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


QUICKSTART = "docs/quickstart.md"
STEP_2 = "2. Configure"
#: A key of SendFleet's shape, as a developer's shell may hold one; the sandbox refuses it (401).
REAL_LOOKING_KEY = "sflive01.ARealKeyExportedInThisShell0000001"


def shell_env(**variables: str) -> dict[str, str]:
    """A shell with none of SendFleet's variables but those given."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("SENDFLEET_", "DJANGO_SETTINGS_MODULE"))
    }
    return env | {"PYTHONPATH": str(ROOT)} | variables


def manage(project: Path, *args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def follow_step_2_settings(project: Path) -> None:
    """Quick start step 2's settings for this Django (on 6.1 in place of the MAILERS that
    startproject wrote), before its migrate."""
    settings_file = project / "mysite" / "settings.py"
    code = settings_file.read_text()
    if django.VERSION >= (6, 1):
        code = re.sub(r"\nMAILERS = \{.*?\n\}\n", "\n", code, flags=re.DOTALL)
        code += "\n" + python_blocks(QUICKSTART, STEP_2)[0]
    else:
        code += "\n" + block_containing(QUICKSTART, "EMAIL_BACKEND =", STEP_2)
    settings_file.write_text(code)


def follow_step_2_after_migrate(project: Path) -> None:
    """The rest of step 2: error mail on 6.1, the webhook route, its secret, SQLite's options."""
    settings_file = project / "mysite" / "settings.py"
    code = settings_file.read_text()
    if django.VERSION >= (6, 1):
        code += "\n" + block_containing(QUICKSTART, "AdminEmailHandler", STEP_2)
    code += "\n" + block_containing(QUICKSTART, "WEBHOOK_SECRET", STEP_2)
    code += "\n" + block_containing(QUICKSTART, "transaction_mode", STEP_2)
    settings_file.write_text(code)
    [route] = [
        line.strip()
        for line in block_containing(QUICKSTART, "django_sendfleet.urls", STEP_2).splitlines()
        if "django_sendfleet.urls" in line
    ]
    urls_file = project / "mysite" / "urls.py"
    urls_file.write_text(
        urls_file.read_text()
        + f"\nfrom django.urls import include\n\nurlpatterns += [\n    {route}\n]\n"
    )


def start_sandbox_as_step_3_says() -> tuple[subprocess.Popen, str]:
    """The step's command, on a free port instead of 8025; returns the process and its URL."""
    command = shlex.split(command_blocks(QUICKSTART, "3. Try it against the sandbox")[0])
    assert command[:3] == ["python", "-m", "django_sendfleet.sandbox"]
    command = [sys.executable, *command[1:]]
    command[command.index("--port") + 1] = "0"
    process = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=shell_env()
    )
    first_line = process.stdout.readline()
    match = re.search(r"http://127\.0\.0\.1:\d+/", first_line)
    assert match, first_line
    return process, match.group(0)


def test_the_quick_start_followed_in_order_works_in_a_new_project(tmp_path):
    """Each step run in order in a new project: step 2's migrate before any key is set, step
    3's session against the sandbox with a real key exported in the shell, step 4's settings
    with DEBUG off and the key and secret in the environment."""
    subprocess.run(
        [sys.executable, "-m", "django", "startproject", "mysite", str(tmp_path)],
        check=True,
        capture_output=True,
    )
    follow_step_2_settings(tmp_path)
    migrated = manage(tmp_path, "migrate", env=shell_env())  # step 4 sets the key: not yet
    assert migrated.returncode == 0, migrated.stderr
    assert "ERRORS" not in migrated.stderr
    follow_step_2_after_migrate(tmp_path)
    checked = manage(tmp_path, "check", env=shell_env())  # as runserver does
    assert checked.returncode == 0, checked.stderr
    assert "ERRORS" not in checked.stderr and "sendfleet.W003" not in checked.stderr

    sandbox, url = start_sandbox_as_step_3_says()
    try:
        settings_file = tmp_path / "mysite" / "settings.py"
        assert "http://127.0.0.1:8025/" in settings_file.read_text()
        settings_file.write_text(settings_file.read_text().replace("http://127.0.0.1:8025/", url))
        [session] = [
            block
            for block in command_blocks(QUICKSTART, "3. Try it against the sandbox")
            if block.startswith("$ python manage.py shell")
        ]
        typed, printed = shell_session(session)
        driver = (
            "import code\n"
            "console = code.InteractiveInterpreter()\n"
            f"for line in {typed!r}:\n"
            "    console.runsource(line, symbol='single')\n"
        )
        shell = manage(
            tmp_path,
            "shell",
            "-v",
            "0",
            "-c",
            driver,
            env=shell_env(SENDFLEET_API_KEY=REAL_LOOKING_KEY),
        )
    finally:
        sandbox.terminate()
        sandbox.wait(timeout=10)
    assert "Traceback" not in shell.stderr, shell.stderr
    logged = [line for line in printed if line.startswith("SendFleet ")]
    assert [line for line in shell.stdout.splitlines() if line] == [
        line for line in printed if line not in logged
    ]
    for line in logged:
        assert line.removesuffix("...").strip() in shell.stderr

    # Step 4: production has DEBUG off, the key and the webhook secret in its environment.
    settings_file.write_text(settings_file.read_text().replace("DEBUG = True", "DEBUG = False"))
    production = shell_env(SENDFLEET_API_KEY=REAL_LOOKING_KEY, SENDFLEET_WEBHOOK_SECRET="whsec")
    checked = manage(tmp_path, "check", env=production)
    assert checked.returncode == 0, checked.stderr
    shown = manage(
        tmp_path,
        "shell",
        "-v",
        "0",
        "-c",
        "from django_sendfleet.conf import SendFleetSettings, mailer_options\n"
        "conf = SendFleetSettings(mailer_options('default'))\n"
        "print(conf.api_url, conf.api_key_prefix, len(conf.webhook_secrets))",
        env=production,
    )
    assert shown.stdout.split() == ["https://sendfleet.net/api/send/", "sflive01", "1"]
    # Forgetting the webhook secret there stops manage.py at once.
    unsigned = manage(tmp_path, "check", env=shell_env(SENDFLEET_API_KEY=REAL_LOOKING_KEY))
    assert unsigned.returncode != 0 and "sendfleet.E004" in unsigned.stderr


@pytest.mark.django_db
def test_the_bulk_connection_reputation_md_shows_is_swapped_for_locmem_in_tests(settings):
    """docs/reputation.md's bulk connection: in a test, Django's locmem backend stands in for
    it, so nothing reaches the configured API_URL; a backend built by hand would send there."""
    block = block_containing("docs/reputation.md", "get_connection(bulk=True)")
    with Sandbox() as api:
        settings.SENDFLEET = {"API_KEY": SANDBOX_API_KEY, "API_URL": api.url}
        messages = [EmailMessage("Our news", "Body", "news@example.com", ["ann@example.com"])]
        with warnings.catch_warnings():
            # Django 6.1 deprecates get_connection(); the page shows it for 5.2 and 6.0.
            warnings.simplefilter("ignore", PendingDeprecationWarning)
            warnings.simplefilter("ignore", DeprecationWarning)
            exec(block, {"newsletter_messages": messages})
        assert [m.subject for m in mail.outbox] == ["Our news"]
        assert api.requests == []
        EmailBackend(bulk=True).send_messages(messages)  # what the page used to show
        assert [r.status for r in api.requests] == [200]


@pytest.mark.django_db
def test_while_both_backends_send_the_ported_code_catches_and_hears_both(
    settings, sandbox, sendfleet_settings
):
    """docs/migrating-from-anymail.md, "While both backends send": a failure of either backend
    is caught, and a bounce reported by either reaches the ported receiver."""
    anymail_signals = pytest.importorskip("anymail.signals")
    from anymail.exceptions import AnymailAPIError

    bounced: list[tuple[str, str]] = []
    retried: list[EmailMessage] = []
    namespace = {
        "mark_bounced": lambda recipient, message_id: bounced.append((recipient, message_id)),
        "retry_later": retried.append,
    }
    exec(block_containing("docs/migrating-from-anymail.md", "anymail_tracking"), namespace)
    send_receipt = namespace["send_receipt"]
    sendfleet_mailers = dict(getattr(settings, "MAILERS", {}))
    try:
        # Code ported (step 2), anymail's backend still the default (until step 4).
        use_default_backend(settings, "anymail.backends.test.EmailBackend")
        by_anymail = EmailMessage("Receipt", "Body", "shop@example.com", ["ann@example.com"])
        by_anymail.anymail_test_response = AnymailAPIError("the ESP said no")
        send_receipt(by_anymail)
        anymail_signals.tracking.send(  # as anymail's webhook reports a bounce
            sender=object,
            event=anymail_signals.AnymailTrackingEvent(
                event_type="bounced", recipient="old@example.com", message_id="anymail-1"
            ),
            esp_name="Test",
        )
        # Switched (step 4): SendFleet's failures and events.
        if django.VERSION >= (6, 1):
            settings.MAILERS = sendfleet_mailers
        else:
            settings.EMAIL_BACKEND = "django_sendfleet.backends.EmailBackend"
        by_sendfleet = EmailMessage("Receipt", "Body", f"shop@{UNVERIFIED_DOMAIN}", ["a@b.example"])
        send_receipt(by_sendfleet)  # SendFleet answers 403 domain_not_verified
        sendfleet_settings["WEBHOOK_SECRET"] = "migration-secret"
        sandbox.configure_webhook(reverse("sendfleet-webhook"), "migration-secret")
        sent = EmailMessage("Receipt", "Body", "shop@example.com", ["bounce@example.com"])
        sent.send()
        sandbox.deliver_webhooks()
    finally:
        for signal in (anymail_signals.tracking, namespace["tracking"]):
            signal.disconnect(namespace["handle_bounce"])
    assert retried == [by_anymail, by_sendfleet]
    assert bounced == [
        ("old@example.com", "anymail-1"),
        ("bounce@example.com", sent.anymail_status.message_id),
    ]


def use_default_backend(settings, path: str) -> None:
    if django.VERSION >= (6, 1):
        settings.MAILERS = {"default": {"BACKEND": path}}
    else:
        settings.EMAIL_BACKEND = path
