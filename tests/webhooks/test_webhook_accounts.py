"""Two SendFleet accounts, a webhook secret each: an event signed with one account's secret
moves only that account's mailers' rows and suppresses only such a row's own recipient
(issue 23, item 5)."""

from __future__ import annotations

import django
import pytest

from django_sendfleet.models import SendLog, Suppression
from tests.support.webhooks import event, post_event

pytestmark = [
    pytest.mark.django_db,
    pytest.mark.skipif(django.VERSION < (6, 1), reason="a mailer's OPTIONS: Django 6.1's MAILERS"),
]

SHOP_SECRET = "whsec_shop_account_0123456789"
NEWS_SECRET = "whsec_news_account_9876543210"
BACKEND = "django_sendfleet.backends.EmailBackend"


@pytest.fixture(autouse=True)
def two_accounts(settings):
    # Both secrets accepted, as a project with two accounts lists them; each mailer names its own.
    settings.SENDFLEET = {"WEBHOOK_SECRET": [SHOP_SECRET, NEWS_SECRET]}
    settings.MAILERS = {
        "default": {"BACKEND": BACKEND, "OPTIONS": {"webhook_secret": SHOP_SECRET}},
        "news": {"BACKEND": BACKEND, "OPTIONS": {"webhook_secret": NEWS_SECRET}},
    }
    for message_id, recipient, mailer in (
        ("msg-shop", "ann@example.com", "default"),
        ("msg-news", "bob@example.com", "news"),
    ):
        SendLog.objects.create(
            message_id=message_id, recipient=recipient, mailer=mailer, status="queued"
        )


def status_of(message_id):
    return SendLog.objects.get(message_id=message_id).status


def test_an_event_signed_by_one_account_leaves_the_other_accounts_rows_alone(client):
    complaint = event("email.complained", message_id="msg-shop", to="ann@example.com")
    assert post_event(client, complaint, secret=NEWS_SECRET).status_code == 200
    assert status_of("msg-shop") == "queued"
    assert not Suppression.objects.exists()


def test_an_event_about_its_own_accounts_send_is_applied(client):
    complaint = event("email.complained", message_id="msg-news", to="bob@example.com")
    assert post_event(client, complaint, secret=NEWS_SECRET).status_code == 200
    assert status_of("msg-news") == "complained"
    assert list(Suppression.objects.values_list("email", flat=True)) == ["bob@example.com"]


def test_an_event_suppresses_only_its_rows_own_recipient(client):
    complaint = event("email.complained", message_id="msg-news", to="carol@example.com")
    assert post_event(client, complaint, secret=NEWS_SECRET).status_code == 200
    assert not Suppression.objects.filter(email="carol@example.com").exists()


def test_an_event_about_no_send_of_its_account_suppresses_nobody(client):
    bounce = event("email.bounced", message_id="msg-elsewhere", to="dan@example.com")
    bounce["bounce_type"] = "Permanent"
    assert post_event(client, bounce, secret=SHOP_SECRET).status_code == 200
    assert not Suppression.objects.exists()


def test_an_alias_with_a_comma_is_one_mailer_not_two(client, settings):
    settings.MAILERS["news,default"] = {
        "BACKEND": BACKEND,
        "OPTIONS": {"webhook_secret": "whsec_third_account_0011223344"},
    }
    complaint = event("email.complained", message_id="msg-shop", to="ann@example.com")
    assert post_event(client, complaint, secret="whsec_third_account_0011223344").status_code == 200
    assert status_of("msg-shop") == "queued"  # "default" is not the third account's
    assert not Suppression.objects.exists()
