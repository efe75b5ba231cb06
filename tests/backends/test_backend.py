"""The email backend against the sandbox over real HTTP on 127.0.0.1."""

import logging
import socket

import django
import pytest
from django.contrib.auth.forms import PasswordResetForm
from django.contrib.auth.models import User
from django.core.mail import EmailMultiAlternatives, mail_admins, send_mail

from django_sendfleet import __version__
from django_sendfleet import exceptions as exc
from django_sendfleet.api.client import USER_AGENT, SendFleetClient
from django_sendfleet.backends import EmailBackend
from django_sendfleet.sandbox import (
    BYOC_BROKEN_API_KEY,
    QUOTA_API_KEY,
    REVOKED_API_KEY,
    SANDBOX_API_KEY,
    SUSPENDED_API_KEY,
    UNAPPROVED_API_KEY,
)
from tests.support.messages import SENDER, message

pytestmark = [pytest.mark.usefixtures("sendfleet_settings"), pytest.mark.django_db]


def backend(**options):
    return EmailBackend(**options)


def test_send_mail_queues_one_request_with_the_documented_fields(sandbox):
    assert send_mail("Hi", "Body", SENDER, ["ann@example.com"]) == 1
    [request] = sandbox.requests
    assert request.status == 200
    assert request.payload == {
        "to": "ann@example.com",
        "from_email": "shop@example.com",
        "from_name": "Shop",
        "subject": "Hi",
        "message": "Body",
    }


def test_anymail_status_reports_the_queued_message_id(sandbox):
    msg = message()
    msg.send()
    status = msg.anymail_status
    assert status.status == {"queued"}
    assert status.message_id == sandbox.accepted[0].message_id
    assert status.recipients["ann@example.com"].status == "queued"
    assert status.recipients["ann@example.com"].mode == "shared"
    assert status.esp_response.json()["message_id"] == status.message_id


@pytest.mark.usefixtures("sendfleet_socket_sandbox")  # counts TCP connections
def test_recipients_fan_out_one_request_each_over_one_connection(sandbox):
    msg = message(
        to=["Ann <ann@example.com>", "bob@example.com"],
        cc=["ANN@example.com", "carol@example.com"],
        bcc=["dave@example.com"],
    )
    second = message(to=["erin@example.com"])
    assert backend().send_messages([msg, second]) == 2
    assert [r.payload["to"] for r in sandbox.requests] == [
        "ann@example.com",
        "bob@example.com",
        "carol@example.com",
        "dave@example.com",
        "erin@example.com",
    ]
    assert sandbox.connections_opened == 1
    assert len(msg.anymail_status.message_id) == 4  # one id per recipient


def test_html_mail_sends_html_and_readable_text(sandbox):
    msg = EmailMultiAlternatives("Order", "", SENDER, ["ann@example.com"])
    msg.attach_alternative("<p>Your order <b>#12</b> shipped.</p>", "text/html")
    msg.send()
    payload = sandbox.requests[0].payload
    assert payload["html"] == "<p>Your order <b>#12</b> shipped.</p>"
    assert payload["message"] == "Your order #12 shipped."


def test_suppressed_recipient_is_rejected_and_the_others_still_go_out(sandbox):
    msg = message(to=["ann@example.com", "suppressed@example.net", "bob@example.com"])
    assert msg.send() == 1
    recipients = msg.anymail_status.recipients
    assert recipients["suppressed@example.net"].status == "rejected"
    assert isinstance(recipients["suppressed@example.net"].error, exc.SendFleetRecipientSuppressed)
    assert [r.payload["to"] for r in sandbox.accepted] == ["ann@example.com", "bob@example.com"]


