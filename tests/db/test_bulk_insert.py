"""The send log's own bulk insert (``bulk_insert.py``) stores what Django's ``bulk_create``
stores, in as few statements, and leaves to Django what it does not take.

Each test writes the same rows both ways, on the test database (SQLite, or PostgreSQL with
``DATABASE_URL``), and compares the rows read back.
"""

from __future__ import annotations

import datetime

import pytest
from django.db import connection, models
from django.db.models import Value
from django.db.models.functions import Upper
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from django_sendfleet.db import bulk_insert
from django_sendfleet.models import MessageContent, SendLog
from django_sendfleet.models.log_status import LogStatus
from django_sendfleet.records import send_log
from tests.support.examples import examples

pytestmark = pytest.mark.django_db

COMPARED = [f.attname for f in SendLog._meta.concrete_fields if f.attname not in ("id",)]


def stored(pks: list[int]) -> list[dict[str, object]]:
    rows = {row["id"]: row for row in SendLog.objects.filter(pk__in=pks).values("id", *COMPARED)}
    return [{name: rows[pk][name] for name in COMPARED} for pk in pks]


def without_times(rows: list[dict[str, object]]) -> list[dict[str, object]]:
    return [{k: v for k, v in row.items() if k != "updated_at"} for row in rows]


CREATED = timezone.now() - datetime.timedelta(days=3)


def sample_rows(content: MessageContent | None = None) -> list[SendLog]:
    created = CREATED
    return [
        SendLog(
            recipient="ann@example.com",
            from_email="shop@example.com",
            mailer="default",
            mode="shared",
            status=LogStatus.QUEUED,
            message_id="m-1",
            warnings=["sandbox"],
            attempts=1,
            http_status=200,
            duration_ms=12,
            created_at=created,
            content=content,
        ),
        SendLog(
            recipient="bob@example.com",
            from_email="shop@example.com",
            mailer="default",
            status=LogStatus.FAILED,
            error_code="recipient_suppressed",
            detail="On the list.",
            attempts=0,
            payload={"to": "bob@example.com", "n": [1, 2]},
            not_before=created,
            created_at=created,
        ),
        SendLog(recipient="cy@example.com", from_email="shop@example.com", created_at=created),
    ]


def test_rows_are_stored_as_bulk_create_stores_them_with_their_keys_set():
    content = MessageContent.objects.create(from_email="shop@example.com", text="Hello")
    ours, djangos = sample_rows(content), sample_rows(content)
    before = timezone.now()
    with CaptureQueriesContext(connection) as queries:
        inserted = bulk_insert.insert(ours, "default")
    assert inserted == ours
    assert [q["sql"].split()[0] for q in queries.captured_queries] == ["INSERT"]
    models.QuerySet(SendLog).bulk_create(djangos)  # Django's own, bypassing the rollups' path
    assert all(row.pk is not None and not row._state.adding for row in ours)
    assert all(row._state.db == "default" for row in ours)
    assert without_times(stored([r.pk for r in ours])) == without_times(
        stored([r.pk for r in djangos])
    )
    # auto_now is set on the row, as bulk_create sets it.
    assert all(row.updated_at >= before for row in ours)
    assert stored([ours[0].pk])[0]["updated_at"] == ours[0].updated_at


# Text as the databases store it (as the send log's writes make it): PostgreSQL refuses NUL
# and lone surrogates, in text columns and in JSON alike, whoever inserts them.
TEXT = st.characters(exclude_characters="\x00", exclude_categories=("Cs",))


@settings(max_examples=examples(40), suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    values=st.lists(
        st.fixed_dictionaries(
            {
                "recipient": st.text(TEXT, min_size=1, max_size=40),
                "subject": st.sampled_from(["", "Hello", "Hello"]),
                "status": st.sampled_from([*LogStatus.values, LogStatus.QUEUED]),
                "attempts": st.integers(min_value=0, max_value=5),
                "http_status": st.one_of(st.none(), st.sampled_from([200, 422, 429])),
                "warnings": st.lists(st.text(TEXT, max_size=5)),
                "payload": st.one_of(
                    st.none(),
                    st.dictionaries(st.text(TEXT, max_size=3), st.integers(-(2**53), 2**53)),
                ),
            }
        ),
        min_size=1,
        max_size=12,
    )
)
def test_any_rows_are_stored_as_bulk_create_stores_them(values):
    ours = [SendLog(from_email="shop@example.com", **row) for row in values]
    djangos = [SendLog(from_email="shop@example.com", **row) for row in values]
    for mine, theirs in zip(ours, djangos, strict=True):
        theirs.created_at = mine.created_at
    assert bulk_insert.insert(ours, "default") is not None
    models.QuerySet(SendLog).bulk_create(djangos)
    assert without_times(stored([r.pk for r in ours])) == without_times(
        stored([r.pk for r in djangos])
    )


def test_a_batch_larger_than_one_statement_takes_is_split_and_keeps_its_order(monkeypatch):
    monkeypatch.setattr(connection.ops, "bulk_batch_size", lambda fields, objs: 2)
    rows = [SendLog(recipient=f"r{n}@example.com", from_email="s@example.com") for n in range(5)]
    with CaptureQueriesContext(connection) as queries:
        bulk_insert.insert(rows, "default")
    assert len([q for q in queries.captured_queries if q["sql"].startswith("INSERT")]) == 3
    assert [SendLog.objects.get(pk=row.pk).recipient for row in rows] == [
        f"r{n}@example.com" for n in range(5)
    ]


def test_what_it_does_not_take_is_left_to_bulk_create_and_nothing_is_written():
    with_key = SendLog(pk=10_000, recipient="a@example.com", from_email="s@example.com")
    expression = SendLog(recipient=Upper(Value("a@example.com")), from_email="s@example.com")
    assert bulk_insert.insert([with_key], "default") is None
    assert bulk_insert.insert([expression], "default") is None
    assert not SendLog.objects.exists()
    # SendLog.objects.bulk_create takes them through Django, still counted.
    SendLog.objects.bulk_create([with_key, expression])
    assert SendLog.objects.get(pk=10_000).recipient == "a@example.com"
    assert SendLog.objects.get(pk=expression.pk).recipient == "A@EXAMPLE.COM"


def test_content_not_saved_yet_is_refused_as_bulk_create_refuses_it():
    unsaved = MessageContent(from_email="shop@example.com", text="Hello")
    with pytest.raises(ValueError, match="unsaved related object"):
        bulk_insert.insert([SendLog(recipient="a@example.com", content=unsaved)], "default")


def test_a_log_row_built_by_position_equals_one_built_by_keyword():
    values = {"recipient": "a@example.com", "from_email": "s@example.com", "status": "queued"}
    by_position, by_keyword = send_log._new_row(values), SendLog(**values)
    for field in SendLog._meta.concrete_fields:
        if field.attname != "created_at":  # each row's own now()
            assert getattr(by_position, field.attname) == getattr(by_keyword, field.attname)
    assert by_position.warnings == [] and by_position.warnings is not by_keyword.warnings
    assert by_position._state.adding and by_position.pk is None
