"""The per-day rollups: always equal to a fresh GROUP BY of the send log, whatever writes it.

The property test drives every code path that writes the log (the synchronous and queued
backends, the worker, webhook events, lease expiry, prune, the admin's resend, the ORM) in
orders hypothesis chooses, and compares the rollups with a count of the log after each step.
"""

from __future__ import annotations

import datetime
import hashlib
import hmac
import importlib
import json
import random
import threading
from collections import Counter
from io import StringIO
from types import SimpleNamespace

import pytest
from django.apps import apps as django_apps
from django.core.mail import EmailMessage
from django.core.management import CommandError, call_command
from django.db import NotSupportedError, connection, connections, transaction
from django.db.models import F
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from django_sendfleet import tasks
from django_sendfleet.backends import EmailBackend, QueuedEmailBackend
from django_sendfleet.models import SendLog, Suppression, rollups
from django_sendfleet.models.log_status import LogStatus
from django_sendfleet.models.rollups import Key, SendRollup
from django_sendfleet.queued import outbox, worker
from django_sendfleet.records import rollup_rebuild
from tests.support.examples import examples

WEBHOOK_SECRET = "whsec_rollups_0123456789"


def assert_rollups_match_the_log() -> None:
    assert rollups.counted() == rollup_rebuild.counted_in_log()


def row(**fields) -> SendLog:
    values = {
        "recipient": "ann@example.com",
        "from_email": "shop@example.com",
        "mailer": "default",
        "mode": "shared",
        "status": LogStatus.QUEUED,
        **fields,
    }
    return SendLog(**values)


# Every write path, in any order (hypothesis)

RECIPIENTS = st.sampled_from(["fresh", "fresh", "api_suppressed", "locally_suppressed"])
EVENT_TYPES = st.sampled_from(
    ["email.sent", "email.delivered", "email.failed", "email.bounced", "email.complained"]
)
STATUSES = st.sampled_from(LogStatus.values)
PICK = st.integers(min_value=0, max_value=10_000)  # which row, modulo the rows there are

OPERATIONS = st.one_of(
    st.tuples(st.just("send"), st.lists(RECIPIENTS, min_size=1, max_size=3), st.booleans()),
    st.tuples(st.just("queue"), st.lists(RECIPIENTS, min_size=1, max_size=3)),
    st.tuples(st.just("work"), st.booleans()),
    st.tuples(st.just("claim_and_die"), PICK),
    st.tuples(st.just("expire_leases")),
    st.tuples(st.just("webhook_event"), PICK, EVENT_TYPES),
    st.tuples(st.just("age"), PICK, st.integers(min_value=1, max_value=40)),
    st.tuples(st.just("prune"), st.integers(min_value=1, max_value=30)),
    st.tuples(st.just("resend"), PICK),
    st.tuples(st.just("save"), PICK, STATUSES, st.booleans()),
    st.tuples(
        st.just("create"),
        STATUSES,
        st.sampled_from(["", "shared", "byoc"]),
        st.sampled_from(["default", "bulk"]),
        st.integers(min_value=0, max_value=3),
    ),
    st.tuples(st.just("delete_one"), PICK),
    st.tuples(st.just("delete_status"), STATUSES),
    st.tuples(st.just("bulk_update"), PICK, STATUSES),
)


