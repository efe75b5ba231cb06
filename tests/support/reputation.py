"""A Shared SES account whose bounces the sandbox reports through the webhook: at danger on demand
(seeded rows), and ``mail`` to move its level with real sends and events.
Its fixtures (shared_account, danger) are registered by tests/conftest.py.
"""

from __future__ import annotations

import django
import pytest
from django.core.mail import EmailMessage
from django.urls import reverse

from django_sendfleet.models import SendLog
from django_sendfleet.reputation import state as reputation_state

SECRET = "reputation-webhook-secret"


SENDER = "News <news@example.com>"


SYNC = "django_sendfleet.backends.EmailBackend"


QUEUED = "django_sendfleet.backends.QueuedEmailBackend"


@pytest.fixture
def shared_account(sandbox, sendfleet_settings, settings):
    """Shared SES with webhooks; a bulk queued mailer, a transactional queued one and the
    default (synchronous, transactional) one. Thresholds: 10 % warning, 20 % danger."""
    sendfleet_settings["WEBHOOK_SECRET"] = SECRET
    sendfleet_settings["REPUTATION"] = {"MIN_SENDS": 10, "BOUNCE_RATE": (0.1, 0.2)}
    sandbox.configure_webhook(reverse("sendfleet-webhook"), SECRET)
    if django.VERSION >= (6, 1):
        settings.MAILERS = {
            "default": {"BACKEND": SYNC},
            "newsletter": {"BACKEND": QUEUED, "OPTIONS": {"bulk": True}},
            "receipts": {"BACKEND": QUEUED},
        }
    return sandbox


def mail(sandbox, addresses, using=None, subject="Hello"):
    for address in addresses:
        EmailMessage(subject, "Body", SENDER, [address]).send(**({"using": using} if using else {}))
    sandbox.deliver_webhooks()


def seed_rows(good=0, bounces=0, complaints=0, sender=SENDER):
    """Logged sends of the shared account on the default mailer, each already given its
    outcome: delivered, hard bounced or complained, as the webhook events leave them (the
    rollups follow the rows)."""
    statuses = ["delivered"] * good + ["bounced"] * bounces + ["complained"] * complaints
    SendLog.objects.bulk_create(
        SendLog(
            message_id=f"seeded-{n}",
            recipient=f"{status}+{n}@example.com",
            from_email=sender,
            status=status,
            mode="shared",
            mailer="default",
        )
        for n, status in enumerate(statuses)
    )


@pytest.fixture
def danger(shared_account):
    """The account at danger: 3 hard bounces in 10 sends (30 %), seeded as the rows the
    sandbox's events leave (tests that need the events themselves send with ``mail``)."""
    seed_rows(good=7, bounces=3)
    account = reputation_state.check_now().snapshot.accounts["shared"]
    assert account.level == "danger"
    return shared_account
