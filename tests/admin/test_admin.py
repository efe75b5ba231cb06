"""The admin: send log review, actions, the suppression list, the dashboard, permissions."""

from __future__ import annotations

import datetime
import re

import pytest
from django.contrib.auth.models import Permission, User
from django.core.mail import send_mail
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone
from django.utils.html import escape

from django_sendfleet.admin.changelist import EstimatedCountPaginator
from django_sendfleet.admin.registration import ACTION_ROW_LIMIT, SendLogAdmin
from django_sendfleet.error_table import ERROR_TABLE, SPECS_BY_CODE
from django_sendfleet.models import SendLog, Suppression
from django_sendfleet.models.log_status import LogStatus
from tests.support.queries import assert_uses_an_index

pytestmark = pytest.mark.django_db

CHANGELIST = "admin:django_sendfleet_sendlog_changelist"
DASHBOARD = "admin:django_sendfleet_sendlog_dashboard"
SUPPRESSIONS = "admin:django_sendfleet_suppression_changelist"


def make_log(**fields) -> SendLog:
    values = {
        "recipient": "ann@example.com",
        "from_email": "shop@example.com",
        "subject": "Your receipt",
        "status": LogStatus.QUEUED,
        "mailer": "default",
        "mode": "shared",
        "attempts": 1,
        "http_status": 200,
        **fields,
    }
    return SendLog.objects.create(**values)


def with_content(**fields) -> SendLog:
    return make_log(
        from_name="Shop",
        text_body="Thanks for your order.",
        html_body="<p>Thanks for your <b>order</b>.</p>",
        **fields,
    )


def failed(code: str = "domain_not_verified", **fields) -> SendLog:
    values = {"status": LogStatus.FAILED, "error_code": code, "mode": "", "http_status": 403}
    return make_log(**(values | fields))


def listed(response) -> list[SendLog]:
    return list(response.context["cl"].result_list)


def messages_of(response) -> list[str]:
    return [str(message) for message in response.context["messages"]]


def staff(django_user_model, *codenames: str) -> Client:
    user = django_user_model.objects.create_user("staff", password="pw", is_staff=True)
    user.user_permissions.set(Permission.objects.filter(codename__in=codenames))
    client = Client()
    client.force_login(user)
    return client


def run_action(client: Client, action: str, rows: list[SendLog]):
    data = {"action": action, "_selected_action": [row.pk for row in rows]}
    return client.post(reverse(CHANGELIST), data, follow=True)


# The changelist


def test_changelist_shows_the_columns_and_links_the_dashboard(admin_client):
    failed(recipient="bob@example.com", subject="Order shipped")
    response = admin_client.get(reverse(CHANGELIST))
    assert response.status_code == 200
    for header in ("Created at", "Recipient", "Subject", "Status", "Error code", "Http status"):
        assert header in response.text
    assert "Mode" in response.text and "Attempts" in response.text
    assert "bob@example.com" in response.text and "domain_not_verified" in response.text
    assert f'href="{reverse(DASHBOARD)}"' in response.text


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ({"status": "failed"}, {"failed-1", "failed-2"}),
        ({"status": "problems"}, {"failed-1", "failed-2", "bounced"}),
        ({"status": "delivered"}, {"delivered"}),
        ({"error_code": "rate_limited"}, {"failed-2"}),
        ({"mode": "byoc"}, {"delivered"}),
        ({"mode": "none"}, {"failed-1", "failed-2"}),
        ({"mode": "shared"}, {"bounced", "old"}),
    ],
)
def test_filters(admin_client, query, expected):
    failed(subject="failed-1")
    failed("rate_limited", subject="failed-2", http_status=429)
    make_log(subject="delivered", status=LogStatus.DELIVERED, mode="byoc")
    make_log(subject="bounced", status=LogStatus.BOUNCED)
    make_log(subject="old", created_at=timezone.now() - datetime.timedelta(days=40))
    response = admin_client.get(reverse(CHANGELIST), query)
    assert {row.subject for row in listed(response)} == expected