def test_message_whose_every_recipient_is_refused_raises(sandbox):
    msg = message(to=["suppressed@example.net"])
    with pytest.raises(exc.SendFleetRecipientsRefused):
        msg.send()
    assert msg.anymail_status.status == {"rejected"}
    assert len(sandbox.requests) == 1


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("bcc", "to@"),  # syntax
        ("to", "nø@example.dk"),  # a non-ASCII local part
        ("cc", "undisclosed-recipients:;"),  # group syntax
        ("to", "ann@example.com, bob@example.com"),  # two addresses in one string
    ],
)
def test_one_address_that_cannot_be_sent_refuses_the_whole_message(sandbox, field, value):
    # Django's SMTP backend and anymail refuse the message; sending to the others would hide
    # that a recipient the app named was dropped.
    msg = message(to=["carol@example.com"])
    setattr(msg, field, [*getattr(msg, field), value])
    with pytest.raises(ValueError) as raised:
        backend().send_messages([msg])
    error = raised.value
    assert isinstance(error, exc.SendFleetInvalidAddress)
    assert (error.field, error.value) == (field, value)
    assert f"{field}: Invalid address {value!r}" in str(error)
    assert sandbox.requests == []  # not even to carol
    assert msg.anymail_status.recipients[value].status == "invalid"


def test_with_fail_silently_a_refused_message_is_skipped_and_the_others_go(sandbox):
    refused = message(to=["ann@example.com"], bcc=["to@"])
    fine = message(to=["bob@example.com"])
    assert backend(fail_silently=True).send_messages([refused, fine]) == 1
    assert [r.payload["to"] for r in sandbox.requests] == ["bob@example.com"]


def test_ignore_recipient_status_reports_refusals_without_raising(sendfleet_settings):
    sendfleet_settings["IGNORE_RECIPIENT_STATUS"] = True
    msg = message(to=["suppressed@example.net"])
    assert backend().send_messages([msg]) == 0
    assert msg.anymail_status.status == {"rejected"}


def test_invalid_message_is_refused_locally_with_no_request(sandbox):
    with pytest.raises(exc.SendFleetInvalidMessage):
        send_mail("x" * 257, "Body", SENDER, ["ann@example.com"])
    assert sandbox.requests == []


def test_unsupported_feature_raises_unless_ignored(sandbox, sendfleet_settings):
    msg = message()
    msg.attach("invoice.pdf", b"%PDF", "application/pdf")
    with pytest.raises(exc.SendFleetUnsupportedFeature):
        backend().send_messages([msg])
    assert sandbox.requests == []
    sendfleet_settings["IGNORE_UNSUPPORTED_FEATURES"] = True
    assert backend().send_messages([msg]) == 1


@pytest.mark.parametrize(
    ("api_key", "sender", "exception"),
    [
        (REVOKED_API_KEY, SENDER, exc.SendFleetAuthenticationError),
        (UNAPPROVED_API_KEY, SENDER, exc.SendFleetAccountNotAuthorized),
        (SUSPENDED_API_KEY, SENDER, exc.SendFleetSendingSuspended),
        (SANDBOX_API_KEY, "shop@unknown.example", exc.SendFleetDomainNotRegistered),
        (SANDBOX_API_KEY, "shop@unverified.example", exc.SendFleetDomainNotVerified),
        (SANDBOX_API_KEY, "shop@nodkim.example", exc.SendFleetDKIMNotVerified),
        (SANDBOX_API_KEY, "shop@byoc.example", exc.SendFleetDomainModeMismatch),
        (BYOC_BROKEN_API_KEY, SENDER, exc.SendFleetBYOCNotConfigured),
    ],
)
def test_each_api_error_raises_its_own_exception_without_retry(
    sandbox, sendfleet_settings, retry_waits, api_key, sender, exception
):
    sendfleet_settings["API_KEY"] = api_key
    msg = message(sender=sender)
    with pytest.raises(exception) as caught:
        msg.send()
    error = caught.value
    assert error.error_code == exception.error_code
    assert error.status_code == sandbox.requests[0].status
    assert error.detail and error.recipient == "ann@example.com"
    assert error.email_message is msg and error.attempts == 1
    assert not error.retryable and retry_waits == []
    assert len(sandbox.requests) == 1
    assert msg.anymail_status.status == {"failed"}


def test_usage_limit_stops_the_batch(sandbox, sendfleet_settings):
    sendfleet_settings["API_KEY"] = QUOTA_API_KEY  # a quota of 3 a month
    messages = [message(to=[f"user{n}@example.com"]) for n in range(6)]
    connection = EmailBackend(fail_silently=True)
    assert connection.send_messages(messages) == 3
    assert [r.status for r in sandbox.requests] == [200, 200, 200, 429]
    assert isinstance(
        messages[4].anymail_status.recipients["user4@example.com"].error,
        exc.SendFleetUsageLimitExceeded,
    )


