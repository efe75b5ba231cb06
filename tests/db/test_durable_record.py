"""The record of a send survives the caller's rollback (PostgreSQL; SQLite as documented)."""

from __future__ import annotations

import pytest
from django.core.mail import send_mail
from django.db import connection, transaction
from django.test import Client
from django.urls import path

from django_sendfleet.models import SendLog, Suppression
from django_sendfleet.sandbox import SUPPRESSED_EMAIL

pytestmark = pytest.mark.django_db(transaction=True)
on_postgresql = pytest.mark.skipif(
    connection.vendor != "postgresql", reason="SQLite records inside the caller's transaction"
)


class CheckoutFailed(Exception):
    pass


def checkout(request):
    """A view that sends the receipt, then fails: ATOMIC_REQUESTS rolls its transaction back."""
    send_mail("Your receipt", "Thanks.", "shop@example.com", ["ann@example.com"])
    raise CheckoutFailed


urlpatterns = [path("checkout/", checkout)]


@pytest.fixture
def atomic_requests(settings):
    settings.ROOT_URLCONF = __name__
    connection.settings_dict["ATOMIC_REQUESTS"] = True
    yield
    connection.settings_dict["ATOMIC_REQUESTS"] = False


@on_postgresql
def test_a_view_that_sends_then_fails_under_atomic_requests_keeps_the_row(
    sandbox, sendfleet_settings, atomic_requests
):
    with pytest.raises(CheckoutFailed):
        Client().post("/checkout/")
    row = SendLog.objects.get(subject="Your receipt")  # (the error mail to ADMINS is logged too)
    receipt = next(r for r in sandbox.accepted if r.payload["subject"] == "Your receipt")
    assert row.status == "queued" and row.message_id == receipt.message_id


@on_postgresql
def test_a_422_in_a_rolled_back_block_still_suppresses_the_address(sandbox, sendfleet_settings):
    with pytest.raises(CheckoutFailed), transaction.atomic():
        send_mail("Hi", "Body", "shop@example.com", [SUPPRESSED_EMAIL], fail_silently=True)
        raise CheckoutFailed
    assert Suppression.objects.filter(email=SUPPRESSED_EMAIL).exists()
    assert SendLog.objects.get().error_code == "recipient_suppressed"


@pytest.mark.skipif(connection.vendor != "sqlite", reason="the SQLite behaviour, as documented")
def test_on_sqlite_the_row_is_in_the_callers_transaction(sandbox, sendfleet_settings):
    with pytest.raises(CheckoutFailed), transaction.atomic():
        send_mail("Hi", "Body", "shop@example.com", ["ann@example.com"])
        raise CheckoutFailed
    assert len(sandbox.accepted) == 1 and SendLog.objects.count() == 0


def test_outside_a_transaction_the_row_is_written_as_before(sandbox, sendfleet_settings):
    send_mail("Hi", "Body", "shop@example.com", ["ann@example.com"])
    assert SendLog.objects.get().message_id == sandbox.accepted[0].message_id