class LogWriter:
    """Runs one operation through the code that does it in production."""

    def __init__(self, sandbox, admin_client: Client) -> None:
        self.sandbox = sandbox
        self.admin_client = admin_client
        self.sent = 0

    def pick(self, index: int, **filters) -> SendLog | None:
        rows = list(SendLog.objects.filter(**filters).order_by("pk"))
        return rows[index % len(rows)] if rows else None

    def message(self, kinds: list[str], sender: str = "Shop <shop@example.com>") -> EmailMessage:
        to = []
        for kind in kinds:
            self.sent += 1
            if kind == "api_suppressed":
                to.append("suppressed@example.net")  # the sandbox answers 422
            elif kind == "locally_suppressed":
                Suppression.objects.get_or_create(email="gone@example.com")
                to.append("gone@example.com")
            else:
                to.append(f"customer{self.sent}@example.com")
        return EmailMessage("Your receipt", "Thanks.", sender, to)

    def send(self, kinds: list[str], verified: bool) -> None:
        sender = "Shop <shop@example.com>" if verified else "shop@unverified.example"  # 403
        EmailBackend(fail_silently=True).send_messages([self.message(kinds, sender)])

    def queue(self, kinds: list[str]) -> None:
        QueuedEmailBackend(fail_silently=True).send_messages([self.message(kinds)])

    def work(self, fault: bool) -> None:
        if fault:
            self.sandbox.inject_fault(502)  # the first row is given back to the outbox
        SendLog.objects.filter(status=LogStatus.PENDING).update(not_before=None)
        pending = SendLog.objects.filter(status=LogStatus.PENDING).values_list("pk", flat=True)
        tasks.send_and_reschedule(list(pending))

    def claim_and_die(self, index: int) -> None:
        pending = self.pick(index, status=LogStatus.PENDING)
        if pending is not None:
            worker.claim(pending.pk, lease_seconds=1)  # and the worker is never heard of again

    def expire_leases(self) -> None:
        outbox.expire_leases(now=timezone.now() + datetime.timedelta(minutes=5))

    def webhook_event(self, index: int, event_type: str) -> None:
        sent = self.pick(index, message_id__gt="")
        if sent is None:
            return
        event = {
            "event_type": event_type,
            "message_id": sent.message_id,
            "to": sent.recipient,
            "timestamp": timezone.now().isoformat(),
        }
        body = json.dumps(event).encode()
        signature = "sha256=" + hmac.new(WEBHOOK_SECRET.encode(), body, hashlib.sha256).hexdigest()
        response = Client().post(
            reverse("sendfleet-webhook"),
            data=body,
            content_type="application/json",
            HTTP_X_SENDFLEET_SIGNATURE=signature,
            HTTP_X_SENDFLEET_EVENT=event_type,
        )
        assert response.status_code == 200

    def age(self, index: int, days: int) -> None:
        # An F() expression: the new day is computed by the database.
        chosen = self.pick(index)
        if chosen is not None:
            older = F("created_at") - datetime.timedelta(days=days)
            SendLog.objects.filter(pk__lte=chosen.pk).update(created_at=older)

    def prune(self, days: int) -> None:
        call_command("sendfleet_prune", days=days, stdout=StringIO())

    def resend(self, index: int) -> None:
        chosen = self.pick(index, status__in=[LogStatus.QUEUED, LogStatus.FAILED])
        if chosen is not None:
            data = {"action": "resend", "_selected_action": [chosen.pk]}
            self.admin_client.post(reverse("admin:django_sendfleet_sendlog_changelist"), data)

    def save(self, index: int, status: str, only_status: bool) -> None:
        chosen = self.pick(index)
        if chosen is not None:
            chosen.status = status
            chosen.mode = "byoc"  # written only without update_fields
            chosen.save(update_fields=["status"] if only_status else None)

    def create(self, status: str, mode: str, mailer: str, days_ago: int) -> None:
        created_at = timezone.now() - datetime.timedelta(days=days_ago)
        row(status=status, mode=mode, mailer=mailer, created_at=created_at).save()

    def delete_one(self, index: int) -> None:
        chosen = self.pick(index)
        if chosen is not None:
            chosen.delete()

    def delete_status(self, status: str) -> None:
        SendLog.objects.filter(status=status).delete()

    def bulk_update(self, index: int, status: str) -> None:
        chosen = self.pick(index)
        if chosen is not None:
            others = list(SendLog.objects.filter(pk__gte=chosen.pk)[:3])
            for other in others:
                other.status = status
            SendLog.objects.bulk_update(others, ["status"])  # a Case() per row


