"""A verified webhook event is never lost (issue 12): bodies JSON columns cannot hold, failed
processing and its retries, replays of old events, and unknown sends resolved by events.

The NUL and lone-surrogate cases fail only on PostgreSQL (its jsonb and text refuse them); run
with DATABASE_URL pointing at one, as CI does.
"""

import json
from datetime import timedelta
from io import StringIO

import pytest
from django.core import checks
from django.core.management import call_command
from django.db import connection
from django.urls import include, path, reverse
from django.utils import timezone
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from django_sendfleet import signals
from django_sendfleet.checks.webhook_sqlite import (
    CHECK_ID,
    check_webhook_sqlite_options,
    missing_sqlite_options,
)
from django_sendfleet.conf import SendFleetSettings
from django_sendfleet.exceptions import SendFleetConfigurationError
from django_sendfleet.models import SendLog, Suppression, WebhookEvent
from django_sendfleet.webhooks import drain as event_drain
from django_sendfleet.webhooks import events
from django_sendfleet.webhooks.body import escape_body, unescape_body
from django_sendfleet.webhooks.store import store_event
from tests.support.examples import examples
from tests.support.webhooks import SECRET, event, kept_as_received, post_event

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("webhook_secret")]

BOUNCE = '{"event_type": "email.bounced", "message_id": "msg-1", "to": "ann@example.com"'


@pytest.fixture
def webhook_secret(settings):
    settings.SENDFLEET = {"WEBHOOK_SECRET": SECRET}
    return settings.SENDFLEET


@pytest.fixture(autouse=True)
def retries_looked_for_at_every_event(monkeypatch):
    """In production a process looks for due retries at most once a second, after an answer;
    here, after every one."""
    monkeypatch.setattr(event_drain.retry_look, "interval", 0)


@pytest.fixture
def told():
    """The events tracking receivers were told about."""
    seen = []

    def receiver(sender, event, **kwargs):
        seen.append(event)

    signals.tracking.connect(receiver, weak=False)
    yield seen
    signals.tracking.disconnect(receiver)


def deep(levels):
    return "[" * levels + "]" * levels


# Bodies JSON columns cannot hold: applied when they are events, kept as received either way.
PROCESSABLE = {
    "NaN": BOUNCE + ', "score": NaN}',
    "Infinity": BOUNCE + ', "score": Infinity, "low": -Infinity}',
    "a number too large for a float": BOUNCE + ', "score": 1e400}',
    "NUL in a field": BOUNCE + ', "description": "mailbox\\u0000full"}',
    "a lone surrogate in a field": BOUNCE + ', "description": "\\ud800 gone"}',
    "a NUL key": BOUNCE + ', "\\u0000": 1}',
    "nesting 40 deep": BOUNCE + f', "trace": {deep(40)}}}',
}
UNPROCESSABLE = {
    "nesting 100,000 deep": BOUNCE + f', "trace": {deep(100_000)}}}',
    "not UTF-8": BOUNCE.encode() + b', "description": "\xff\xfe"}',
    "a NUL byte": BOUNCE + "}\x00",
    "NUL in the message id": BOUNCE.replace("msg-1", "msg-1\\u0000") + "}",
    "a lone surrogate in the recipient": BOUNCE.replace("ann@", "\\udc00ann@") + "}",
    "a recipient longer than an address": BOUNCE.replace("ann@", "a" * 400 + "@") + "}",
    "no event_type": '{"message_id": "msg-1", "to": "ann@example.com"}',
}


def as_bytes(body):
    return body if isinstance(body, bytes) else body.encode()


