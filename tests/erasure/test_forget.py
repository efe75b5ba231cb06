"""Forgetting a person (issue 23, item 7): ``sendfleet_forget`` and the admin's action erase
every row and body about an address, in bounded batches, and the address stays suppressed by a
keyed hash that the send path checks like the list itself.

Sends go to the sandbox over HTTP, events through the signed webhook endpoint, rows into the
test database (SQLite, or PostgreSQL with DATABASE_URL).
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from io import StringIO

import pytest
from django.contrib.auth.models import Permission
from django.core.management import CommandError, call_command
from django.db import connection, connections
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils.crypto import salted_hmac

from django_sendfleet.backends import EmailBackend, QueuedEmailBackend
from django_sendfleet.erasure import match as erasure_match
from django_sendfleet.models import (
    MessageContent,
    SendLog,
    Suppression,
    WebhookEvent,
    forgotten,
    rollups,
)
from django_sendfleet.models.forgotten import FORGOTTEN, ForgottenAddress
from django_sendfleet.queued import worker
from django_sendfleet.records import rollup_rebuild
from django_sendfleet.sandbox import SUPPRESSED_EMAIL
from tests.support.messages import message
from tests.support.webhooks import SECRET, post_event

pytestmark = [pytest.mark.usefixtures("sendfleet_settings"), pytest.mark.django_db]

ANN = "ann@example.com"


@pytest.fixture
def webhooks(sendfleet_settings):
    sendfleet_settings["WEBHOOK_SECRET"] = SECRET
    return sendfleet_settings


@pytest.fixture
def logged_content(sendfleet_settings):
    sendfleet_settings["LOG_CONTENT"] = True


def stored_text() -> str:
    """Every value the package's tables hold about sends, as one lower-cased text."""
    parts: list[str] = []
    for model in (SendLog, MessageContent, WebhookEvent, Suppression, ForgottenAddress):
        for row in model.objects.values():
            parts.append(json.dumps(row, default=str, ensure_ascii=False))
    return "\n".join(parts).lower()


def forget(*addresses: str, **options) -> dict:
    out = StringIO()
    call_command("sendfleet_forget", *addresses, "--json", stdout=out, **options)
    return json.loads(out.getvalue())


def send(*messages) -> None:
    EmailBackend(fail_silently=True).send_messages(list(messages))


def event(event_type: str, message_id: str, to: str, **fields) -> dict:
    return {"event_type": event_type, "message_id": message_id, "to": to} | fields


@pytest.mark.usefixtures("webhooks", "logged_content")
def test_forget_erases_rows_content_events_and_suppression_and_keeps_the_address_suppressed(
    client, sandbox
):
    send(
        message(to=["Ann <Ann@Example.com>"], subject="Ann's receipt"),
        message(to=["ann@example.com", "bob@example.com"], subject="Newsletter"),
        message(to=["bob@example.com"], subject="Bob's receipt"),
    )
    ann_rows = SendLog.objects.filter(recipient__in=["Ann@Example.com", ANN]).order_by("pk")
    ann_ids = list(ann_rows.values_list("message_id", flat=True))
    post_event(client, event("email.delivered", ann_ids[0], "Ann@Example.com"))
    post_event(client, event("email.complained", ann_ids[1], ANN))
    post_event(client, event("email.delivered", "msg-not-logged", "ANN@example.com"))
    post_event(client, event("email.delivered", sandbox.accepted[2].message_id, "bob@example.com"))
    assert Suppression.objects.filter(email=ANN).exists()  # the complaint
    digests = set(WebhookEvent.objects.values_list("digest", flat=True))
    bob_before = list(SendLog.objects.filter(recipient="bob@example.com").values())
    counts_before = rollups.counted()

    report = forget("Ann@Example.COM")

    assert report == {
        "addresses": 1,
        "send_log_rows": 2,
        "outbox_cancelled": 0,
        "in_flight": 0,
        "message_contents": 1,  # Ann's receipt; the newsletter is Bob's too
        "webhook_events": 3,
        "suppressions": 1,
        "hashes_added": 1,
        "dry_run": False,
    }
    assert "ann@example.com" not in stored_text()
    assert "ann's receipt" not in stored_text()
    assert list(SendLog.objects.filter(recipient="bob@example.com").values()) == bob_before
    assert MessageContent.objects.filter(subject="Newsletter").exists()
    # What the rows still say: their time, status and message id, not who they were for.
    erased = SendLog.objects.filter(recipient=FORGOTTEN).order_by("pk")
    assert [(r.status, r.message_id, r.subject) for r in erased] == [
        ("delivered", ann_ids[0], ""),
        ("complained", ann_ids[1], ""),
    ]
    # The rollups hold counts only: erasing changes none, and they still match the log.
    assert rollups.counted() == counts_before
    assert rollup_rebuild.differences() == {}
    # Every event keeps its digest: a replay is still a duplicate and changes nothing.
    assert set(WebhookEvent.objects.values_list("digest", flat=True)) == digests
    replay = post_event(client, event("email.complained", ann_ids[1], ANN))
    assert replay.json()["status"] == "duplicate"
    assert not Suppression.objects.exists()
    # ... and the address stays suppressed: a send to it is stopped before any request.
    requests = len(sandbox.requests)
    send(message(to=["ANN@example.com"]), message(to=["carol@example.com"]))
    assert [r.payload["to"] for r in sandbox.requests[requests:]] == ["carol@example.com"]
    stopped = SendLog.objects.get(recipient="ANN@example.com")
    assert (stopped.status, stopped.error_code) == ("rejected", "recipient_suppressed")


