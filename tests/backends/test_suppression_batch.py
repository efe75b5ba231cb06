"""The local suppression list is read once per batch, and learns from the batch itself."""

import pytest
from django.core.mail import EmailMessage, get_connection
from django.db import connection
from django.test.utils import CaptureQueriesContext

from django_sendfleet.models import SendLog, Suppression
from django_sendfleet.sandbox import SUPPRESSED_EMAIL

pytestmark = [pytest.mark.usefixtures("sendfleet_settings"), pytest.mark.django_db]


def suppression_reads(queries: CaptureQueriesContext) -> list[str]:
    return [
        q["sql"]
        for q in queries.captured_queries
        if q["sql"].startswith("SELECT") and "django_sendfleet_suppression" in q["sql"]
    ]


def test_a_batch_of_messages_reads_the_suppression_list_once(sandbox):
    Suppression.objects.create(email="gone@example.com")
    messages = [
        EmailMessage(f"Order {n}", "Body", "shop@example.com", [f"customer{n}@example.com"])
        for n in range(20)
    ]
    messages.append(EmailMessage("Order", "Body", "shop@example.com", ["Gone <GONE@example.com>"]))
    with CaptureQueriesContext(connection) as queries:
        get_connection(fail_silently=True).send_messages(messages)
    assert len(suppression_reads(queries)) == 1
    assert len(sandbox.accepted) == 20  # the suppressed one was stopped locally
    assert SendLog.objects.get(recipient="GONE@example.com").status == "rejected"


def test_a_422_early_in_a_batch_stops_later_sends_to_that_address(sandbox):
    """The first message learns the address is suppressed; the third is not even tried."""
    messages = [
        EmailMessage("One", "Body", "shop@example.com", [SUPPRESSED_EMAIL]),
        EmailMessage("Two", "Body", "shop@example.com", ["ann@example.com"]),
        EmailMessage("Three", "Body", "shop@example.com", [SUPPRESSED_EMAIL.upper()]),
    ]
    get_connection(fail_silently=True).send_messages(messages)
    to = [request.payload["to"] for request in sandbox.requests]
    assert to == [SUPPRESSED_EMAIL, "ann@example.com"]
    statuses = dict(SendLog.objects.values_list("subject", "error_code"))
    assert statuses == {"One": "recipient_suppressed", "Two": "", "Three": "recipient_suppressed"}
    assert SendLog.objects.get(subject="Three").http_status is None  # no request was made
