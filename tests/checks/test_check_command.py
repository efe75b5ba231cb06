"""``manage.py sendfleet_check`` against the sandbox over real HTTP on 127.0.0.1."""

import json
import os
import socket
import subprocess
import sys
import time
from io import StringIO
from pathlib import Path

import django
import pytest
from django.core.management import CommandError, call_command
from django.db import connection
from django.db.migrations.loader import MigrationLoader
from django.db.migrations.recorder import MigrationRecorder

from django_sendfleet.checks.config_review import KEY_MALFORMED_FIX, KEY_MISSING_FIX, PLAIN_HTTP_FIX
from django_sendfleet.error_table import SPECS_BY_CODE
from django_sendfleet.models import SendLog, Suppression
from django_sendfleet.sandbox import (
    EXPIRED_API_KEY,
    NO_DKIM_DOMAIN,
    NO_SPF_DOMAIN,
    REVOKED_API_KEY,
    SANDBOX_API_KEY,
    UNVERIFIED_DOMAIN,
)
from tests.support.check_command import OTHER_KEY, result, run_check, run_json
from tests.support.docs_snippets import block_containing
from tests.support.messages import BACKEND
from tests.support.messages import QUEUED_BACKEND as QUEUED

# webhook_configured: a project that routes the webhook and has its secret (tests/support).
pytestmark = [
    pytest.mark.usefixtures("sendfleet_settings", "webhook_configured"),
    pytest.mark.django_db,
]


needs_mailers = pytest.mark.skipif(django.VERSION < (6, 1), reason="MAILERS is Django 6.1+")


class NothingRouted:
    urlpatterns: list = []


def names(report):
    return [check["name"] for check in report["checks"]]


def use_mailers(settings, mailers):
    if django.VERSION >= (6, 1):
        settings.MAILERS = mailers
    else:
        settings.EMAIL_BACKEND = mailers["default"]["BACKEND"]


# The key against the API.


def test_working_key_is_checked_with_an_empty_payload_and_nothing_is_sent(sandbox):
    status, text = run_check()
    assert status == 0
    [request] = sandbox.requests
    assert request.payload == {} and request.status == 400
    assert sandbox.accepted == []
    assert "prefix sbxlive1" in text
    line = next(line for line in text.splitlines() if line.startswith("  ok      API    "))
    assert f"key sbxlive1 authenticated by {sandbox.url}" in line and " ms " in line
    assert "0 error(s): email through SendFleet should work." in text


@pytest.mark.parametrize(
    ("key", "detail"), [(REVOKED_API_KEY, "revoked"), (EXPIRED_API_KEY, "expired")]
)
def test_rejected_key_is_an_error_with_the_tables_fix(sendfleet_settings, key, detail):
    sendfleet_settings["API_KEY"] = key
    status, report = run_json()
    assert status == 1
    api = result(report, "API")
    assert api["level"] == "error" and api["data"]["status"] == 401
    assert f"key {key.partition('.')[0]} rejected" in api["message"] and detail in api["message"]
    assert api["fix"] == SPECS_BY_CODE["authentication_failed"].fix
    assert key.partition(".")[2] not in json.dumps(report)


def test_missing_key_is_reported_without_contacting_the_api(
    sandbox, sendfleet_settings, monkeypatch
):
    monkeypatch.delenv("SENDFLEET_API_KEY", raising=False)
    del sendfleet_settings["API_KEY"]
    status, report = run_json()
    assert status == 1
    key = result(report, "API key")
    assert key["level"] == "error" and "missing" in key["message"]
    assert key["fix"] == KEY_MISSING_FIX
    assert "API" not in names(report)
    assert sandbox.requests == []


def test_malformed_key_shows_neither_its_secret_nor_itself(sandbox, sendfleet_settings):
    sendfleet_settings["API_KEY"] = "sbxlive1.Short SecretPart"  # whitespace: cannot be right
    status, text = run_check()
    assert status == 1
    assert "SecretPart" not in text
    assert "malformed" in text and KEY_MALFORMED_FIX in text
    assert sandbox.requests == []