@pytest.mark.usefixtures("logged_send")
class TestBodiesJsonCannotHold:
    @pytest.mark.parametrize("body", PROCESSABLE.values(), ids=PROCESSABLE.keys())
    def test_are_stored_acknowledged_and_applied(self, client, body, told):
        answer = post_event(client, None, body=as_bytes(body))
        assert answer.status_code == 200 and answer.json()["status"] == "ok"
        stored = WebhookEvent.objects.get()
        assert stored.outcome == "applied" and kept_as_received(stored, as_bytes(body))
        assert SendLog.objects.get().status == "bounced"
        assert Suppression.objects.get().email == "ann@example.com"
        assert len(told) == 1 and told[0].event_type == "bounced"

    @pytest.mark.parametrize("body", UNPROCESSABLE.values(), ids=UNPROCESSABLE.keys())
    def test_unprocessable_ones_are_stored_acknowledged_and_marked(self, client, body, told):
        answer = post_event(client, None, body=as_bytes(body))
        assert answer.status_code == 200 and answer.json()["status"] == "unprocessable"
        stored = WebhookEvent.objects.get()
        assert stored.outcome == "unprocessable" and stored.detail
        assert kept_as_received(stored, as_bytes(body))
        assert SendLog.objects.get().status == "queued" and not Suppression.objects.exists()
        assert told == []

    def test_unprocessable_events_are_visible_in_the_admin(self, client, admin_client):
        post_event(client, None, body=as_bytes(UNPROCESSABLE["not UTF-8"]))
        changelist = reverse("admin:django_sendfleet_webhookevent_changelist")
        page = admin_client.get(changelist, {"outcome": "unprocessable"}).content.decode()
        assert "the body is not UTF-8 text" in page
        stored = WebhookEvent.objects.get()
        change = reverse("admin:django_sendfleet_webhookevent_change", args=[stored.pk])
        page = admin_client.get(change).content.decode()
        assert "unprocessable: kept as received" in page and stored.raw_body in page


# Any JSON value Python writes (NaN, NUL, lone surrogates, any nesting), or any bytes.
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=5), children, max_size=3)
    ),
    max_leaves=20,
)
signed_bodies = st.binary(max_size=300) | st.builds(
    lambda value, fields: json.dumps(
        {"event_type": "email.delivered", "message_id": "msg-1", "x": value} | fields
    ).encode(),
    json_values,
    st.dictionaries(st.sampled_from(["to", "message_id", "timestamp", "from_email"]), json_values),
)


