"""send_at with real worker processes (issue 22): on django-tasks-db's db_worker, RQ and Celery,
a scheduled message waits in the outbox until its time, across a worker restart, then is sent
once. Runs where PostgreSQL is the test database and the engines are installed (CI: .ci/run's
PostgreSQL sessions; ``pip install 'django-sendfleet[engines]'``)."""

import datetime
import time

import pytest
from django.core.mail import EmailMessage
from django.utils import timezone

from django_sendfleet.backends import QueuedEmailBackend
from django_sendfleet.models import SendLog
from tests.support.engines import CELERY, DB_WORKER, RQ, Engine
from tests.support.worker_processes import (
    engine_workers,
    stop,
    uses_postgres,
    wait_for,
)

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(
        not uses_postgres(),
        reason="worker processes need PostgreSQL as the test database (set DATABASE_URL)",
    ),
]

#: How far ahead the message is scheduled: long enough for a worker to start, run and stop.
AHEAD = datetime.timedelta(seconds=8)


@pytest.fixture(params=[DB_WORKER, RQ, CELERY], ids=lambda engine: engine.name)
def engine(request) -> Engine:
    request.param.skip_unless_available()
    return request.param


@pytest.fixture
def sandbox(sendfleet_socket_sandbox):
    """The socket server: the workers are other processes."""
    return sendfleet_socket_sandbox


@pytest.fixture
def workers(engine, sandbox, settings, redis_url, tmp_path):
    with engine_workers(engine, sandbox, settings, redis_url, tmp_path) as workers:
        yield workers


def test_a_scheduled_message_waits_through_a_worker_restart_and_is_sent_once_at_its_time(
    sandbox, workers
):
    send_at = timezone.now() + AHEAD
    message = EmailMessage("Reminder", "Body", "shop@example.com", ["ann@example.com"])
    message.send_at = send_at
    QueuedEmailBackend().send_messages([message])  # committed: its task is deferred
    first = workers.start(1)
    time.sleep(2)  # the worker runs; the task is not due
    stop(first)  # a restart (a deploy) before the time
    assert sandbox.requests == []
    assert SendLog.objects.get().status == "pending"
    workers.start(1)
    wait_for(lambda: SendLog.objects.filter(status="queued").exists(), 90, "the send", workers.log)
    [request] = sandbox.requests  # once
    assert request.payload["to"] == "ann@example.com"
    # Never before its time (the sandbox's clock is this machine's).
    assert request.time >= send_at.timestamp() - 0.01