def test_the_hash_is_keyed_by_secret_key_and_never_the_plain_address(settings):
    forgotten.remember([ANN])
    entry = ForgottenAddress.objects.get()
    assert ANN not in str(vars(entry))
    # salted_hmac's construction, keyed by SECRET_KEY (its derived key computed once).
    assert entry.digest == salted_hmac(forgotten.KEY_SALT, ANN, algorithm="sha256").hexdigest()
    fallback = "a fallback key " + "w" * 50
    assert forgotten.digest_of(ANN, fallback) == (
        salted_hmac(forgotten.KEY_SALT, ANN, secret=fallback, algorithm="sha256").hexdigest()
    )
    settings.SECRET_KEY = "another key " + "z" * 50
    assert forgotten.digest_of(ANN) != entry.digest
    assert entry.digest != hashlib.sha256(ANN.encode()).hexdigest()


def test_an_address_never_on_the_list_is_suppressed_once_forgotten(sandbox):
    forget(ANN)
    send(message(to=[ANN]))
    assert sandbox.requests == []
    assert Suppression.objects.suppressed_among(["Ann@Example.com", "bob@example.com"]) == {ANN}


def test_the_send_path_asks_both_lists_in_one_query_per_batch(sandbox):
    forget("gone@example.com")
    Suppression.objects.create(email="bounced@example.com")
    messages = [message(to=[f"customer{n}@example.com"]) for n in range(20)]
    messages += [message(to=["Gone@example.com"]), message(to=["bounced@example.com"])]
    with CaptureQueriesContext(connection) as queries:
        send(*messages)
    lookups = [
        q["sql"]
        for q in queries.captured_queries
        if q["sql"].lstrip("(").startswith("SELECT") and "forgottenaddress" in q["sql"]
    ]
    assert len(lookups) == 1 and "django_sendfleet_suppression" in lookups[0]
    assert "UNION" in lookups[0].upper()
    assert len(sandbox.accepted) == 20


def test_a_big_batch_stays_within_the_query_parameter_limit(settings):
    """Django 5.2 allows SQLite 999 parameters: each address is asked once, and as a digest
    under every key (here two), so a query takes 333 addresses."""
    settings.SECRET_KEY_FALLBACKS = ["old-key-" + "x" * 50]
    addresses = [f"customer{n}@example.com" for n in range(1200)]
    forget(addresses[7], addresses[1100])
    Suppression.objects.create(email=addresses[500])
    with CaptureQueriesContext(connection) as queries:
        found = Suppression.objects.suppressed_among(addresses)
    assert found == {addresses[7], addresses[500], addresses[1100]}
    assert len(queries.captured_queries) == 4  # 1200 / 333, rounded up


def test_a_value_with_a_line_break_is_looked_up_as_any_other():
    """PostgreSQL's lookup sends each list as one text split on line breaks, but for this."""
    odd = "odd\nname@example.com"
    Suppression.objects.create(email=odd)
    forget("gone@example.com")
    assert Suppression.objects.suppressed_among([odd, "gone@example.com", "ann@example.com"]) == {
        odd,
        "gone@example.com",
    }


