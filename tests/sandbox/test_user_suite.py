"""The user's test suite of docs/testing.md, run against testproject's receipt view: a view
that sends, a failure path and a webhook, with the pytest fixtures and with ``TestCase``."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from django.core import mail
from django.core.mail import send_mail
from django.test import TestCase
from django.urls import reverse

from django_sendfleet.exceptions import (
    SendFleetDomainNotVerified,
    SendFleetQueueError,
    SendFleetUsageLimitExceeded,
)
from django_sendfleet.models import SendLog, Suppression
from django_sendfleet.sandbox import QUOTA_API_KEY
from django_sendfleet.sandbox.testing import use_sendfleet_sandbox

WEBHOOK_SECRET = "test-webhook-secret"


@pytest.mark.django_db
def test_the_view_sends_a_receipt(client, sendfleet_backend, sendfleet_sandbox):
    answer = client.post(reverse("send-receipt"), {"email": "ann@example.com"})

    assert answer.json() == {"sent": 1}
    [payload] = sendfleet_sandbox.payloads_to("ann@example.com")
    assert payload["subject"] == "Your receipt"
    assert payload["from_email"] == "shop@example.com"
    assert SendLog.objects.get().status == "queued"


@pytest.mark.django_db
def test_an_outage_is_retried_then_reported(client, sendfleet_backend, sendfleet_sandbox):
    sendfleet_sandbox.inject_fault("queue_error", count=4)  # every attempt answers 502

    with pytest.raises(SendFleetQueueError):  # the view doesn't catch it: a 500 for the shopper
        client.post(reverse("send-receipt"), {"email": "ann@example.com"})

    assert sendfleet_sandbox.retry_waits == [1, 2, 4]  # 7 s of backoff: recorded, not slept
    row = SendLog.objects.get(recipient="ann@example.com")  # (Django mailed ADMINS the 500 too)
    assert (row.status, row.error_code, row.attempts) == ("failed", "queue_error", 4)


@pytest.mark.django_db
def test_a_bounce_suppresses_the_address(client, sendfleet_backend, sendfleet_sandbox):
    sendfleet_backend["WEBHOOK_SECRET"] = WEBHOOK_SECRET
    sendfleet_sandbox.configure_webhook(reverse("sendfleet-webhook"), WEBHOOK_SECRET)

    client.post(reverse("send-receipt"), {"email": "bounce@example.com"})
    deliveries = sendfleet_sandbox.deliver_webhooks()  # posted to your webhook view now

    assert [(d.event_type, d.status) for d in deliveries] == [
        ("email.sent", 200),
        ("email.bounced", 200),
    ]
    assert SendLog.objects.get().status == "bounced"
    assert Suppression.objects.filter(email="bounce@example.com", reason="hard_bounce").exists()


@pytest.mark.django_db
def test_the_quota_comes_back_next_month(sendfleet_backend, sendfleet_sandbox):
    sendfleet_backend["API_KEY"] = QUOTA_API_KEY  # 3 sends a month
    for n in range(3):
        send_mail(f"Hi {n}", "Body", "shop@example.com", ["ann@example.com"])
    with pytest.raises(SendFleetUsageLimitExceeded):
        send_mail("One too many", "Body", "shop@example.com", ["ann@example.com"])

    now = datetime.now(UTC)
    first = datetime(now.year + now.month // 12, now.month % 12 + 1, 1, tzinfo=UTC)
    sendfleet_sandbox.travel_to(first)  # 00:00 UTC on the 1st: the quota resets
    send_mail("Next month", "Body", "shop@example.com", ["ann@example.com"])
    assert len(sendfleet_sandbox.accepted) == 4


@use_sendfleet_sandbox(sendfleet={"WEBHOOK_SECRET": WEBHOOK_SECRET})
class ReceiptTests(TestCase):
    def test_the_view_sends_a_receipt(self):
        self.client.post(reverse("send-receipt"), {"email": "ann@example.com"})
        [payload] = self.sandbox.payloads_to("ann@example.com")
        self.assertEqual(payload["subject"], "Your receipt")
        self.assertEqual(mail.outbox, [])  # the locmem backend was not used

    def test_an_unverified_domain_is_reported(self):
        self.sandbox.inject_fault("domain_not_verified")
        with self.assertRaises(SendFleetDomainNotVerified):
            self.client.post(reverse("send-receipt"), {"email": "ann@example.com"})
        row = SendLog.objects.get(recipient="ann@example.com")
        self.assertEqual(row.error_code, "domain_not_verified")

    def test_a_complaint_suppresses_the_address(self):
        self.sandbox.configure_webhook(reverse("sendfleet-webhook"), WEBHOOK_SECRET)
        self.client.post(reverse("send-receipt"), {"email": "complaint@example.com"})
        self.sandbox.deliver_webhooks()
        self.assertEqual(SendLog.objects.get().status, "complained")
        self.assertTrue(Suppression.objects.filter(email="complaint@example.com").exists())
