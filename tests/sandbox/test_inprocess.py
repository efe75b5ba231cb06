"""The in-process sandbox: the real backend against the sandbox's rules, with no socket.

Parity tests run the same scripted answer through the socket sandbox and the in-process one and
require the same outcome, so the adapter cannot drift from what ``HTTPAdapter`` gives the
client over the wire.
"""

from __future__ import annotations

import random
import socket
import time
import unittest
from typing import Any

import pytest
import requests
from django.conf import settings as django_settings
from django.core.mail import EmailMessage, send_mail
from django.test import TestCase
from django.urls import reverse

from django_sendfleet import exceptions as exc
from django_sendfleet.api import transports
from django_sendfleet.backends import EmailBackend
from django_sendfleet.error_table import SPECS_BY_CODE
from django_sendfleet.models import SendLog, Suppression
from django_sendfleet.sandbox import InProcessSandbox, Sandbox
from django_sendfleet.sandbox.answers import DOCUMENTED_ERRORS
from django_sendfleet.sandbox.testing import use_sendfleet_sandbox

pytestmark = pytest.mark.django_db

SENDER = "Shop <shop@example.com>"
SECRET = "whsec_inprocess_0123456789"


def message(*to: str) -> EmailMessage:
    return EmailMessage("Hello", "Plain body", SENDER, list(to or ["ann@example.com"]))


def outcome(send: Any) -> tuple[Any, ...]:
    """What the client saw: the exception's class and attributes, or the anymail status."""
    msg = message()
    try:
        send(msg)
    except exc.SendFleetError as error:
        return (
            type(error).__name__,
            error.error_code,
            error.status_code,
            error.attempts,
            getattr(error, "may_have_been_sent", None),
            getattr(error, "retry_after", None),
        )
    return ("sent", msg.anymail_status.status)


def recorded(sandbox: Any) -> list[tuple[Any, ...]]:
    """What the sandbox saw, without the parts that differ by run (ids, times)."""
    return [
        (r.status, r.payload, None if isinstance(r.response, dict) else r.response)
        for r in sandbox.requests
    ]


# The transport.


