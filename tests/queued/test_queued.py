"""QueuedEmailBackend and its worker, with Django's in-process task backends and the sandbox.

Real worker processes (django-tasks-db on PostgreSQL) are in test_workers.py.
"""

from datetime import UTC, datetime, timedelta
from io import StringIO

import pytest
from django.core.management import call_command
from django.db import transaction
from django.utils import timezone

from django_sendfleet import exceptions as exc
from django_sendfleet import signals, tasks
from django_sendfleet.backends import QueuedEmailBackend
from django_sendfleet.models import MessageContent, SendLog, Suppression
from django_sendfleet.queued import worker
from django_sendfleet.sandbox import QUOTA_API_KEY
from tests.support.messages import message

pytestmark = [pytest.mark.usefixtures("sendfleet_settings"), pytest.mark.django_db]


def enqueue(*messages, commit=True, capture=None):
    """Send through the queued backend; run on_commit callbacks (the task) like a commit."""
    with capture(execute=commit):
        return QueuedEmailBackend().send_messages(list(messages))


@pytest.fixture
def send(django_capture_on_commit_callbacks):
    def run(*messages, commit=True):
        return enqueue(*messages, commit=commit, capture=django_capture_on_commit_callbacks)

    return run


def test_rows_are_written_pending_with_their_content_and_sent_after_commit(sandbox, send):
    msg = message(to=["ann@example.com", "bob@example.com"])
    with transaction.atomic():
        assert QueuedEmailBackend().send_messages([msg]) == 1
        rows = list(SendLog.objects.order_by("pk"))
        assert [r.status for r in rows] == ["pending", "pending"]
        assert [r.recipient for r in rows] == ["ann@example.com", "bob@example.com"]
        assert rows[0].content.text == "Plain body" and rows[0].content_id == rows[1].content_id
        assert sandbox.requests == []  # nothing leaves before the commit
    assert msg.anymail_status.status == {"pending"}


def test_the_task_sends_each_row_once_and_clears_content(sandbox, send):
    send(message(to=["ann@example.com", "bob@example.com"]))
    rows = list(SendLog.objects.order_by("pk"))
    assert [r.status for r in rows] == ["queued", "queued"]
    assert [r.message_id for r in rows] == [a.message_id for a in sandbox.accepted]
    assert all(r.content_id is None and r.claim_token == "" for r in rows)
    assert not MessageContent.objects.exists()
    assert len(sandbox.requests) == 2


def test_content_is_kept_after_sending_only_with_log_content(sandbox, send, sendfleet_settings):
    sendfleet_settings["LOG_CONTENT"] = True
    send(message())
    row = SendLog.objects.get()
    assert row.status == "queued" and row.logged_content.text == "Plain body"
    assert row.logged_content.from_name == "Shop" and row.content_id is not None


def test_a_rolled_back_transaction_sends_nothing(sandbox, django_capture_on_commit_callbacks):
    capture = django_capture_on_commit_callbacks(execute=True)
    with capture as callbacks, pytest.raises(RuntimeError), transaction.atomic():
        QueuedEmailBackend().send_messages([message()])
        raise RuntimeError("the view failed")
    assert callbacks == [] and not SendLog.objects.exists() and sandbox.requests == []


def test_invalid_messages_and_suppressed_recipients_are_refused_at_once(sandbox, send):
    Suppression.objects.create(email="gone@example.com")
    with pytest.raises(exc.SendFleetInvalidMessage):
        send(message(subject="x" * 300))
    assert send(message(to=["ann@example.com", "gone@example.com"])) == 1
    rows = list(SendLog.objects.order_by("pk").values_list("recipient", "status", "error_code"))
    assert rows == [
        ("ann@example.com", "failed", "invalid_message"),  # logged, never queued
        ("ann@example.com", "queued", ""),
        ("gone@example.com", "rejected", "recipient_suppressed"),
    ]
    assert [r.payload["to"] for r in sandbox.requests] == ["ann@example.com"]


def test_retryable_error_is_rescheduled_not_slept_through(sandbox, send):
    sandbox.inject_fault(502)
    send(message())
    row = SendLog.objects.get()
    assert row.status == "pending" and row.attempts == 1 and row.error_code == "queue_error"
    assert row.not_before > timezone.now() and row.content_id is not None
    # Once due, the next run sends it: the retry counts as the second attempt.
    SendLog.objects.update(not_before=timezone.now() - timedelta(seconds=1))
    tasks.send_and_reschedule([row.pk])
    row.refresh_from_db()
    assert row.status == "queued" and row.attempts == 2
    assert [r.status for r in sandbox.requests] == [502, 200]


def test_retries_stop_where_the_error_table_says(sandbox, send):
    sandbox.inject_fault(502, count=10)
    send(message())
    row_id = SendLog.objects.get().pk
    for _ in range(5):
        SendLog.objects.filter(status="pending").update(not_before=None)
        tasks.send_and_reschedule([row_id])
    row = SendLog.objects.get()
    assert row.status == "failed" and row.attempts == 4 and row.content_id is None
    assert len(sandbox.requests) == 4


def test_deferred_task_is_scheduled_where_the_backend_supports_it(
    sandbox, send, settings, sendfleet_settings
):
    dummy = (
        "django.tasks.backends.dummy.DummyBackend"
        if settings.TASKS["default"]["BACKEND"].startswith("django.tasks")
        else "django_tasks.backends.dummy.DummyBackend"
    )
    settings.TASKS = {
        "default": {"BACKEND": settings.TASKS["default"]["BACKEND"]},
        "deferring": {"BACKEND": dummy},
    }
    send(message())  # the immediate backend sends...
    sandbox.inject_fault(502)
    row = SendLog.objects.create(
        recipient="bob@example.com",
        from_email="shop@example.com",
        status="pending",
        payload={"to": "bob@example.com", "from_email": "shop@example.com", "message": "x"},
    )
    sendfleet_settings["TASK_BACKEND"] = "deferring"
    tasks.send_and_reschedule([row.pk])

    backend = tasks.send_queued_emails.using(backend="deferring").get_backend()
    [result] = backend.results
    assert result.args == [[row.pk]] and result.task.run_after is not None