def test_a_rotated_secret_key_still_recognises_forgotten_addresses(settings, sandbox):
    settings.SECRET_KEY = "old-key-" + "x" * 50
    forget(ANN)
    settings.SECRET_KEY, settings.SECRET_KEY_FALLBACKS = (
        "new-key-" + "y" * 50,
        [settings.SECRET_KEY],
    )
    assert forgotten.entries_under_other_keys() == 0
    send(message(to=[ANN]))
    assert sandbox.requests == []
    # Found under the fallback: stored under the new key too, so dropping the old one is safe.
    assert ForgottenAddress.objects.count() == 2
    settings.SECRET_KEY_FALLBACKS = []
    send(message(to=[ANN]))
    assert sandbox.requests == []


def test_a_dropped_secret_key_is_reported_by_the_command(settings):
    settings.SECRET_KEY = "old-key-" + "x" * 50
    forget(ANN)
    settings.SECRET_KEY = "new-key-" + "y" * 50
    assert (
        Suppression.objects.suppressed_among([ANN]) == set()
    )  # the documented limit: the key is needed
    err = StringIO()
    call_command("sendfleet_forget", "bob@example.com", stdout=StringIO(), stderr=err)
    assert "1 forgotten address(es) were hashed with a SECRET_KEY" in err.getvalue()


def test_a_422_for_a_forgotten_address_does_not_write_it_down_again(sandbox, sendfleet_settings):
    """A send already on its way when the address was forgotten meets SendFleet's own list."""
    forget(SUPPRESSED_EMAIL)
    sendfleet_settings["CHECK_SUPPRESSIONS"] = False  # so the request is made
    send(message(to=[SUPPRESSED_EMAIL]))
    assert sandbox.requests and not Suppression.objects.exists()
    assert (
        Suppression.objects.suppress(SUPPRESSED_EMAIL, Suppression.Reason.MANUAL, source="admin")
        is None
    )


def test_every_form_of_the_address_is_found_and_no_other_address(sandbox):
    forms = [
        "ANN@EXAMPLE.COM",  # as the app wrote it
        "Ann <ann@example.com>",  # a refused recipient: the value as given
        "ann@example.com",
    ]
    for form in forms:
        SendLog.objects.create(recipient=form, from_email="shop@example.com", status="failed")
    for other in ("joann@example.com", "ann@example.com.au", "ann@sub.example.com"):
        SendLog.objects.create(recipient=other, from_email="shop@example.com", status="queued")
    SendLog.objects.create(
        recipient="ann@xn--bcher-kva.example", from_email="shop@example.com", status="queued"
    )
    SendLog.objects.create(
        recipient="Ann@Bücher.example", from_email="shop@example.com", status="failed"
    )
    forget(ANN)
    forget("ann@bücher.example")
    assert sorted(
        SendLog.objects.exclude(recipient=FORGOTTEN).values_list("recipient", flat=True)
    ) == [
        "ann@example.com.au",
        "ann@sub.example.com",
        "joann@example.com",
    ]


def test_webhook_events_are_found_by_message_id_recipient_and_body(client, webhooks, sandbox):
    SendLog.objects.create(
        recipient=ANN, from_email="shop@example.com", status="queued", message_id="msg-ann"
    )
    post_event(client, event("email.delivered", "msg-ann", ANN))
    post_event(client, {"event_type": "email.opened", "message_id": "m2", "to": "ANN@example.com"})
    post_event(client, None, body=b"not json, about ann@example.com")
    post_event(client, {"event_type": "email.weird", "person": {"address": ANN}})
    post_event(client, event("email.delivered", "msg-jo", "joann@example.com"))
    post_event(client, None, body=b"not json, about joann@example.com")
    assert WebhookEvent.objects.count() == 6
    assert forget(ANN)["webhook_events"] == 4
    assert "ann@" not in stored_text().replace("joann@", "")
    assert WebhookEvent.objects.filter(pruned_at__isnull=True).count() == 2


def test_an_event_not_processed_yet_is_reduced_and_not_retried(client, webhooks):
    SendLog.objects.create(
        recipient=ANN, from_email="s@example.com", status="queued", message_id="m"
    )
    post_event(client, event("email.delivered", "m", ANN))
    WebhookEvent.objects.update(outcome="failed")
    forget(ANN)
    stored = WebhookEvent.objects.get()
    assert stored.outcome == "unprocessable" and stored.raw is None
    assert stored.detail == "erased by sendfleet_forget before it was applied"
    call_command("sendfleet_retry_events", stdout=StringIO())
    assert WebhookEvent.objects.get().outcome == "unprocessable"


