"""The system checks registered in ``SendFleetConfig.ready()``: settings only, no network, no
database (no ``django_db`` mark here: a query would fail the test)."""

import subprocess
import sys
from io import StringIO
from pathlib import Path

import django
import pytest
import requests
from django.core import checks
from django.core.management import call_command
from django.urls import include, path

from django_sendfleet.backends import EmailBackend
from django_sendfleet.checks.system import system_checks
from django_sendfleet.sandbox import SANDBOX_API_KEY
from tests.support.messages import BACKEND

# No database is opened, but the checks read its settings (the SQLite check looks at the
# engine): the PostgreSQL cells run these too (the tag's rule: .ci/noxfile.py).
pytestmark = pytest.mark.db

LOCMEM = "django.core.mail.backends.locmem.EmailBackend"
needs_mailers = pytest.mark.skipif(django.VERSION < (6, 1), reason="MAILERS is Django 6.1+")


class CustomBackend(EmailBackend):
    """A project's subclass is a SendFleet mailer too."""


class WebhookRouted:
    urlpatterns = [path("sendfleet/", include("django_sendfleet.urls"))]


class NothingRouted:
    urlpatterns: list = []


@pytest.fixture(autouse=True)
def no_network(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("a system check used the network")

    monkeypatch.setattr(requests.Session, "request", refuse)


@pytest.fixture
def project(settings, monkeypatch):
    """A valid SendFleet project that routes nothing; returns the SENDFLEET dict."""
    monkeypatch.delenv("SENDFLEET_API_KEY", raising=False)
    use_backend(settings, BACKEND)
    settings.ROOT_URLCONF = NothingRouted
    settings.SENDFLEET = {"API_KEY": SANDBOX_API_KEY, "RATE_LIMIT_CACHE": "shared"}
    settings.CACHES = {
        "default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"},
        "shared": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": "redis://127.0.0.1:1/0",
        },  # never contacted by the checks
    }
    return settings.SENDFLEET


def use_backend(settings, backend):
    if django.VERSION >= (6, 1):
        settings.MAILERS = {"default": {"BACKEND": backend}}
    else:
        settings.EMAIL_BACKEND = backend


def ids():
    return [message.id for message in system_checks()]


def test_registered_under_the_sendfleet_tag(project):
    project["LOG_CONTENT"] = True
    messages = checks.run_checks(tags=["sendfleet"])
    assert [message.id for message in messages] == ["sendfleet.I001"]


def test_a_valid_project_passes(project):
    assert ids() == []


def test_silent_when_sendfleet_is_not_used(settings):
    use_backend(settings, LOCMEM)
    settings.SENDFLEET = {}
    settings.ROOT_URLCONF = WebhookRouted  # routed without a secret: still nothing to say
    assert ids() == []


def test_e001_no_key(project):
    del project["API_KEY"]
    [message] = system_checks()
    assert message.id == "sendfleet.E001" and message.level == checks.ERROR
    assert message.obj == "mailer 'default'" and "API Keys" in message.hint


def test_e001_when_sendfleet_is_set_without_a_sendfleet_mailer(settings, project):
    use_backend(settings, LOCMEM)
    project["TIMEOUT"] = 5
    del project["API_KEY"]
    [message] = system_checks()
    assert message.id == "sendfleet.E001" and message.obj == "settings.SENDFLEET"


@pytest.mark.parametrize(
    ("key", "why"),
    [
        ("sbxlive1.NotLongEnough Secret", "whitespace"),
        (SANDBOX_API_KEY + "\n", "whitespace"),
        ("sbxlive1NotLongEnoughSecretAndNoDot000000000", "no dot"),
        ("sbxlive1.NotLongEnough\x7fSecret000000000000000", "HTTP header"),
    ],
)
def test_e002_a_key_that_cannot_be_right_is_never_shown(project, key, why):
    project["API_KEY"] = key
    [message] = system_checks()
    assert message.id == "sendfleet.E002" and message.level == checks.ERROR
    assert why in message.msg
    assert "NotLongEnough" not in f"{message.msg} {message.hint}"
    assert SANDBOX_API_KEY.partition(".")[2] not in f"{message.msg} {message.hint}"


@pytest.mark.parametrize(
    "key",
    [
        "sbxlive1.NotLongEnoughSecret",
        "sf_live_abc12345.XYZ+/NotLongEnoughSecret0123456789==",
        '"sbxlive1.NotLongEnoughSecretInQuotes0000000001"',
    ],
)
def test_w002_an_unusual_key_is_a_warning_never_an_error(project, key):
    project["API_KEY"] = key
    [message] = system_checks()
    assert message.id == "sendfleet.W002" and message.level == checks.WARNING
    assert "NotLongEnough" not in f"{message.msg} {message.hint}"
    # Only errors stop runserver and migrate: "check" raises SystemCheckError for them.
    call_command("check", "--tag", "sendfleet", stdout=StringIO(), stderr=StringIO())


def test_w002_not_for_a_key_of_the_documented_shape(project):
    project["API_KEY"] = "sf_live_abc12345.Abcdefghijklmnopqrstuvwxyz012345"
    assert ids() == []


