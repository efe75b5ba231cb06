"""Storing a webhook event tries again only while another writer holds a lock (issue 21).

A lock passes; a missing table or a refused connection does not, and trying again for
``STORE_PATIENCE_SECONDS`` only held each webhook request that long before its 500. The
errors below are the database's own, raised through the real driver: on SQLite a table
renamed away, on PostgreSQL a trigger raising the SQLSTATE. Tries are counted, not timed.
"""

import json
import time
from collections.abc import Iterator

import pytest
from django.db import connection
from django.test import Client

from django_sendfleet.models import WebhookEvent
from django_sendfleet.webhooks.store import store_event
from tests.support.webhooks import post_webhook

pytestmark = pytest.mark.django_db

SECRET = "whsec_store_retry_0123456789"
TABLE = WebhookEvent._meta.db_table


def body() -> bytes:
    return json.dumps({"event_type": "email.delivered", "message_id": "msg-1"}).encode()


@pytest.fixture
def inserts() -> Iterator[list[str]]:
    """The INSERT statements run on the events table, failed ones included."""
    seen: list[str] = []

    def count(execute, sql, params, many, context):
        if sql.lstrip().upper().startswith("INSERT") and TABLE in sql:
            seen.append(sql)
        return execute(sql, params, many, context)

    with connection.execute_wrapper(count):
        yield seen


def run(*statements: str) -> None:
    with connection.cursor() as cursor:
        for statement in statements:
            cursor.execute(statement)


@pytest.fixture
def events_table_fails():
    """Every insert into the events table fails with an error that is not a lock: SQLite's
    "no such table", PostgreSQL's too_many_connections (53300, an OperationalError as a
    refused connection is). Undone by the test's rollback."""
    if connection.vendor == "sqlite":
        run(f'ALTER TABLE "{TABLE}" RENAME TO "sendfleet_test_away"')
    elif connection.vendor == "postgresql":
        run(
            "CREATE FUNCTION sendfleet_test_refuse() RETURNS trigger AS $$ BEGIN "
            "RAISE EXCEPTION 'too many connections' USING ERRCODE = '53300'; END $$ "
            "LANGUAGE plpgsql",
            f'CREATE TRIGGER sendfleet_test_refuse BEFORE INSERT ON "{TABLE}" '
            "FOR EACH ROW EXECUTE FUNCTION sendfleet_test_refuse()",
        )
    else:
        pytest.skip(f"no failing table for {connection.vendor}")


@pytest.mark.usefixtures("events_table_fails")
def test_an_event_that_cannot_be_stored_answers_500_after_one_try(settings, inserts):
    settings.SENDFLEET = {"WEBHOOK_SECRET": SECRET}
    answer = post_webhook(Client(raise_request_exception=False), body(), secret=SECRET)
    assert answer.status_code == 500
    assert len(inserts) == 1  # the old code tried again for 20 s: thousands of inserts


@pytest.mark.parametrize("state", ["55P03", "40001", "40P01"])
def test_a_lock_error_on_postgresql_is_tried_again_after_a_pause(inserts, state):
    """lock_not_available, serialization_failure, deadlock_detected: the first three inserts
    meet one, the fourth stores the event; a pause before each try again (sleep() waits at
    least what it is told, so the lower bound holds on any machine)."""
    if connection.vendor != "postgresql":
        pytest.skip("SQLSTATEs are PostgreSQL's; SQLite's lock is tried in test_webhook_server")
    run(
        "CREATE SEQUENCE sendfleet_test_tries",
        "CREATE FUNCTION sendfleet_test_locked() RETURNS trigger AS $$ BEGIN "
        "IF nextval('sendfleet_test_tries') <= 3 THEN "
        f"RAISE EXCEPTION 'locked' USING ERRCODE = '{state}'; END IF; RETURN NEW; END $$ "
        "LANGUAGE plpgsql",
        f'CREATE TRIGGER sendfleet_test_locked BEFORE INSERT ON "{TABLE}" '
        "FOR EACH ROW EXECUTE FUNCTION sendfleet_test_locked()",
    )
    started = time.monotonic()
    stored = store_event(body(), max_age=None)
    assert stored is not None and WebhookEvent.objects.filter(pk=stored.pk).exists()
    assert len(inserts) == 4
    assert time.monotonic() - started >= 3 * 0.005  # three pauses, none under 5 ms