#: Shaped like SendFleet's own example ("sf_live_abc12345.XYZ..."), with a secret outside our
#: expected alphabet: SendFleet never documents it.
UNUSUAL_KEY = "sf_live_abc12345.XYZ+/UnusualButValidSecret0123456=="


def test_an_unusual_key_is_a_warning_and_still_tried_against_the_api(sandbox, sendfleet_settings):
    sandbox.add_key(UNUSUAL_KEY)
    sendfleet_settings["API_KEY"] = UNUSUAL_KEY
    status, report = run_json()
    assert status == 0
    key = result(report, "API key")
    assert key["level"] == "warning" and "does not look like" in key["message"]
    assert result(report, "API")["level"] == "ok"  # SendFleet accepted it
    assert "UnusualButValid" not in json.dumps(report)
    assert len(sandbox.requests) == 1


def test_an_unusual_key_sendfleet_refuses_is_the_apis_error(sandbox, sendfleet_settings):
    sendfleet_settings["API_KEY"] = UNUSUAL_KEY
    status, report = run_json()
    assert status == 1
    assert result(report, "API key")["level"] == "warning"
    assert result(report, "API")["data"]["status"] == 401
    assert "UnusualButValid" not in json.dumps(report)


@pytest.mark.parametrize("rate", ["0/min", "5/0s"])
def test_a_rate_limit_of_nothing_is_an_error_not_should_work(sandbox, sendfleet_settings, rate):
    sendfleet_settings["RATE_LIMIT"] = rate
    status, text = run_check()
    assert status == 1
    assert "RATE_LIMIT" in text and "should work" not in text
    assert sandbox.requests == []  # the settings are wrong: the API is not contacted


def test_a_lease_shorter_than_one_queued_send_is_an_error(sandbox, sendfleet_settings):
    sendfleet_settings["LEASE_SECONDS"] = 10  # TIMEOUT 5 (connect) + 5 (read), no limiter
    status, report = run_json()
    assert status == 1
    lease = result(report, "lease")
    assert lease["level"] == "error" and "LEASE_SECONDS is 10 s" in lease["message"]
    sendfleet_settings["LEASE_SECONDS"] = 11
    status, report = run_json()
    assert status == 0 and "lease" not in names(report)


def test_server_email_that_sendfleet_cannot_send_from_is_a_warning(settings, sandbox):
    settings.SERVER_EMAIL = "root@localhost"  # Django's default
    status, report = run_json()
    server = result(report, "SERVER_EMAIL")
    assert server["level"] == "warning" and "root@localhost" in server["message"]
    assert "AdminEmailHandler" in server["message"]
    assert status == 0
    settings.SERVER_EMAIL = "Errors <errors@example.com>"
    _, report = run_json()
    server = result(report, "SERVER_EMAIL")
    assert server["level"] == "ok" and server["data"]["domain"] == "example.com"


def test_unreachable_url_fails_fast_with_the_tables_fix(sendfleet_settings):
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    sendfleet_settings["API_URL"] = f"http://127.0.0.1:{port}/api/send/"
    started = time.monotonic()
    status, report = run_json()
    assert time.monotonic() - started < 3
    assert status == 1
    api = result(report, "API")
    assert api["level"] == "error" and api["data"]["error_code"] == "connection_failed"
    assert api["message"].startswith(f"no answer from http://127.0.0.1:{port}/api/send/: [Errno")
    assert api["fix"] == SPECS_BY_CODE["connection_failed"].fix


def test_a_server_slower_than_the_timeout_fails_within_the_timeout(sandbox, sendfleet_settings):
    sandbox.latency = 1.5
    sendfleet_settings["TIMEOUT"] = 0.3
    started = time.monotonic()
    status, report = run_json()
    assert time.monotonic() - started < 1.4
    assert status == 1
    api = result(report, "API")
    assert api["data"]["error_code"] == "network_error"
    assert "no answer within the read timeout" in api["message"]
    assert api["fix"] == SPECS_BY_CODE["network_error"].fix
    assert len(sandbox.requests) == 1  # not retried


