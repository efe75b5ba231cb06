"""Send priorities (docs/queued.md, "Priorities"): every mailer has one (BULK mailers low, all
others high), a message may say its own, rows carry it, and the worker sends the most urgent
due row of the outbox first, whichever task it runs. Real worker processes on each engine are
in test_workers.py (db_worker) and test_engines.py (RQ, Celery)."""

from __future__ import annotations

from datetime import timedelta

import django
import pytest
from django.core.mail import EmailMessage
from django.utils import timezone

from django_sendfleet import signals, tasks
from django_sendfleet.backends import EmailBackend, QueuedEmailBackend
from django_sendfleet.exceptions import SendFleetConfigurationError, SendFleetInvalidMessage
from django_sendfleet.message.priority import RANKS
from django_sendfleet.models import SendLog
from django_sendfleet.queued import worker
from tests.support.messages import QUEUED_BACKEND, message

pytestmark = [pytest.mark.usefixtures("sendfleet_settings"), pytest.mark.django_db]

HIGH, LOW = RANKS["high"], RANKS["low"]
needs_mailers = pytest.mark.skipif(django.VERSION < (6, 1), reason="MAILERS is Django 6.1's")


@pytest.fixture
def queue(django_capture_on_commit_callbacks):
    """Queue messages without running their task (as when every worker is busy); return the
    ids of the rows written."""

    def run(*messages, backend=None):
        before = set(SendLog.objects.values_list("pk", flat=True))
        with django_capture_on_commit_callbacks(execute=False):
            (backend or QueuedEmailBackend()).send_messages(list(messages))
        return sorted(set(SendLog.objects.values_list("pk", flat=True)) - before)

    return run


def ranks(ids):
    return [SendLog.objects.get(pk=pk).priority for pk in ids]


# -- Every mailer has a priority; a message may say its own ------------------------------------


def test_a_mailer_s_sends_are_high_and_a_bulk_connection_s_low(queue, sendfleet_settings):
    assert ranks(queue(message(), backend=QueuedEmailBackend())) == [HIGH]
    bulk = queue(message(), backend=QueuedEmailBackend(bulk=True))
    assert ranks(bulk) == [LOW] and SendLog.objects.get(pk=bulk[0]).bulk
    assert ranks(queue(message(), backend=QueuedEmailBackend(priority="low"))) == [LOW]
    assert ranks(queue(message(), backend=QueuedEmailBackend(bulk=True, priority="high"))) == [HIGH]
    sendfleet_settings["BULK"] = True
    assert ranks(queue(message(), backend=QueuedEmailBackend())) == [LOW]


@needs_mailers
def test_a_bulk_mailer_in_mailers_queues_low(queue, settings):
    settings.MAILERS = settings.MAILERS | {
        "newsletter": {"BACKEND": QUEUED_BACKEND, "OPTIONS": {"bulk": True}},
        "receipts": {"BACKEND": QUEUED_BACKEND},
    }
    from django.core.mail import mailers

    assert ranks(queue(message(), backend=mailers["newsletter"])) == [LOW]
    assert ranks(queue(message(), backend=mailers["receipts"])) == [HIGH]


def test_a_message_s_own_priority_wins_over_its_mailer_s(queue):
    reset = message(to=["ann@example.com", "bob@example.com"])
    reset.priority = "high"
    news = message()
    news.priority = "low"
    assert ranks(queue(reset, backend=QueuedEmailBackend(bulk=True))) == [HIGH, HIGH]
    assert ranks(queue(news)) == [LOW]


@pytest.mark.parametrize("backend_class", [EmailBackend, QueuedEmailBackend])
def test_an_unknown_message_priority_refuses_that_message_only(
    backend_class, sandbox, django_capture_on_commit_callbacks
):
    odd = message(to=["odd@example.com"])
    odd.priority = "urgent"
    with pytest.raises(SendFleetInvalidMessage, match="'urgent'") as raised:
        backend_class().send_messages([odd])
    assert isinstance(raised.value, ValueError)
    with django_capture_on_commit_callbacks(execute=True):
        sent = backend_class(fail_silently=True).send_messages([odd, message()])
    assert sent == 1
    assert sandbox.recipients == ["ann@example.com"]
    refused = SendLog.objects.filter(recipient="odd@example.com")
    assert {row.error_code for row in refused} == {"invalid_message"}


@pytest.mark.parametrize("value", ["urgent", 1, "HIGH"])
def test_an_unknown_priority_option_is_a_configuration_error(value, sendfleet_settings):
    sendfleet_settings["PRIORITY"] = value
    with pytest.raises(SendFleetConfigurationError, match=r"PRIORITY.*'high'.*'low'"):
        EmailBackend(fail_silently=True).send_messages([message()])


# -- The worker sends the most urgent due row first ---------------------------------------------


