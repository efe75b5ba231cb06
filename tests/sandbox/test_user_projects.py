"""docs/testing.md's promises, kept in a user's own project: its test suites run in a
subprocess (pytester) against ``tests/support/user_project.py``, a project with several mailers and
its own sender domain, as a developer who followed the docs would run them.

Each run costs a Django start-up (a second or two), so each suite covers one promise.
"""

from __future__ import annotations

import django
import pytest

from tests.support.docs_snippets import block_containing
from tests.support.user_project import run_suite, write_project

pytest_plugins = ["pytester"]

DOC = "docs/testing.md"


def docs_suite() -> str:
    """The page's pytest examples, one module, as the project's developer adapts them: the
    receipt's sender is this project's DEFAULT_FROM_EMAIL."""
    receipts = block_containing(DOC, "# shop/tests/test_receipts.py").replace(
        '"shop@example.com"  # your DEFAULT_FROM_EMAIL', '"shop@acme-shop.com"'
    )
    examples = [
        block_containing(DOC, needle)
        for needle in (
            "def test_invoice_is_logged",
            "def test_suppressed_address_is_skipped_and_remembered",
            "def test_the_quota_comes_back_next_month",
            "def test_suppression_is_signalled",
            "def test_queued_send",
            "def test_welcome_mail",
        )
    ]
    return "\n\n".join([receipts, *examples])


@pytest.mark.parametrize("mode", ["inprocess", "socket"])
def test_the_pages_suite_passes_in_a_project_on_its_own_domain(pytester, monkeypatch, mode):
    """The examples pass as written in a project whose DEFAULT_FROM_EMAIL is its own domain
    (not the sandbox's example.com), with either kind of sandbox for the whole suite: the
    same helpers (deliver_webhooks, retry_waits) in both, and the waits recorded, not slept."""
    write_project(pytester, monkeypatch, ini=f"sendfleet_sandbox = {mode}")
    pytester.makepyfile(
        **{
            "shop/tests/test_receipts": docs_suite(),
            "shop/tests/test_receipts_testcase": block_containing(
                DOC, "class ReceiptTests(TestCase)"
            ),
        }
    )
    result = run_suite(pytester)
    result.assert_outcomes(passed=14)


ISOLATION_SUITE = """
import pytest
from django.core.mail import send_mail
from django.test import TestCase

from django_sendfleet.exceptions import SendFleetAuthenticationError, SendFleetRateLimitWait
from django_sendfleet.sandbox.testing import use_sendfleet_sandbox


def send():
    send_mail("Hi", "Body", "shop@example.com", ["ann@example.com"])


@pytest.mark.django_db
def test_1_a_test_whose_key_is_refused(sendfleet_backend, sendfleet_sandbox):
    sendfleet_sandbox.inject_fault("authentication_failed")
    with pytest.raises(SendFleetAuthenticationError):
        send()


@pytest.mark.django_db
def test_2_the_next_test_sends(sendfleet_backend, sendfleet_sandbox):
    send()
    assert sendfleet_sandbox.recipients == ["ann@example.com"]


@pytest.mark.django_db
def test_3_a_test_that_fills_the_rate_window(sendfleet_backend, sendfleet_sandbox):
    sendfleet_backend["RATE_LIMIT"] = "2/min"
    send()
    send()
    with pytest.raises(SendFleetRateLimitWait):  # a third would wait 60 s
        send()


@pytest.mark.django_db
def test_4_the_next_test_has_the_window_to_itself(sendfleet_backend, sendfleet_sandbox):
    sendfleet_backend["RATE_LIMIT"] = "2/min"
    send()
    send()
    assert len(sendfleet_sandbox.accepted) == 2


@pytest.mark.django_db
def test_5_a_context_manager_then_another(sendfleet_backend):
    with use_sendfleet_sandbox() as sandbox:
        sandbox.inject_fault("authentication_failed")
        with pytest.raises(SendFleetAuthenticationError):
            send()
    with use_sendfleet_sandbox() as sandbox:
        send()
        assert sandbox.recipients == ["ann@example.com"]


@pytest.mark.django_db
@use_sendfleet_sandbox()
def test_6_a_decorated_function_whose_key_is_refused(sandbox):
    sandbox.inject_fault("authentication_failed")
    with pytest.raises(SendFleetAuthenticationError):
        send()


@pytest.mark.django_db
@use_sendfleet_sandbox()
def test_7_the_next_decorated_function_sends(sandbox):
    send()
    assert sandbox.recipients == ["ann@example.com"]


@use_sendfleet_sandbox()
class RefusedKeyTests(TestCase):
    def test_8_a_refused_key(self):
        self.sandbox.inject_fault("authentication_failed")
        with self.assertRaises(SendFleetAuthenticationError):
            send()

    def test_9_the_next_test_sends(self):
        send()
        self.assertEqual(self.sandbox.recipients, ["ann@example.com"])
"""


