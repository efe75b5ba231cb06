"""A message's content is stored once (MessageContent), whatever its number of recipients.

The outbox and the send log are written in bounded chunks, the outbox in one transaction; the
worker sends each row from its message's content, which goes with the last row that needs it
(unless LOG_CONTENT keeps it). Memory is measured in bench/bench_outbox_memory.py.
"""

from __future__ import annotations

import threading
import time
from datetime import timedelta
from io import StringIO

import pytest
from django.core.mail import EmailMessage, EmailMultiAlternatives
from django.core.management import call_command
from django.db import DatabaseError, connection, transaction
from django.db.models.functions import Length
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from django_sendfleet import exceptions as exc
from django_sendfleet import tasks
from django_sendfleet.admin.resend import message_from
from django_sendfleet.backends import EmailBackend, QueuedEmailBackend
from django_sendfleet.models import MessageContent, SendLog
from django_sendfleet.queued import outbox, worker
from django_sendfleet.records import content as message_content
from django_sendfleet.records import send_log
from tests.support.messages import SENDER

pytestmark = [pytest.mark.usefixtures("sendfleet_settings"), pytest.mark.django_db]


TEXT = "Your newsletter. " * 1200  # about 20 KB
HTML = "<p>Your <b>newsletter</b>.</p>" * 700  # about 20 KB


def newsletter(recipients: int, text: str = TEXT, html: str = HTML) -> EmailMultiAlternatives:
    message = EmailMultiAlternatives(
        "News",
        text,
        SENDER,
        ["first@example.com"],
        bcc=[f"reader{n}@example.com" for n in range(recipients - 1)],
        reply_to=["help@example.com"],
    )
    message.attach_alternative(html, "text/html")
    return message


@pytest.fixture
def queue(django_capture_on_commit_callbacks):
    """Queue through QueuedEmailBackend; the task runs at commit only with ``run=True``."""

    def run(*messages, run=False):
        with django_capture_on_commit_callbacks(execute=run) as callbacks:
            sent = QueuedEmailBackend().send_messages(list(messages))
        return sent, callbacks

    return run


def content_sizes() -> list[int]:
    return list(
        MessageContent.objects.annotate(size=Length("text") + Length("html")).values_list(
            "size", flat=True
        )
    )


# Stored once


def test_a_many_recipient_send_stores_its_content_once(queue):
    sent, _ = queue(newsletter(2500))
    assert sent == 1
    assert SendLog.objects.filter(status="pending").count() == 2500
    # O(messages), not O(recipients x content): one row of the message's size, and rows
    # without a copy of it.
    assert content_sizes() == [len(TEXT) + len(HTML)]
    assert set(SendLog.objects.values_list("content", flat=True)) == {
        MessageContent.objects.get().pk
    }
    copies = SendLog.objects.filter(payload__isnull=False) | SendLog.objects.exclude(text_body="")
    assert not copies.exists()


def test_each_message_of_a_batch_stores_its_own_content_once(queue):
    messages = [
        EmailMessage(f"Order {n}", f"Order {n} shipped.", SENDER, ["a@example.com", "b@x.org"])
        for n in range(30)
    ]
    queue(*messages)
    assert MessageContent.objects.count() == 30
    for content in MessageContent.objects.all():
        rows = list(content.send_logs.order_by("pk").values_list("recipient", "subject"))
        assert rows == [("a@example.com", content.subject), ("b@x.org", content.subject)]


def test_consecutive_messages_that_say_the_same_share_one_content_row(queue):
    """One message per recipient, built in a loop: one content row for the run."""
    messages = [EmailMessage("News", TEXT, SENDER, [f"r{n}@example.com"]) for n in range(20)]
    other = EmailMessage("Other", TEXT, SENDER, ["z@example.com"])
    queue(*messages[:10], other, *messages[10:])
    assert SendLog.objects.count() == 21
    assert sorted(MessageContent.objects.values_list("subject", flat=True)) == [
        "News",
        "News",
        "Other",
    ]


def rows_inserted(sql: str, params) -> int:
    """Rows one INSERT writes: a VALUES list, or (PostgreSQL, Django 5.2+) arrays to UNNEST."""
    if "UNNEST" in sql.upper():
        return len(params[0])
    return sql.count("), (") + 1