def test_date_filter(admin_client):
    make_log(subject="today")
    make_log(subject="last month", created_at=timezone.now() - datetime.timedelta(days=40))
    week_ago = timezone.now() - datetime.timedelta(days=7)
    response = admin_client.get(reverse(CHANGELIST), {"created_at__gte": str(week_ago)})
    assert [row.subject for row in listed(response)] == ["today"]
    assert "Past 7 days" in response.text


def test_error_code_filter_lists_the_error_table_without_select_distinct(admin_client):
    with CaptureQueriesContext(connection) as queries:
        response = admin_client.get(reverse(CHANGELIST))
    for spec in ERROR_TABLE:
        assert f"?error_code={spec.code}" in response.text
    assert not [q["sql"] for q in queries if "DISTINCT" in q["sql"].upper()]


def test_search_is_exact_on_recipient_and_message_id(admin_client):
    make_log(recipient="ann@example.com", message_id="m-ann")
    make_log(recipient="Bob@Example.com", message_id="m-bob")
    make_log(recipient="annabel@example.com", message_id="m-annabel")

    def found(term: str) -> set[str]:
        with CaptureQueriesContext(connection) as queries:
            response = admin_client.get(reverse(CHANGELIST), {"q": term})
        assert not [q["sql"] for q in queries if " LIKE " in q["sql"].upper()]
        return {row.message_id for row in listed(response)}

    assert found("ann@example.com") == {"m-ann"}
    assert found("  ANN@example.com ") == {"m-ann"}  # compared as the backend normalises
    assert found("Bob@Example.com") == {"m-bob"}  # and as stored
    assert found("m-annabel") == {"m-annabel"}
    assert found("ann") == set()  # no substring matches


def test_changelist_never_counts_the_whole_table(admin_client):
    for n in range(3):
        make_log(subject=f"row {n}")
    with CaptureQueriesContext(connection) as queries:
        admin_client.get(reverse(CHANGELIST))
        admin_client.get(reverse(CHANGELIST), {"status": "queued"})
    counts = [q["sql"] for q in queries if "COUNT(" in q["sql"].upper()]
    assert counts and all("LIMIT" in sql.upper() for sql in counts)


def test_paginator_counts_exactly_up_to_the_limit_then_estimates(monkeypatch):
    monkeypatch.setattr(EstimatedCountPaginator, "exact_count_limit", 3)
    for n in range(3):
        make_log(subject=f"row {n}")
    small = EstimatedCountPaginator(SendLog.objects.all(), 2)
    assert (small.count, small.count_is_estimate) == (3, False)
    make_log(subject="row 3")
    make_log(subject="row 4")
    big = EstimatedCountPaginator(SendLog.objects.all(), 2)
    assert big.count >= 4 and big.count_is_estimate
    if connection.vendor != "postgresql":
        assert big.count == 4  # limit + 1: other databases have no cheap estimate


def test_estimate_note_is_shown_when_the_count_is_estimated(admin_client, monkeypatch):
    monkeypatch.setattr(EstimatedCountPaginator, "exact_count_limit", 2)
    for n in range(4):
        make_log(subject=f"row {n}")
    response = admin_client.get(reverse(CHANGELIST))
    assert "is an estimate" in response.text
    assert len(listed(response)) == 4  # the page itself is exact


def test_the_estimate_limit_keeps_large_results_paginated():
    assert EstimatedCountPaginator.exact_count_limit >= SendLogAdmin.list_max_show_all


def test_every_changelist_query_uses_an_index(admin_client):
    """Each filter's page query is served by an index (EXPLAIN on SQLite or PostgreSQL)."""
    failed()
    make_log()
    week_ago = str(timezone.now() - datetime.timedelta(days=7))
    pages = [
        {},
        {"status": "failed"},
        {"status": "problems"},
        {"error_code": "domain_not_verified"},
        {"mode": "byoc"},
        {"created_at__gte": week_ago},
        {"q": "ann@example.com"},
    ]
    for page in pages:
        with CaptureQueriesContext(connection) as queries:
            admin_client.get(reverse(CHANGELIST), page)
        table_queries = [
            q["sql"]
            for q in queries
            if 'FROM "django_sendfleet_sendlog"' in q["sql"] and not q["sql"].startswith("EXPLAIN")
        ]
        assert table_queries, page
        for sql in table_queries:
            assert_uses_an_index(sql)


