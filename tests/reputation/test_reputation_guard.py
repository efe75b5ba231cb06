"""The reputation guard: while the Shared account is at danger, bulk mailers stop (queued rows
held, synchronous sends refused) and transactional mailers keep sending; nothing is dropped.
The danger is seeded as the rows bounce events leave (the ``danger`` fixture); the level
moves with the sandbox's own events through the app's webhook view (``mail``)."""

from __future__ import annotations

from datetime import timedelta

import django
import pytest
from django.core.mail import EmailMessage
from django.utils import timezone

from django_sendfleet import tasks
from django_sendfleet.backends import EmailBackend
from django_sendfleet.exceptions import SendFleetReputationHold
from django_sendfleet.models import SendLog
from django_sendfleet.queued.held import held_rows, release_held_sends
from django_sendfleet.reputation import state as reputation_state
from django_sendfleet.reputation.guard import HOLD_RECHECK
from django_sendfleet.reputation.state import ReputationLevel
from tests.support.reputation import SENDER, SYNC, mail

pytestmark = [
    pytest.mark.usefixtures("sendfleet_settings"),
    pytest.mark.django_db,
    pytest.mark.sendfleet_sandbox(rate_limit=(10_000, 60)),
]

needs_mailers = pytest.mark.skipif(django.VERSION < (6, 1), reason="MAILERS is Django 6.1's")


def campaign(sandbox, using="newsletter", count=5, start=0):
    for n in range(start, start + count):
        EmailMessage("Our news", "Body", SENDER, [f"reader{n}@example.com"]).send(using=using)


def sent_to(sandbox, prefix):
    return sorted(r for r in sandbox.recipients if r.startswith(prefix))


@needs_mailers
def test_queued_bulk_rows_are_held_not_failed_while_at_danger(
    danger, django_capture_on_commit_callbacks
):
    before = len(danger.requests)
    with django_capture_on_commit_callbacks(execute=True):
        EmailMessage("Our news", "Body", SENDER, ["a@example.com", "b@example.com"]).send(
            using="newsletter"
        )
    assert len(danger.requests) == before  # nothing attempted
    rows = list(SendLog.objects.filter(mailer="newsletter"))
    assert {(r.status, r.error_code) for r in rows} == {("pending", "reputation_hold")}
    assert all(
        "reputation is at danger" in r.detail and "bounce rate 30.00 %" in r.detail for r in rows
    )
    soon = timezone.now() + HOLD_RECHECK
    assert all(abs(r.not_before - soon) < timedelta(seconds=30) for r in rows)
    assert all(r.attempts == 0 for r in rows)
    assert held_rows().count() == 2


