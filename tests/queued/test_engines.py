"""The queued worker on the task engines users run, each with its real broker and real worker
processes: RQ (django-tasks-rq, ``rqworker``) and Celery (django-tasks-fennel,
``celery worker``), both on Redis; PostgreSQL as the database, the shared limiter on Redis, the
socket sandbox with a scaled-down rate limit. tests/queued/test_workers.py does the same for
django-tasks-db's ``db_worker``. Runs where PostgreSQL is the test database and the engines
are installed (``pip install 'django-sendfleet[engines]'``; CI: the PostgreSQL sessions).
"""

from __future__ import annotations

import re
import shlex
import time
from io import StringIO

import pytest
from django.core.mail import EmailMessage
from django.core.management import call_command

from django_sendfleet.backends import QueuedEmailBackend
from django_sendfleet.models import SendLog
from tests.support.engines import CELERY, DB_WORKER, RQ, Engine
from tests.support.worker_processes import (
    ROOT,
    SHORT_LEASE,
    engine_workers,
    kill,
    queue_messages,
    uses_postgres,
    wait_for,
)

# The worker tests (not the docs test at the end) need PostgreSQL and real transactions.
needs_postgres = pytest.mark.skipif(
    not uses_postgres(),
    reason="worker processes need PostgreSQL as the test database (set DATABASE_URL)",
)
transactions = pytest.mark.django_db(transaction=True)


@pytest.fixture(params=[RQ, CELERY], ids=lambda engine: engine.name)
def engine(request) -> Engine:
    request.param.skip_unless_available()
    return request.param


@pytest.fixture
def sandbox(sendfleet_socket_sandbox):
    """The socket server: the workers are other processes."""
    return sendfleet_socket_sandbox


@pytest.fixture
def workers(engine, sandbox, settings, redis_url, tmp_path):
    """This engine's workers, none started yet; all stopped after the test. The broker is
    emptied first, and this process queues onto it."""
    with engine_workers(engine, sandbox, settings, redis_url, tmp_path) as workers:
        yield workers


@needs_postgres
@transactions
def test_several_workers_send_every_message_exactly_once_without_a_429(sandbox, workers):
    # The workers share 10 requests per 2 s. The limiter's margin (1 % of the window, so 20 ms
    # here, 0.5 s at SendFleet's 60 s) is less than the time between taking a slot and the
    # request's arrival varies by on a busy 2-core machine (3-40 ms measured with Celery's
    # pool): the sandbox counts 1.8 s windows, so only a limiter that is not shared, not one
    # whose margin is outrun by scheduling, gets a 429.
    sandbox.set_rate_limit(10, 1.8)
    workers.start(3, SENDFLEET_TEST_RATE_LIMIT="10/2s")
    queue_messages(30)
    wait_for(
        lambda: not SendLog.objects.exclude(status="queued").exists(),
        90,
        "every row to be queued",
        workers.log,
    )
    sent_to = [request.payload["to"] for request in sandbox.accepted]
    assert len(sent_to) == 30 and len(set(sent_to)) == 30
    assert [r.status for r in sandbox.requests if r.status != 200] == []
    assert SendLog.objects.filter(status="queued").count() == 30


@needs_postgres
@transactions
def test_a_retryable_error_is_sent_again_by_the_deferred_task(sandbox, workers):
    """A 502 gives the row back to the outbox for 1 s and schedules its task for then: RQ's
    scheduler (``rqworker --with-scheduler``) or a Celery eta runs it, no sendfleet_requeue."""
    sandbox.inject_fault(502)
    workers.start(1)
    queue_messages(1)
    wait_for(
        lambda: SendLog.objects.filter(status="queued").exists(),
        60,
        "the retried send",
        workers.log,
    )
    assert [request.status for request in sandbox.requests] == [502, 200]
    assert SendLog.objects.get().attempts == 2