# The detail page


def test_detail_page_explains_the_error_code_from_the_error_table(admin_client):
    row = failed("domain_not_verified", detail="Domain not verified.")
    response = admin_client.get(reverse("admin:django_sendfleet_sendlog_change", args=[row.pk]))
    assert response.status_code == 200
    spec = SPECS_BY_CODE["domain_not_verified"]
    assert escape(spec.meaning) in response.text
    assert escape(spec.fix) in response.text
    assert spec.exception.__name__ in response.text
    assert "HTTP 403" in response.text
    assert "content was not logged" in response.text


@pytest.mark.parametrize(
    ("code", "retried"),
    [
        ("rate_limit_wait", "nothing was sent"),  # no backoff: not "up to 1 attempts"
        ("queue_error", "4 attempts in all"),
        ("domain_not_verified", "Not retried"),
    ],
)
def test_detail_page_says_how_the_error_is_retried(admin_client, code, retried):
    row = failed(code, http_status=None)
    response = admin_client.get(reverse("admin:django_sendfleet_sendlog_change", args=[row.pk]))
    [shown] = re.findall(r"<dt>Retried automatically</dt>\s*<dd>(.*?)</dd>", response.text, re.S)
    assert retried in shown
    assert "up to 1 attempts" not in shown and "0 retries" not in shown


def test_detail_page_of_a_success_has_no_explanation(admin_client):
    row = with_content()
    response = admin_client.get(reverse("admin:django_sendfleet_sendlog_change", args=[row.pk]))
    assert 'id="sendfleet-error-explanation"' not in response.text
    assert "Thanks for your order." in response.text
    assert "&lt;b&gt;order&lt;/b&gt;" in response.text  # the logged HTML is shown, not rendered


def test_rows_cannot_be_added_changed_or_deleted(admin_client):
    row = failed()
    change_url = reverse("admin:django_sendfleet_sendlog_change", args=[row.pk])
    assert admin_client.get(reverse("admin:django_sendfleet_sendlog_add")).status_code == 403
    assert admin_client.post(change_url, {"subject": "edited"}).status_code == 403
    delete_url = reverse("admin:django_sendfleet_sendlog_delete", args=[row.pk])
    assert admin_client.post(delete_url, {"post": "yes"}).status_code == 403
    row.refresh_from_db()
    assert row.subject == "Your receipt"
    assert 'name="_save"' not in admin_client.get(change_url).text


# Actions


def test_resend_sends_through_the_mailer_and_logs_a_new_row(
    admin_client, sendfleet_settings, sandbox
):
    sendfleet_settings["LOG_CONTENT"] = True
    sandbox.inject_fault("drop")  # the first send's answer is lost: status unknown
    with pytest.raises(Exception):  # noqa: B017 - whichever error the backend raises
        send_mail("Your receipt", "Thanks.", "Shop <shop@example.com>", ["ann@example.com"])
    [original] = SendLog.objects.all()
    assert original.status == LogStatus.UNKNOWN and original.has_content

    response = run_action(admin_client, "resend", [original])

    assert any("Resent 1: 1 queued" in m for m in messages_of(response))
    assert len(sandbox.accepted) == 1
    payload = sandbox.accepted[0].payload
    assert payload["to"] == "ann@example.com" and payload["from_name"] == "Shop"
    assert payload["subject"] == "Your receipt" and payload["message"] == "Thanks."
    new = SendLog.objects.exclude(pk=original.pk).get()
    assert (new.status, new.recipient, new.message_id) == (
        LogStatus.QUEUED,
        "ann@example.com",
        sandbox.accepted[0].message_id,
    )


def test_resend_keeps_the_html_part_and_reply_to(admin_client, sendfleet_settings, sandbox):
    sendfleet_settings["LOG_CONTENT"] = True
    row = with_content(status=LogStatus.FAILED, reply_to="help@example.com")
    run_action(admin_client, "resend", [row])
    payload = sandbox.accepted[0].payload
    assert payload["html"] == row.html_body and payload["reply_to"] == "help@example.com"


