"""The webhook behind real WSGI servers: the answer comes before receivers run, and concurrent
events on SQLite with Django's default options are all applied."""

import http.client
import json
import os
import socket
import sqlite3
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from django.urls import reverse

from django_sendfleet import signals
from django_sendfleet.models import WebhookEvent
from django_sendfleet.sandbox import SANDBOX_API_KEY
from django_sendfleet.webhooks.view import sign
from tests.support.network import free_port
from tests.support.webhooks import SECRET, event

ROOT = Path(__file__).resolve().parents[2]


def post(url, body, secret=SECRET, timeout=5.0):
    """POST one signed event as SendFleet does; the status (0 when no answer came in time)."""
    headers = {"Content-Type": "application/json", "X-SendFleet-Signature": sign(body, secret)}
    request = urllib.request.Request(url, data=body, method="POST", headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as answer:
            answer.read()
            return answer.status
    except urllib.error.HTTPError as error:
        return error.code
    except OSError:  # timed out: SendFleet gives up after 5 s and never retries
        return 0


@pytest.mark.django_db(transaction=True)
def test_the_answer_is_sent_before_tracking_receivers_run(live_server, settings):
    """A receiver that waits until the event's sender has its answer: run before the answer,
    it would hold the answer back past SendFleet's 5 seconds, and the event would be lost."""
    settings.SENDFLEET = {"WEBHOOK_SECRET": SECRET}
    answered, receiver_done = threading.Event(), threading.Event()

    def slow_receiver(sender, event, **kwargs):
        answered.wait(timeout=15)
        receiver_done.set()

    signals.tracking.connect(slow_receiver, weak=False)
    try:
        body = json.dumps(event(message_id="never-sent")).encode()
        status = post(live_server.url + reverse("sendfleet-webhook"), body)
        answered.set()
        assert status == 200
        assert receiver_done.wait(timeout=15)
    finally:
        answered.set()
        signals.tracking.disconnect(slow_receiver)
    assert WebhookEvent.objects.get().outcome == "unknown_message"


@pytest.mark.django_db(transaction=True)
def test_a_kept_connection_s_next_event_is_answered_while_a_burst_is_applied(
    live_server, settings, monkeypatch
):
    """A server reads a keep-alive connection's next request only once the last answer's
    processing returns. The events waiting in the process (a burst) are applied by its burst
    thread, not by the thread that answered: a receiver that waits for the client's next
    answer gets it. Applying them all in the answering thread held that answer back until
    the burst was applied, past SendFleet's 5 seconds."""
    from django_sendfleet.models import SendLog
    from django_sendfleet.webhooks import drain as event_drain
    from django_sendfleet.webhooks.store import store_event

    settings.SENDFLEET = {"WEBHOOK_SECRET": SECRET}
    monkeypatch.setattr(event_drain, "BATCH_SIZE", 2)
    SendLog.objects.bulk_create(
        SendLog(message_id=f"msg-{n}", recipient=f"r{n}@example.com", status="queued")
        for n in range(5)
    )
    for n in range(3):  # stored and answered by other threads of this process: a burst
        body = json.dumps(event(message_id=f"msg-{n}", to=f"r{n}@example.com")).encode()
        event_drain._drain.waiting.append(store_event(body, max_age=None))
    next_answered, waits = threading.Event(), []

    def waits_for_the_next_answer(sender, event, **kwargs):
        if event.message_id == "msg-2":
            waits.append(next_answered.wait(timeout=10))

    signals.tracking.connect(waits_for_the_next_answer, weak=False)
    connection = http.client.HTTPConnection("127.0.0.1", live_server.thread.port, timeout=15)
    try:
        for n in (3, 4):  # two events on one kept connection, as an HTTP client sends them
            body = json.dumps(event(message_id=f"msg-{n}", to=f"r{n}@example.com")).encode()
            headers = {
                "Content-Type": "application/json",
                "X-SendFleet-Signature": sign(body, SECRET),
            }
            connection.request("POST", reverse("sendfleet-webhook"), body=body, headers=headers)
            answer = connection.getresponse()
            answer.read()
            assert (answer.status, answer.will_close) == (200, False)
        next_answered.set()
        deadline = time.monotonic() + 15
        while event_drain.applying() and time.monotonic() < deadline:
            time.sleep(0.01)
    finally:
        next_answered.set()
        connection.close()
        signals.tracking.disconnect(waits_for_the_next_answer)
    assert waits == [True]  # the next answer came while the burst was being applied
    assert set(WebhookEvent.objects.values_list("outcome", flat=True)) == {"applied"}


def _manage(env, *args, timeout=120):
    subprocess.run(
        [sys.executable, "-m", "django", *args], cwd=ROOT, env=env, check=True, timeout=timeout
    )


def _wait_for_port(port, process, timeout=30.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError("the server exited")
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise RuntimeError("the server did not start")


@pytest.fixture
def sqlite_server_with_default_options(tmp_path):
    """runserver (threaded) on a fresh SQLite file with Django's default options."""
    database = tmp_path / "webhooks.sqlite3"
    env = os.environ | {
        "DJANGO_SETTINGS_MODULE": "tests.settings",
        "DATABASE_URL": f"sqlite:///{database}",
        "SENDFLEET_TEST_SQLITE_DEFAULT_OPTIONS": "1",
        "SENDFLEET_TEST_WEBHOOK_SECRET": SECRET,
        "SENDFLEET_API_KEY": SANDBOX_API_KEY,  # never used: nothing is sent
        "PYTHONPATH": str(ROOT),
    }
    _manage(env, "migrate", "--verbosity", "0")
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "django", "runserver", f"127.0.0.1:{port}", "--noreload"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        _wait_for_port(port, process)
        yield f"http://127.0.0.1:{port}/sendfleet/webhook/", database, env
    finally:
        process.terminate()
        process.wait(timeout=10)


def _outcomes(database):
    with sqlite3.connect(database, timeout=20) as db:
        rows = db.execute("SELECT outcome, COUNT(*) FROM django_sendfleet_webhookevent GROUP BY 1")
        return dict(rows.fetchall())


def test_concurrent_events_on_sqlite_with_default_options_are_all_applied(
    sqlite_server_with_default_options,
):
    url, database, env = sqlite_server_with_default_options
    sends = 40
    with sqlite3.connect(database, timeout=20) as db:
        db.executemany(
            "INSERT INTO django_sendfleet_sendlog (created_at, updated_at, mailer, message_id, "
            "recipient, from_email, subject, status, error_code, detail, mode, warnings, "
            "attempts, claim_token, from_name, reply_to, text_body, html_body) VALUES "
            "(datetime('now'), datetime('now'), 'default', ?, ?, 'shop@example.com', '', "
            "'queued', '', '', 'shared', '[]', 1, '', '', '', '', '')",
            [(f"msg-{n}", f"r{n}@example.com") for n in range(sends)],
        )
    bodies = [
        json.dumps(event(kind, message_id=f"msg-{n}", to=f"r{n}@example.com")).encode()
        for n in range(sends)
        for kind in ("email.sent", "email.delivered", "email.bounced")
    ]
    with ThreadPoolExecutor(max_workers=8) as pool:
        statuses = list(pool.map(lambda body: post(url, body, timeout=30), bodies))
    # Every event stored and answered (some after SendFleet's 5 s on a busy SQLite without the
    # documented options, which is what the system check warns about).
    assert statuses == [200] * len(bodies)
    deadline = time.monotonic() + 60  # processing runs after each answer: let it finish
    while _outcomes(database).get("pending") and time.monotonic() < deadline:
        time.sleep(0.2)
    # Events whose processing met "database is locked" are failed, not lost: the command
    # (from cron; or later events, once their retry is due) applies them.
    _manage(env, "sendfleet_retry_events")
    assert _outcomes(database) == {"applied": len(bodies)}
    with sqlite3.connect(database, timeout=20) as db:
        statuses = db.execute("SELECT DISTINCT status FROM django_sendfleet_sendlog").fetchall()
        suppressed = db.execute("SELECT COUNT(*) FROM django_sendfleet_suppression").fetchone()
    assert statuses == [("bounced",)] and suppressed == (sends,)
