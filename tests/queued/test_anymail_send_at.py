"""django-anymail's ``send_at``, done locally (issue 22): ``QueuedEmailBackend`` keeps the rows
until then (the outbox's due time, ``not_before``); ``EmailBackend`` refuses a future one,
naming the queued backend; a past one is sent now. The admin lists scheduled rows and cancels
them (``cancelled``: never sent, logged)."""

import datetime
import logging
import zoneinfo

import pytest
from django.contrib.admin.models import LogEntry
from django.core.mail import EmailMultiAlternatives
from django.core.management import call_command
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from django_sendfleet import tasks
from django_sendfleet.backends import EmailBackend, QueuedEmailBackend
from django_sendfleet.exceptions import SendFleetInvalidMessage, SendFleetUnsupportedFeature
from django_sendfleet.models import MessageContent, SendLog
from tests.support.queries import assert_uses_an_index

pytestmark = [pytest.mark.usefixtures("sendfleet_settings"), pytest.mark.django_db]

SENDER = "Shop <shop@example.com>"
CHANGELIST = "admin:django_sendfleet_sendlog_changelist"


def message(to=("ann@example.com",), **attributes):
    msg = EmailMultiAlternatives("Reminder", "Your appointment", SENDER, list(to))
    for name, value in attributes.items():
        setattr(msg, name, value)
    return msg


@pytest.fixture
def queue(django_capture_on_commit_callbacks):
    """Queue messages; the commit's callbacks (the tasks) run."""

    def run(*messages):
        with django_capture_on_commit_callbacks(execute=True):
            return QueuedEmailBackend().send_messages(list(messages))

    return run


def time_comes(rows=None):
    """As if each row's send_at had come: due now (the worker reads the database's clock)."""
    (rows or SendLog.objects).filter(status="pending").update(
        not_before=timezone.now() - datetime.timedelta(seconds=1)
    )


def test_the_queued_backend_keeps_the_rows_until_send_at(sandbox, queue):
    send_at = timezone.now() + datetime.timedelta(hours=2)
    msg = message(to=["ann@example.com", "bob@example.com"], send_at=send_at)
    assert queue(msg) == 1
    assert msg.anymail_status.status == {"pending"}
    rows = list(SendLog.objects.order_by("pk"))
    assert [(r.status, r.not_before) for r in rows] == [("pending", send_at)] * 2
    # A task that runs now (a worker restarted, sendfleet_requeue) sends nothing yet...
    tasks.send_and_reschedule([r.pk for r in rows])
    call_command("sendfleet_requeue", stdout=None)
    assert sandbox.requests == []
    assert set(SendLog.objects.values_list("status", flat=True)) == {"pending"}
    # ...and once the time has come, each row is sent once.
    time_comes()
    tasks.send_and_reschedule([r.pk for r in rows])
    assert sorted(r.payload["to"] for r in sandbox.requests) == [
        "ann@example.com",
        "bob@example.com",
    ]
    assert set(SendLog.objects.values_list("status", flat=True)) == {"queued"}


def test_a_task_backend_that_can_defer_gets_a_task_at_send_at(
    sandbox, settings, sendfleet_settings, queue
):
    try:
        from django.tasks import task_backends
    except ImportError:  # Django 5.2: the backport
        from django_tasks import task_backends
    dummy = task_backends["default"].__module__.rsplit(".", 1)[0] + ".dummy.DummyBackend"
    settings.TASKS = {**settings.TASKS, "later": {"BACKEND": dummy}}
    sendfleet_settings["TASK_BACKEND"] = "later"
    send_at = timezone.now() + datetime.timedelta(days=1)
    queue(message(send_at=send_at), message(to=["bob@example.com"]))
    rows = dict(SendLog.objects.values_list("recipient", "pk"))
    enqueued = sorted(
        (r.task.run_after is not None, r.task.run_after, r.args)
        for r in task_backends["later"].results
    )
    assert enqueued == [
        (False, None, [[rows["bob@example.com"]]]),  # now
        (True, send_at, [[rows["ann@example.com"]]]),  # at its send_at: db_worker, RQ, Celery
    ]
    assert sandbox.requests == []  # the dummy backend runs nothing


def test_a_date_is_its_midnight_and_a_naive_time_is_in_the_current_timezone(
    sandbox, queue, settings
):
    settings.TIME_ZONE = "Asia/Tokyo"
    tokyo = zoneinfo.ZoneInfo("Asia/Tokyo")
    tomorrow = (timezone.now().astimezone(tokyo) + datetime.timedelta(days=2)).date()
    later = (timezone.now().astimezone(tokyo) + datetime.timedelta(days=3)).replace(tzinfo=None)
    queue(
        message(to=["ann@example.com"], send_at=tomorrow),
        message(to=["bob@example.com"], send_at=later),
    )
    due = dict(SendLog.objects.values_list("recipient", "not_before"))
    assert due["ann@example.com"] == datetime.datetime.combine(
        tomorrow, datetime.time.min, tzinfo=tokyo
    )
    assert due["bob@example.com"] == later.replace(tzinfo=tokyo)
    assert sandbox.requests == []