def test_the_outbox_is_written_in_bounded_statements(queue):
    statements = []

    def record(execute, sql, params, many, context):
        statements.append((sql, params))
        return execute(sql, params, many, context)

    with CaptureQueriesContext(connection) as queries, connection.execute_wrapper(record):
        queue(newsletter(2500))
    inserts = [q["sql"] for q in queries.captured_queries if q["sql"].startswith("INSERT")]
    log_inserts = [sql for sql in inserts if "django_sendfleet_sendlog" in sql.split("(")[0]]
    # 1,000 rows at most each (fewer where the database takes fewer parameters per statement,
    # as SQLite does on Django 5.2).
    rows_per_insert = [
        rows_inserted(sql, params)
        for sql, params in statements
        if sql.startswith("INSERT") and "django_sendfleet_sendlog" in sql.split("(")[0]
    ]
    assert sum(rows_per_insert) == 2500 and max(rows_per_insert) <= 1000
    content_inserts = [sql for sql in inserts if "django_sendfleet_messagecontent" in sql[:60]]
    assert len(content_inserts) == 1
    # The content travels once; no statement carries it again.
    assert sum(sql.count("Your newsletter.") for sql in inserts) <= TEXT.count("Your newsletter.")
    assert max(len(sql) for sql in log_inserts) < 1_000_000


def test_many_big_messages_are_written_in_chunks_of_bounded_content(queue, monkeypatch):
    monkeypatch.setattr(send_log, "CONTENT_CHARACTERS_PER_WRITE", 100_000)
    with CaptureQueriesContext(connection) as queries:
        queue(*[newsletter(1, text=f"{n} {TEXT}") for n in range(10)])  # 40 KB each
    content_inserts = [
        q["sql"]
        for q in queries.captured_queries
        if "django_sendfleet_messagecontent" in q["sql"][:60]
    ]
    assert len(content_inserts) == 4  # 3 messages (120 KB) a write, then the last one
    assert MessageContent.objects.count() == 10


def test_the_synchronous_log_stores_logged_content_once(sandbox, sendfleet_settings):
    sendfleet_settings["LOG_CONTENT"] = True
    message = EmailMessage("Hi", "Body", SENDER, ["a@example.com", "b@example.com", "c@x.org"])
    assert EmailBackend().send_messages([message]) == 1
    assert MessageContent.objects.count() == 1
    rows = list(SendLog.objects.all())
    assert {row.status for row in rows} == {"queued"} and len(rows) == 3
    assert {row.logged_content.text for row in rows} == {"Body"}
    assert all(row.text_body == "" for row in rows)


def test_a_failed_log_write_does_not_lose_the_content_of_the_messages_next_rows(
    sandbox, sendfleet_settings, monkeypatch
):
    """The log's first chunk fails (logged, not raised); the message's later rows still get
    its content, written again with them."""
    sendfleet_settings["LOG_CONTENT"] = True
    monkeypatch.setattr(send_log, "ROWS_PER_WRITE", 2)
    original = message_content.insert_with_rows
    calls = []

    def first_write_fails(contents, rows):
        calls.append(len(rows))
        original(contents, rows)
        if len(calls) == 1:
            raise DatabaseError("disk full")  # after the INSERTs: they are rolled back

    monkeypatch.setattr(message_content, "insert_with_rows", first_write_fails)
    to = [f"user{n}@example.com" for n in range(5)]
    assert EmailBackend().send_messages([EmailMessage("Hi", "Body", SENDER, to)]) == 1
    assert calls == [2, 2, 1]
    rows = list(SendLog.objects.order_by("recipient"))
    assert [row.recipient for row in rows] == to[2:]  # the first chunk is lost, and logged
    assert {row.logged_content.text for row in rows} == {"Body"}
    assert MessageContent.objects.count() == 1


# The outbox stays one transaction


def test_a_failing_chunk_rolls_back_the_whole_outbox_and_enqueues_nothing(
    queue, monkeypatch, django_capture_on_commit_callbacks
):
    monkeypatch.setattr(send_log, "ROWS_PER_WRITE", 2)
    original = outbox.write_rows
    calls = []

    def third_chunk_fails(contents, rows, task_backend):
        calls.append(len(rows))
        if len(calls) == 3:
            raise DatabaseError("disk full")
        original(contents, rows, task_backend)

    monkeypatch.setattr(outbox, "write_rows", third_chunk_fails)
    with transaction.atomic():  # the caller's
        with django_capture_on_commit_callbacks() as callbacks, pytest.raises(DatabaseError):
            QueuedEmailBackend().send_messages([newsletter(7)])
        assert calls == [2, 2, 2]
        # Nothing of it is left, no task will be enqueued, and the caller's transaction goes on.
        assert not SendLog.objects.exists() and not MessageContent.objects.exists()
        assert callbacks == []