def test_plain_http_outside_loopback_is_an_error_and_the_key_is_not_sent(sendfleet_settings):
    sendfleet_settings["API_URL"] = "http://sendfleet.invalid/api/send/"
    status, report = run_json()
    assert status == 1
    url = result(report, "API URL")
    assert url["level"] == "error" and url["fix"] == PLAIN_HTTP_FIX
    assert "API" not in names(report)


def test_https_and_loopback_http_urls_are_fine(sandbox, sendfleet_settings):
    _, report = run_json()
    assert result(report, "API URL")["level"] == "ok"
    assert "loopback" in result(report, "API URL")["message"]


# Settings and project.


def test_warnings_alone_exit_zero(sendfleet_settings):
    sendfleet_settings["TIMEOUT"] = (5, 40)
    sendfleet_settings["MAX_RETRY_WAIT"] = 120
    status, report = run_json()
    assert status == 0 and report["ok"] is True
    timeouts = result(report, "timeouts")
    assert timeouts["level"] == "warning" and timeouts["fix"]
    assert "TIMEOUT 5 + 40 s, MAX_RETRY_WAIT 120 s" in timeouts["message"]
    assert report["counts"]["warning"] == 1


def test_an_invalid_setting_is_one_error_not_one_per_check(sendfleet_settings):
    sendfleet_settings["TIMEOUT"] = -1
    status, report = run_json()
    assert status == 1
    [error] = [check for check in report["checks"] if check["level"] == "error"]
    assert error["name"] == "settings" and "TIMEOUT" in error["message"]


def test_default_from_email_names_its_domain(settings):
    _, report = run_json()
    sender = result(report, "DEFAULT_FROM_EMAIL")
    assert sender["level"] == "ok" and sender["data"]["domain"] == "example.com"
    settings.DEFAULT_FROM_EMAIL = "webmaster@localhost"
    status, report = run_json()
    assert status == 1
    assert result(report, "DEFAULT_FROM_EMAIL")["fix"] == SPECS_BY_CODE["domain_not_registered"].fix


def test_database_rows_are_counted():
    SendLog.objects.create(recipient="a@example.com", from_email="shop@example.com")
    Suppression.objects.create(email="gone@example.com")
    _, report = run_json()
    database = result(report, "database")
    assert database["level"] == "ok"
    assert database["data"]["rows"]["sendlog"] == 1
    assert database["data"]["rows"]["suppression"] == 1


def test_unapplied_migrations_are_an_error():
    loader = MigrationLoader(connection)
    [leaf] = loader.graph.leaf_nodes("django_sendfleet")
    MigrationRecorder(connection).record_unapplied(*leaf)
    status, report = run_json()
    assert status == 1
    database = result(report, "database")
    assert database["level"] == "error" and leaf[1] in database["message"]
    assert "migrate" in database["fix"]


def test_webhooks(settings, sendfleet_settings):
    _, report = run_json()
    assert result(report, "webhooks")["level"] == "ok"
    assert result(report, "webhooks")["data"]["path"] == "/sendfleet/webhook/"
    del sendfleet_settings["WEBHOOK_SECRET"]
    status, report = run_json()
    assert status == 1 and result(report, "webhooks")["level"] == "error"
    settings.ROOT_URLCONF = NothingRouted
    assert result(run_json()[1], "webhooks")["level"] == "ok"  # not used at all
    sendfleet_settings["WEBHOOK_SECRET"] = "whsec_test"
    assert result(run_json()[1], "webhooks")["level"] == "warning"  # secret, no route


# --send-test


def test_send_test_reports_message_id_and_mode_and_is_logged(sandbox):
    status, report = run_json("--send-test", "ann@example.net")
    assert status == 0
    sent = result(report, "test message")
    assert sent["level"] == "ok"
    [accepted] = sandbox.accepted
    assert accepted.payload["to"] == "ann@example.net"
    assert accepted.payload["from_email"] == "shop@example.com"
    assert sent["data"]["message_id"] == accepted.message_id
    assert sent["data"]["mode"] == "shared"
    assert SendLog.objects.get().message_id == accepted.message_id


