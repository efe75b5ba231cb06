"""A ported django-anymail app (tests/support/anymail_shop.py: send_at, tags, metadata, merge
data and a tracking receiver reading event.tags and event.metadata) runs unchanged against the
sandbox, through the queued backend and the synchronous one (issue 22)."""

import datetime

import django
import pytest
from django.urls import reverse
from django.utils import timezone

from django_sendfleet import tasks
from django_sendfleet.models import SendLog
from tests.support import anymail_shop

pytestmark = [pytest.mark.usefixtures("sendfleet_settings"), pytest.mark.django_db]
pytest.importorskip("anymail")

SECRET = "shop-webhook-secret"
ORDERS = [
    {"id": 7, "email": "ann@example.com", "name": "Ann", "number": "A-1001"},
    {"id": 8, "email": "bounce@example.com", "name": "Bob", "number": "A-1002"},
]


def use_default_backend(settings, path):
    if django.VERSION >= (6, 1):
        settings.MAILERS = {"default": {"BACKEND": path}}
    else:
        settings.EMAIL_BACKEND = path


@pytest.fixture
def shop(sandbox, sendfleet_settings):
    sendfleet_settings["WEBHOOK_SECRET"] = SECRET
    sandbox.configure_webhook(reverse("sendfleet-webhook"), SECRET)
    anymail_shop.DELIVERY_NOTES.clear()
    anymail_shop.connect()  # as the app's AppConfig.ready() does
    yield anymail_shop
    anymail_shop.disconnect()


EXPECTED_NOTES = [
    ("sent", "ann@example.com", ["shipping"], 7, "december"),
    ("delivered", "ann@example.com", ["shipping"], 7, "december"),
    ("sent", "bounce@example.com", ["shipping"], 8, "december"),
    ("bounced", "bounce@example.com", ["shipping"], 8, "december"),
]


EXPECTED_REQUESTS = {
    "ann@example.com": (
        "Example Shop: order A-1001 has shipped",
        "Hi Ann, your order A-1001 is on its way.",
        "<p>Hi Ann, your order <b>A-1001</b> is on its way.</p>",
    ),
    "bounce@example.com": (
        "Example Shop: order A-1002 has shipped",
        "Hi Bob, your order A-1002 is on its way.",
        "<p>Hi Bob, your order <b>A-1002</b> is on its way.</p>",
    ),
}


def sent(sandbox):
    return {
        r.payload["to"]: (r.payload["subject"], r.payload["message"], r.payload["html"])
        for r in sandbox.requests
    }


def test_the_ported_app_schedules_renders_and_tracks_through_the_queued_backend(
    shop, sandbox, settings, django_capture_on_commit_callbacks
):
    use_default_backend(settings, "django_sendfleet.backends.QueuedEmailBackend")
    send_at = timezone.now() + datetime.timedelta(hours=1)
    with django_capture_on_commit_callbacks(execute=True):
        status = shop.send_shipping_notices(ORDERS, send_at=send_at)
    assert status.status == {"pending"}
    assert sandbox.requests == []  # kept until send_at
    rows = SendLog.objects.order_by("pk")
    assert [(r.not_before, r.tags, r.metadata) for r in rows] == [
        (send_at, ["shipping"], {"batch": "december", "order_id": 7}),
        (send_at, ["shipping"], {"batch": "december", "order_id": 8}),
    ]
    # The time comes: the worker sends them (the task the backend deferred until then).
    rows.update(not_before=timezone.now() - datetime.timedelta(seconds=1))
    tasks.send_and_reschedule(list(rows.values_list("pk", flat=True)))
    assert sent(sandbox) == EXPECTED_REQUESTS
    sandbox.deliver_webhooks()
    notes = shop.DELIVERY_NOTES
    assert notes == EXPECTED_NOTES


def test_the_ported_app_renders_and_tracks_through_the_synchronous_backend(shop, sandbox):
    past = timezone.now() - datetime.timedelta(minutes=1)  # anymail: a past send_at sends now
    status = shop.send_shipping_notices(ORDERS, send_at=past)
    assert status.status == {"queued"}
    assert sent(sandbox) == EXPECTED_REQUESTS
    sandbox.deliver_webhooks()
    notes = shop.DELIVERY_NOTES
    assert notes == EXPECTED_NOTES