@needs_postgres
@transactions
def test_a_worker_killed_mid_send_loses_nothing_and_sends_nothing_twice(sandbox, workers):
    sandbox.latency = 3.0  # the first send is still waiting for its answer when we kill
    backend = QueuedEmailBackend()
    backend.send_messages(
        [EmailMessage("Hi", "Body", "shop@example.com", [f"user{n}@example.com"]) for n in range(5)]
    )
    [worker] = workers.start(1, **SHORT_LEASE)
    wait_for(lambda: len(sandbox.requests) == 1, 60, "the first request to arrive", workers.log)
    kill(worker)  # the worker and its children (RQ's work horse, Celery's pool)
    in_flight = SendLog.objects.get(status="sending")
    assert SendLog.objects.filter(status="pending").count() == 4

    sandbox.latency = 0.0
    time.sleep(4.5)  # the lease runs out
    call_command("sendfleet_requeue", older_than=0, stdout=StringIO())
    in_flight.refresh_from_db()
    assert in_flight.status == "unknown" and in_flight.error_code == "lease_expired"

    workers.start(1, **SHORT_LEASE)
    wait_for(
        lambda: SendLog.objects.filter(status="queued").count() == 4,
        60,
        "the other four to be sent",
        workers.log,
    )
    sent_to = [request.payload["to"] for request in sandbox.requests]
    assert sorted(sent_to) == [f"user{n}@example.com" for n in range(5)]  # each exactly once
    in_flight.refresh_from_db()
    assert in_flight.status == "unknown"


@needs_postgres
@transactions
@pytest.mark.parametrize(
    "engine", [DB_WORKER, RQ, CELERY], indirect=True, ids=lambda engine: engine.name
)
def test_a_password_reset_goes_out_next_while_every_worker_is_on_a_newsletter(sandbox, workers):
    """Two workers each on a newsletter task of 15 rows; a reset queued meanwhile waits behind
    both tasks in the engine's own queue. It must still go out within the next few sends (one
    in flight per worker, one slot), not after a whole task: the worker takes the most urgent
    due row of the outbox before each of its own."""
    sandbox.set_rate_limit(10, 1.8)
    newsletter = QueuedEmailBackend(bulk=True)
    for part in range(2):  # two tasks, one for each worker
        newsletter.send_messages(
            [
                EmailMessage("News", "Body", "news@example.com", [f"reader{part}-{n}@example.com"])
                for n in range(15)
            ]
        )
    workers.start(2, SENDFLEET_TEST_RATE_LIMIT="10/2s")
    wait_for(lambda: len(sandbox.requests) >= 4, 60, "the newsletter to start", workers.log)
    QueuedEmailBackend().send_messages(
        [EmailMessage("Your password", "Body", "shop@example.com", ["reset@example.com"])]
    )
    sent_before = len(sandbox.requests)
    wait_for(
        lambda: not SendLog.objects.exclude(status="queued").exists(),
        90,
        "every row to be sent",
        workers.log,
    )
    sent_to = [request.payload["to"] for request in sandbox.accepted]
    assert len(sent_to) == 31 and len(set(sent_to)) == 31  # each once, the newsletter too
    assert [r.status for r in sandbox.requests if r.status != 200] == []
    # Two sends may be in flight (claimed before the reset was queued), one more at most while
    # a worker reaches its next row; behind two whole tasks it would be 30th.
    assert sent_to.index("reset@example.com") <= sent_before + 3, sent_to


def documented_setup(heading: str) -> list[str]:
    """The code blocks of docs/queued.md's section ``### heading``."""
    text = (ROOT / "docs" / "queued.md").read_text()
    section = text.split(f"### {heading}\n", 1)[1].split("\n### ", 1)[0]
    return re.findall(r"^```[a-z]*\n(.*?)^```", section, flags=re.M | re.S)


@pytest.mark.parametrize(("engine", "heading"), [(RQ, "RQ on Redis"), (CELERY, "Celery on Redis")])
def test_docs_set_each_engine_up_exactly_as_tested(engine, heading):
    install, settings_block, command = documented_setup(heading)
    assert install.split() == ["pip", "install", f"'django-sendfleet[{engine.name}]'"]
    documented = {"INSTALLED_APPS": []}
    exec(settings_block, documented)
    assert documented["INSTALLED_APPS"] == [engine.app]
    broker_url = "redis://127.0.0.1:6379/0"
    for name, value in engine.settings(broker_url).items():
        assert documented[name] == value, name
    tested = list(engine.worker_command(1))
    runner = {"django": ["python", "manage.py"], "celery": ["celery"]}[tested[2]]
    assert shlex.split(command) == runner + tested[3:]