def test_no_request_follows_a_401_in_the_same_batch(sandbox, sendfleet_settings):
    sendfleet_settings["API_KEY"] = REVOKED_API_KEY
    messages = [message(to=["a@example.com", "b@example.com"]), message(to=["c@example.com"])]
    assert EmailBackend(fail_silently=True).send_messages(messages) == 0
    assert len(sandbox.requests) == 1
    assert messages[1].anymail_status.status == {"failed"}


def test_domain_error_skips_that_domain_but_not_others(sandbox):
    messages = [
        message(sender="shop@unverified.example", to=["a@example.com"]),
        message(sender="news@unverified.example", to=["b@example.com"]),
        message(sender=SENDER, to=["c@example.com"]),
    ]
    assert EmailBackend(fail_silently=True).send_messages(messages) == 1
    assert [(r.payload["to"], r.status) for r in sandbox.requests] == [
        ("a@example.com", 403),
        ("c@example.com", 200),
    ]
    skipped = messages[1].anymail_status.recipients["b@example.com"]
    assert skipped.status == "failed" and skipped.error.error_code == "domain_not_verified"


def test_fail_silently_returns_the_count_instead_of_raising(sandbox):
    assert (
        send_mail("Hi", "Body", "shop@unverified.example", ["a@example.com"], fail_silently=True)
        == 0
    )


def test_queue_error_is_retried_after_1_then_2_seconds(sandbox, retry_waits):
    sandbox.inject_fault(502, count=2)
    msg = message()
    assert msg.send() == 1
    assert retry_waits == [1, 2]
    assert [r.status for r in sandbox.requests] == [502, 502, 200]
    assert msg.anymail_status.recipients["ann@example.com"].attempts == 3


def test_queue_error_gives_up_after_four_attempts(sandbox, retry_waits):
    sandbox.inject_fault(502, count=5)
    with pytest.raises(exc.SendFleetQueueError) as caught:
        message().send()
    assert retry_waits == [1, 2, 4]
    assert caught.value.attempts == 4 and len(sandbox.requests) == 4


def test_server_error_is_retried_once_after_two_to_five_seconds(sandbox, retry_waits):
    sandbox.inject_fault(500, count=2)
    with pytest.raises(exc.SendFleetServerError) as caught:
        message().send()
    assert len(retry_waits) == 1 and 2 <= retry_waits[0] <= 5
    assert caught.value.attempts == 2 and len(sandbox.requests) == 2


def test_max_retry_wait_caps_the_time_spent_waiting(sandbox, sendfleet_settings, retry_waits):
    sendfleet_settings["MAX_RETRY_WAIT"] = 2.5  # room for the 1 s and 2 s waits? 1 + 2 > 2.5
    sandbox.inject_fault(502, count=4)
    with pytest.raises(exc.SendFleetQueueError) as caught:
        message().send()
    assert retry_waits == [1]
    assert caught.value.attempts == 2
    assert "MAX_RETRY_WAIT" in str(caught.value)


def test_throttle_waits_for_retry_after_then_succeeds(sandbox):
    sandbox.set_rate_limit(2, 1)
    messages = [message(to=[f"user{n}@example.com"]) for n in range(3)]
    assert backend().send_messages(messages) == 3
    assert [r.status for r in sandbox.requests] == [200, 200, 429, 200]
    assert messages[2].anymail_status.recipients["user2@example.com"].attempts == 2


def test_throttle_beyond_max_retry_wait_fails_without_hanging(sandbox, sendfleet_settings):
    sendfleet_settings["MAX_RETRY_WAIT"] = 0
    sandbox.set_rate_limit(1, 30)
    with pytest.raises(exc.SendFleetRateLimited) as caught:
        backend().send_messages([message(to=["a@example.com"]), message(to=["b@example.com"])])
    assert caught.value.retry_after >= 1
    assert caught.value.retryable


@pytest.mark.usefixtures("sendfleet_socket_sandbox")  # a connection really dropped
def test_dropped_connection_after_sending_is_unknown_and_not_retried(sandbox, retry_waits):
    sandbox.inject_fault("drop")
    msg = message()
    with pytest.raises(exc.SendFleetNetworkError) as caught:
        msg.send()
    assert caught.value.may_have_been_sent
    assert retry_waits == [] and len(sandbox.requests) == 1
    assert msg.anymail_status.status == {"unknown"}