def test_send_test_reports_the_apis_warnings(sandbox):
    status, report = run_json("--send-test", "ann@example.net", "--from", f"x@{NO_SPF_DOMAIN}")
    assert status == 0
    sent = result(report, "test message")
    assert sent["level"] == "warning"
    assert [w.split()[0] for w in sent["data"]["warnings"]] == ["SPF", "DMARC"]
    assert "SPF" in sent["fix"] and "DMARC" in sent["fix"]


@pytest.mark.parametrize(
    ("domain", "code"),
    [(NO_DKIM_DOMAIN, "dkim_not_verified"), (UNVERIFIED_DOMAIN, "domain_not_verified")],
)
def test_send_test_domain_failure_gives_the_tables_fix(sandbox, domain, code):
    status, text = run_check("--send-test", "ann@example.net", "--from", f"shop@{domain}")
    assert status == 1
    assert f"(domain {domain})" in text and f"[{code}]" in text
    assert f"fix:                {SPECS_BY_CODE[code].fix}" in text
    assert sandbox.accepted == []


def test_send_test_respects_local_suppressions(sandbox):
    Suppression.objects.create(email="gone@example.net")
    status, report = run_json("--send-test", "gone@example.net")
    assert status == 1
    sent = result(report, "test message")
    assert sent["data"]["error_code"] == "recipient_suppressed"
    assert sent["fix"] == SPECS_BY_CODE["recipient_suppressed"].fix
    assert sandbox.accepted == []


def test_from_needs_send_test():
    with pytest.raises(CommandError, match="--send-test"):
        call_command("sendfleet_check", "--from", "a@example.com", stdout=StringIO())


# Mailers.


def test_no_sendfleet_mailer_is_an_error(settings):
    use_mailers(settings, {"default": {"BACKEND": "django.core.mail.backends.locmem.EmailBackend"}})
    status, report = run_json()
    assert status == 1
    assert result(report, "mailers", mailer=None)["level"] == "error"


@needs_mailers
def test_every_sendfleet_mailer_is_checked_and_mailer_selects_one(settings, sandbox):
    settings.MAILERS = {
        "marketing": {"BACKEND": BACKEND, "OPTIONS": {"api_key": REVOKED_API_KEY}},
        "default": {"BACKEND": BACKEND},
        "local": {"BACKEND": "django.core.mail.backends.locmem.EmailBackend"},
    }
    status, report = run_json()
    assert status == 1
    assert [c["mailer"] for c in report["checks"] if c["name"] == "API"] == ["default", "marketing"]
    assert result(report, "API", "marketing")["level"] == "error"
    assert REVOKED_API_KEY.partition(".")[2] not in json.dumps(report)

    status, report = run_json("--mailer", "default", "--send-test", "ann@example.net")
    assert status == 0
    assert {c["mailer"] for c in report["checks"]} == {"default", None}
    assert sandbox.accepted[0].key_prefix == "sbxlive1"

    with pytest.raises(CommandError, match="does not use SendFleet"):
        call_command("sendfleet_check", "--mailer", "local", stdout=StringIO())
    with pytest.raises(CommandError, match="No mailer 'nope'"):
        call_command("sendfleet_check", "--mailer", "nope", stdout=StringIO())


@needs_mailers
def test_send_test_uses_the_selected_mailers_options(settings, sandbox):
    sandbox.add_key(OTHER_KEY)
    settings.MAILERS = {
        "default": {"BACKEND": BACKEND},
        "marketing": {"BACKEND": BACKEND, "OPTIONS": {"api_key": OTHER_KEY}},
    }
    status, _ = run_check("--mailer", "marketing", "--send-test", "ann@example.net")
    assert status == 0
    assert sandbox.accepted[0].key_prefix == "sbxothr1"
    assert SendLog.objects.get().mailer == "marketing"