def test_no_test_leaves_a_refused_key_or_a_full_rate_window_to_the_next(pytester, monkeypatch):
    """A 401 pauses the key for KEY_REFUSED_PAUSE (120 s) and the limiter keeps its window in
    the cache: neither survives the test that caused it, in pytest functions, decorated
    functions, context managers and TestCase alike."""
    write_project(pytester, monkeypatch)
    pytester.makepyfile(**{"shop/tests/test_isolation": ISOLATION_SUITE})
    result = run_suite(pytester, "-v")
    result.assert_outcomes(passed=9)
    # In this order: each second test runs after the first left its state behind.
    result.stdout.fnmatch_lines(["*test_1_*", "*test_2_*", "*test_3_*", "*test_4_*"])


MAILERS_SUITE = """
import pytest
from django.core import mail
from django.core.mail import EmailMessage, mail_admins, mailers, send_mail
from django.test import TestCase
from django.urls import reverse

from django_sendfleet.backends import QueuedEmailBackend
from django_sendfleet.sandbox.testing import use_sendfleet_sandbox


@pytest.mark.django_db
def test_error_mail_reaches_the_sandbox(client, sendfleet_backend, sendfleet_sandbox):
    with pytest.raises(RuntimeError):
        client.get(reverse("fail"))
    [report] = sendfleet_sandbox.payloads_to("ops@acme-shop.com")
    assert "Internal Server Error: /fail/" in report["subject"]
    assert report["from_email"] == "errors@ops.acme-shop.com"


@pytest.mark.django_db
def test_the_admins_mailer_sends_to_the_sandbox(sendfleet_backend, sendfleet_sandbox):
    mail_admins("Disk full", "Clean up", using="admins")
    assert sendfleet_sandbox.recipients == ["ops@acme-shop.com"]


@pytest.mark.django_db
def test_the_default_mailer_keeps_its_options(sendfleet_backend, sendfleet_sandbox):
    assert mailers["default"].settings.timeout == 7
    send_mail("Hi", "Body", None, ["ann@example.com"])
    assert [r.key_prefix for r in sendfleet_sandbox.requests] == ["sbxlive1"]  # not production's


@pytest.mark.django_db
def test_the_newsletter_stays_queued_and_bulk(
    sendfleet_backend, sendfleet_sandbox, django_capture_on_commit_callbacks
):
    newsletter = mailers["newsletter"]
    assert isinstance(newsletter, QueuedEmailBackend) and newsletter.settings.bulk
    with django_capture_on_commit_callbacks(execute=True):
        EmailMessage("News", "Body", None, ["ann@example.com"]).send(using="newsletter")
    assert sendfleet_sandbox.recipients == ["ann@example.com"]


@pytest.mark.django_db
def test_other_backends_stay_as_the_tests_have_them(sendfleet_backend, sendfleet_sandbox):
    send_mail("Hi", "Body", None, ["ann@example.com"], using="console")
    assert len(mail.outbox) == 1 and sendfleet_sandbox.requests == []


@use_sendfleet_sandbox()
class ErrorMailTests(TestCase):
    def test_error_mail_reaches_the_sandbox(self):
        with self.assertRaises(RuntimeError):
            self.client.get(reverse("fail"))
        self.assertEqual(self.sandbox.recipients, ["ops@acme-shop.com"])
"""


@pytest.mark.skipif(django.VERSION < (6, 1), reason="MAILERS is Django 6.1's")
def test_every_mailer_of_the_project_survives(pytester, monkeypatch):
    """Each SendFleet mailer (default, admins, newsletter) sends to the sandbox with its own
    options and backend; Django's error mail arrives; a console mailer stays locmem."""
    write_project(pytester, monkeypatch)
    pytester.makepyfile(**{"shop/tests/test_mailers": MAILERS_SUITE})
    run_suite(pytester).assert_outcomes(passed=6)


BACKEND_SUITE = """
import pytest
from django.core.mail import get_connection, mail_admins, send_mail

from django_sendfleet.backends import QueuedEmailBackend


@pytest.mark.django_db
def test_the_queued_backend_stays_queued_with_its_settings(
    sendfleet_backend, sendfleet_sandbox, django_capture_on_commit_callbacks
):
    connection = get_connection()
    assert isinstance(connection, QueuedEmailBackend) and connection.settings.timeout == 7
    with django_capture_on_commit_callbacks(execute=True):
        send_mail("Hi", "Body", None, ["ann@example.com"])
    assert sendfleet_sandbox.recipients == ["ann@example.com"]


@pytest.mark.django_db
def test_error_mail_reaches_the_sandbox(
    sendfleet_backend, sendfleet_sandbox, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        mail_admins("Disk full", "Clean up")
    assert [p["from_email"] for p in sendfleet_sandbox.payloads] == ["errors@ops.acme-shop.com"]
"""


