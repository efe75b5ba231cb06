"""Webhook events applied in batches after the answer (event_drain.py, event_apply.py): a
burst costs a few statements per batch, not several per event; one thread per process applies
while the others only answer; a batch gives the same rows as its events one at a time.

The figures (a burst on gunicorn) are in docs/benchmarks.md, from bench/bench_webhooks.py.
"""

import io
import json
import threading
import time

import pytest
from django.core.management import call_command
from django.db import connection, connections, transaction
from django.test.utils import CaptureQueriesContext

from django_sendfleet import signals
from django_sendfleet.db.sqlite_lock import TRY_MILLISECONDS, trying_often
from django_sendfleet.models import SendLog, Suppression, WebhookEvent
from django_sendfleet.webhooks import apply as event_apply
from django_sendfleet.webhooks import drain as event_drain
from django_sendfleet.webhooks.store import store_event
from tests.support.webhooks import SECRET, event, post_event

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def webhook_secret(settings):
    settings.SENDFLEET = {"WEBHOOK_SECRET": SECRET}


@pytest.fixture(autouse=True)
def nothing_waiting():
    """This process's waiting events are module state: each test starts and ends with none."""
    event_drain._drain.waiting.clear()
    yield
    event_drain._drain.waiting.clear()


def log_sends(count: int) -> list[SendLog]:
    return SendLog.objects.bulk_create(
        SendLog(
            message_id=f"msg-{n}",
            recipient=f"r{n}@example.com",
            from_email="shop@example.com",
            status="queued",
        )
        for n in range(count)
    )


def store(kind: str, n: int, *, answered_here: bool = True, **fields) -> WebhookEvent:
    """An event stored and answered by this process while another of its threads applies (so
    left to that thread); or, with ``answered_here=False``, stored by another process."""
    body = {"event_type": kind, "message_id": f"msg-{n}", "to": f"r{n}@example.com"} | fields
    stored = store_event(json.dumps(body).encode(), max_age=None)
    assert stored is not None
    if answered_here:
        event_drain._drain.waiting.append(stored)
    return stored


def burst(messages: int) -> None:
    """What a burst leaves stored while another thread applies: sent, delivered, and for every
    third message a hard bounce after them."""
    for n in range(messages):
        store("email.sent", n)
        store("email.delivered", n)
        if n % 3 == 2:
            store("email.bounced", n, bounce_type="Permanent")


