"""Migration 0010 (send priorities): rows already in the outbox at upgrade keep their order and
get their mailer's default priority; the claim's index exists. Run with Django's
MigrationExecutor on the test database: back to 0009, rows written, forward to 0010."""

from __future__ import annotations

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.utils import timezone

APP = "django_sendfleet"
BEFORE = [(APP, "0009_error_code_single_index")]
AFTER = [(APP, "0010_outbox_priority")]


def migrate(targets):
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(targets)
    return executor.loader.project_state(targets).apps


@pytest.fixture
def at_0009():
    """The database at 0009; brought back to the latest migration after the test."""
    apps = migrate(BEFORE)
    yield apps
    executor = MigrationExecutor(connection)
    migrate(executor.loader.graph.leaf_nodes(APP))


@pytest.mark.django_db(transaction=True)
def test_rows_in_the_outbox_keep_their_order_and_get_their_mailer_s_priority(at_0009, settings):
    settings.SENDFLEET = {}
    settings.MAILERS = {
        "default": {"BACKEND": "django_sendfleet.backends.QueuedEmailBackend"},
        "newsletter": {
            "BACKEND": "django_sendfleet.backends.QueuedEmailBackend",
            "OPTIONS": {"bulk": True},
        },
        "digest": {
            "BACKEND": "django_sendfleet.backends.QueuedEmailBackend",
            "OPTIONS": {"priority": "low"},
        },
    }
    OldSendLog = at_0009.get_model(APP, "SendLog")
    rows = [
        ("default", "pending"),
        ("newsletter", "pending"),
        ("", "pending"),  # logged before mailers had names: the project's settings
        ("digest", "pending"),
        ("default", "pending"),
        ("newsletter", "queued"),  # sent already: its priority no longer matters
    ]
    ids = [
        OldSendLog.objects.create(mailer=mailer, status=status, recipient=f"r{n}@example.com").pk
        for n, (mailer, status) in enumerate(rows)
    ]

    new_apps = migrate(AFTER)

    SendLog = new_apps.get_model(APP, "SendLog")
    stored = dict(SendLog.objects.values_list("pk", "priority"))
    assert [stored[pk] for pk in ids] == [10, 20, 10, 20, 10, 10]
    assert not SendLog.objects.filter(bulk=True).exists()
    # The claim's order: high before low, and within each the order they were queued in.
    pending = SendLog.objects.filter(status="pending").order_by("priority", "pk")
    assert list(pending.values_list("pk", flat=True)) == [ids[0], ids[2], ids[4], ids[1], ids[3]]
    with connection.cursor() as cursor:
        indexes = connection.introspection.get_constraints(cursor, SendLog._meta.db_table)
    assert indexes["sendfleet_log_outbox"]["columns"] == ["priority", "id"]


@pytest.mark.django_db(transaction=True)
def test_sendfleet_bulk_makes_every_waiting_row_low(at_0009, settings):
    """Before Django 6.1, SENDFLEET["BULK"] is how the one mailer is marked bulk."""
    settings.SENDFLEET = {"BULK": True}
    OldSendLog = at_0009.get_model(APP, "SendLog")
    row = OldSendLog.objects.create(mailer="default", status="pending", recipient="a@example.com")
    SendLog = migrate(AFTER).get_model(APP, "SendLog")
    assert SendLog.objects.get(pk=row.pk).priority == 20


@pytest.mark.django_db(transaction=True)
def test_a_row_written_without_the_new_columns_gets_their_defaults(at_0009):
    """Code of the release before 0010, still running during a deploy, writes rows without
    ``priority`` and ``bulk``: the database's defaults fill them in instead of an error."""
    SendLog = migrate(AFTER).get_model(APP, "SendLog")
    table = connection.ops.quote_name(SendLog._meta.db_table)
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {table} (created_at, updated_at, mailer, message_id, recipient, "
            "from_email, subject, status, error_code, detail, mode, warnings, attempts, "
            "claim_token, from_name, reply_to, text_body, html_body) VALUES "
            "(%s, %s, 'default', '', 'old@example.com', 'shop@example.com', '', 'pending', '', "
            "'', '', '[]', 0, '', '', '', '', '')",
            [timezone.now(), timezone.now()],
        )
    row = SendLog.objects.get(recipient="old@example.com")
    assert (row.priority, row.bulk) == (10, False)