def test_sends_reach_the_sandbox_without_any_socket(sandbox, sendfleet_settings, monkeypatch):
    assert isinstance(sandbox, InProcessSandbox)

    def no_connections(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("a socket was connected")

    monkeypatch.setattr(socket.socket, "connect", no_connections)
    message("ann@example.com", "bob@example.com").send()
    assert sandbox.recipients == ["ann@example.com", "bob@example.com"]
    assert SendLog.objects.filter(status="queued").count() == 2


def test_only_clients_for_the_sandboxs_url_are_answered_in_process(sandbox, sendfleet_settings):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    sendfleet_settings["API_URL"] = f"http://127.0.0.1:{closed_port}/api/send/"
    sendfleet_settings["MAX_RETRY_WAIT"] = 0
    with pytest.raises(exc.SendFleetNetworkError) as caught:
        message().send()
    assert caught.value.error_code == "connection_failed" and sandbox.requests == []


def test_stopping_uninstalls_the_transport():
    sandbox = InProcessSandbox().start()
    prefix = sandbox.base_url + "/"
    sandbox.stop()
    session = requests.Session()
    transports.mount(session, sandbox.url)
    assert prefix not in session.adapters


def test_two_sandboxes_never_share_a_url():
    with InProcessSandbox() as first, InProcessSandbox() as second:
        assert first.url != second.url
        first.session().post(first.url, json={}, headers={"X-API-Key": "x"}, timeout=5)
        assert len(first.requests) == 1 and second.requests == []


def test_a_session_of_ones_own_gets_the_same_answers(sandbox):
    with sandbox.session() as session:
        assert session.get(sandbox.url, timeout=5).status_code == 405
        assert session.post(sandbox.base_url + "/nope/", timeout=5).status_code == 404
        answer = session.post(sandbox.url, json={}, headers={"X-API-Key": "x"}, timeout=5)
    assert answer.status_code == 401 and answer.json() == {"detail": "Invalid API key."}
    assert answer.headers["Content-Type"] == "application/json"


def test_one_connection_per_session_and_a_new_one_after_a_drop(sandbox, sendfleet_settings):
    sandbox.inject_fault("drop")
    msg = message("ann@example.com", "bob@example.com", "carol@example.com")
    EmailBackend(fail_silently=True).send_messages([msg])
    assert [r.status for r in sandbox.requests] == [0, 200, 200]
    assert sandbox.connections_opened == 2
    assert len({r.connection_id for r in sandbox.requests[1:]}) == 1


# Parity with the socket sandbox.

PARITY_FAULTS = [
    *DOCUMENTED_ERRORS,
    "rate_limited",
    "rate_limited:7",
    "rate_limited:none",
    "drop",
    "malformed",
    "timeout",
    "slow:1",
]


@pytest.mark.parametrize("fault", PARITY_FAULTS)
def test_every_scripted_answer_reaches_the_client_as_over_a_socket(
    fault, settings, sendfleet_settings, retry_waits
):
    outcomes = []
    for kind in (Sandbox, InProcessSandbox):
        with kind() as sandbox:
            # A fresh key and no suppressions: what the first run learned must not steer the
            # second; the same random backoff for both.
            key = sandbox.add_key()
            settings.SENDFLEET = {
                **sendfleet_settings,
                "API_URL": sandbox.url,
                "API_KEY": key,
                "TIMEOUT": 0.3,
            }
            Suppression.objects.all().delete()
            sandbox.inject_fault(fault, count=10)
            retry_waits.clear()
            random.seed(fault)
            seen = outcome(lambda msg: msg.send())
            outcomes.append((seen, recorded(sandbox), list(retry_waits)))
    socket_outcome, inprocess_outcome = outcomes
    assert inprocess_outcome == socket_outcome


# Scripting answers.


@pytest.mark.parametrize("code", [*DOCUMENTED_ERRORS, "rate_limited"])
def test_each_documented_error_can_be_scripted(code, sandbox, sendfleet_settings):
    sendfleet_settings["MAX_RETRY_WAIT"] = 0
    sandbox.inject_fault(code)
    msg = message()
    EmailBackend(fail_silently=True).send_messages([msg])
    error = msg.anymail_status.recipients["ann@example.com"].error
    expected = "forbidden" if code == "ip_blocked" else code
    assert error.error_code == expected
    assert isinstance(error, SPECS_BY_CODE[expected].exception)
    assert sandbox.accepted == []


def test_scripted_domain_errors_name_the_senders_domain(sandbox, sendfleet_settings):
    sandbox.inject_fault("dkim_not_verified")
    with pytest.raises(exc.SendFleetDKIMNotVerified) as caught:
        message().send()
    assert "'example.com'" in caught.value.detail


def test_a_timeout_is_accepted_but_unknown_to_the_client(sandbox, sendfleet_settings):
    sandbox.inject_fault("timeout")
    with pytest.raises(exc.SendFleetNetworkError) as caught:
        message().send()
    assert caught.value.may_have_been_sent and caught.value.error_code == "network_error"
    assert len(sandbox.accepted) == 1  # queued: exactly why a retry could send twice
    assert sandbox.retry_waits == []


def test_latency_past_the_read_timeout_is_a_timeout_without_waiting(sandbox, sendfleet_settings):
    sendfleet_settings["TIMEOUT"] = (5, 0.5)
    sandbox.latency = 3600
    with pytest.raises(exc.SendFleetNetworkError) as caught:
        message().send()
    assert "read timeout=0.5" in str(caught.value)


@pytest.mark.parametrize(
    ("fault", "cause"),
    [("refused", requests.ConnectionError), ("connect_timeout", requests.ConnectTimeout)],
)
def test_connection_failures_are_retried_and_never_reach_the_sandbox(
    fault, cause, sandbox, sendfleet_settings
):
    sandbox.inject_fault(fault, count=4)
    with pytest.raises(exc.SendFleetNetworkError) as caught:
        message().send()
    assert caught.value.error_code == "connection_failed" and not caught.value.may_have_been_sent
    assert caught.value.detail.startswith(f"{cause.__name__}: ")
    assert sandbox.retry_waits == [1, 2, 4] and sandbox.requests == []


def test_a_socket_sandbox_refuses_connection_failures_it_cannot_produce():
    with Sandbox() as sandbox, pytest.raises(ValueError, match="closed port"):
        sandbox.inject_fault("refused")


# Time.


def test_retry_waits_are_recorded_never_slept(sandbox, sendfleet_settings, monkeypatch):
    def no_sleeping(seconds: float) -> None:
        raise AssertionError(f"slept {seconds} s")

    monkeypatch.setattr(time, "sleep", no_sleeping)
    sandbox.inject_fault(502, count=3)
    message().send()
    assert sandbox.retry_waits == [1, 2, 4]
    assert [r.status for r in sandbox.requests] == [502, 502, 502, 200]


def test_a_throttled_send_succeeds_after_waiting_out_retry_after(sandbox, sendfleet_settings):
    sandbox.set_rate_limit(1, 5)
    message("ann@example.com", "bob@example.com").send()
    assert [r.status for r in sandbox.requests] == [200, 429, 200]
    assert sandbox.requests[1].response == {
        "detail": "Request was throttled. Expected available in 5 seconds."
    }
    assert sandbox.retry_waits == [5.0]  # Retry-After, and the sandbox's clock moved by it


def test_a_throttle_without_retry_after_backs_off_from_one_second(sandbox, sendfleet_settings):
    sandbox.inject_fault("rate_limited:none", count=2)
    message().send()
    assert sandbox.retry_waits == [1, 2]


def test_the_ip_block_runs_out_on_the_sandboxs_clock(sandbox, sendfleet_settings):
    with sandbox.session() as session:
        for _ in range(10):
            session.post(sandbox.url, json={}, headers={"X-API-Key": "wrong"}, timeout=5)
    with pytest.raises(exc.SendFleetForbidden):
        message().send()
    sandbox.advance_clock(59)
    with pytest.raises(exc.SendFleetForbidden):
        message().send()
    sandbox.advance_clock(1)
    sandbox.advance_clock(60)
    message().send()
    assert [r.status for r in sandbox.requests][-3:] == [403, 403, 200]


# Webhooks, delivered through the app's own URLconf.


def test_webhooks_wait_for_the_test_then_reach_the_view(sandbox, sendfleet_settings):
    sendfleet_settings["WEBHOOK_SECRET"] = SECRET
    sandbox.configure_webhook(reverse("sendfleet-webhook"), SECRET)
    message("ann@example.com", "bounce@example.com").send()
    assert set(SendLog.objects.values_list("status", flat=True)) == {"queued"}
    deliveries = sandbox.deliver_webhooks()
    assert [(d.event_type, d.status) for d in deliveries] == [
        ("email.sent", 200),
        ("email.delivered", 200),
        ("email.sent", 200),
        ("email.bounced", 200),
    ]
    assert dict(SendLog.objects.values_list("recipient", "status")) == {
        "ann@example.com": "delivered",
        "bounce@example.com": "bounced",
    }
    assert Suppression.objects.filter(email="bounce@example.com").exists()
    assert sandbox.deliver_webhooks() == []  # each event once


def test_a_webhook_signed_with_another_secret_is_refused(sandbox, sendfleet_settings):
    sendfleet_settings["WEBHOOK_SECRET"] = SECRET
    sandbox.configure_webhook("http://testserver/sendfleet/webhook/", "not-the-secret")
    message().send()
    assert sandbox.wait_for_webhooks()
    assert {d.status for d in sandbox.webhook_deliveries} == {403}
    assert SendLog.objects.get().status == "queued"


@pytest.mark.sendfleet_sandbox(plan="byoc")
def test_byoc_plans_send_no_webhooks(sandbox, sendfleet_settings):
    sendfleet_settings["WEBHOOK_SECRET"] = SECRET
    sandbox.configure_webhook(reverse("sendfleet-webhook"), SECRET)
    msg = message()
    msg.send()
    assert msg.anymail_status.recipients["ann@example.com"].mode == "byoc"
    assert sandbox.accepted[0].response["message"] == (
        "Email queued for delivery via your SES account."
    )
    assert sandbox.deliver_webhooks() == []


# Helpers a test author expects.


def test_payloads_per_recipient(sandbox, sendfleet_settings):
    send_mail("First", "One", SENDER, ["Ann@Example.com", "bob@example.com"])
    send_mail("Second", "Two", SENDER, ["ann@example.com"])
    assert [p["subject"] for p in sandbox.payloads_to("ann@example.com")] == ["First", "Second"]
    assert sandbox.recipients == ["Ann@Example.com", "bob@example.com", "ann@example.com"]
    assert len(sandbox.payloads) == 3


def test_reset_forgets_waits_and_traffic(sandbox, sendfleet_settings):
    sandbox.inject_fault(502)
    message().send()
    sandbox.reset()
    assert sandbox.requests == [] and sandbox.retry_waits == [] and sandbox.connections_opened == 0


# The pytest plugin's choices.


def test_asking_for_the_socket_fixture_makes_it_the_tests_sandbox(
    sendfleet_socket_sandbox, sandbox, sendfleet_settings
):
    assert sandbox is sendfleet_socket_sandbox
    assert sendfleet_settings["API_URL"] == sendfleet_socket_sandbox.url
    message().send()
    assert sendfleet_socket_sandbox.connections_opened == 1


@pytest.mark.sendfleet_sandbox(socket=True, plan="pro")
def test_the_marker_chooses_the_socket_server_and_the_plan(sandbox):
    assert isinstance(sandbox, Sandbox)
    assert sandbox.plan.name == "pro"
    assert sandbox.state.account("default").monthly_quota == 100_000


def test_the_backend_keeps_the_projects_other_sendfleet_settings(settings, sendfleet_backend):
    assert sendfleet_backend["RATE_LIMIT"] is None
    settings.SENDFLEET = {"WEBHOOK_SECRET": SECRET, "TIMEOUT": 3}
    with InProcessSandbox() as sandbox, use_sendfleet_sandbox() as inner:
        assert django_settings.SENDFLEET["WEBHOOK_SECRET"] == SECRET
        assert django_settings.SENDFLEET["API_URL"] == inner.url != sandbox.url


# Django's TestCase.


@use_sendfleet_sandbox(plan="starter-byoc")
class DecoratedTestCase(TestCase):
    def test_each_test_gets_its_own_in_process_sandbox(self) -> None:
        assert isinstance(self.sandbox, InProcessSandbox)  # type: ignore[attr-defined]
        assert self.sandbox.plan.name == "starter-byoc"  # type: ignore[attr-defined]
        send_mail("Hi", "Body", SENDER, ["ann@example.com"])
        [payload] = self.sandbox.payloads_to("ann@example.com")  # type: ignore[attr-defined]
        assert payload["subject"] == "Hi"

    @use_sendfleet_sandbox(kwarg_name="other")
    def test_a_method_decorator_passes_its_own_sandbox(self, other: InProcessSandbox) -> None:
        send_mail("Hi", "Body", SENDER, ["ann@example.com"])
        assert other.recipients == ["ann@example.com"]
        assert self.sandbox.requests == []  # type: ignore[attr-defined]


class ContextManagerTestCase(TestCase):
    def test_the_settings_and_the_transport_are_restored(self) -> None:
        before = django_settings.SENDFLEET
        with use_sendfleet_sandbox() as sandbox:
            sandbox.inject_fault(502)
            send_mail("Hi", "Body", SENDER, ["ann@example.com"])
            assert sandbox.retry_waits == [1]
        assert before == django_settings.SENDFLEET
        session = requests.Session()
        transports.mount(session, sandbox.url)
        assert sandbox.base_url + "/" not in session.adapters


def test_unittest_discovers_the_decorated_case():
    suite = unittest.defaultTestLoader.loadTestsFromTestCase(DecoratedTestCase)
    assert suite.countTestCases() == 2
