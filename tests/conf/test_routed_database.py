"""A project whose DATABASE_ROUTERS put django-sendfleet's models on a database other than
``default``: every transaction, durable write, lock bound and ``on_commit`` of the package is on
the routed database (issue 23, item 1)."""

from __future__ import annotations

import pytest
from django.db import connections, transaction

from django_sendfleet.backends import EmailBackend, QueuedEmailBackend
from django_sendfleet.db import durable
from django_sendfleet.models import SendLog
from tests.support.messages import message

ROUTER = "tests.support.routers.SendFleetOnMail"

pytestmark = [
    pytest.mark.django_db(databases=["default", "mail"], transaction=True),
    pytest.mark.usefixtures("sendfleet_settings"),
]

needs_postgresql = pytest.mark.skipif(
    connections["default"].vendor != "postgresql",
    reason="SQLite records inside the caller's transaction (db/durable.py)",
)


@pytest.fixture
def routed(settings):
    settings.DATABASE_ROUTERS = [ROUTER]


class RolledBack(Exception):
    pass


@pytest.mark.usefixtures("routed")
def test_a_queued_send_rolled_back_on_the_routed_database_is_never_sent(sandbox):
    with pytest.raises(RolledBack), transaction.atomic(using="mail"):
        assert QueuedEmailBackend().send_messages([message()]) == 1
        raise RolledBack
    assert sandbox.accepted == []
    assert not SendLog.objects.using("mail").exists()


@pytest.mark.usefixtures("routed")
def test_a_queued_send_on_the_routed_database_is_sent_once_it_commits(sandbox):
    with transaction.atomic(using="mail"):
        assert QueuedEmailBackend().send_messages([message()]) == 1
        assert sandbox.accepted == []  # not before the commit
    assert len(sandbox.accepted) == 1
    [row] = SendLog.objects.using("mail").all()
    assert row.status == "queued"
    assert not SendLog.objects.using("default").exists()


@pytest.mark.usefixtures("routed")
def test_a_synchronous_send_logs_on_the_routed_database(sandbox):
    assert EmailBackend().send_messages([message()]) == 1
    assert SendLog.objects.using("mail").get().status == "queued"
    assert not SendLog.objects.using("default").exists()


@needs_postgresql
@pytest.mark.usefixtures("routed")
def test_the_log_row_of_an_accepted_send_survives_a_rollback_on_the_routed_database(
    sandbox, monkeypatch
):
    bounded: list[str] = []
    bound = durable._bound_lock_waits

    def record_bound(using: str) -> None:
        bounded.append(using)
        bound(using)

    monkeypatch.setattr(durable, "_bound_lock_waits", record_bound)
    with pytest.raises(RolledBack), transaction.atomic(using="mail"):
        assert EmailBackend().send_messages([message()]) == 1
        raise RolledBack
    assert len(sandbox.accepted) == 1
    assert SendLog.objects.using("mail").get().status == "queued"  # SendFleet has it
    assert bounded == ["mail"]  # the 2 s lock bound on the connection that writes
