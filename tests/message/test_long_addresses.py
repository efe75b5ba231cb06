"""Addresses of up to 320 characters are valid and sent, so everything that stores or acts on one
keeps the whole address: the send log, the suppression list, webhook events, admin Resend and
Suppress, and the 422 path. Run on PostgreSQL too (DATABASE_URL), which refuses a value longer
than its column with ``DataError`` where SQLite stores it.
"""

from __future__ import annotations

import json

import pytest
from django.core.mail import EmailMessage
from django.urls import reverse

from django_sendfleet.backends import EmailBackend
from django_sendfleet.models import SendLog, Suppression, WebhookEvent, normalise_email
from django_sendfleet.models.log_status import LogStatus
from django_sendfleet.webhooks.view import sign

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("sendfleet_settings")]

LONG = "Long.Recipient." + "r" * 281 + "@Example.com"  # 308 characters: valid, over 254
LONG_SENDER = "s" * 280 + "@example.com"
LONG_REPLY_TO = "h" * 300 + "@example.com"
CHANGELIST = "admin:django_sendfleet_sendlog_changelist"


def test_the_addresses_are_long_valid_and_over_the_old_columns():
    assert 254 < len(LONG) <= 320
    assert all(len(address) > 254 for address in (LONG_SENDER, LONG_REPLY_TO))


def test_a_long_recipient_sender_and_reply_to_are_logged_whole(sandbox, sendfleet_settings):
    sendfleet_settings["LOG_CONTENT"] = True
    message = EmailMessage("Hi", "Body", LONG_SENDER, [LONG], reply_to=[LONG_REPLY_TO])
    assert EmailBackend().send_messages([message]) == 1
    assert sandbox.requests[0].payload["to"] == LONG
    row = SendLog.objects.get()
    assert (row.recipient, row.from_email) == (LONG, LONG_SENDER)
    content = row.logged_content
    assert (content.from_email, content.reply_to) == (LONG_SENDER, LONG_REPLY_TO)


def test_a_refused_value_too_long_to_store_is_marked_shortened_and_never_resendable(sandbox):
    # "ann@example.com" followed by text: refused, and too long for the column. Cut at the
    # column, it must not read as ann@example.com (the admin could resend to that).
    given = "ann@example.com" + " " * 400 + "x"
    message = EmailMessage("Hi", "Body", "shop@example.com", [given, "bob@example.com"])
    EmailBackend(fail_silently=True).send_messages([message])
    row = SendLog.objects.get(status=LogStatus.FAILED, recipient__startswith="ann@")
    assert len(row.recipient) == 320 and row.recipient.endswith("…")
    resend = EmailMessage("Hi", "Body", "shop@example.com", [row.recipient])
    EmailBackend(fail_silently=True).send_messages([resend])
    assert resend.anymail_status.recipients[row.recipient].status == "invalid"
    assert sandbox.requests == []  # the message was refused whole; its resend too


def test_a_422_for_a_long_address_suppresses_it_whole_even_with_fail_silently(sandbox):
    sandbox.suppress(normalise_email(LONG))
    message = EmailMessage("Hi", "Body", "shop@example.com", [LONG])
    assert EmailBackend(fail_silently=True).send_messages([message]) == 0
    assert sandbox.requests[0].status == 422
    assert Suppression.objects.get().email == normalise_email(LONG)
    assert SendLog.objects.get().recipient == LONG


def test_admin_suppress_and_resend_act_on_the_whole_address(
    admin_client, sandbox, sendfleet_settings
):
    sendfleet_settings["LOG_CONTENT"] = True
    sandbox.inject_fault("drop")  # the send's answer is lost: worth resending
    EmailBackend(fail_silently=True).send_messages(
        [EmailMessage("Hi", "Body", "shop@example.com", [LONG])]
    )
    original = SendLog.objects.get()
    assert original.recipient == LONG

    admin_client.post(
        reverse(CHANGELIST), {"action": "resend", "_selected_action": [original.pk]}, follow=True
    )
    assert [r.payload["to"] for r in sandbox.accepted] == [LONG]

    admin_client.post(
        reverse(CHANGELIST),
        {"action": "add_to_suppression_list", "_selected_action": [original.pk]},
        follow=True,
    )
    assert list(Suppression.objects.values_list("email", flat=True)) == [normalise_email(LONG)]


def test_a_long_address_can_be_suppressed_by_hand_in_the_admin(admin_client):
    url = reverse("admin:django_sendfleet_suppression_add")
    response = admin_client.post(url, {"email": LONG, "reason": "manual", "note": ""})
    assert response.status_code == 302, response.content
    assert Suppression.objects.get().email == normalise_email(LONG)


def test_a_complaint_webhook_for_a_long_address_suppresses_it_whole(client, settings):
    settings.SENDFLEET = {"WEBHOOK_SECRET": "whsec_long_addresses"}
    SendLog.objects.create(message_id="msg-long", recipient=LONG, from_email="shop@example.com")
    body = json.dumps(
        {"event_type": "email.complained", "message_id": "msg-long", "to": LONG}
    ).encode()
    answer = client.post(
        reverse("sendfleet-webhook"),
        data=body,
        content_type="application/json",
        HTTP_X_SENDFLEET_SIGNATURE=sign(body, "whsec_long_addresses"),
    )
    assert answer.status_code == 200
    event = WebhookEvent.objects.get()
    assert (event.outcome, event.recipient) == ("applied", LONG)
    assert Suppression.objects.get().email == normalise_email(LONG)
    assert SendLog.objects.get().status == LogStatus.COMPLAINED


def test_suppressions_match_an_idn_address_in_either_form(sandbox):
    Suppression.objects.create(email="User@Bücher.example", reason=Suppression.Reason.MANUAL)
    assert Suppression.objects.get().email == "user@xn--bcher-kva.example"
    message = EmailMessage("Hi", "Body", "shop@example.com", ["user@bücher.example"])
    EmailBackend(fail_silently=True).send_messages([message])
    assert sandbox.requests == []  # suppressed locally, as sent: in IDNA form