def test_a_refused_message_keeps_the_rows_queued_before_it(queue, monkeypatch):
    monkeypatch.setattr(send_log, "ROWS_PER_WRITE", 2)
    good = EmailMessage("Hi", "Body", SENDER, [f"u{n}@example.com" for n in range(5)])
    bad = EmailMessage("x" * 300, "Body", SENDER, ["ann@example.com"])
    with pytest.raises(exc.SendFleetInvalidMessage):
        queue(good, bad)
    assert SendLog.objects.filter(status="pending").count() == 5
    assert SendLog.objects.get(status="failed").error_code == "invalid_message"
    assert MessageContent.objects.count() == 1


# Sent from the content; released with the last row


def test_each_row_is_sent_from_its_content_and_the_content_goes_with_the_last_row(sandbox, queue):
    queue(newsletter(3, text="Hello", html="<p>Hello</p>"))
    ids = list(SendLog.objects.order_by("pk").values_list("pk", flat=True))
    tasks.send_and_reschedule(ids[:2])
    assert MessageContent.objects.count() == 1  # the third row still needs it
    tasks.send_and_reschedule(ids[2:])
    assert not MessageContent.objects.exists()
    assert [r.payload["to"] for r in sandbox.accepted] == [
        "first@example.com",
        "reader0@example.com",
        "reader1@example.com",
    ]
    for request in sandbox.accepted:
        assert request.payload["message"] == "Hello" and request.payload["html"] == "<p>Hello</p>"
        assert request.payload["subject"] == "News"
        assert request.payload["from_name"] == "Shop"
        assert request.payload["reply_to"] == "help@example.com"
    assert set(SendLog.objects.values_list("status", "content")) == {("queued", None)}


def test_a_row_given_back_to_the_outbox_keeps_the_content(sandbox, queue):
    queue(newsletter(2, text="Hello", html="<p>Hello</p>"))
    ids = list(SendLog.objects.order_by("pk").values_list("pk", flat=True))
    sandbox.inject_fault(502)
    tasks.send_and_reschedule(ids[:1])  # a 502: rescheduled
    tasks.send_and_reschedule(ids[1:])  # sent
    held = SendLog.objects.get(pk=ids[0])
    assert held.status == "pending" and held.content_id is not None
    assert SendLog.objects.get(pk=ids[1]).status == "queued"
    assert MessageContent.objects.count() == 1
    SendLog.objects.filter(pk=ids[0]).update(not_before=timezone.now())
    tasks.send_and_reschedule(ids[:1])
    assert SendLog.objects.get(pk=ids[0]).status == "queued"
    assert not MessageContent.objects.exists()


def test_log_content_keeps_one_content_row_after_sending(sandbox, queue, sendfleet_settings):
    sendfleet_settings["LOG_CONTENT"] = True
    queue(newsletter(3, text="Hello", html="<p>Hello</p>"), run=True)
    assert len(sandbox.accepted) == 3
    content = MessageContent.objects.get()
    assert content.text == "Hello" and content.html == "<p>Hello</p>"
    assert set(SendLog.objects.values_list("status", "content")) == {("queued", content.pk)}


def test_an_expired_lease_releases_the_content(sandbox, queue):
    queue(newsletter(1, text="Hello", html="<p>Hello</p>"))
    row = SendLog.objects.get()
    assert worker.claim(row.pk, lease_seconds=1) is not None
    assert outbox.expire_leases(now=timezone.now() + timedelta(seconds=2)) == 1
    row.refresh_from_db()
    assert row.status == "unknown" and row.content_id is None
    assert not MessageContent.objects.exists() and sandbox.requests == []


def test_a_row_queued_before_message_content_is_still_sent_from_its_payload(sandbox):
    payload = {"to": "ann@example.com", "from_email": "shop@example.com", "message": "Old"}
    row = SendLog.objects.create(
        recipient="ann@example.com", from_email="shop@example.com", payload=payload
    )
    tasks.send_and_reschedule([row.pk])
    assert [r.payload for r in sandbox.accepted] == [payload]
    row.refresh_from_db()
    assert row.status == "queued" and row.payload is None