def test_events_sendfleet_posts_after_the_erasure_are_reduced_as_they_are_applied(client, webhooks):
    SendLog.objects.create(
        recipient=ANN, from_email="shop@example.com", status="queued", message_id="msg-ann"
    )
    forget(ANN)
    post_event(client, {"event_type": "email.delivered", "message_id": "msg-ann"})
    post_event(client, event("email.bounced", "msg-ann", ANN, bounce_type="permanent"))
    post_event(client, event("email.complained", "msg-unknown", "Ann@Example.com"))
    row = SendLog.objects.get()
    assert row.status == "bounced" and row.recipient == FORGOTTEN  # applied: counts stay right
    assert WebhookEvent.objects.count() == 3
    assert not WebhookEvent.objects.filter(pruned_at__isnull=True).exists()
    assert "ann@example.com" not in stored_text()
    assert not Suppression.objects.exists()  # still suppressed by its hash only
    assert Suppression.objects.suppressed_among([ANN]) == {ANN}


def test_a_pending_row_is_cancelled_and_never_sent(sandbox, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=False) as tasks:
        QueuedEmailBackend().send_messages(
            [message(to=[ANN]), message(to=[ANN, "bob@example.com"], subject="Both")]
        )
    counts_before = sum(rollups.counted().values())
    report = forget(ANN)
    assert (report["send_log_rows"], report["outbox_cancelled"]) == (2, 2)
    assert report["message_contents"] == 1  # the second message's content is Bob's too
    cancelled = SendLog.objects.filter(recipient=FORGOTTEN)
    assert {(r.status, r.error_code) for r in cancelled} == {("rejected", "recipient_suppressed")}
    assert all(r.content_id is None for r in cancelled)
    for task in tasks:  # the tasks enqueued for the rows run now
        task()
    assert [r.payload["to"] for r in sandbox.requests] == ["bob@example.com"]
    assert sum(rollups.counted().values()) == counts_before
    assert rollup_rebuild.differences() == {}
    assert not MessageContent.objects.exists()


@pytest.fixture
def row_being_sent(settings):
    """A row a worker has claimed and is about to send (its task was not run)."""
    engine = settings.TASKS["default"]["BACKEND"].rpartition(".backends.")[0]
    settings.TASKS = {"default": {"BACKEND": f"{engine}.backends.dummy.DummyBackend"}}
    QueuedEmailBackend().send_messages([message(to=[ANN])])
    row = worker.claim(SendLog.objects.get().pk, lease_seconds=60)
    assert row is not None and row.status == "sending"
    return row


def test_a_row_being_sent_is_left_to_its_worker_and_reported(sandbox, row_being_sent):
    out = StringIO()
    with pytest.raises(CommandError, match=r"1 row\(s\) are being sent right now"):
        call_command("sendfleet_forget", ANN, "--json", "--wait=0", stdout=out)
    assert json.loads(out.getvalue())["in_flight"] == 1
    row = SendLog.objects.get()
    assert (row.status, row.recipient, row.claim_token) == (
        "sending",
        ANN,
        row_being_sent.claim_token,
    )
    assert row.content_id is not None  # the worker still needs it
    worker._MailerWorker(row.mailer).send_row(row_being_sent)  # the worker goes on
    # It looks the address up just before the request: forgotten, so stopped after all.
    assert SendLog.objects.get().status == "rejected" and sandbox.requests == []
    assert forget(ANN)["send_log_rows"] == 1
    assert "ann@example.com" not in stored_text()


@pytest.mark.django_db(transaction=True)
def test_the_command_waits_for_a_row_being_sent_then_erases_it(sandbox, row_being_sent):
    def finish():
        time.sleep(0.5)
        try:
            worker._MailerWorker(row_being_sent.mailer).send_row(row_being_sent)
        finally:
            connections.close_all()  # this thread's own connection

    finisher = threading.Thread(target=finish)
    finisher.start()
    try:
        report = forget(ANN, wait=20)
    finally:
        finisher.join()
    assert (report["send_log_rows"], report["in_flight"]) == (1, 0)
    assert "ann@example.com" not in stored_text()