def test_resend_refuses_rows_without_content(admin_client, sendfleet_settings, sandbox):
    row = failed()
    response = run_action(admin_client, "resend", [row])
    [message] = messages_of(response)
    assert "Skipped 1 of 1" in message and "content was not logged" in message
    assert "LOG_CONTENT" in message
    assert sandbox.requests == []
    assert SendLog.objects.count() == 1


@pytest.mark.parametrize("status", [LogStatus.PENDING, LogStatus.SENDING])
def test_resend_refuses_rows_still_in_the_outbox(admin_client, sendfleet_settings, sandbox, status):
    """Its worker sends a pending row: a resend as well would send the email twice."""
    sendfleet_settings["LOG_CONTENT"] = True
    outbox_row = with_content(recipient="a@example.com", status=status, payload={"to": "x"})
    done = with_content(recipient="b@example.com", status=LogStatus.FAILED)
    response = run_action(admin_client, "resend", [outbox_row, done])
    text = " ".join(messages_of(response))
    assert "Skipped 1 of 2" in text and "still in the outbox" in text and "twice" in text
    assert [r.payload["to"] for r in sandbox.accepted] == ["b@example.com"]
    outbox_row.refresh_from_db()
    assert outbox_row.status == status  # left to its worker


def test_resend_does_not_send_to_a_suppressed_recipient(admin_client, sendfleet_settings, sandbox):
    sendfleet_settings["LOG_CONTENT"] = True
    row = with_content(recipient="gone@example.com", status=LogStatus.BOUNCED)
    Suppression.objects.create(email="gone@example.com", reason=Suppression.Reason.HARD_BOUNCE)
    response = run_action(admin_client, "resend", [row])
    assert any("1 rejected" in m for m in messages_of(response))
    assert sandbox.requests == []
    new = SendLog.objects.exclude(pk=row.pk).get()
    assert (new.status, new.error_code) == (LogStatus.REJECTED, "recipient_suppressed")


def test_resend_mixes_rows_with_and_without_content(admin_client, sendfleet_settings, sandbox):
    sendfleet_settings["LOG_CONTENT"] = True
    rows = [with_content(recipient="a@example.com"), failed(recipient="b@example.com")]
    response = run_action(admin_client, "resend", rows)
    text = " ".join(messages_of(response))
    assert "Skipped 1 of 2" in text and "Resent 1: 1 queued" in text
    assert [r.payload["to"] for r in sandbox.accepted] == ["a@example.com"]


def test_actions_refuse_more_rows_than_the_limit(admin_client, monkeypatch, sandbox):
    monkeypatch.setattr("django_sendfleet.admin.registration.ACTION_ROW_LIMIT", 2)
    rows = [with_content(recipient=f"r{n}@example.com") for n in range(3)]
    response = run_action(admin_client, "resend", rows)
    assert any("at most 2 rows" in m for m in messages_of(response))
    assert sandbox.requests == [] and SendLog.objects.count() == 3
    assert ACTION_ROW_LIMIT >= 100


def test_add_to_suppression_list(admin_client):
    rows = [
        failed(recipient="Bob@Example.com", message_id="m-1"),
        failed(recipient="bob@example.com", message_id="m-2"),
        failed(recipient="carol@example.com", message_id="m-3"),
    ]
    Suppression.objects.create(email="carol@example.com", reason=Suppression.Reason.COMPLAINT)
    response = run_action(admin_client, "add_to_suppression_list", rows)
    [message] = messages_of(response)
    assert "Added 1 address(es)" in message and "1 already on it: carol@example.com" in message
    bob = Suppression.objects.get(email="bob@example.com")
    assert (bob.reason, bob.source) == (Suppression.Reason.MANUAL, "admin")
    assert bob.message_id in {"m-1", "m-2"} and "admin" in bob.note
    assert Suppression.objects.get(email="carol@example.com").reason == "complaint"