def test_while_another_backend_is_the_default_there_is_nothing_to_check(settings, sandbox):
    """Why the anymail migration guide cannot run the check before switching on Django < 6.1:
    the command checks SendFleet mailers, and there is none yet."""
    use_mailers(settings, {"default": {"BACKEND": "django.core.mail.backends.smtp.EmailBackend"}})
    status, report = run_json("--send-test", "ann@example.net")
    assert status == 1
    assert "no mailer sends through SendFleet" in result(report, "mailers")["message"]
    assert sandbox.requests == []


@needs_mailers
def test_the_anymail_guides_second_mailer_is_checked_with_a_real_message(settings, sandbox):
    """docs/migrating-from-anymail.md, step 3 on Django 6.1, as written."""
    namespace: dict = {}
    exec(block_containing("docs/migrating-from-anymail.md", '"sendfleet": {'), namespace)
    settings.MAILERS = namespace["MAILERS"]
    assert not settings.MAILERS["default"]["BACKEND"].startswith("django_sendfleet")
    status, report = run_json("--mailer", "sendfleet", "--send-test", "ann@example.net")
    assert status == 0, report
    assert result(report, "test message", mailer="sendfleet")["level"] == "ok"
    assert len(sandbox.accepted) == 1
    assert SendLog.objects.get().mailer == "sendfleet"


# The real process.


@pytest.mark.usefixtures("sendfleet_socket_sandbox")  # the command runs in another process
def test_the_process_exit_status(sandbox, tmp_path):
    """As CI sees it: JSON on stdout, 1 until migrations are applied, then 0."""
    (tmp_path / "check_settings.py").write_text(
        "from tests.settings import *\n"
        f"DATABASES = {{'default': {{'ENGINE': 'django.db.backends.sqlite3', "
        f"'NAME': {str(tmp_path / 'db.sqlite3')!r}}}}}\n"
        f"SENDFLEET = {{'API_KEY': {SANDBOX_API_KEY!r}, 'API_URL': {sandbox.url!r}, "
        "'WEBHOOK_SECRET': 'whsec_test'}\n"
    )
    root = Path(__file__).resolve().parents[2]
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "check_settings",
        "PYTHONPATH": os.pathsep.join([str(tmp_path), str(root)]),
    }

    def manage(*args):
        return subprocess.run(
            [sys.executable, "-m", "django", *args],
            env=env,
            cwd=root,
            capture_output=True,
            text=True,
            timeout=60,
        )

    before = manage("sendfleet_check", "--json")
    assert before.returncode == 1, before.stderr
    assert json.loads(before.stdout)["counts"]["error"] == 1
    assert manage("migrate", "-v0").returncode == 0
    after = manage("sendfleet_check")
    assert after.returncode == 0, after.stdout + after.stderr
    assert SANDBOX_API_KEY.partition(".")[2] not in after.stdout + after.stderr


# The rate limiter and, for queued mailers, the task backend.


def test_rate_limiter_on_a_per_process_cache_is_a_warning(sandbox, sendfleet_settings):
    sendfleet_settings["RATE_LIMIT"] = "60/min"  # the test settings' cache is LocMemCache
    status, report = run_json()
    check = result(report, "rate limiter")
    assert check["level"] == "warning" and "per process" in check["message"]
    assert status == 0


def test_rate_limiter_off_is_reported(sandbox):
    _, report = run_json()
    assert result(report, "rate limiter")["message"].startswith("off")


def test_task_backend_of_a_queued_mailer(settings, sandbox):
    use_mailers(settings, {"default": {"BACKEND": QUEUED}})
    _, report = run_json()
    check = result(report, "task backend")
    # The test settings run tasks inline: fine for tests, a warning in production.
    assert check["level"] == "warning" and "ImmediateBackend" in check["message"]
    settings.TASKS = {"default": {"BACKEND": "no.such.Backend"}}
    status, report = run_json()
    assert result(report, "task backend")["level"] == "error" and status == 1


def test_task_backend_is_not_checked_for_the_synchronous_backend(sandbox):
    _, report = run_json()
    assert "task backend" not in names(report)