@pytest.mark.parametrize("backend_class", [EmailBackend, QueuedEmailBackend])
def test_a_past_send_at_is_sent_now(sandbox, backend_class, django_capture_on_commit_callbacks):
    past = timezone.now() - datetime.timedelta(minutes=5)
    with django_capture_on_commit_callbacks(execute=True):
        assert (
            backend_class().send_messages([message(send_at=past), message(send_at=past.date())])
            == 2
        )
    assert len(sandbox.requests) == 2
    assert set(SendLog.objects.values_list("status", flat=True)) == {"queued"}


@pytest.mark.parametrize("fail_silently", [False, True])
def test_email_backend_refuses_a_future_send_at_naming_the_queued_backend(
    sandbox, fail_silently, caplog
):
    msg = message(send_at=timezone.now() + datetime.timedelta(minutes=10))
    with caplog.at_level(logging.WARNING, logger="django_sendfleet"):
        if fail_silently:
            assert EmailBackend(fail_silently=True).send_messages([msg]) == 0
            said = caplog.records[-1].getMessage()
        else:
            with pytest.raises(SendFleetUnsupportedFeature) as caught:
                EmailBackend().send_messages([msg])
            said = str(caught.value)
    assert "send_at" in said
    assert "send it through django_sendfleet.backends.QueuedEmailBackend" in said
    assert sandbox.requests == []
    assert msg.anymail_status.status == {"invalid"}


@pytest.mark.parametrize("backend_class", [EmailBackend, QueuedEmailBackend])
def test_a_send_at_that_is_no_time_is_refused(sandbox, backend_class):
    with pytest.raises(SendFleetInvalidMessage, match="send_at: a datetime or a date, not str"):
        backend_class().send_messages([message(send_at="tomorrow")])
    assert sandbox.requests == []


# The admin.


@pytest.fixture
def scheduled_rows(queue):
    later = timezone.now() + datetime.timedelta(hours=3)
    queue(
        message(to=["ann@example.com", "bob@example.com"], subject="x", send_at=later),
        message(to=["carol@example.com"]),  # sent now
    )
    return later


def test_the_admin_lists_scheduled_rows_with_their_time(admin_client, sandbox, scheduled_rows):
    response = admin_client.get(reverse(CHANGELIST), {"scheduled": "waiting"})
    listed = list(response.context["cl"].result_list)
    assert sorted(row.recipient for row in listed) == ["ann@example.com", "bob@example.com"]
    assert "Scheduled for" in response.text
    assert listed[0].not_before == scheduled_rows


def test_the_scheduled_filter_uses_an_index(admin_client, sandbox, scheduled_rows):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as queries:
        admin_client.get(reverse(CHANGELIST), {"scheduled": "waiting"})
    sqls = [q["sql"] for q in queries if 'FROM "django_sendfleet_sendlog"' in q["sql"]]
    assert sqls
    for sql in sqls:
        assert_uses_an_index(sql)


def test_cancelling_in_the_admin_marks_them_cancelled_never_sent_and_logged(
    admin_client, sandbox, scheduled_rows, caplog
):
    rows = list(SendLog.objects.filter(status="pending").order_by("pk"))
    sent_now = SendLog.objects.get(recipient="carol@example.com")
    with caplog.at_level(logging.INFO, logger="django_sendfleet"):
        response = admin_client.post(
            reverse(CHANGELIST),
            {"action": "cancel_scheduled", "_selected_action": [r.pk for r in [*rows, sent_now]]},
            follow=True,
        )
    texts = [str(m) for m in response.context["messages"]]
    assert any(
        "Cancelled 2 scheduled send(s)" in t and "1 selected were not waiting" in t for t in texts
    )
    assert dict(SendLog.objects.values_list("recipient", "status")) == {
        "ann@example.com": "cancelled",
        "bob@example.com": "cancelled",
        "carol@example.com": "queued",
    }
    assert not MessageContent.objects.exists()  # their content went with them
    assert sum("cancelled by admin" in r.getMessage() for r in caplog.records) == 2
    assert LogEntry.objects.filter(object_id__in=[str(r.pk) for r in rows]).count() == 2
    # Their time comes: nothing is sent.
    time_comes()
    tasks.send_and_reschedule([r.pk for r in rows])
    assert [r.payload["to"] for r in sandbox.requests] == ["carol@example.com"]


def test_a_row_being_sent_is_not_cancelled(sandbox, scheduled_rows):
    from django_sendfleet.queued import scheduled, worker

    row = SendLog.objects.filter(status="pending").first()
    time_comes(SendLog.objects.filter(pk=row.pk))
    assert worker.claim(row.pk, 60) is not None  # a worker took it
    assert scheduled.cancel([row.pk]) == []
    assert SendLog.objects.get(pk=row.pk).status == "sending"


def test_cancelling_takes_the_change_permission(django_user_model, sandbox, scheduled_rows):
    from django.contrib.auth.models import Permission

    user = django_user_model.objects.create_user("viewer", password="pw", is_staff=True)
    user.user_permissions.set(Permission.objects.filter(codename="view_sendlog"))
    client = Client()
    client.force_login(user)
    rows = list(SendLog.objects.filter(status="pending"))
    client.post(
        reverse(CHANGELIST),
        {"action": "cancel_scheduled", "_selected_action": [r.pk for r in rows]},
    )
    assert set(
        SendLog.objects.filter(pk__in=[r.pk for r in rows]).values_list("status", flat=True)
    ) == {"pending"}