# The suppression list


def test_suppression_added_by_hand_is_normalised(admin_client):
    add_url = reverse("admin:django_sendfleet_suppression_add")
    data = {"email": "  Dave@Example.COM ", "reason": "manual", "note": "asked by phone"}
    response = admin_client.post(add_url, data)
    assert response.status_code == 302
    entry = Suppression.objects.get()
    assert (entry.email, entry.source, entry.note) == (
        "dave@example.com",
        "admin",
        "asked by phone",
    )
    again = admin_client.post(add_url, {**data, "email": "DAVE@example.com"})
    assert again.status_code == 200 and "already exists" in again.text
    assert Suppression.objects.count() == 1


def test_suppression_search_is_exact(admin_client):
    Suppression.objects.create(email="ann@example.com")
    Suppression.objects.create(email="annabel@example.com")
    response = admin_client.get(reverse(SUPPRESSIONS), {"q": " Ann@Example.com"})
    assert [s.email for s in listed(response)] == ["ann@example.com"]


def test_suppression_removal_warns_that_sendfleets_list_is_separate(admin_client):
    entry = Suppression.objects.create(email="ann@example.com")
    delete_url = reverse("admin:django_sendfleet_suppression_delete", args=[entry.pk])
    page = admin_client.get(delete_url)
    assert "SendFleet keeps its own suppression list, which is separate" in page.text
    assert "contact SendFleet support" in page.text
    assert admin_client.post(delete_url, {"post": "yes"}).status_code == 302
    assert not Suppression.objects.exists()


def test_bulk_suppression_removal_warns_too(admin_client):
    entries = [Suppression.objects.create(email=f"{n}@example.com") for n in "ab"]
    data = {"action": "delete_selected", "_selected_action": [e.pk for e in entries]}
    page = admin_client.post(reverse(SUPPRESSIONS), data)
    assert "SendFleet keeps its own suppression list, which is separate" in page.text
    admin_client.post(reverse(SUPPRESSIONS), {**data, "post": "yes"})
    assert not Suppression.objects.exists()


# The dashboard


def test_dashboard_draws_the_last_30_days(admin_client):
    now = timezone.now()
    for _ in range(3):
        make_log(status=LogStatus.DELIVERED)
    failed("domain_not_verified")
    failed("domain_not_verified")
    failed("rate_limited", created_at=now - datetime.timedelta(days=5))
    make_log(status=LogStatus.BOUNCED, created_at=now - datetime.timedelta(days=29))
    make_log(status=LogStatus.DELIVERED, created_at=now - datetime.timedelta(days=40))  # too old
    with CaptureQueriesContext(connection) as queries:
        response = admin_client.get(reverse(DASHBOARD))
    assert response.status_code == 200
    html = response.text
    assert html.count('<svg xmlns="http://www.w3.org/2000/svg" class="sendfleet-') == 2
    assert re.search(r'id="sendfleet-total">7<', html)
    totals = dict(re.findall(r'data-status="(\w+)">(\d+)<', html))
    assert totals["delivered"] == "3" and totals["failed"] == "3" and totals["bounced"] == "1"
    errors = dict(re.findall(r'data-code="(\w+)">(\d+)<', html))
    assert errors == {"domain_not_verified": "2", "rate_limited": "1"}
    assert f"{timezone.localdate().isoformat()}: 3 delivered" in html  # a bar's tooltip
    assert escape(SPECS_BY_CODE["domain_not_verified"].meaning) in html
    assert "<script" not in html.split('id="content-main"')[1]
    # The counts come from the per-day rollups, queries bounded by day: never from the log.
    # The reputation panel (issue 15) adds its 7 days and its count of held sends there, and
    # reads the log for one thing, the week's bounced rows' domains (the status index); the
    # outbox panel (issue 20) for the rows waiting, grouped (the outbox's partial index).
    log_queries = [q["sql"] for q in queries if "django_sendfleet_sendlog" in q["sql"]]
    [log_query] = [sql for sql in log_queries if "'bounced'" in sql]
    assert '"created_at" >=' in log_query
    [outbox_query] = [sql for sql in log_queries if sql != log_query]
    assert "'pending'" in outbox_query and "GROUP BY" in outbox_query
    rollup_queries = [q["sql"] for q in queries if "django_sendfleet_sendrollup" in q["sql"]]
    by_day = [sql for sql in rollup_queries if '"day" >=' in sql.split("WHERE")[1]]
    assert len(rollup_queries) == 3 and len(by_day) == 2