@pytest.mark.django_db(transaction=True)
def test_a_worker_sending_while_the_address_is_forgotten_leaves_no_row_half_sent(sandbox, settings):
    """A worker sends the outbox's rows to Ann while she is forgotten, 5 rows a batch: each row
    ends either sent (and then erased) or cancelled before any request, never both."""
    engine = settings.TASKS["default"]["BACKEND"].rpartition(".backends.")[0]
    settings.TASKS = {"default": {"BACKEND": f"{engine}.backends.dummy.DummyBackend"}}
    QueuedEmailBackend().send_messages([message(to=[ANN], subject=f"n{n}") for n in range(60)])
    ids = list(SendLog.objects.order_by("pk").values_list("pk", flat=True))
    failures: list[BaseException] = []

    def work():
        try:
            worker.send_rows(ids)
        except BaseException as error:  # reported by the test, not lost in the thread
            failures.append(error)
        finally:
            connections.close_all()

    sending = threading.Thread(target=work)
    sending.start()
    try:
        deadline = time.monotonic() + 60  # a bound for a worker that died, not a timing
        while len(sandbox.accepted) < 5 and not failures and time.monotonic() < deadline:
            time.sleep(0.01)  # forgotten once the worker is well under way
        report = forget(ANN, batch_size=5, wait=30)
    finally:
        sending.join()
    assert failures == [] and report["in_flight"] == 0
    rows = list(SendLog.objects.all())
    assert {row.recipient for row in rows} == {FORGOTTEN}
    sent = [row for row in rows if row.status == "queued"]
    cancelled = [row for row in rows if row.status == "rejected"]
    assert len(sent) + len(cancelled) == 60 and len(sent) >= 5
    assert len(sandbox.accepted) == len(sent)  # every row sent is one request, and no other
    assert all(row.attempts == 0 and row.http_status is None for row in cancelled)
    assert not MessageContent.objects.exists()
    assert rollup_rebuild.differences() == {}


def test_batches_are_bounded_and_found_by_primary_key_ranges(monkeypatch):
    """A few thousand rows, 100 per transaction, the table read 700 keys at a time."""
    monkeypatch.setattr(erasure_match, "SCAN_STEP", 700)
    rows = [
        SendLog(
            recipient=("Ann@example.com" if n % 3 == 0 else ANN) if n % 2 == 0 else f"u{n}@x.org",
            from_email="shop@example.com",
            status="queued",
            subject=f"Order {n}",
        )
        for n in range(4000)
    ]
    SendLog.objects.bulk_create(rows)
    updates: list[int] = []
    reads: list[str] = []

    def record(execute, sql, params, many, context):
        if sql.startswith("UPDATE") and "django_sendfleet_sendlog" in sql:
            updates.append(len(params))
        if (
            sql.startswith("SELECT")
            and "django_sendfleet_sendlog" in sql
            and "LOWER" in sql.upper()
        ):
            reads.append(sql)
        return execute(sql, params, many, context)

    with connection.execute_wrapper(record):
        report = forget(ANN, batch_size=100)
    assert report["send_log_rows"] == 2000
    # At most 100 rows per statement (the ids, and the 14 values set), so at least 20.
    assert max(updates) <= 100 + 14 and len(updates) >= 20
    assert len(reads) >= 4000 // 700  # the case-insensitive forms: range by range
    assert SendLog.objects.filter(recipient=FORGOTTEN).count() == 2000
    assert not SendLog.objects.filter(recipient__iexact=ANN).exists()


def test_dry_run_changes_nothing_and_counts_what_would_go(client, webhooks, logged_content):
    send(message(to=["Ann@Example.com"]), message(to=[ANN, "bob@example.com"]))
    post_event(client, event("email.complained", SendLog.objects.first().message_id, ANN))
    before = stored_text()
    dry = forget(ANN, dry_run=True)
    assert stored_text() == before
    real = forget(ANN)
    assert dry == real | {"dry_run": True}
    assert real["send_log_rows"] == 2 and real["webhook_events"] == 1


def test_forgetting_again_finds_nothing_more():
    SendLog.objects.create(recipient=ANN, from_email="s@example.com", status="queued")
    forget(ANN)
    again = forget(ANN)
    assert (again["send_log_rows"], again["hashes_added"]) == (0, 0)


def test_text_report_and_bad_input():
    SendLog.objects.create(recipient=ANN, from_email="s@example.com", status="queued")
    out = StringIO()
    call_command("sendfleet_forget", ANN, stdout=out)
    text = out.getvalue()
    assert "Forgot 1 address(es)." in text and "1  send log rows anonymised" in text
    assert ANN not in text  # its output goes to terminals and logs
    with pytest.raises(CommandError, match="email address"):
        call_command("sendfleet_forget", "ann")
    with pytest.raises(CommandError, match="batch-size"):
        call_command("sendfleet_forget", ANN, batch_size=0)


