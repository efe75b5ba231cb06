"""The send log, the local suppression list and the signals, against the sandbox over HTTP."""

import logging

import django
import pytest
from django.core.mail import EmailMessage, EmailMultiAlternatives
from django.db import connection
from django.test.utils import CaptureQueriesContext

from django_sendfleet import exceptions as exc
from django_sendfleet import signals
from django_sendfleet.backends import EmailBackend
from django_sendfleet.models import SendLog, Suppression
from django_sendfleet.sandbox import REVOKED_API_KEY, SANDBOX_API_KEY
from tests.support.messages import SENDER, message

pytestmark = [pytest.mark.usefixtures("sendfleet_settings"), pytest.mark.django_db]


@pytest.fixture
def received():
    """Connect a recorder to every signal; returns signal name -> list of kwargs."""
    calls = {}
    receivers = []
    for name in ("post_send", "send_failed", "send_forbidden", "recipient_suppressed"):
        calls[name] = []

        def receiver(sender, signal, _name=name, **kwargs):
            calls[_name].append(kwargs)

        getattr(signals, name).connect(receiver, weak=False)
        receivers.append((getattr(signals, name), receiver))
    yield calls
    for signal, receiver in receivers:
        signal.disconnect(receiver)


def test_each_recipient_send_gets_one_log_row(sandbox):
    msg = message(to=["ann@example.com", "bob@example.com"])
    msg.send()
    rows = {row.recipient: row for row in SendLog.objects.all()}
    assert set(rows) == {"ann@example.com", "bob@example.com"}
    ann = rows["ann@example.com"]
    assert ann.status == "queued" and ann.http_status == 200 and ann.attempts == 1
    assert ann.message_id == msg.anymail_status.recipients["ann@example.com"].message_id
    assert ann.from_email == "shop@example.com" and ann.subject == "Hello"
    assert ann.mode == "shared" and ann.mailer == "default" and ann.duration_ms is not None


def test_content_is_not_stored_unless_log_content_is_on(sendfleet_settings):
    msg = EmailMultiAlternatives(
        "Hi", "secret body", SENDER, ["ann@example.com"], reply_to=["help@example.com"]
    )
    msg.attach_alternative("<p>secret body</p>", "text/html")
    msg.send()
    row = SendLog.objects.get()
    assert row.logged_content is None and not row.has_content
    assert (row.text_body, row.html_body, row.reply_to, row.from_name) == ("", "", "", "")
    sendfleet_settings["LOG_CONTENT"] = True
    msg.send()
    content = SendLog.objects.latest("id").logged_content
    assert content.text == "secret body" and content.html == "<p>secret body</p>"
    assert content.reply_to == "help@example.com" and content.from_name == "Shop"


def test_failures_are_logged_with_their_error_code_and_no_secret(sandbox, sendfleet_settings):
    sendfleet_settings["API_KEY"] = REVOKED_API_KEY
    with pytest.raises(exc.SendFleetAuthenticationError):
        message().send()
    row = SendLog.objects.get()
    assert row.status == "failed" and row.http_status == 401
    assert row.error_code == "authentication_failed" and row.detail
    assert REVOKED_API_KEY.split(".")[1] not in str(vars(row))


def test_log_rows_of_a_batch_are_written_in_one_statement(sandbox):
    messages = [message(to=[f"user{n}@example.com"]) for n in range(5)]
    with CaptureQueriesContext(connection) as queries:
        EmailBackend().send_messages(messages)
    inserts = [q["sql"] for q in queries.captured_queries if q["sql"].startswith("INSERT")]
    # One for the rows, one for their per-day rollups (rollups.py).
    assert [sql.split()[2] for sql in inserts] == [
        '"django_sendfleet_sendlog"',
        '"django_sendfleet_sendrollup"',
    ]
    assert SendLog.objects.count() == 5


def test_suppression_check_is_one_query_per_message(sandbox):
    msg = message(to=[f"user{n}@example.com" for n in range(6)])
    with CaptureQueriesContext(connection) as queries:
        EmailBackend().send_messages([msg])
    selects = [q for q in queries.captured_queries if "sendfleet_suppression" in q["sql"]]
    assert len(selects) == 1


def test_locally_suppressed_recipient_costs_no_request(sandbox, received):
    Suppression.objects.suppress(
        "Gone@Example.com", Suppression.Reason.HARD_BOUNCE, source="webhook"
    )
    msg = message(to=["ann@example.com", "GONE@example.com"])
    assert msg.send() == 1
    assert [r.payload["to"] for r in sandbox.requests] == ["ann@example.com"]
    result = msg.anymail_status.recipients["GONE@example.com"]
    assert result.status == "rejected"
    row = SendLog.objects.get(recipient="GONE@example.com")
    assert row.status == "rejected" and row.error_code == "recipient_suppressed"
    assert row.attempts == 0 and row.http_status is None
    [call] = received["recipient_suppressed"]
    assert call["source"] == "local" and call["recipient"] == "GONE@example.com"
    assert Suppression.objects.get(email="gone@example.com").hits == 1