def test_dashboard_with_no_sends(admin_client):
    response = admin_client.get(reverse(DASHBOARD))
    assert response.status_code == 200
    assert "No errors in the last 30 days." in response.text


# Permissions


ADMIN_PAGES = [CHANGELIST, DASHBOARD, SUPPRESSIONS]


@pytest.mark.parametrize("page", ADMIN_PAGES)
def test_anonymous_users_are_sent_to_the_login_page(client, page):
    response = client.get(reverse(page))
    assert response.status_code == 302
    assert response.url.startswith(reverse("admin:login"))


@pytest.mark.parametrize("page", ADMIN_PAGES)
def test_non_staff_users_are_sent_to_the_login_page(client, django_user_model, page):
    client.force_login(django_user_model.objects.create_user("user", password="pw"))
    response = client.get(reverse(page))
    assert response.status_code == 302
    assert response.url.startswith(reverse("admin:login"))


@pytest.mark.parametrize("page", ADMIN_PAGES)
def test_staff_without_permission_get_403(django_user_model, page):
    assert staff(django_user_model).get(reverse(page)).status_code == 403


def test_view_permission_browses_but_cannot_act(django_user_model, sandbox):
    client = staff(django_user_model, "view_sendlog")
    row = with_content(status=LogStatus.FAILED)
    assert client.get(reverse(CHANGELIST)).status_code == 200
    assert client.get(reverse(DASHBOARD)).status_code == 200
    detail = reverse("admin:django_sendfleet_sendlog_change", args=[row.pk])
    assert client.get(detail).status_code == 200
    page = client.get(reverse(CHANGELIST))
    assert 'value="resend"' not in page.text
    assert 'value="add_to_suppression_list"' not in page.text
    run_action(client, "resend", [row])
    run_action(client, "add_to_suppression_list", [row])
    assert SendLog.objects.count() == 1 and not Suppression.objects.exists()


def test_actions_follow_their_permissions(django_user_model):
    with_content()
    suppress_only = staff(django_user_model, "view_sendlog", "add_suppression")
    page = suppress_only.get(reverse(CHANGELIST)).text
    assert 'value="add_to_suppression_list"' in page and 'value="resend"' not in page
    User.objects.get(username="staff").user_permissions.add(
        Permission.objects.get(codename="change_sendlog")
    )
    page = suppress_only.get(reverse(CHANGELIST)).text
    assert 'value="resend"' in page


def test_the_dashboard_draws_every_status():
    from django_sendfleet.admin.dashboard import stacking_order

    assert sorted(status for status, _ in stacking_order()) == sorted(LogStatus.values)


@pytest.mark.django_db
def test_webhook_events_show_under_their_send_and_in_their_own_list(admin_client):
    from django_sendfleet.models import WebhookEvent

    row = SendLog.objects.create(
        recipient="ann@example.com",
        from_email="shop@example.com",
        status="bounced",
        message_id="msg-1",
    )
    WebhookEvent.objects.create(
        event_type="email.bounced",
        message_id="msg-1",
        raw={},
        digest="a",
        send_log=row,
        outcome="applied",
    )
    WebhookEvent.objects.create(
        event_type="email.delivered",
        message_id="never-sent",
        raw={},
        digest="b",
        outcome="unknown_message",
    )
    detail = admin_client.get(reverse("admin:django_sendfleet_sendlog_change", args=[row.pk]))
    assert detail.status_code == 200 and b"email.bounced" in detail.content
    unknown = admin_client.get(
        reverse("admin:django_sendfleet_webhookevent_changelist") + "?outcome=unknown_message"
    )
    assert b"never-sent" in unknown.content and b"msg-1" not in unknown.content
