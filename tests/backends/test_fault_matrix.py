"""Every way a send can fail, for both backends, against the sandbox over real HTTP.

Each row of the matrix is one failure (every documented error code, plus a read timeout, a
dropped connection, a refused connection, a malformed 200, an undocumented 404 and a proxy's
504) and says what must follow, whichever backend sent the message:

- the exception ``EmailBackend`` raises (the queued backend never raises: its worker records);
- how many HTTP attempts were made, and the waits between them, as the error table says
  (``EmailBackend`` sleeps between retries; ``QueuedEmailBackend`` reschedules the row, and the
  test drives the worker, fast-forwarding each row's ``not_before``, until the row is final);
- the send log row: status, error_code, http_status, attempts;
- the signals fired: ``send_failed``, ``send_forbidden``, ``recipient_suppressed``;
- no message lost or doubled: the sandbox's accepted messages per recipient, and a final
  queued row is never sent again.

The matrix is checked against ``ERROR_TABLE``, so a new row of the table cannot be forgotten.
"""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta
from io import StringIO

import pytest
from django.core.cache import caches
from django.core.mail import EmailMessage
from django.core.management import call_command
from django.db import transaction
from django.utils import timezone

from django_sendfleet import exceptions as exc
from django_sendfleet import tasks
from django_sendfleet.backends import EmailBackend, QueuedEmailBackend
from django_sendfleet.error_table import ERROR_TABLE, SPECS_BY_CODE
from django_sendfleet.models import SendLog, Suppression
from django_sendfleet.queued import outbox, worker
from tests.support.fault_matrix import (
    LOCAL_ROWS,
    MATRIX,
    PRIMER,
    RECIPIENT,
    TESTED_APART,
    attempts_made,
    run_queued,
    run_sync,
)
from tests.support.messages import SENDER

pytestmark = [
    pytest.mark.usefixtures("sendfleet_settings"),
    pytest.mark.django_db,
    # Over real HTTP: dropped connections and timeouts as the wire produces them
    # (tests/sandbox/test_inprocess.py checks the in-process sandbox gives the client the same).
    pytest.mark.sendfleet_sandbox(socket=True),
]


# Arrangements.


# The matrix against the error table.


def test_every_row_the_network_or_the_api_can_produce_is_in_the_matrix():
    covered = {case.code for case in MATRIX} | TESTED_APART
    assert {spec.code for spec in ERROR_TABLE} - LOCAL_ROWS <= covered
    assert covered - {""} <= set(SPECS_BY_CODE)
    # Every HTTP row in particular (a new one added to the table must be added here).
    assert {spec.code for spec in ERROR_TABLE if spec.http_status is not None} <= covered


@pytest.mark.parametrize("case", [c for c in MATRIX if c.code], ids=lambda c: c.id)
def test_the_matrix_agrees_with_the_error_table(case):
    spec = SPECS_BY_CODE[case.code]
    if spec.http_status is not None:
        assert case.http_status == spec.http_status
    # Persistent failures: as many attempts as the table allows (SendFleet's docs: 502 at most
    # 4 attempts, 500 retried once, the throttle retried with backoff, the rest never).
    assert case.attempts == (spec.max_attempts if spec.retryable else 1)
    assert len(case.waits) == case.attempts - 1
    if case.raises not in (None, exc.SendFleetRecipientsRefused):
        assert case.raises is spec.exception
    assert case.status == (
        "failed" if spec.recipient_status == "invalid" else spec.recipient_status
    )


# Running a case.


@pytest.mark.parametrize("backend", ["EmailBackend", "QueuedEmailBackend"])
@pytest.mark.parametrize("case", MATRIX, ids=lambda c: c.id)
def test_fault(case, backend, world, fired, django_capture_on_commit_callbacks):
    case.arrange(world)
    primed = Counter(r.payload["to"] for r in world.sandbox.accepted)
    queued = backend == "QueuedEmailBackend"
    if queued:
        outcome, waits = run_queued(case, world, django_capture_on_commit_callbacks)
    else:
        outcome, waits = run_sync(case, world)
    status, expected_signals = (case.queued if queued and case.queued else
                                (case.status, case.signals))  # fmt: skip
    recipient = world.recipient

    # What the caller sees.
    if queued:
        assert outcome == 1  # safely in the outbox, whatever happens next
    elif case.raises is None:
        assert outcome == 1
    else:
        assert type(outcome) is case.raises, outcome
        if case.raises is not exc.SendFleetRecipientsRefused:
            assert outcome.error_code == case.code and outcome.attempts == case.attempts
            assert outcome.recipient == recipient and outcome.status_code == case.http_status

    # Attempts, and the waits between them.
    held = status == "pending"
    if not world.unreachable:
        assert attempts_made(world, recipient) == case.attempts
    expected_waits = case.waits if not held else ()
    assert len(waits) == len(expected_waits), waits
    for wait, (shortest, longest) in zip(waits, expected_waits, strict=True):
        assert shortest - 0.01 <= wait <= longest + 0.5, waits  # + the queued run's own time

    # The send log row.
    [row] = SendLog.objects.filter(recipient=recipient)
    assert (row.status, row.error_code, row.http_status, row.attempts) == (
        status,
        case.code,
        case.http_status,
        case.attempts,
    )
    if queued:
        assert row.claim_token == "" and row.lease_expires_at is None
        if held and case.code == "usage_limit_exceeded":  # kept for the 1st of next month
            now = datetime.now(UTC)
            assert row.content_id is not None
            assert row.not_before == datetime(
                now.year + (now.month == 12), now.month % 12 + 1, 1, tzinfo=UTC
            )
        elif held:  # kept until the key's pause after its 401 ends
            pause = (row.not_before - timezone.now()).total_seconds()
            assert row.content_id is not None and 100 < pause <= 120
        else:
            assert row.content_id is None and row.not_before is None

    # The signals.
    assert tuple(name for name, _ in fired) == expected_signals
    for name, kwargs in fired:
        assert kwargs["recipient"] == recipient
        assert isinstance(kwargs["error"], SPECS_BY_CODE[case.code].exception)
        assert kwargs["error"].error_code == case.code
        assert kwargs["message"].to == [recipient]
        if name == "send_forbidden":
            assert kwargs["error_code"] == case.code
            assert kwargs["from_domain"] == world.sender.rpartition("@")[2].strip(">")
        if name == "recipient_suppressed":
            assert kwargs["source"] == "api"
            assert Suppression.objects.filter(email=recipient).exists()

    # Nothing lost, nothing doubled; and a final row is never sent again.
    accepted = Counter(r.payload["to"] for r in world.sandbox.accepted) - primed
    assert accepted == (Counter({recipient: case.accepted}) if case.accepted else Counter())
    if queued:
        requests_before = attempts_made(world, recipient)
        SendLog.objects.filter(pk=row.pk).update(not_before=None)
        tasks.send_and_reschedule([row.pk])
        call_command("sendfleet_requeue", older_than=0, stdout=StringIO())
        # A row held for the quota is tried again when due (and held again); one held for a
        # refused key is not even tried while the key's pause lasts.
        again = 1 if case.code == "usage_limit_exceeded" else 0
        assert attempts_made(world, recipient) == requests_before + again