@pytest.mark.parametrize("rate", ["0/min", "5/0s", "0/0s", (0, 60), (5, 0)])
def test_e005_a_rate_limit_of_nothing(project, rate):
    project["RATE_LIMIT"] = rate
    [message] = system_checks()
    assert message.id == "sendfleet.E005" and "RATE_LIMIT" in message.msg


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        ({}, []),  # the defaults: 300 s against 10 + 10 + 10
        ({"LEASE_SECONDS": 30}, ["sendfleet.E006"]),  # MAX_RETRY_WAIT + connect + read = 30
        ({"LEASE_SECONDS": 31}, []),
        ({"LEASE_SECONDS": 20, "RATE_LIMIT": None}, ["sendfleet.E006"]),  # no limiter wait: 20
        ({"LEASE_SECONDS": 21, "RATE_LIMIT": None}, []),
        ({"LEASE_SECONDS": 60, "TIMEOUT": (5, 60)}, ["sendfleet.E006"]),  # 10 + 5 + 60
        ({"LEASE_SECONDS": 300, "TIMEOUT": 30, "MAX_RETRY_WAIT": 250}, ["sendfleet.E006"]),
    ],
)
def test_e006_a_lease_shorter_than_one_queued_send(project, options, expected):
    project.update(options)
    messages = system_checks()
    assert [m.id for m in messages] == expected
    if expected:
        assert messages[0].level == checks.ERROR and "LEASE_SECONDS" in messages[0].msg


@needs_mailers
def test_e006_reads_the_mailers_own_options(settings, project):
    settings.MAILERS = {
        "default": {"BACKEND": BACKEND},
        "worker": {"BACKEND": BACKEND, "OPTIONS": {"lease_seconds": 15}},
    }
    assert [(m.obj, m.id) for m in system_checks()] == [("mailer 'worker'", "sendfleet.E006")]


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("http://sendfleet.net/api/send/", ["sendfleet.E003"]),
        ("http://10.0.0.5:8025/api/send/", ["sendfleet.E003"]),
        ("https://sendfleet.net/api/send/", []),
        ("http://127.0.0.1:8025/api/send/", []),
        ("http://localhost:8025/api/send/", []),
        ("http://[::1]:8025/api/send/", []),
    ],
)
def test_e003_plain_http_outside_loopback(project, url, expected):
    project["API_URL"] = url
    assert ids() == expected


def test_e004_webhook_routed_without_a_secret(settings, project):
    settings.ROOT_URLCONF = WebhookRouted
    [message] = system_checks()
    assert message.id == "sendfleet.E004" and "/sendfleet/webhook/" in message.msg
    project["WEBHOOK_SECRET"] = "whsec_test"
    assert ids() == []


def test_e005_other_invalid_setting(project):
    project["TIMEOUT"] = 0
    [message] = system_checks()
    assert message.id == "sendfleet.E005" and "TIMEOUT" in message.msg


def test_e005_unknown_key_in_sendfleet(project):
    project["NOT_A_SETTING"] = 1
    assert ids() == ["sendfleet.E005"]  # the key cannot be read through a broken SENDFLEET


def test_i001_log_content_on(project):
    project["LOG_CONTENT"] = True
    [message] = system_checks()
    assert message.id == "sendfleet.I001" and message.level == checks.INFO


def test_a_subclass_of_the_backend_counts(settings, project):
    use_backend(settings, f"{__name__}.CustomBackend")
    del project["API_KEY"]
    assert ids() == ["sendfleet.E001"]


@needs_mailers
def test_each_mailer_is_checked_with_its_options(settings, project):
    settings.MAILERS = {
        "default": {"BACKEND": BACKEND},
        "marketing": {"BACKEND": BACKEND, "OPTIONS": {"api_key": "bad", "log_content": True}},
        "local": {"BACKEND": LOCMEM, "OPTIONS": {}},
    }
    messages = system_checks()
    assert [(m.obj, m.id) for m in messages] == [
        ("mailer 'marketing'", "sendfleet.E002"),
        ("mailer 'marketing'", "sendfleet.I001"),
    ]


def test_rate_limiter_on_a_per_process_cache_warns(project):
    project["RATE_LIMIT_CACHE"] = "default"  # LocMemCache
    assert ids() == ["sendfleet.W001"]


def test_rate_limiter_off_needs_no_shared_cache(project):
    project["RATE_LIMIT_CACHE"] = "default"
    project["RATE_LIMIT"] = None
    assert ids() == []


def test_a_settings_module_without_root_urlconf_passes_every_check(tmp_path):
    # A settings module for workers only (db_worker, rqworker) has no ROOT_URLCONF; the checks
    # once crashed there, and with them every manage.py command (issue 23, item 8).
    (tmp_path / "worker_settings.py").write_text(
        "SECRET_KEY = 'x'\n"
        "INSTALLED_APPS = ['django.contrib.contenttypes', 'django_sendfleet']\n"
        "DATABASES = {'default': {'ENGINE': 'django.db.backends.sqlite3', 'NAME': ':memory:'}}\n"
        f"SENDFLEET = {{'API_KEY': {SANDBOX_API_KEY!r}}}\n"
        f"EMAIL_BACKEND = {BACKEND!r}\n"
    )
    root = Path(__file__).resolve().parents[2]
    result = subprocess.run(
        [sys.executable, "-m", "django", "check", "--settings", "worker_settings"],
        capture_output=True,
        text=True,
        env={"PYTHONPATH": f"{tmp_path}:{root}", "PATH": "/usr/bin:/bin"},
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "ROOT_URLCONF" not in result.stderr
