"""The outbox's backlog (issue 20): rows waiting per priority and mailer, the age of the oldest
due row and the time to send them at the key's rate, in ``sendfleet_check`` (text and --json)
and on the admin dashboard; a warning when a high-priority row has waited too long."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from django_sendfleet.message.priority import RANKS
from django_sendfleet.models import SendLog
from django_sendfleet.queued.backlog import duration
from tests.support.check_command import result, run_check, run_json

# webhook_configured: a project that routes the webhook and has its secret (tests/support).
pytestmark = [
    pytest.mark.usefixtures("sendfleet_settings", "webhook_configured"),
    pytest.mark.django_db,
]

DASHBOARD = "admin:django_sendfleet_sendlog_dashboard"


def waiting(mailer, priority, count, age=timedelta(0), not_before=None):
    created = timezone.now() - age
    SendLog.objects.bulk_create(
        SendLog(
            mailer=mailer,
            priority=RANKS[priority],
            status="pending",
            recipient=f"{mailer}{n}@example.com",
            created_at=created,
            not_before=not_before,
        )
        for n in range(count)
    )


@pytest.fixture
def backlog(sendfleet_settings):
    """A newsletter of 120 due rows and 2 held ones, a reset queued 30 s ago; 60 a minute."""
    sendfleet_settings["RATE_LIMIT"] = "60/min"
    waiting("newsletter", "low", 120, age=timedelta(minutes=3))
    waiting("newsletter", "low", 2, not_before=timezone.now() + timedelta(hours=1))
    waiting("default", "high", 1, age=timedelta(seconds=30))
    SendLog.objects.create(mailer="default", status="queued", recipient="sent@example.com")


def test_sendfleet_check_json_gives_the_backlog_per_priority_and_mailer(backlog):
    _, report = run_json()
    outbox = result(report, "outbox")
    assert outbox["level"] == "ok"
    data = outbox["data"]
    assert data["waiting"] == {"high": 1, "low": 122}
    [reset, news] = data["groups"]
    assert (reset["mailer"], reset["priority"], reset["waiting"], reset["due"]) == (
        "default",
        "high",
        1,
        1,
    )
    assert 30 <= reset["oldest_due_seconds"] < 90
    assert reset["drain_seconds"] == 1.0  # one row at one a second
    assert (news["mailer"], news["priority"], news["waiting"], news["due"]) == (
        "newsletter",
        "low",
        122,
        120,
    )
    assert 180 <= news["oldest_due_seconds"] < 240
    # After the high row of the same key: 121 rows at one a second. Held rows are not counted.
    assert news["drain_seconds"] == 121.0
    assert 180 <= data["oldest_due_seconds"]["low"] < 240


def test_sendfleet_check_text_says_it_in_words(backlog):
    _, text = run_check()
    [line] = [line for line in text.splitlines() if line.strip().startswith("ok      outbox")]
    assert re.search(
        r"high: default 1 waiting, oldest due queued \d+ s ago, about 1 s to send;", line
    )
    assert (
        "low: newsletter 122 waiting (120 due, 2 held or backing off), oldest due queued 3 min"
        in line
    )
    assert "about 2 min 1 s to send" in line


def test_an_empty_outbox(sendfleet_settings):
    _, report = run_json()
    outbox = result(report, "outbox")
    assert outbox["level"] == "ok" and outbox["message"] == "high: 0 waiting; low: 0 waiting"


def test_a_high_priority_row_waiting_too_long_is_a_warning(sendfleet_settings):
    waiting("default", "high", 1, age=timedelta(minutes=10))
    waiting("newsletter", "low", 5, age=timedelta(hours=2))  # bulk may wait: no warning
    _, report = run_json()
    outbox = result(report, "outbox")
    assert outbox["level"] == "warning"
    assert outbox["message"].startswith("the oldest due high-priority row has waited 10 min")
    assert "workers" in outbox["fix"]
    sendfleet_settings["HIGH_PRIORITY_MAX_WAIT"] = 3600
    assert result(run_json()[1], "outbox")["level"] == "ok"


def test_a_held_high_priority_row_is_not_late(sendfleet_settings):
    waiting(
        "default", "high", 1, age=timedelta(hours=1), not_before=timezone.now() + timedelta(hours=1)
    )
    assert result(run_json()[1], "outbox")["level"] == "ok"


def test_the_warning_threshold_is_validated(sendfleet_settings):
    sendfleet_settings["HIGH_PRIORITY_MAX_WAIT"] = "soon"
    status, report = run_json()
    assert status == 1
    assert "HIGH_PRIORITY_MAX_WAIT" in result(report, "settings")["message"]


@pytest.fixture
def admin_page(admin_client, settings):
    settings.ROOT_URLCONF = "testproject.urls"  # with the admin, unlike sendfleet_check's tests
    return lambda: admin_client.get(reverse(DASHBOARD)).text


def test_the_dashboard_shows_the_outbox(backlog, admin_page):
    html = admin_page()
    panel = html.split('id="sendfleet-outbox"')[1].split("</table>")[0]
    rows = re.findall(
        r'data-priority="(\w+)" data-mailer="(\w+)">.*?sendfleet-outbox-waiting">(?:<a[^>]*>)?'
        r"(\d+)<.*?<td>(\d+)</td>\s*<td>([^<]*)</td>\s*<td>([^<]*)</td>",
        panel,
        flags=re.S,
    )
    assert [row[:4] for row in rows] == [
        ("high", "default", "1", "1"),
        ("low", "newsletter", "122", "120"),
    ]
    assert rows[1][4].startswith("3 min") and rows[1][5] == "about 2 min 1 s"
    assert 'id="sendfleet-outbox-late"' not in html


def test_the_dashboard_warns_of_a_late_high_priority_row(admin_page):
    waiting("default", "high", 1, age=timedelta(minutes=10))
    html = admin_page()
    assert re.search(
        r'id="sendfleet-outbox-late">The oldest due high-priority row has waited '
        r"10 min",
        html,
    )


@pytest.mark.parametrize(
    ("seconds", "words"),
    [
        (0, "0 s"),
        (59.6, "1 min"),
        (61, "1 min 1 s"),
        (725, "12 min"),
        (9400, "2 h 37 min"),
        (7200, "2 h"),
    ],
)
def test_durations_in_words(seconds, words):
    assert duration(seconds) == words