@pytest.mark.usefixtures("sendfleet_socket_sandbox")  # a real read timeout
def test_read_timeout_is_unknown_and_not_retried(sandbox, sendfleet_settings, retry_waits):
    sendfleet_settings["TIMEOUT"] = 0.3
    sandbox.inject_fault("slow:1")
    with pytest.raises(exc.SendFleetNetworkError) as caught:
        message().send()
    assert caught.value.may_have_been_sent and caught.value.error_code == "network_error"
    assert retry_waits == []


def test_connection_never_opened_is_retried_like_a_502(sendfleet_settings, retry_waits):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    sendfleet_settings["API_URL"] = f"http://127.0.0.1:{closed_port}/api/send/"
    with pytest.raises(exc.SendFleetNetworkError) as caught:
        message().send()
    assert not caught.value.may_have_been_sent
    assert caught.value.error_code == "connection_failed"
    assert retry_waits == [1, 2, 4] and caught.value.attempts == 4


def test_malformed_success_body_is_unknown_not_retried(sandbox, retry_waits):
    sandbox.inject_fault("malformed")
    msg = message()
    with pytest.raises(exc.SendFleetMalformedResponse):
        msg.send()
    assert msg.anymail_status.status == {"unknown"} and retry_waits == []


def test_api_validation_error_carries_the_field_errors(sandbox):
    client = SendFleetClient(api_url=sandbox.url, api_key=SANDBOX_API_KEY, timeout=5)
    with pytest.raises(exc.SendFleetValidationError) as caught:
        client.attempt({})
    assert caught.value.field_errors["to"] == ["This field is required."]
    assert "message" in caught.value.field_errors
    assert caught.value.status_code == 400


def test_dns_warnings_are_reported(sandbox):
    msg = message(sender="shop@nospf.example.com")
    msg.send()
    warnings = msg.anymail_status.recipients["ann@example.com"].warnings
    assert any("SPF" in w for w in warnings) and any("DMARC" in w for w in warnings)


def test_mail_admins_goes_through_sendfleet(sandbox, settings):
    admins = ["ops@example.com", "dev@example.com"]
    settings.ADMINS = admins if django.VERSION >= (6, 1) else [("", a) for a in admins]
    mail_admins("Disk full", "The disk is full.")
    assert [r.payload["to"] for r in sandbox.accepted] == ["ops@example.com", "dev@example.com"]
    assert sandbox.accepted[0].payload["from_email"] == "errors@example.com"


@pytest.mark.django_db
def test_password_reset_mail_goes_through_sendfleet(sandbox):
    User.objects.create_user("ann", "ann@example.com", "pw")
    form = PasswordResetForm({"email": "ann@example.com"})
    assert form.is_valid()
    form.save(domain_override="shop.example.com")
    [request] = sandbox.accepted
    assert request.payload["to"] == "ann@example.com"
    assert "shop.example.com" in request.payload["message"]


def test_each_send_is_logged_and_the_api_key_never_is(sandbox, caplog):
    caplog.set_level(logging.DEBUG)
    sandbox.inject_fault(502)
    message(to=["ann@example.com", "suppressed@example.net"]).send()
    lines = [r.getMessage() for r in caplog.records if r.name == "django_sendfleet"]
    assert any("ann@example.com queued" in line for line in lines)
    assert any("suppressed@example.net rejected" in line for line in lines)
    secret = SANDBOX_API_KEY.split(".")[1]
    assert all(secret not in r.getMessage() for r in caplog.records)


def test_the_client_identifies_itself_with_its_version(sandbox):
    message().send()
    assert sandbox.requests[0].user_agent == USER_AGENT == f"django-sendfleet/{__version__}"


@pytest.mark.usefixtures("sendfleet_socket_sandbox")  # counts TCP connections
def test_an_opened_connection_is_reused_across_send_messages_calls(sandbox):
    connection = backend()
    with connection:
        connection.send_messages([message(to=["a@example.com"])])
        connection.send_messages([message(to=["b@example.com"])])
    assert sandbox.connections_opened == 1