@needs_mailers
def test_transactional_mailers_keep_sending_at_danger(danger, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        EmailMessage("Reset your password", "Body", SENDER, ["ann@example.com"]).send(
            using="receipts"
        )
    EmailMessage("Reset your password", "Body", SENDER, ["bob@example.com"]).send()
    assert sent_to(danger, "ann@") == ["ann@example.com"]
    assert sent_to(danger, "bob@") == ["bob@example.com"]
    assert set(
        SendLog.objects.filter(recipient__in=["ann@example.com", "bob@example.com"]).values_list(
            "status", flat=True
        )
    ) == {"queued"}
    assert not held_rows().exists()


def test_a_synchronous_bulk_send_raises_and_sends_nothing(danger):
    before = len(danger.requests)
    message = EmailMessage("Our news", "Body", SENDER, ["a@example.com", "b@example.com"])
    with pytest.raises(SendFleetReputationHold, match="reputation is at danger") as raised:
        EmailBackend(bulk=True).send_messages([message])
    assert len(danger.requests) == before
    assert "bounce rate 30.00 %" in str(raised.value)
    assert {r.status for r in message.anymail_status.recipients.values()} == {"failed"}
    rows = SendLog.objects.filter(recipient__in=["a@example.com", "b@example.com"])
    assert set(rows.values_list("status", "error_code")) == {("failed", "reputation_hold")}


def assert_says_it_failed(detail):
    """A synchronous hold says the send is failed and not sent later, never that it waits."""
    assert "this synchronous send was not attempted and is failed" in detail
    assert "nothing sends it later" in detail
    assert "wait" not in detail.replace("whose sends wait instead", "")


def test_a_hold_on_a_connection_opened_with_bulk_names_the_connection_not_the_mailer(danger):
    """The default mailer is transactional: a hold names the connection's ``bulk=True``."""
    message = EmailMessage("Our news", "Body", SENDER, ["a@example.com"])
    with pytest.raises(SendFleetReputationHold) as raised:
        EmailBackend(bulk=True).send_messages([message])
    detail = raised.value.detail
    assert detail.startswith("This connection (mailer 'default') was opened with bulk=True, ")
    assert "marked" not in detail
    assert_says_it_failed(detail)
    row = SendLog.objects.get(recipient="a@example.com")
    assert row.detail.startswith("This connection (mailer 'default') was opened with bulk=True")
    assert "not attempted and is failed" in row.detail


def test_a_hold_under_sendfleet_bulk_names_the_setting(danger, sendfleet_settings):
    sendfleet_settings["BULK"] = True
    message = EmailMessage("Our news", "Body", SENDER, ["a@example.com"])
    with pytest.raises(SendFleetReputationHold) as raised:
        EmailBackend().send_messages([message])
    assert raised.value.detail.startswith(
        "SENDFLEET['BULK'] is True, which makes every mailer's sends bulk, "
    )
    assert_says_it_failed(raised.value.detail)


@needs_mailers
def test_a_hold_on_a_synchronous_mailer_marked_bulk_names_the_mailer(danger, settings):
    settings.MAILERS = settings.MAILERS | {"digest": {"BACKEND": SYNC, "OPTIONS": {"bulk": True}}}
    message = EmailMessage("Our news", "Body", SENDER, ["a@example.com"])
    with pytest.raises(SendFleetReputationHold) as raised:
        message.send(using="digest")
    assert raised.value.detail.startswith("Mailer 'digest' is marked bulk in its MAILERS OPTIONS")
    assert_says_it_failed(raised.value.detail)


def test_a_held_queued_row_says_it_waits(
    danger, sendfleet_settings, django_capture_on_commit_callbacks
):
    """The queued worker holds the row: its detail says it waits, and never that it failed."""
    from django_sendfleet.backends import QueuedEmailBackend

    sendfleet_settings["BULK"] = True
    with django_capture_on_commit_callbacks(execute=True):
        QueuedEmailBackend().send_messages(
            [EmailMessage("Our news", "Body", SENDER, ["a@example.com"])]
        )
    row = held_rows().get()
    assert "SENDFLEET['BULK'] is True" in row.detail
    assert (
        "this queued send waits in the outbox until the level falls below danger or an operator "
        "releases it" in row.detail
    )
    assert "failed" not in row.detail and "not attempted" not in row.detail


def test_a_held_row_of_a_queued_connection_opened_with_bulk_names_the_connection(
    danger, django_capture_on_commit_callbacks
):
    from django_sendfleet.backends import QueuedEmailBackend

    with django_capture_on_commit_callbacks(execute=True):
        QueuedEmailBackend(bulk=True).send_messages(
            [EmailMessage("Our news", "Body", SENDER, ["a@example.com"])]
        )
    row = held_rows().get()
    assert "This connection (mailer 'default') was opened with bulk=True" in row.detail
    assert "this queued send waits in the outbox" in row.detail and "marked" not in row.detail


@needs_mailers
def test_a_held_row_of_a_queued_mailer_marked_bulk_names_the_mailer(
    danger, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        campaign(danger, count=1)
    row = held_rows().get()
    assert "Mailer 'newsletter' is marked bulk in its MAILERS OPTIONS" in row.detail
    assert "this queued send waits in the outbox" in row.detail


def test_the_log_names_the_hold_for_the_first_recipient_and_the_batch_for_the_others(
    danger, caplog
):
    message = EmailMessage("Our news", "Body", SENDER, ["a@example.com", "b@example.com"])
    with pytest.raises(SendFleetReputationHold):
        EmailBackend(bulk=True).send_messages([message])
    first = [r.getMessage() for r in caplog.records if "a@example.com" in r.getMessage()]
    assert first == [
        "SendFleet did not send to a@example.com [reputation_hold]: This connection (mailer "
        f"'default') was opened with bulk=True, {first[0].split(', ', 1)[1]}"
    ]
    assert "earlier send" not in first[0] and "reputation is at danger" in first[0]
    assert (
        "SendFleet skipped b@example.com: an earlier send in this batch failed with "
        "reputation_hold" in caplog.text
    )


def test_a_bulk_mailer_sends_while_the_account_is_healthy(shared_account):
    mail(shared_account, [f"ok+{n}@example.com" for n in range(10)])
    assert reputation_state.check_now().snapshot.accounts["shared"].level == "healthy"
    message = EmailMessage("Our news", "Body", SENDER, ["a@example.com"])
    assert EmailBackend(bulk=True).send_messages([message]) == 1


def test_a_bulk_mailer_sends_while_the_level_is_unknown(sandbox, sendfleet_settings):
    # No WEBHOOK_SECRET: no event can arrive, so the rates are unknown and nothing is held.
    sendfleet_settings["REPUTATION"] = {"MIN_SENDS": 1}
    mail(sandbox, [f"bounce+{n}@example.com" for n in range(5)])
    message = EmailMessage("Our news", "Body", SENDER, ["a@example.com"])
    assert EmailBackend(bulk=True).send_messages([message]) == 1


@needs_mailers
def test_held_rows_wait_while_danger_lasts_then_go_when_the_level_falls(
    danger, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        campaign(danger, count=3)
    ids = list(held_rows().values_list("pk", flat=True))
    assert len(ids) == 3

    # Their next look at the level, still at danger: held again, still not failed.
    held_rows().update(not_before=timezone.now())
    tasks.send_and_reschedule(ids)
    assert held_rows().count() == 3 and sent_to(danger, "reader") == []

    # Good sends bring the rate down (3 in 30: 10 %, warning): the next look sends them.
    mail(danger, [f"ok+{n}@example.com" for n in range(100, 120)])
    assert reputation_state.check_now().snapshot.accounts["shared"].level == "warning"
    held_rows().update(not_before=timezone.now())
    tasks.send_and_reschedule(ids)
    assert sent_to(danger, "reader") == [f"reader{n}@example.com" for n in range(3)]
    rows = SendLog.objects.filter(pk__in=ids)
    assert set(rows.values_list("status", "error_code")) == {("queued", "")}


@needs_mailers
def test_an_operator_release_sends_the_held_rows_at_danger(
    danger, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        campaign(danger, count=3)
    assert held_rows().count() == 3
    released = release_held_sends()
    assert (released.modes, released.rows) == (["shared"], 3)
    assert sent_to(danger, "reader") == [f"reader{n}@example.com" for n in range(3)]
    assert not held_rows().exists()
    assert ReputationLevel.objects.get(mode="shared", mailer="").released
    # Released until the level changes: the rest of the campaign goes too.
    with django_capture_on_commit_callbacks(execute=True):
        campaign(danger, count=2, start=10)
    assert len(sent_to(danger, "reader")) == 5


@needs_mailers
def test_a_release_ends_when_the_level_changes(danger, django_capture_on_commit_callbacks):
    release_held_sends()
    mail(danger, [f"ok+{n}@example.com" for n in range(100, 120)])  # 3 in 30: warning
    reputation_state.check_now()
    mail(danger, [f"bounce+{n}@example.com" for n in range(100, 110)])  # 13 in 40: danger
    assert reputation_state.check_now().snapshot.accounts["shared"].level == "danger"
    assert not ReputationLevel.objects.get(mode="shared", mailer="").released
    with django_capture_on_commit_callbacks(execute=True):
        campaign(danger, count=2)
    assert held_rows().count() == 2


def test_a_release_seen_by_another_process_is_honoured_at_once(danger):
    """Another process released the danger; this one's figures still say danger."""
    seen = reputation_state.current()
    ReputationLevel.objects.filter(mailer="").update(released_at=timezone.now())
    assert reputation_state.current() is seen  # not refreshed yet
    message = EmailMessage("Our news", "Body", SENDER, ["a@example.com"])
    assert EmailBackend(bulk=True).send_messages([message]) == 1


def test_sendfleet_bulk_marks_every_queued_send_bulk(
    danger, sendfleet_settings, django_capture_on_commit_callbacks
):
    """Before Django 6.1 there is one mailer: SENDFLEET["BULK"] marks it, queued rows too."""
    from django_sendfleet.backends import QueuedEmailBackend

    sendfleet_settings["BULK"] = True
    before = len(danger.requests)
    with django_capture_on_commit_callbacks(execute=True):
        QueuedEmailBackend().send_messages(
            [EmailMessage("Our news", "Body", SENDER, ["a@example.com", "b@example.com"])]
        )
    assert len(danger.requests) == before
    assert held_rows().count() == 2


def test_figures_that_cannot_be_read_never_stop_a_send(danger, monkeypatch, caplog):
    from django_sendfleet.reputation import rates as reputation

    def broken(*args, **kwargs):
        raise RuntimeError("the rollups are away")

    monkeypatch.setattr(reputation, "compute", broken)
    reputation_state.forget()
    message = EmailMessage("Our news", "Body", SENDER, ["a@example.com"])
    assert EmailBackend(bulk=True).send_messages([message]) == 1  # unguarded, not broken
    assert "could not read the reputation levels (RuntimeError" in caplog.text
