"""Real worker processes: django-tasks-db's db_worker on PostgreSQL, the limiter on Redis,
the sandbox with a scaled-down rate limit. Runs where PostgreSQL is the test database and
django-tasks-db is installed (CI: .ci/run starts PostgreSQL and Redis).
"""

import signal
import time
from io import StringIO

import pytest
from django.core.mail import EmailMessage
from django.core.management import call_command

from django_sendfleet.backends import QueuedEmailBackend
from django_sendfleet.models import SendLog
from django_sendfleet.sandbox import SANDBOX_API_KEY
from tests.support.engines import DB_WORKER
from tests.support.worker_processes import (
    SHORT_LEASE,
    queue_messages,
    start_processes,
    stop,
    uses_postgres,
    wait_for,
    worker_environment,
)

DB_BACKEND = DB_WORKER.backend

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(
        not uses_postgres(),
        reason="worker processes need PostgreSQL as the test database (set DATABASE_URL)",
    ),
]


@pytest.fixture
def worker_env(sendfleet_socket_sandbox, settings, redis_url):
    """Settings shared by this process and the workers: the same database, sandbox (over a
    socket, so that they can reach it; the tests' ``sandbox`` is then the same one), cache."""
    sandbox = sendfleet_socket_sandbox
    pytest.importorskip("django_tasks_db")
    settings.TASKS = {"default": {"BACKEND": DB_BACKEND}}
    settings.SENDFLEET = {"API_URL": sandbox.url, "API_KEY": SANDBOX_API_KEY}
    return worker_environment(sandbox.url, redis_url, DB_BACKEND)


def start_workers(env, count, log=None):
    """Start db_worker processes; their output goes to ``log`` (a file) when given."""
    return start_processes(DB_WORKER.worker_command(0), env, count, log)


def test_several_workers_send_every_message_exactly_once_without_a_429(
    sandbox, worker_env, settings
):
    # The sandbox counts 1.8 s windows against the workers' 10 per 2 s: the limiter's margin
    # here (20 ms) is less than scheduling varies by on a busy machine (see test_engines.py).
    sandbox.set_rate_limit(10, 1.8)
    worker_env["SENDFLEET_TEST_RATE_LIMIT"] = "10/2s"
    workers = start_workers(worker_env, 3)
    try:
        queue_messages(30)
        wait_for(
            lambda: not SendLog.objects.exclude(status="queued").exists(),
            60,
            "every row to be queued",
        )
    finally:
        stop(workers)
    sent_to = [request.payload["to"] for request in sandbox.accepted]
    assert len(sent_to) == 30 and len(set(sent_to)) == 30
    assert [r.status for r in sandbox.requests if r.status != 200] == []
    assert SendLog.objects.filter(status="queued").count() == 30


def test_a_worker_killed_mid_send_loses_nothing_and_sends_nothing_twice(sandbox, worker_env):
    worker_env |= SHORT_LEASE
    sandbox.latency = 3.0  # the first send is still waiting for its answer when we kill
    backend = QueuedEmailBackend()
    backend.send_messages(
        [EmailMessage("Hi", "Body", "shop@example.com", [f"user{n}@example.com"]) for n in range(5)]
    )
    [worker] = start_workers(worker_env, 1)
    try:
        wait_for(lambda: len(sandbox.requests) == 1, 30, "the first request to arrive")
        worker.send_signal(signal.SIGKILL)
        worker.wait(timeout=10)
    finally:
        stop([worker])
    in_flight = SendLog.objects.get(status="sending")
    assert SendLog.objects.filter(status="pending").count() == 4

    sandbox.latency = 0.0
    time.sleep(4.5)  # the lease runs out
    call_command("sendfleet_requeue", older_than=0, stdout=StringIO())
    in_flight.refresh_from_db()
    assert in_flight.status == "unknown" and in_flight.error_code == "lease_expired"

    workers = start_workers(worker_env, 1)
    try:
        wait_for(
            lambda: SendLog.objects.filter(status="queued").count() == 4,
            30,
            "the other four to be sent",
        )
    finally:
        stop(workers)
    sent_to = [request.payload["to"] for request in sandbox.requests]
    assert sorted(sent_to) == [f"user{n}@example.com" for n in range(5)]  # each exactly once
    in_flight.refresh_from_db()
    assert in_flight.status == "unknown"


def test_events_that_arrive_before_the_worker_records_the_send_are_applied(
    sandbox, worker_env, settings, live_server
):
    """SendFleet posts events as soon as it accepts a send; with 100 ms of API latency they
    reach the webhook before the worker has written the message id. They must still be
    applied (the worker catches up on them), or the rows never leave "queued"."""
    from django.urls import reverse

    from django_sendfleet.models import WebhookEvent

    secret = "worker-tests-webhook-secret"  # tests/settings.py gives the workers the same
    settings.SENDFLEET = dict(settings.SENDFLEET, WEBHOOK_SECRET=secret)
    sandbox.configure_webhook(live_server.url + reverse("sendfleet-webhook"), secret)
    sandbox.latency = 0.1
    workers = start_workers(worker_env, 2)
    try:
        queue_messages(10)
        wait_for(
            lambda: not SendLog.objects.exclude(status__in=["queued", "delivered"]).exists(),
            60,
            "every row to be sent",
        )
        assert sandbox.wait_for_webhooks()
        wait_for(
            lambda: SendLog.objects.filter(status="delivered").count() == 10,
            30,
            "every row to be delivered",
        )
    finally:
        stop(workers)
    outcomes = list(WebhookEvent.objects.values_list("outcome", flat=True))
    assert len(outcomes) == 20 and set(outcomes) == {"applied"}