def test_check_suppressions_off_sends_anyway(sandbox, sendfleet_settings):
    sendfleet_settings["CHECK_SUPPRESSIONS"] = False
    Suppression.objects.suppress("ann@example.com", Suppression.Reason.MANUAL, source="admin")
    message().send()
    assert len(sandbox.accepted) == 1


def test_a_422_adds_the_address_to_the_local_list_and_signals_it(sandbox, received):
    msg = message(to=["ann@example.com", "Suppressed@example.net"])
    msg.send()
    entry = Suppression.objects.get(email="suppressed@example.net")
    assert entry.reason == "api_rejected" and entry.source == "api"
    [call] = received["recipient_suppressed"]
    assert call["source"] == "api"
    assert isinstance(call["error"], exc.SendFleetRecipientSuppressed)
    # The next send to it is stopped locally: no second request.
    with pytest.raises(exc.SendFleetRecipientsRefused):
        message(to=["suppressed@example.net"]).send()
    sent_to = [r.payload["to"].lower() for r in sandbox.requests]
    assert sent_to.count("suppressed@example.net") == 1


def test_every_403_fires_send_forbidden_with_the_domain(sandbox, received):
    with pytest.raises(exc.SendFleetDomainNotVerified):
        message(sender="shop@unverified.example").send()
    [call] = received["send_forbidden"]
    assert call["error_code"] == "domain_not_verified"
    assert call["from_domain"] == "unverified.example"
    assert call["recipient"] == "ann@example.com"
    assert len(received["send_failed"]) == 1


def test_post_send_reports_the_status(sandbox, received):
    msg = message()
    msg.send()
    [call] = received["post_send"]
    assert call["message"] is msg and call["status"].status == {"queued"}


def test_pre_send_receiver_can_cancel_a_message(sandbox, caplog):
    def cancel_newsletters(sender, message, **kwargs):
        if message.subject.startswith("Newsletter"):
            raise signals.CancelSend("newsletters are paused")

    signals.pre_send.connect(cancel_newsletters)
    try:
        caplog.set_level(logging.INFO)
        cancelled = EmailMessage("Newsletter 1", "x", SENDER, ["ann@example.com"])
        kept = EmailMessage("Receipt", "x", SENDER, ["ann@example.com"])
        assert EmailBackend().send_messages([cancelled, kept]) == 1
    finally:
        signals.pre_send.disconnect(cancel_newsletters)
    assert cancelled.anymail_status.cancelled
    assert [r.payload["subject"] for r in sandbox.requests] == ["Receipt"]
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


def test_a_receiver_that_raises_never_breaks_or_repeats_a_send(sandbox, caplog):
    def broken(sender, **kwargs):
        raise RuntimeError("receiver bug")

    for signal in (signals.pre_send, signals.post_send, signals.send_failed):
        signal.connect(broken)
    try:
        assert message().send() == 1
        with pytest.raises(exc.SendFleetDomainNotVerified):
            message(sender="shop@unverified.example").send()
    finally:
        for signal in (signals.pre_send, signals.post_send, signals.send_failed):
            signal.disconnect(broken)
    assert len(sandbox.requests) == 2
    failures = [r for r in caplog.records if "receiver bug" in r.getMessage()]
    assert failures and {r.name for r in failures} == {"django_sendfleet"}


def test_a_raising_receiver_with_mail_admins_logging_does_not_loop(sandbox, settings):
    """Django mails "django.*" errors to ADMINS; that mail must not re-enter the receiver."""
    calls = []

    def broken(sender, **kwargs):
        calls.append(1)
        raise RuntimeError("receiver bug")

    # Django's default LOGGING (applied at setup) has that mail_admins handler.
    settings.ADMINS = ["ops@example.com"] if django.VERSION >= (6, 1) else [("", "ops@example.com")]
    signals.post_send.connect(broken)
    try:
        assert message().send() == 1
    finally:
        signals.post_send.disconnect(broken)
    assert len(calls) == 1


def test_send_log_off_writes_nothing(sandbox, sendfleet_settings):
    sendfleet_settings["SEND_LOG"] = False
    message().send()
    assert SendLog.objects.count() == 0


def test_log_is_written_even_when_the_send_raises(sandbox):
    messages = [message(to=["a@example.com"]), message(sender="x@unverified.example")]
    with pytest.raises(exc.SendFleetDomainNotVerified):
        EmailBackend().send_messages(messages)
    assert sorted(SendLog.objects.values_list("status", flat=True)) == ["failed", "queued"]


def test_key_is_redacted_from_stored_detail():
    from django_sendfleet.records.send_log import stored_detail

    assert stored_detail(f"echo {SANDBOX_API_KEY}", (SANDBOX_API_KEY,)) == "echo [redacted]"
    assert len(stored_detail("x" * 5000, ())) == 1000