def test_lift_suppresses_a_forgotten_address_no_more(sandbox):
    forget(ANN)
    out = StringIO()
    call_command("sendfleet_forget", "Ann@Example.com", "--lift", stdout=out)
    assert "Lifted 1 forgotten address(es)" in out.getvalue()
    send(message(to=[ANN]))
    assert len(sandbox.accepted) == 1


# The admin


CHANGELIST = "admin:django_sendfleet_sendlog_changelist"
SUPPRESSIONS = "admin:django_sendfleet_suppression_changelist"


def staff(django_user_model, *codenames: str, name: str = "staff") -> Client:
    user = django_user_model.objects.create_user(name, password="pw", is_staff=True)
    user.user_permissions.set(Permission.objects.filter(codename__in=codenames))
    client = Client()
    client.force_login(user)
    return client


def actions_offered(client: Client, url: str) -> list[str]:
    form = client.get(reverse(url)).context["action_form"]
    return [name for name, _ in form.fields["action"].choices] if form is not None else []


def test_the_admin_action_needs_the_forget_permission(django_user_model):
    viewing = ("view_sendlog", "view_suppression", "delete_suppression")
    viewer = staff(django_user_model, *viewing)
    assert "forget_people" not in actions_offered(viewer, CHANGELIST)
    assert actions_offered(viewer, SUPPRESSIONS) == ["", "delete_selected"]
    forgetter = staff(django_user_model, *viewing, "add_forgottenaddress", name="dpo")
    assert "forget_people" in actions_offered(forgetter, CHANGELIST)
    assert "forget_people" in actions_offered(forgetter, SUPPRESSIONS)
    row = SendLog.objects.create(recipient=ANN, from_email="s@example.com", status="queued")
    data = {"action": "forget_people", "_selected_action": [row.pk], "post": "yes"}
    viewer.post(reverse(CHANGELIST), data)
    assert SendLog.objects.get().recipient == ANN


def test_the_admin_action_confirms_then_forgets(django_user_model):
    admin = staff(django_user_model, "view_sendlog", "add_forgottenaddress")
    assert "forget_people" in actions_offered(admin, CHANGELIST)
    rows = [
        SendLog.objects.create(recipient=address, from_email="s@example.com", status="queued")
        for address in ("Ann@Example.com", ANN, "bob@example.com")
    ]
    selected = {"action": "forget_people", "_selected_action": [rows[0].pk, rows[1].pk]}
    page = admin.post(reverse(CHANGELIST), selected)
    assert page.status_code == 200
    body = page.content.decode()
    assert "ann@example.com" in body and "bob@example.com" not in body
    assert 'name="post" value="yes"' in body
    assert SendLog.objects.filter(recipient=ANN).exists()  # nothing changed yet
    done = admin.post(reverse(CHANGELIST), selected | {"post": "yes"}, follow=True)
    [note] = [str(m) for m in done.context["messages"]]
    assert note == (
        "Forgot 1 address: 2 send log rows, 0 message contents, 0 webhook events and "
        "0 suppression entries were erased; 1 keyed hash was added, and they stay suppressed."
    )
    assert sorted(SendLog.objects.values_list("recipient", flat=True)) == [
        FORGOTTEN,
        FORGOTTEN,
        "bob@example.com",
    ]


def test_the_suppression_list_action_forgets_the_listed_people(django_user_model):
    admin = staff(django_user_model, "view_suppression", "add_forgottenaddress")
    entry = Suppression.objects.create(email=ANN)
    SendLog.objects.create(
        recipient="ANN@example.com", from_email="s@example.com", status="bounced"
    )
    selected = {"action": "forget_people", "_selected_action": [entry.pk], "post": "yes"}
    done = admin.post(reverse(SUPPRESSIONS), selected, follow=True)
    [note] = [str(m) for m in done.context["messages"]]
    assert "and 1 suppression entry were erased" in note
    assert not Suppression.objects.exists()
    assert SendLog.objects.get().recipient == FORGOTTEN
    assert Suppression.objects.suppressed_among([ANN]) == {ANN}


def test_a_forgotten_row_adds_nothing_to_the_suppression_list(admin_client):
    row = SendLog.objects.create(recipient=ANN, from_email="s@example.com", status="bounced")
    forget(ANN)
    data = {"action": "add_to_suppression_list", "_selected_action": [row.pk]}
    admin_client.post(reverse(CHANGELIST), data, follow=True)
    assert not Suppression.objects.exists()
    assert Suppression.objects.suppressed_among([ANN]) == {ANN}