@pytest.mark.skipif(django.VERSION >= (6, 1), reason="EMAIL_BACKEND: before Django 6.1")
def test_the_projects_backend_and_settings_survive(pytester, monkeypatch):
    """Before MAILERS, the equivalent: EMAIL_BACKEND stays the project's SendFleet backend
    (queued here), with its SENDFLEET options, pointed at the sandbox."""
    monkeypatch.setenv("SHOP_EMAIL_BACKEND", "django_sendfleet.backends.QueuedEmailBackend")
    write_project(pytester, monkeypatch)
    pytester.makepyfile(**{"shop/tests/test_backend": BACKEND_SUITE})
    run_suite(pytester).assert_outcomes(passed=2)


DOMAINS_SUITE = """
import pytest
from django.core.mail import mail_admins, send_mail

from django_sendfleet.exceptions import (
    SendFleetDKIMNotVerified,
    SendFleetDomainNotRegistered,
    SendFleetDomainNotVerified,
)
from django_sendfleet.sandbox.testing import use_sendfleet_sandbox


@pytest.mark.django_db
def test_the_projects_domains_are_known(sendfleet_backend, sendfleet_sandbox):
    send_mail("Hi", "Body", None, ["ann@example.com"])  # DEFAULT_FROM_EMAIL
    mail_admins("Hi", "Body")  # SERVER_EMAIL, on another domain
    assert len(sendfleet_sandbox.accepted) == 2


@pytest.mark.django_db
def test_the_ini_files_domains_are_known(sendfleet_backend):
    send_mail("Hi", "Body", "news@news.acme-shop.com", ["ann@example.com"])


@pytest.mark.django_db
@pytest.mark.sendfleet_sandbox(sender_domains=["mail.acme-shop.com"])
def test_a_marker_declares_more(sendfleet_backend):
    send_mail("Hi", "Body", "shop@mail.acme-shop.com", ["ann@example.com"])


@pytest.mark.django_db
@pytest.mark.sendfleet_sandbox(sender_domains={"acme-shop.com": "txt_unverified"})
def test_a_marker_makes_the_own_domain_unverified(sendfleet_backend):
    with pytest.raises(SendFleetDomainNotVerified):
        send_mail("Hi", "Body", None, ["ann@example.com"])


@pytest.mark.django_db
@pytest.mark.sendfleet_sandbox(project_domains=False)
def test_a_project_whose_domain_was_never_added(sendfleet_backend):
    with pytest.raises(SendFleetDomainNotRegistered):
        send_mail("Hi", "Body", None, ["ann@example.com"])


@pytest.mark.django_db
@use_sendfleet_sandbox(sender_domains={"acme-shop.com": "dkim_unverified"})
def test_the_decorator_takes_them_too(sandbox):
    with pytest.raises(SendFleetDKIMNotVerified):
        send_mail("Hi", "Body", None, ["ann@example.com"])
"""


def test_the_sandbox_knows_the_projects_sender_domains(pytester, monkeypatch):
    """DEFAULT_FROM_EMAIL's and SERVER_EMAIL's domains are registered by default; the ini
    file, the marker and the decorator declare more, or a state to test."""
    write_project(pytester, monkeypatch, ini="sendfleet_sender_domains = news.acme-shop.com")
    pytester.makepyfile(**{"shop/tests/test_domains": DOMAINS_SUITE})
    run_suite(pytester).assert_outcomes(passed=6)


def live_server_suite() -> str:
    """The page's live_server example, five times over (it raced its events' application)."""
    receipts = block_containing(DOC, "# shop/tests/test_receipts.py")
    imports = receipts[: receipts.index("\n@pytest")]  # the page's imports and secret
    example = block_containing(DOC, "def test_bounces_over_http")
    repeat = "\n".join(f"test_bounces_over_http_{n} = test_bounces_over_http" for n in range(4))
    return "\n".join([imports, "from django.core.mail import EmailMessage", example, repeat])


def test_the_live_server_example_passes_with_the_documented_settings(pytester, monkeypatch):
    """With the page's one settings change (a test database in a file), its live_server
    example passes every time: wait_for_webhooks() returns once the events are applied."""
    settings_change = block_containing(DOC, "live_server tests on SQLite")
    write_project(pytester, monkeypatch, settings=settings_change)
    pytester.makepyfile(**{"shop/tests/test_live": live_server_suite()})
    run_suite(pytester).assert_outcomes(passed=5)


def test_live_server_on_the_in_memory_database_is_warned_about(pytester, monkeypatch):
    """Without it (startproject's settings), the socket fixture says what to change."""
    write_project(pytester, monkeypatch)
    pytester.makepyfile(**{"shop/tests/test_live": live_server_suite()})
    result = run_suite(pytester, "-x")
    result.stdout.fnmatch_lines(["*SendFleetSandboxWarning: live_server with SQLite's in-memory*"])