# A queued worker that dies mid-send: the one failure only the queued backend has.


def test_a_worker_dying_mid_send_leaves_the_row_unknown_and_never_resends_it(sandbox, fired):
    with transaction.atomic():
        QueuedEmailBackend().send_messages([EmailMessage("Hi", "Body", SENDER, [RECIPIENT])])
        row = SendLog.objects.get()
    # The task never ran; a worker claims the row, then dies before recording anything.
    claimed = worker.claim(row.pk, lease_seconds=1)
    assert claimed is not None and claimed.status == "sending"
    assert outbox.expire_leases(now=timezone.now() + timedelta(seconds=2)) == 1
    row.refresh_from_db()
    assert (row.status, row.error_code, row.attempts) == ("unknown", "lease_expired", 0)
    assert [name for name, _ in fired] == ["send_failed"]
    assert isinstance(fired[0][1]["error"], SPECS_BY_CODE["lease_expired"].exception)
    tasks.send_and_reschedule([row.pk])
    call_command("sendfleet_requeue", older_than=0, stdout=StringIO())
    assert sandbox.requests == []


# The shared rate limiter (SENDFLEET["RATE_LIMIT"]) with no slot free within MAX_RETRY_WAIT.


@pytest.fixture
def limiter_with_no_free_slot(sandbox, sendfleet_settings):
    """A limit of 1 request a minute, used up by a first send; the limiter's log is in the
    cache, which is cleared afterwards so it cannot outlast the test."""
    sendfleet_settings.update(RATE_LIMIT=(1, 60), MAX_RETRY_WAIT=0)
    EmailBackend().send_messages([EmailMessage("Primer", "Body", SENDER, [PRIMER])])
    assert [r.payload["to"] for r in sandbox.accepted] == [PRIMER]
    yield sendfleet_settings
    caches[sendfleet_settings.get("RATE_LIMIT_CACHE", "default")].clear()


def test_sync_send_waiting_too_long_for_the_rate_limit_is_not_attempted(
    sandbox, limiter_with_no_free_slot, fired
):
    message = EmailMessage("Matrix", "Body", SENDER, [RECIPIENT])
    with pytest.raises(exc.SendFleetRateLimitWait) as caught:
        EmailBackend().send_messages([message])
    assert caught.value.attempts == 0 and 0 < caught.value.retry_after <= 61
    assert caught.value.recipient == RECIPIENT
    assert [r.payload["to"] for r in sandbox.requests] == [PRIMER]  # nothing sent
    row = SendLog.objects.get(recipient=RECIPIENT)
    assert (row.status, row.error_code, row.http_status, row.attempts) == (
        "failed",
        "rate_limit_wait",
        None,
        0,
    )
    assert [name for name, _ in fired] == ["send_failed"]
    assert isinstance(fired[0][1]["error"], SPECS_BY_CODE["rate_limit_wait"].exception)


def test_queued_send_waiting_for_the_rate_limit_is_put_back_and_sent_once_later(
    sandbox, limiter_with_no_free_slot, fired, django_capture_on_commit_callbacks
):
    message = EmailMessage("Matrix", "Body", SENDER, [RECIPIENT])
    with django_capture_on_commit_callbacks(execute=True):
        assert QueuedEmailBackend().send_messages([message]) == 1
    row = SendLog.objects.get(recipient=RECIPIENT)
    assert (row.status, row.error_code, row.attempts) == ("pending", "rate_limit_wait", 0)
    assert 0 < (row.not_before - timezone.now()).total_seconds() <= 61
    assert row.content_id is not None and fired == []
    # A slot frees up (here: the limit is lifted); the next run sends it, once.
    limiter_with_no_free_slot["RATE_LIMIT"] = None
    SendLog.objects.filter(pk=row.pk).update(not_before=timezone.now())
    tasks.send_and_reschedule([row.pk])
    tasks.send_and_reschedule([row.pk])
    row.refresh_from_db()
    assert (row.status, row.error_code, row.http_status, row.attempts) == ("queued", "", 200, 1)
    assert [r.payload["to"] for r in sandbox.accepted] == [PRIMER, RECIPIENT]
    assert fired == []