class _ClockThatTicksAfterFirstReading:
    """``timezone.now`` for the worker: ``before`` once, then ``after`` on every reading."""

    def __init__(self, before, after):
        self.readings = [before]
        self.after = after

    def now(self):
        return self.readings.pop() if self.readings else self.after


def test_a_task_run_before_its_row_is_due_schedules_it_again_for_then(sandbox):
    due = timezone.now() + timedelta(minutes=5)
    row = SendLog.objects.create(recipient="a@example.com", status="pending", not_before=due)
    [later] = worker.send_rows([row.pk])
    assert later.row_ids == [row.pk] and later.when == due
    assert sandbox.requests == []


def test_a_row_falling_due_during_the_task_is_still_scheduled_again(sandbox, monkeypatch):
    """The claim finds the row not yet due; by the next clock reading it is: the row must not
    fall between the two and wait for sendfleet_requeue (a flaky RQ retry in CI)."""
    due = timezone.now() + timedelta(seconds=1)
    row = SendLog.objects.create(recipient="a@example.com", status="pending", not_before=due)
    clock = _ClockThatTicksAfterFirstReading(
        due - timedelta(milliseconds=5), due + timedelta(milliseconds=5)
    )
    monkeypatch.setattr(worker, "timezone", clock)
    [later] = worker.send_rows([row.pk])
    assert later.row_ids == [row.pk] and later.when == due


def test_quota_exhaustion_holds_rows_until_the_first_of_next_month(
    sandbox, send, sendfleet_settings
):
    sendfleet_settings["API_KEY"] = QUOTA_API_KEY  # 3 a month
    send(*[message(to=[f"user{n}@example.com"]) for n in range(5)])
    statuses = list(SendLog.objects.order_by("pk").values_list("status", flat=True))
    assert statuses == ["queued", "queued", "queued", "pending", "pending"]
    held = SendLog.objects.filter(status="pending")
    now = datetime.now(UTC)
    first = datetime(now.year + (now.month == 12), now.month % 12 + 1, 1, tzinfo=UTC)
    assert {row.not_before for row in held} == {first}
    assert len(sandbox.requests) == 4  # the batch stopped after the first 429


def test_non_retryable_error_fails_the_row_and_fires_the_signals(sandbox, send):
    forbidden, failed = [], []
    signals.send_forbidden.connect(lambda sender, **kw: forbidden.append(kw), weak=False)
    signals.send_failed.connect(lambda sender, **kw: failed.append(kw), weak=False)
    try:
        send(message(sender="shop@unverified.example"))
    finally:
        signals.send_forbidden.receivers.clear()
        signals.send_failed.receivers.clear()
    row = SendLog.objects.get()
    assert row.status == "failed" and row.error_code == "domain_not_verified"
    assert row.http_status == 403 and row.content_id is None
    assert forbidden[0]["from_domain"] == "unverified.example"
    assert failed[0]["message"].to == ["ann@example.com"]


def test_a_row_is_claimed_by_one_worker_only():
    row = SendLog.objects.create(recipient="a@example.com", status="pending", payload={})
    first = worker.claim(row.pk, lease_seconds=60)
    assert first is not None and first.status == "sending"
    assert worker.claim(row.pk, lease_seconds=60) is None


def test_requeue_marks_expired_leases_unknown_and_never_resends_them(sandbox):
    stale = SendLog.objects.create(
        recipient="a@example.com",
        status="sending",
        claim_token="x",
        lease_expires_at=timezone.now() - timedelta(seconds=1),
        payload={"to": "a@example.com", "from_email": "shop@example.com", "message": "x"},
    )
    out = StringIO()
    call_command("sendfleet_requeue", older_than=0, stdout=out)
    stale.refresh_from_db()
    assert stale.status == "unknown" and stale.error_code == "lease_expired"
    assert stale.payload is None
    assert sandbox.requests == []
    assert "1 rows whose worker stopped" in out.getvalue()


def test_requeue_sends_lost_pending_rows_exactly_once(sandbox, send):
    with transaction.atomic():
        QueuedEmailBackend().send_messages([message(), message(to=["bob@example.com"])])
    # The on_commit task was "lost" (never ran): the rows wait, pending.
    assert SendLog.objects.filter(status="pending").count() == 2
    SendLog.objects.update(updated_at=timezone.now() - timedelta(minutes=5))
    call_command("sendfleet_requeue", stdout=StringIO())
    call_command("sendfleet_requeue", older_than=0, stdout=StringIO())  # again: harmless
    assert sorted(SendLog.objects.values_list("status", flat=True)) == ["queued", "queued"]
    assert len(sandbox.requests) == 2


def test_requeue_leaves_fresh_and_not_yet_due_rows_alone(sandbox):
    SendLog.objects.create(recipient="a@example.com", status="pending", payload={})
    SendLog.objects.create(
        recipient="b@example.com",
        status="pending",
        payload={},
        not_before=timezone.now() + timedelta(hours=1),
    )
    SendLog.objects.update(updated_at=timezone.now() - timedelta(minutes=5))
    SendLog.objects.filter(recipient="a@example.com").update(updated_at=timezone.now())
    call_command("sendfleet_requeue", stdout=StringIO())
    assert sandbox.requests == []