def test_prune_deletes_logged_content_with_its_last_row(sandbox, sendfleet_settings):
    sendfleet_settings["LOG_CONTENT"] = True
    EmailBackend().send_messages([EmailMessage("Old", "Body", SENDER, ["a@x.org", "b@x.org"])])
    EmailBackend().send_messages([EmailMessage("New", "Body", SENDER, ["c@x.org"])])
    old = SendLog.objects.filter(subject="Old")
    old.update(created_at=timezone.now() - timedelta(days=100))
    SendLog.objects.filter(recipient="b@x.org").update(created_at=timezone.now())
    call_command("sendfleet_prune", days=90, stdout=StringIO())
    assert MessageContent.objects.count() == 2  # "Old" still has b@x.org's row
    SendLog.objects.filter(recipient="b@x.org").update(
        created_at=timezone.now() - timedelta(days=100)
    )
    call_command("sendfleet_prune", days=90, stdout=StringIO())
    assert list(MessageContent.objects.values_list("subject", flat=True)) == ["New"]


# Resend and the admin read the shared content


def test_resend_and_the_admin_read_the_shared_content(
    admin_client, sandbox, queue, sendfleet_settings
):
    sendfleet_settings["LOG_CONTENT"] = True
    queue(newsletter(2, text="Hello", html="<p>Hello <b>you</b></p>"), run=True)
    row = SendLog.objects.order_by("pk").last()
    rebuilt = message_from(row)
    assert rebuilt.to == [row.recipient] and rebuilt.body == "Hello"
    assert rebuilt.alternatives[0][0] == "<p>Hello <b>you</b></p>"

    page = admin_client.get(reverse("admin:django_sendfleet_sendlog_change", args=[row.pk]))
    assert "Hello" in page.text and "&lt;b&gt;you&lt;/b&gt;" in page.text
    assert "content was not logged" not in page.text

    data = {"action": "resend", "_selected_action": [row.pk]}
    admin_client.post(reverse("admin:django_sendfleet_sendlog_changelist"), data)
    resent = sandbox.accepted[-1].payload
    assert resent["to"] == row.recipient and resent["html"] == "<p>Hello <b>you</b></p>"
    assert resent["subject"] == "News" and resent["reply_to"] == "help@example.com"


# Workers finishing a message's last rows at the same time (PostgreSQL: real row locks)


def _waits_for_a_lock(pid: int) -> bool:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1 FROM pg_locks WHERE pid = %s AND NOT granted", [pid])
        return cursor.fetchone() is not None


@pytest.mark.django_db(transaction=True)
@pytest.mark.skipif(connection.vendor != "postgresql", reason="needs concurrent writers")
def test_two_workers_finishing_the_last_rows_together_delete_the_content(sendfleet_settings):
    """Each clears its row's reference, then releases the content: both updates are made before
    either commits, so the first to look sees the other's row still referring to it. The second
    must wait for the first to commit before it looks, and then deletes it."""
    content = MessageContent.objects.create(from_email="shop@example.com", text="Hello")
    rows = [
        SendLog.objects.create(recipient=f"{n}@example.com", status="sending", content=content)
        for n in range(2)
    ]
    both_updated = threading.Barrier(2, timeout=10)
    first_looked = threading.Event()
    second_done = threading.Event()
    second_pid: list[int] = []
    errors: list[BaseException] = []

    def first() -> None:
        with transaction.atomic():
            SendLog.objects.filter(pk=rows[0].pk).update(content=None)
            both_updated.wait()
            message_content.release([content.pk])
            assert MessageContent.objects.exists()  # the second row still referred to it
            first_looked.set()
            # Commit only once the second is either waiting for this transaction's lock, or
            # (without the lock) has already looked and gone.
            deadline = time.monotonic() + 10
            while not (second_done.is_set() or _waits_for_a_lock(second_pid[0])):
                assert time.monotonic() < deadline, "the second worker never got there"
                time.sleep(0.01)

    def second() -> None:
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_backend_pid()")
            second_pid.append(cursor.fetchone()[0])
        with transaction.atomic():
            SendLog.objects.filter(pk=rows[1].pk).update(content=None)
            both_updated.wait()
            assert first_looked.wait(timeout=10)
            message_content.release([content.pk])
        second_done.set()

    def run(work) -> None:
        try:
            work()
        except BaseException as error:  # reported by the test
            errors.append(error)
            both_updated.abort()
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(work,)) for work in (second, first)]
    for thread in threads:
        thread.start()  # (the second's pid is known before the barrier lets the first on)
    for thread in threads:
        thread.join(timeout=30)
    assert errors == []
    assert set(SendLog.objects.values_list("content", flat=True)) == {None}
    assert not MessageContent.objects.exists()