@pytest.mark.django_db
@pytest.mark.sendfleet_sandbox(rate_limit=(1_000_000, 60))
@settings(
    max_examples=examples(30),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(operations=st.lists(OPERATIONS, min_size=1, max_size=12))
def test_rollups_equal_the_log_after_any_mix_of_writes(
    operations, sandbox, sendfleet_settings, admin_client
):
    sendfleet_settings["LOG_CONTENT"] = True  # so that the admin can resend
    sendfleet_settings["WEBHOOK_SECRET"] = WEBHOOK_SECRET
    writer = LogWriter(sandbox, admin_client)
    for name, *arguments in operations:
        getattr(writer, name)(*arguments)
        assert_rollups_match_the_log()


# Each way of writing through the ORM


def test_rollup_columns_hold_whatever_the_log_columns_hold():
    for name in rollups.KEY_FIELDS:
        log_field, rollup_field = SendLog._meta.get_field(name), SendRollup._meta.get_field(name)
        assert (rollup_field.max_length, rollup_field.null) == (log_field.max_length, False)


@pytest.mark.django_db
def test_bulk_create_counts_the_rows_in_one_more_statement():
    now = timezone.now()
    rows = [row(status=LogStatus.QUEUED) for _ in range(3)] + [
        row(status=LogStatus.FAILED, error_code="rate_limited", mode="", created_at=now)
    ]
    SendLog.objects.bulk_create(rows)
    today = rollups.day_of(now)
    assert rollups.counted() == Counter(
        {
            Key(today, "default", "shared", "queued", ""): 3,
            Key(today, "default", "", "failed", "rate_limited"): 1,
        }
    )


@pytest.mark.django_db
def test_a_status_change_moves_one_count_from_the_old_key_to_the_new():
    first, second = SendLog.objects.bulk_create([row(), row()])
    SendLog.objects.filter(pk=first.pk).update(status=LogStatus.DELIVERED)
    today = rollups.today()
    assert rollups.counted() == Counter(
        {
            Key(today, "default", "shared", "queued", ""): 1,
            Key(today, "default", "shared", "delivered", ""): 1,
        }
    )
    # An update that changes no key column costs no extra query.
    with CaptureQueriesContext(connection) as queries:
        SendLog.objects.filter(pk=second.pk).update(detail="checked")
    assert len(queries) == 1


@pytest.mark.django_db
def test_an_update_computed_by_the_database_is_read_back():
    SendLog.objects.bulk_create([row(), row(status=LogStatus.FAILED)])
    SendLog.objects.update(created_at=F("created_at") - datetime.timedelta(days=3))
    SendLog.objects.bulk_update(
        [SendLog(pk=pk, status="bounced") for pk in SendLog.objects.values_list("pk", flat=True)],
        ["status"],
    )
    three_days_ago = rollups.today() - datetime.timedelta(days=3)
    assert rollups.counted() == Counter(
        {Key(three_days_ago, "default", "shared", "bounced", ""): 2}
    )


@pytest.mark.django_db
def test_save_and_delete_of_one_row():
    entry = row()
    entry.save()
    entry.status, entry.mode = LogStatus.BOUNCED, "byoc"
    entry.save(update_fields=["status"])  # mode is not written
    entry.refresh_from_db()
    assert entry.mode == "shared"
    today = rollups.today()
    assert rollups.counted() == Counter({Key(today, "default", "shared", "bounced", ""): 1})
    entry.mode = "byoc"
    entry.save()
    assert rollups.counted() == Counter({Key(today, "default", "byoc", "bounced", ""): 1})
    entry.delete()
    assert rollups.counted() == Counter()
    assert_rollups_match_the_log()


@pytest.mark.django_db
def test_queryset_delete_uncounts_the_rows_and_answers_like_django():
    SendLog.objects.bulk_create([row(), row(), row(status=LogStatus.FAILED)])
    assert SendLog.objects.filter(status="queued").delete() == (
        2,
        {"django_sendfleet.SendLog": 2},
    )
    assert sum(rollups.counted().values()) == 1
    assert_rollups_match_the_log()


@pytest.mark.django_db
def test_writes_whose_effect_cannot_be_counted_are_refused():
    with pytest.raises(NotSupportedError):
        SendLog.objects.bulk_create([row()], ignore_conflicts=True)
    with pytest.raises(TypeError):
        SendLog.objects.all()[:1].update(status="failed")
    with pytest.raises(TypeError):
        SendLog.objects.values("pk").delete()


@pytest.mark.django_db
def test_a_rolled_back_write_leaves_the_rollups_as_they_were():
    SendLog.objects.bulk_create([row()])
    with pytest.raises(RuntimeError), transaction.atomic():
        SendLog.objects.bulk_create([row(), row()])
        SendLog.objects.update(status=LogStatus.FAILED)
        raise RuntimeError("the caller's transaction fails")
    assert sum(rollups.counted().values()) == 1
    assert_rollups_match_the_log()


@pytest.mark.django_db
def test_the_portable_upsert_for_databases_without_on_conflict(monkeypatch):
    monkeypatch.setattr(connection, "vendor", "another")
    SendLog.objects.bulk_create([row(), row()])
    SendLog.objects.filter(pk=SendLog.objects.first().pk).update(status=LogStatus.DELIVERED)
    monkeypatch.undo()
    assert_rollups_match_the_log()


@pytest.mark.django_db
def test_rows_count_on_their_day_in_settings_time_zone(settings):
    settings.TIME_ZONE = "America/New_York"
    # 03:00 UTC is still the day before in New York (UTC-5, or -4 in summer), whatever zone a
    # request activated (in Tokyo it is already noon of the same day).
    utc_day = timezone.now().date() - datetime.timedelta(days=1)
    created_at = datetime.datetime.combine(utc_day, datetime.time(3), tzinfo=datetime.UTC)
    with timezone.override("Asia/Tokyo"):
        SendLog.objects.bulk_create([row(created_at=created_at)])
        assert rollups.counted() == Counter(
            {Key(utc_day - datetime.timedelta(days=1), "default", "shared", "queued", ""): 1}
        )
        assert_rollups_match_the_log()


@pytest.mark.django_db
def test_totals_by_mode_and_status_over_seven_days_for_the_reputation_rates():
    now = timezone.now()
    SendLog.objects.bulk_create(
        [row(mode="shared", created_at=now - datetime.timedelta(days=n)) for n in range(10)]
        + [row(mode="byoc", status=LogStatus.BOUNCED, created_at=now)]
        + [row(mode="shared", status=LogStatus.COMPLAINED, mailer="bulk", created_at=now)]
    )
    today = rollups.day_of(now)
    week = rollups.totals(today - datetime.timedelta(days=6), today, by=("mode", "status"))
    assert week == {("shared", "queued"): 7, ("byoc", "bounced"): 1, ("shared", "complained"): 1}
    by_mailer = rollups.totals(today, today, by=("mailer",))
    assert by_mailer == {("default",): 2, ("bulk",): 1}
    with pytest.raises(ValueError):
        rollups.totals(today, today, by=("recipient",))


# Repair: the command


@pytest.mark.django_db
def test_the_command_finds_drift_and_rebuild_repairs_it():
    SendLog.objects.bulk_create([row(), row(), row(status=LogStatus.FAILED)])
    call_command("sendfleet_rollups", stdout=StringIO())  # they match
    with connection.cursor() as cursor:  # raw SQL: bypasses the ORM, and the rollups
        cursor.execute("UPDATE django_sendfleet_sendlog SET status = 'delivered'")
    SendRollup.objects.create(
        day=rollups.today() - datetime.timedelta(days=40), status="queued", sends=5
    )
    out = StringIO()
    with pytest.raises(CommandError, match="4 rollup"):
        call_command("sendfleet_rollups", stdout=out)
    assert "status=delivered error_code='': rollup 0, log 3" in out.getvalue()
    call_command("sendfleet_rollups", "--rebuild", stdout=StringIO())
    assert_rollups_match_the_log()
    assert not SendRollup.objects.filter(day__lt=rollups.today()).exists()


@pytest.mark.django_db
def test_rebuild_of_the_last_days_leaves_older_days_alone():
    old = timezone.now() - datetime.timedelta(days=10)
    SendLog.objects.bulk_create([row(created_at=old), row()])
    SendRollup.objects.update(sends=F("sends") + 1)  # drift on both days
    call_command("sendfleet_rollups", "--rebuild", "--days", "2", stdout=StringIO())
    assert rollup_rebuild.differences() == {
        Key(rollups.day_of(old), "default", "shared", "queued", ""): (2, 1)
    }
    with pytest.raises(CommandError):
        call_command("sendfleet_rollups", "--days", "0")


@pytest.mark.django_db
def test_the_migration_counts_the_rows_already_logged():
    SendLog.objects.bulk_create([row(), row(status=LogStatus.FAILED)])
    SendRollup.objects.all().delete()  # as before the migration
    migration = importlib.import_module("django_sendfleet.migrations.0007_send_rollups")
    migration.count_logged_rows(django_apps, SimpleNamespace(connection=connection))
    assert_rollups_match_the_log()


# Concurrency (PostgreSQL: SQLite has one writer at a time)


def concurrent_writes(worker_number: int, row_ids: list[int], rounds: int) -> None:
    rng = random.Random(worker_number)
    try:
        for _ in range(rounds):
            action = rng.random()
            if action < 0.6:
                # Several writers change the same rows at once, as the worker and webhooks do.
                chosen = rng.sample(row_ids, 3)
                status = rng.choice(LogStatus.values)
                SendLog.objects.filter(pk__in=chosen).update(status=status)
            elif action < 0.8:
                status = rng.choice(LogStatus.values)
                SendLog.objects.filter(status=status).update(error_code="server_error")
            else:
                SendLog.objects.bulk_create([row(status=rng.choice(LogStatus.values))])
    finally:
        connections.close_all()


@pytest.mark.django_db(transaction=True)
def test_rollups_stay_exact_under_concurrent_writers():
    if connection.vendor != "postgresql":
        pytest.skip("concurrent writers need PostgreSQL (DATABASE_URL)")
    rows = SendLog.objects.bulk_create([row() for _ in range(20)])
    row_ids = [entry.pk for entry in rows]
    errors: list[BaseException] = []

    def run(number: int) -> None:
        try:
            concurrent_writes(number, row_ids, rounds=40)
        except BaseException as error:  # a deadlock would surface here
            errors.append(error)

    threads = [threading.Thread(target=run, args=(n,)) for n in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert_rollups_match_the_log()