def test_a_transactional_row_queued_during_a_bulk_task_goes_out_before_its_next_row(sandbox, queue):
    newsletter = queue(
        *[message(to=[f"reader{n}@example.com"]) for n in range(5)],
        backend=QueuedEmailBackend(bulk=True),
    )
    reset = message(to=["reset@example.com"], subject="Your password")

    queued = []

    def queue_the_reset_after_the_second_send(sender, **kwargs):
        if len(sandbox.requests) == 2 and not queued:
            queued.append(reset)
            queue(reset)

    signals.post_send.connect(queue_the_reset_after_the_second_send, weak=False)
    try:
        tasks.send_and_reschedule(newsletter)  # the newsletter's task; the reset's never ran
    finally:
        signals.post_send.disconnect(queue_the_reset_after_the_second_send)
    assert sandbox.recipients == [
        "reader0@example.com",
        "reader1@example.com",
        "reset@example.com",
        "reader2@example.com",
        "reader3@example.com",
        "reader4@example.com",
    ]
    [reset_row] = SendLog.objects.filter(recipient="reset@example.com")
    assert reset_row.status == "queued"
    tasks.send_and_reschedule([reset_row.pk])  # the reset's own task, run late: nothing to do
    assert len(sandbox.requests) == 6


def test_rows_are_taken_by_priority_then_oldest_first_and_only_when_due(sandbox, queue):
    bulk = queue(
        message(to=["news0@example.com"]),
        message(to=["news1@example.com"]),
        backend=QueuedEmailBackend(bulk=True),
    )
    *_, later = queue(
        message(to=["first@example.com"]),
        message(to=["second@example.com"]),
        message(to=["later@example.com"]),
    )
    SendLog.objects.filter(pk=later).update(not_before=timezone.now() + timedelta(hours=1))
    tasks.send_and_reschedule(bulk)
    assert sandbox.recipients == [
        "first@example.com",
        "second@example.com",
        "news0@example.com",
        "news1@example.com",
    ]
    assert SendLog.objects.get(pk=later).status == "pending"


def test_a_bulk_task_takes_at_most_as_many_other_rows_as_its_own(sandbox, queue):
    """Bulk is never starved by its own task: it sends its rows after at most as many urgent
    ones, and the task ends (RQ stops a job that runs too long, mid-send)."""
    bulk = queue(
        message(to=["news0@example.com"]),
        message(to=["news1@example.com"]),
        backend=QueuedEmailBackend(bulk=True),
    )
    urgent = queue(*[message(to=[f"reset{n}@example.com"]) for n in range(5)])
    tasks.send_and_reschedule(bulk)
    assert sandbox.recipients == [
        "reset0@example.com",
        "reset1@example.com",
        "news0@example.com",
        "news1@example.com",
    ]
    tasks.send_and_reschedule(urgent)  # the others' own task sends them, each once
    assert sorted(sandbox.recipients) == sorted(
        [f"news{n}@example.com" for n in range(2)] + [f"reset{n}@example.com" for n in range(5)]
    )


def test_a_transactional_task_takes_no_other_row(sandbox, queue):
    bulk = queue(message(to=["news@example.com"]), backend=QueuedEmailBackend(bulk=True))
    other = queue(message(to=["other@example.com"]))
    mine = queue(message(to=["mine@example.com"]))
    tasks.send_and_reschedule(mine)
    assert sandbox.recipients == ["mine@example.com"]
    assert [SendLog.objects.get(pk=pk).status for pk in bulk + other] == ["pending", "pending"]


def test_claiming_a_more_urgent_row_skips_rows_claimed_or_not_due(queue):
    held, claimed, free = queue(*[message(to=[f"r{n}@example.com"]) for n in range(3)])
    SendLog.objects.filter(pk=held).update(not_before=timezone.now() + timedelta(minutes=1))
    assert worker.claim(claimed, lease_seconds=60) is not None
    row = worker.claim_more_urgent(LOW)
    assert row is not None and row.pk == free and row.status == "sending"
    assert worker.claim_more_urgent(LOW) is None
    assert worker.claim_more_urgent(HIGH) is None  # nothing is more urgent than high


# -- A queued connection opened with bulk=True is held like a BULK mailer (issue 19 item 4) ------


@pytest.mark.usefixtures("danger")
def test_a_queued_connection_opened_with_bulk_is_held_at_danger(
    sandbox, django_capture_on_commit_callbacks
):
    """On Django 5.2, get_connection(QueuedEmailBackend, bulk=True) was accepted and ignored:
    the newsletter went out at danger. The option rides on the row; the worker holds it."""
    from django.core.mail import get_connection

    connection = (
        get_connection(QUEUED_BACKEND, bulk=True)
        if django.VERSION < (6, 1)  # with MAILERS, get_connection(backend) is refused
        else QueuedEmailBackend(bulk=True)
    )
    before = len(sandbox.requests)
    reset = EmailMessage("Your password", "Body", "shop@example.com", ["reset@example.com"])
    with django_capture_on_commit_callbacks(execute=True):
        connection.send_messages(
            [EmailMessage("Our news", "Body", "news@example.com", ["reader@example.com"])]
        )
        QueuedEmailBackend().send_messages([reset])  # transactional: not held
    row = SendLog.objects.get(recipient="reader@example.com")
    assert (row.status, row.error_code, row.bulk) == ("pending", "reputation_hold", True)
    assert row.not_before > timezone.now()
    assert [r.payload["to"] for r in sandbox.requests[before:]] == ["reset@example.com"]