@settings(
    max_examples=examples(60),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(body=signed_bodies)
def test_every_signed_body_is_stored_as_received_and_acknowledged(client, body):
    WebhookEvent.objects.all().delete_whole()  # each example starts from no stored event
    answer = post_event(client, None, body=body)
    assert answer.status_code == 200
    assert kept_as_received(WebhookEvent.objects.get(), body)


@given(body=st.binary(max_size=200))
def test_escaped_bodies_round_trip(body):
    assert unescape_body(escape_body(body)) == body


# Replays.


def test_an_event_signed_longer_ago_than_max_age_is_kept_but_not_applied(client, logged_send):
    year_ago = (timezone.now() - timedelta(days=365)).isoformat()
    answer = post_event(client, event("email.complained", timestamp=year_ago))
    assert answer.status_code == 200 and answer.json()["status"] == "too_old"
    assert WebhookEvent.objects.get().outcome == "too_old"
    assert SendLog.objects.get().status == "queued" and not Suppression.objects.exists()


@pytest.mark.parametrize(("max_age", "applied"), [(None, True), (30, False), (3600, True)])
def test_max_age_is_a_setting(client, webhook_secret, logged_send, max_age, applied):
    webhook_secret["WEBHOOK_MAX_AGE"] = max_age
    minutes_ago = (timezone.now() - timedelta(minutes=2)).timestamp()
    post_event(client, event("email.complained", timestamp=minutes_ago))
    assert Suppression.objects.exists() is applied


@pytest.mark.parametrize("value", [0, -1, "7d", float("nan"), True])
def test_max_age_must_be_a_positive_number_of_seconds(webhook_secret, value):
    webhook_secret["WEBHOOK_MAX_AGE"] = value
    with pytest.raises(SendFleetConfigurationError):
        SendFleetSettings().webhook_max_age  # noqa: B018


def test_a_replayed_event_is_recognised_after_it_was_pruned(client, logged_send):
    """No timestamp in the body: only the digest, kept by sendfleet_prune, recognises it."""
    complaint = json.dumps(event("email.complained")).encode()
    assert post_event(client, None, body=complaint).json()["status"] == "ok"
    WebhookEvent.objects.update(received_at=timezone.now() - timedelta(days=400))
    call_command("sendfleet_prune", days=30, stdout=StringIO())
    pruned = WebhookEvent.objects.get()
    assert pruned.pruned_at and pruned.raw is None and not pruned.recipient
    Suppression.objects.all().delete()  # the address was cleared since
    assert post_event(client, None, body=complaint).json()["status"] == "duplicate"
    assert not Suppression.objects.exists()


def test_prune_deletes_events_signed_before_max_age_whose_replay_is_refused_by_age(
    client, webhook_secret, logged_send
):
    signed = (timezone.now() - timedelta(days=400)).isoformat()
    complaint = json.dumps(event("email.complained", timestamp=signed)).encode()
    webhook_secret["WEBHOOK_MAX_AGE"] = None
    assert post_event(client, None, body=complaint).json()["status"] == "ok"
    webhook_secret.pop("WEBHOOK_MAX_AGE")  # the default, 7 days
    WebhookEvent.objects.update(received_at=timezone.now() - timedelta(days=400))
    out = StringIO()
    call_command("sendfleet_prune", days=30, stdout=out)
    assert not WebhookEvent.objects.exists() and "1 signed before" in out.getvalue()
    Suppression.objects.all().delete()
    assert post_event(client, None, body=complaint).json()["status"] == "too_old"
    assert not Suppression.objects.exists()


def test_prune_keeps_events_still_to_be_processed(client):
    WebhookEvent.objects.create(
        digest="f" * 64, raw={}, outcome="failed", received_at=timezone.now() - timedelta(days=99)
    )
    call_command("sendfleet_prune", days=30, stdout=StringIO())
    assert WebhookEvent.objects.get().pruned_at is None


# Failed processing is retried.


@pytest.fixture
def log_updates_fail():
    """A real database error on every send log update until the returned function is called."""
    table = SendLog._meta.db_table
    if connection.vendor == "sqlite":
        create = [
            f"CREATE TRIGGER sendfleet_test_locked BEFORE UPDATE ON {table} "
            "BEGIN SELECT RAISE(ABORT, 'database is locked'); END"
        ]
        drop = ["DROP TRIGGER sendfleet_test_locked"]
    elif connection.vendor == "postgresql":
        create = [
            "CREATE FUNCTION sendfleet_test_locked() RETURNS trigger AS $$ BEGIN "
            "RAISE EXCEPTION 'database is locked'; END $$ LANGUAGE plpgsql",
            f"CREATE TRIGGER sendfleet_test_locked BEFORE UPDATE ON {table} "
            "FOR EACH ROW EXECUTE FUNCTION sendfleet_test_locked()",
        ]
        drop = [f"DROP TRIGGER sendfleet_test_locked ON {table}"]
    else:
        pytest.skip(f"no trigger for {connection.vendor}")
    with connection.cursor() as cursor:
        for statement in create:
            cursor.execute(statement)

    def heal():
        with connection.cursor() as cursor:
            for statement in drop:
                cursor.execute(statement)

    return heal


def failed_bounce(client):
    answer = post_event(client, event("email.bounced"))
    assert answer.status_code == 200
    stored = WebhookEvent.objects.get(event_type="email.bounced")
    assert stored.outcome == "failed" and "database is locked" in stored.detail
    assert not Suppression.objects.exists()
    return stored


def test_a_failed_event_is_retried_at_a_later_event_once_due(
    client, logged_send, log_updates_fail, told
):
    stored = failed_bounce(client)
    assert told == [] and stored.attempts == 1
    log_updates_fail()
    post_event(client, event("email.delivered", message_id="other-1"))
    assert WebhookEvent.objects.get(pk=stored.pk).outcome == "failed"  # its retry is not due yet
    WebhookEvent.objects.filter(pk=stored.pk).update(next_attempt_at=timezone.now())
    post_event(client, event("email.delivered", message_id="other-2"))
    stored.refresh_from_db()
    assert stored.outcome == "applied" and stored.attempts == 2 and stored.detail == ""
    assert SendLog.objects.get().status == "bounced"
    assert Suppression.objects.get().reason == "hard_bounce"
    assert [e.event_type for e in told if e.message_id == "msg-1"] == ["bounced"]


def test_each_failure_puts_the_next_retry_further_off(client, logged_send, log_updates_fail):
    stored = failed_bounce(client)
    first_wait = stored.next_attempt_at - timezone.now()
    WebhookEvent.objects.filter(pk=stored.pk).update(next_attempt_at=timezone.now())
    post_event(client, event("email.delivered", message_id="other-1"))
    stored.refresh_from_db()
    assert stored.outcome == "failed" and stored.attempts == 2
    assert stored.next_attempt_at - timezone.now() > first_wait


def test_sendfleet_retry_events_applies_failed_events_now(client, logged_send, log_updates_fail):
    failed_bounce(client)
    log_updates_fail()
    out = StringIO()
    call_command("sendfleet_retry_events", stdout=out)
    assert WebhookEvent.objects.get().outcome == "applied"
    assert Suppression.objects.exists() and "1 events processed" in out.getvalue()
    assert "0 still failed" in out.getvalue()


def test_an_event_whose_processing_never_ran_is_applied_with_the_next_event_after_its_lease(
    client, logged_send, told
):
    """As when the worker that answered was killed before it processed the event: once its
    processing lease has passed, the next event's processing applies it (each process applies
    only its own events before that, so a process still applying its events is not raced)."""
    body = json.dumps(event("email.bounced")).encode()
    stored = store_event(body, max_age=None)
    assert stored.outcome == "pending"
    post_event(client, event("email.delivered", message_id="other-1"))
    stored.refresh_from_db()
    assert stored.outcome == "pending" and stored.attempts == 0  # within its lease: left
    WebhookEvent.objects.filter(pk=stored.pk).update(
        next_attempt_at=timezone.now() - timedelta(seconds=1)
    )
    post_event(client, event("email.delivered", message_id="other-2"))
    stored.refresh_from_db()
    assert stored.outcome == "applied" and stored.attempts == 1
    assert Suppression.objects.exists()
    assert [e.event_type for e in told] == ["delivered", "delivered", "bounced"]


def test_an_event_whose_processing_never_ran_is_applied_by_the_command(logged_send, told):
    store_event(json.dumps(event("email.bounced")).encode(), max_age=None)
    call_command("sendfleet_retry_events", stdout=StringIO())
    assert WebhookEvent.objects.get().outcome == "applied" and Suppression.objects.exists()


def test_an_event_is_processed_once(client, logged_send, told):
    post_event(client, event("email.bounced"))
    stored = WebhookEvent.objects.get()
    assert events.process_event(stored.pk) is False  # already applied: not again
    assert len(told) == 1 and stored.attempts == 1


# Unknown sends (timeouts, dropped connections): no message id in the log.


@pytest.fixture
def unknown_send():
    return SendLog.objects.create(
        recipient="ann@example.com", from_email="shop@example.com", status="unknown"
    )


def event_about_an_unlogged_send(event_type="email.delivered", **fields):
    return event(event_type, message_id="msg-new", from_email="Shop <Shop@example.com>") | fields


def test_an_event_resolves_the_one_unknown_send_it_can_be_about(client, unknown_send):
    post_event(client, event_about_an_unlogged_send())
    unknown_send.refresh_from_db()
    assert unknown_send.message_id == "msg-new" and unknown_send.status == "delivered"
    stored = WebhookEvent.objects.get()
    assert stored.outcome == "applied" and stored.send_log == unknown_send


def ambiguous(case, unknown_send):
    if case == "two unknown sends":
        SendLog.objects.create(
            recipient="ann@example.com", from_email="shop@example.com", status="unknown"
        )
    elif case == "another unlogged message id":
        WebhookEvent.objects.create(
            digest="e" * 64,
            event_type="email.sent",
            message_id="msg-other",
            recipient="ann@example.com",
            sender="shop@example.com",
            raw={},
            outcome="unknown_message",
        )
    elif case == "the unknown send is too old":
        SendLog.objects.filter(pk=unknown_send.pk).update(
            created_at=timezone.now() - timedelta(days=3)
        )
    fields = {"from_email": None} if case == "no sender in the event" else {}
    if case == "another sender":
        fields = {"from_email": "news@example.com"}
    return event_about_an_unlogged_send(**fields)


AMBIGUOUS = [
    "two unknown sends",
    "another unlogged message id",
    "the unknown send is too old",
    "no sender in the event",
    "another sender",
]


@pytest.mark.parametrize("case", AMBIGUOUS)
def test_an_event_leaves_unknown_sends_alone_when_in_doubt(client, unknown_send, case):
    post_event(client, ambiguous(case, unknown_send))
    assert not SendLog.objects.exclude(message_id="").exists()
    assert set(SendLog.objects.values_list("status", flat=True)) == {"unknown"}
    assert WebhookEvent.objects.get(message_id="msg-new").outcome == "unknown_message"


def test_events_before_their_unknown_send_resolve_it_once_it_is_written(client, monkeypatch):
    """The row of a timed-out send is written when the request gives up: after its events."""
    post_event(client, event_about_an_unlogged_send("email.sent"))
    post_event(client, event_about_an_unlogged_send("email.delivered"))
    row = SendLog.objects.create(
        recipient="ann@example.com", from_email="shop@example.com", status="unknown"
    )
    monkeypatch.setattr(event_drain.unknown_send_scan, "last", -1e9)  # the scan is due now
    post_event(client, event("email.delivered", message_id="unrelated"))
    row.refresh_from_db()
    assert row.message_id == "msg-new" and row.status == "delivered"
    assert set(row.webhook_events.values_list("outcome", flat=True)) == {"applied"}


def test_sendfleet_retry_events_resolves_unknown_sends_too(client):
    post_event(client, event_about_an_unlogged_send("email.bounced"))
    row = SendLog.objects.create(
        recipient="ann@example.com", from_email="shop@example.com", status="unknown"
    )
    out = StringIO()
    call_command("sendfleet_retry_events", stdout=out)
    row.refresh_from_db()
    assert row.message_id == "msg-new" and row.status == "bounced"
    assert "1 unknown sends resolved" in out.getvalue()


# The SQLite system check.


class WebhookRouted:
    urlpatterns = [path("sendfleet/", include("django_sendfleet.urls"))]


class NothingRouted:
    urlpatterns: list = []


DOCUMENTED = {
    "transaction_mode": "IMMEDIATE",
    "timeout": 20,
    "init_command": "PRAGMA journal_mode=WAL;",
}


@pytest.mark.parametrize(
    ("options", "missing"),
    [
        ({}, ["IMMEDIATE", "timeout", "WAL"]),
        (DOCUMENTED, []),
        (DOCUMENTED | {"transaction_mode": "DEFERRED"}, ["IMMEDIATE"]),
        ({k: v for k, v in DOCUMENTED.items() if k != "timeout"}, ["timeout"]),
        (DOCUMENTED | {"init_command": "PRAGMA synchronous=NORMAL"}, ["WAL"]),
        (DOCUMENTED | {"init_command": "pragma journal_mode = wal; pragma foo=1"}, []),
    ],
)
def test_the_documented_sqlite_options(options, missing):
    found = missing_sqlite_options(options)
    assert len(found) == len(missing)
    assert all(word in text for word, text in zip(missing, found, strict=True))


@pytest.mark.parametrize(
    ("urls", "options", "warned"),
    [(WebhookRouted, {}, True), (WebhookRouted, DOCUMENTED, False), (NothingRouted, {}, False)],
)
def test_sqlite_without_the_documented_options_is_a_warning_when_webhooks_are_routed(
    settings, monkeypatch, urls, options, warned
):
    settings.ROOT_URLCONF = urls
    monkeypatch.setitem(connection.settings_dict, "OPTIONS", options)  # read, not reconnected
    found = [m for m in checks.run_checks(tags=["sendfleet"]) if m.id == CHECK_ID]
    expected = warned and connection.vendor == "sqlite"  # other databases: never
    assert bool(found) is expected
    assert check_webhook_sqlite_options() == found


def test_a_process_looks_for_due_retries_at_most_once_a_second(
    client, logged_send, log_updates_fail, monkeypatch
):
    monkeypatch.setattr(event_drain.retry_look, "interval", 3600)
    stored = failed_bounce(client)  # the look after this answer found nothing due
    log_updates_fail()
    WebhookEvent.objects.filter(pk=stored.pk).update(next_attempt_at=timezone.now())
    post_event(client, event("email.delivered", message_id="other-1"))
    assert WebhookEvent.objects.get(pk=stored.pk).outcome == "failed"  # not looked for yet
    monkeypatch.setattr(event_drain.retry_look, "last", -1e9)
    post_event(client, event("email.delivered", message_id="other-2"))
    assert WebhookEvent.objects.get(pk=stored.pk).outcome == "applied"