def test_a_burst_of_stored_events_is_applied_in_a_few_statements_per_batch():
    log_sends(30)
    burst(30)  # 70 events
    with CaptureQueriesContext(connection) as queries:
        event_drain.after_answer(None)
    assert set(WebhookEvent.objects.values_list("outcome", flat=True)) == {"applied"}
    # At most 20 statements a batch, whatever its size; the bounces' suppressions are one
    # upsert each (10, a few statements each). One event at a time took over 400.
    batches = -(-70 // event_drain.BATCH_SIZE)
    assert len(queries.captured_queries) < batches * 20 + 10 * 4


def test_a_batch_leaves_the_rows_its_events_would_one_at_a_time():
    log_sends(6)
    store("email.sent", 0)
    store("email.delivered", 0)  # delivered
    store("email.bounced", 1, bounce_type="Permanent")
    store("email.delivered", 1)  # a late delivered: still bounced
    store("email.bounced", 2, bounce_type="Transient")  # soft: bounced, error code soft_bounce
    store("email.bounced", 2, bounce_type="Permanent")
    store("email.complained", 3)
    store("email.delivered", 4, to="")  # no recipient: the row's
    store("email.delivered", 99)  # no such send
    event_drain.after_answer(None)
    rows = {row.message_id: (row.status, row.error_code) for row in SendLog.objects.all()}
    assert rows == {
        "msg-0": ("delivered", ""),
        "msg-1": ("bounced", ""),
        "msg-2": ("bounced", "soft_bounce"),
        "msg-3": ("complained", ""),
        "msg-4": ("delivered", ""),
        "msg-5": ("queued", ""),
    }
    assert set(Suppression.objects.values_list("email", "reason")) == {
        ("r1@example.com", "hard_bounce"),
        ("r2@example.com", "hard_bounce"),
        ("r3@example.com", "complaint"),
    }
    no_recipient = WebhookEvent.objects.get(message_id="msg-4")
    assert no_recipient.recipient == "r4@example.com"
    assert no_recipient.send_log.message_id == "msg-4"
    unknown = WebhookEvent.objects.get(message_id="msg-99")
    assert unknown.outcome == "unknown_message" and unknown.send_log is None
    applied = WebhookEvent.objects.exclude(message_id="msg-99")
    assert all(e.outcome == "applied" and e.send_log.message_id == e.message_id for e in applied)
    assert set(WebhookEvent.objects.values_list("attempts", flat=True)) == {1}


def test_receivers_are_told_of_each_event_of_a_batch_in_the_order_stored(client):
    log_sends(3)
    told = []

    def receiver(sender, event, **kwargs):
        told.append((event.event_type, event.message_id))

    signals.tracking.connect(receiver)
    try:
        for n in range(3):
            store("email.delivered", n)
        post_event(client, event("email.bounced", message_id="msg-0"))
    finally:
        signals.tracking.disconnect(receiver)
    assert told == [
        ("delivered", "msg-0"),
        ("delivered", "msg-1"),
        ("delivered", "msg-2"),
        ("bounced", "msg-0"),
    ]


def test_an_answer_while_another_thread_applies_leaves_its_event_to_that_thread(client):
    log_sends(1)
    event_drain._drain.lock.acquire()  # another thread of this process is applying
    try:
        answer = post_event(client, event("email.delivered", message_id="msg-0"))
        assert answer.status_code == 200
        stored = WebhookEvent.objects.get()
        assert stored.outcome == "pending"  # left, not waited for
        assert [e.pk for e in event_drain._drain.waiting] == [stored.pk]  # ... to that thread
    finally:
        event_drain._drain.lock.release()
    event_drain.after_answer(None)  # as that thread does once it looks again
    assert WebhookEvent.objects.get().outcome == "applied"


def wait_until_applied_here(deadline_seconds: float = 30.0) -> None:
    deadline = time.monotonic() + deadline_seconds
    while event_drain.applying():
        assert time.monotonic() < deadline, "the burst thread did not finish"
        time.sleep(0.01)


@pytest.mark.django_db(transaction=True)  # the burst thread reads with its own connection
def test_the_answering_thread_applies_one_batch_and_leaves_the_rest_to_the_burst_thread(
    monkeypatch,
):
    """The server reads a keep-alive connection's next request only once the answer's
    processing returns: looping until a burst ends held that client's next event back."""
    monkeypatch.setattr(event_drain, "BATCH_SIZE", 2)
    log_sends(5)
    for n in range(5):
        store("email.delivered", n)
    applied_in = {}

    def receiver(sender, event, **kwargs):
        applied_in[event.message_id] = threading.current_thread().name

    signals.tracking.connect(receiver)
    try:
        event_drain.after_answer(None)
        wait_until_applied_here()
    finally:
        signals.tracking.disconnect(receiver)
    answering = threading.current_thread().name
    assert applied_in == {
        "msg-0": answering,
        "msg-1": answering,
        "msg-2": "sendfleet-webhook-burst",
        "msg-3": "sendfleet-webhook-burst",
        "msg-4": "sendfleet-webhook-burst",
    }
    assert set(WebhookEvent.objects.values_list("outcome", flat=True)) == {"applied"}
    assert not event_drain._drain.burst_thread_running  # stopped once none waited


def test_a_batch_that_fails_is_processed_one_event_at_a_time(monkeypatch):
    """Only the event that fails by itself is marked failed; the others are applied."""
    log_sends(3)
    for n in range(3):
        store("email.delivered", n)
    real_event_of = event_apply.event_of

    def event_of(stored):
        if stored.message_id == "msg-1":
            raise ValueError("this one cannot be read")
        return real_event_of(stored)

    monkeypatch.setattr("django_sendfleet.webhooks.apply.event_of", event_of)
    event_drain.after_answer(None)
    outcomes = dict(WebhookEvent.objects.values_list("message_id", "outcome"))
    assert outcomes == {"msg-0": "applied", "msg-1": "failed", "msg-2": "applied"}


def test_a_process_applies_the_events_it_stored_and_leaves_other_processes_events():
    """Processes never read, parse and try to claim the same events: on SQLite every try
    takes the write lock that the answers wait for."""
    log_sends(2)
    ours = store("email.delivered", 0)
    theirs = store("email.delivered", 1, answered_here=False)
    event_drain.after_answer(None)
    ours.refresh_from_db()
    theirs.refresh_from_db()
    assert (ours.outcome, theirs.outcome) == ("applied", "pending")
    assert theirs.attempts == 0  # not even claimed


def test_past_the_bound_of_waiting_events_an_event_is_left_to_the_retries(client, monkeypatch):
    """A process whose applying cannot keep up does not keep every event in memory."""
    log_sends(2)
    monkeypatch.setattr(event_drain, "MAX_WAITING", 1)
    event_drain._drain.lock.acquire()  # another thread of this process is applying
    try:
        for n in range(2):
            post_event(client, event("email.delivered", message_id=f"msg-{n}"))
        assert [e.message_id for e in event_drain._drain.waiting] == ["msg-0"]
    finally:
        event_drain._drain.lock.release()
    event_drain.after_answer(None)
    outcomes = dict(WebhookEvent.objects.values_list("message_id", "outcome"))
    assert outcomes == {"msg-0": "applied", "msg-1": "pending"}  # stored, not lost
    call_command("sendfleet_retry_events", stdout=io.StringIO())
    assert WebhookEvent.objects.get(message_id="msg-1").outcome == "applied"


def test_events_a_process_stored_and_never_applied_are_taken_up_by_the_others():
    """Its events stay pending when a process dies before applying them: the retries in any
    process take them once their processing lease has passed, and the command at once."""
    from datetime import timedelta

    from django.utils import timezone

    log_sends(2)
    late = store("email.delivered", 0, answered_here=False)
    WebhookEvent.objects.filter(pk=late.pk).update(
        next_attempt_at=timezone.now() - timedelta(seconds=1)  # its lease has passed
    )
    store("email.delivered", 1, answered_here=False)  # still within its lease
    event_drain.retry_look.last = -1e9  # a look for retries is due
    event_drain.after_answer(None)
    outcomes = dict(WebhookEvent.objects.values_list("message_id", "outcome"))
    assert outcomes == {"msg-0": "applied", "msg-1": "pending"}
    call_command("sendfleet_retry_events", stdout=io.StringIO())
    assert set(WebhookEvent.objects.values_list("outcome", flat=True)) == {"applied"}


@pytest.mark.skipif(connection.vendor != "sqlite", reason="SQLite's lock")
def test_storing_tries_for_sqlites_lock_every_millisecond_and_restores_the_timeout():
    def busy_timeout() -> int:
        with connection.cursor() as cursor:
            cursor.execute("PRAGMA busy_timeout")
            return cursor.fetchone()[0]

    configured = busy_timeout()
    assert configured > TRY_MILLISECONDS
    with trying_often():
        assert busy_timeout() == TRY_MILLISECONDS
    assert busy_timeout() == configured


@pytest.mark.django_db(transaction=True)
@pytest.mark.skipif(connection.vendor != "postgresql", reason="PostgreSQL's advisory lock")
def test_batches_from_two_processes_wait_for_each_other_on_postgresql():
    """Two at once would change the same rollup rows in different orders and deadlock."""
    log_sends(2)
    store("email.delivered", 0)
    holding, finished = threading.Event(), threading.Event()
    release = threading.Event()

    def other_process_batch():
        try:
            with transaction.atomic():
                event_drain._one_batch_at_a_time()
                holding.set()
                release.wait(10)
        finally:
            connections.close_all()

    def this_batch():
        try:
            event_drain.apply_stored_events_until_done()
            finished.set()
        finally:
            connections.close_all()

    other = threading.Thread(target=other_process_batch)
    other.start()
    assert holding.wait(10)
    mine = threading.Thread(target=this_batch)
    mine.start()
    assert not finished.wait(0.5)  # waits for the other batch's transaction
    release.set()
    assert finished.wait(10)
    other.join()
    mine.join()
    assert WebhookEvent.objects.get().outcome == "applied"


def test_a_batchs_suppressions_add_new_addresses_and_refresh_known_ones():
    from datetime import timedelta

    from django.utils import timezone

    from django_sendfleet.models import Suppression

    long_ago = timezone.now() - timedelta(days=30)
    Suppression.objects.create(
        email="known@example.com", reason="manual", source="admin", last_seen_at=long_ago
    )
    Suppression.objects.suppress_many(
        [
            ("Known@Example.com", "hard_bounce", "msg-1"),
            ("new@example.com", "complaint", "msg-2"),
            ("NEW@example.com", "hard_bounce", "msg-3"),  # the first entry decides
        ],
        source="webhook",
    )
    entries = {s.email: s for s in Suppression.objects.all()}
    assert set(entries) == {"known@example.com", "new@example.com"}
    known, new = entries["known@example.com"], entries["new@example.com"]
    assert (known.reason, known.source) == (
        "manual",
        "admin",
    )  # kept, as suppress() keeps it
    assert known.last_seen_at > long_ago
    assert (new.reason, new.source, new.message_id) == ("complaint", "webhook", "msg-2")
