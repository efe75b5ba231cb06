"""Where operators see the reputation: the admin dashboard's panel (and its release button)
and ``sendfleet_check``'s line, with rates made by the sandbox's webhook events."""

from __future__ import annotations

import json
from io import StringIO

import django
import pytest
from django.contrib.auth.models import Permission, User
from django.core.mail import EmailMessage
from django.core.management import CommandError, call_command
from django.urls import reverse

from django_sendfleet.backends import EmailBackend
from django_sendfleet.queued.held import held_rows
from django_sendfleet.reputation import state as reputation_state

pytestmark = [
    pytest.mark.usefixtures("sendfleet_settings"),
    pytest.mark.django_db,
    pytest.mark.sendfleet_sandbox(rate_limit=(10_000, 60)),
]

SECRET = "reputation-webhook-secret"
SENDER = "Shop <shop@example.com>"
DASHBOARD = "admin:django_sendfleet_sendlog_dashboard"
RELEASE = "admin:django_sendfleet_sendlog_reputation_release"
needs_mailers = pytest.mark.skipif(django.VERSION < (6, 1), reason="MAILERS is Django 6.1's")


@pytest.fixture
def webhooks(sandbox, sendfleet_settings, settings):
    sendfleet_settings["WEBHOOK_SECRET"] = SECRET
    sendfleet_settings["REPUTATION"] = {"MIN_SENDS": 10}
    sandbox.configure_webhook(reverse("sendfleet-webhook"), SECRET)
    if django.VERSION >= (6, 1):
        settings.MAILERS = {
            "default": {"BACKEND": "django_sendfleet.backends.EmailBackend"},
            "newsletter": {
                "BACKEND": "django_sendfleet.backends.QueuedEmailBackend",
                "OPTIONS": {"bulk": True},
            },
        }
    return sandbox


def send(sandbox, addresses):
    messages = [EmailMessage("Hello", "Body", SENDER, [address]) for address in addresses]
    EmailBackend().send_messages(messages)
    sandbox.deliver_webhooks()


@pytest.fixture
def danger(webhooks):
    """2 hard bounces at one domain and 1 at another in 20 sends (15 %); a soft bounce."""
    send(
        webhooks,
        [f"ok+{n}@example.com" for n in range(16)]
        + ["bounce+1@gone.example", "bounce+2@GONE.example", "bounce+3@example.org"]
        + ["softbounce@full.example"],
    )
    reputation_state.check_now()  # as any process does within REFRESH_SECONDS
    return webhooks


def test_the_dashboard_shows_each_rate_against_its_thresholds(admin_client, danger):
    page = admin_client.get(reverse(DASHBOARD)).text
    assert 'data-mode="shared" data-level="danger"' in page
    assert "3 of 20 sends" in page  # hard bounces: the soft one is not counted
    assert "15.00 %" in page  # the bounce rate
    assert "warning 2.50 %" in page and "danger 5.00 %" in page  # the gauge's thresholds
    assert "warning 0.050 %" in page and "danger 0.100 %" in page
    assert "does not publish its thresholds" in page


def test_the_dashboard_lists_the_top_bouncing_domains_hard_bounces_only(admin_client, danger):
    page = admin_client.get(reverse(DASHBOARD)).text
    assert 'data-domain="gone.example">2<' in page
    assert 'data-domain="example.org">1<' in page
    assert "full.example" not in page.split("Top bouncing domains")[1]


def test_the_dashboard_shows_the_trend_day_by_day(admin_client, danger):
    snapshot = reputation_state.check_now().snapshot
    page = admin_client.get(reverse(DASHBOARD)).text
    today = snapshot.last_day.isoformat()
    row = page.split(f'data-day="{today}" data-mode="shared">')[1].split("</tr>")[0]
    assert "<td>20</td><td>3</td><td>15.00 %</td>" in row
    assert page.count('data-mode="shared"><td>') == 7  # every day of the window


@pytest.mark.sendfleet_sandbox(plan="byoc", rate_limit=(10_000, 60))
def test_the_dashboard_says_unknown_for_byoc(admin_client, webhooks):
    send(webhooks, [f"bounce+{n}@example.com" for n in range(12)])
    page = admin_client.get(reverse(DASHBOARD)).text
    assert 'data-mode="byoc" data-level="unknown"' in page
    assert "SendFleet sends no delivery events for BYOC" in page


@needs_mailers
def test_held_sends_are_shown_and_released_by_the_button(
    admin_client, danger, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        for n in range(3):
            EmailMessage("News", "Body", SENDER, [f"reader{n}@example.com"]).send(
                using="newsletter"
            )
    page = admin_client.get(reverse(DASHBOARD)).text
    assert "<strong>3</strong> bulk send(s) held" in page
    assert "error_code=reputation_hold" in page and "Release held sends" in page
    answer = admin_client.post(reverse(RELEASE), follow=True)
    assert "Released 3 held bulk send(s)" in answer.text
    assert not held_rows().exists()
    assert sorted(r for r in danger.recipients if r.startswith("reader")) == [
        f"reader{n}@example.com" for n in range(3)
    ]


@needs_mailers
def test_only_users_who_may_change_the_log_can_release(
    client, danger, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        EmailMessage("News", "Body", SENDER, ["reader@example.com"]).send(using="newsletter")
    viewer = User.objects.create_user("viewer", password="pw", is_staff=True)
    viewer.user_permissions.add(Permission.objects.get(codename="view_sendlog"))
    client.force_login(viewer)
    page = client.get(reverse(DASHBOARD)).text
    assert "bulk send(s) held" in page and "Release held sends" not in page
    assert client.post(reverse(RELEASE)).status_code == 403
    assert client.get(reverse(RELEASE)).status_code == 405
    assert held_rows().count() == 1


def reputation_line(output):
    [line] = [line for line in output.splitlines() if line.split()[1:2] == ["reputation"]]
    return line


def test_sendfleet_check_reports_the_danger_as_a_warning(danger):
    out = StringIO()
    call_command("sendfleet_check", stdout=out)  # warnings do not fail the command
    line = reputation_line(out.getvalue())
    assert "WARNING" in line and "shared: danger (bulk mailers held)" in line
    assert "bounce rate 15.00 % (warning 2.50 %, danger 5.00 %)" in line


def test_sendfleet_check_json_carries_every_figure(danger):
    out = StringIO()
    call_command("sendfleet_check", "--json", stdout=out)
    [check] = [c for c in json.loads(out.getvalue())["checks"] if c["name"] == "reputation"]
    assert check["level"] == "warning"
    shared = check["data"]["modes"]["shared"]
    assert (shared["level"], shared["sends"], shared["hard_bounces"]) == ("danger", 20, 3)
    assert shared["bounce"] == {
        "rate": 0.15,
        "level": "danger",
        "warning": 0.025,
        "danger": 0.05,
        "unknown_because": "",
    }
    assert check["data"]["window_days"] == 7
    assert check["data"]["mailers"]["shared:default"]["hard_bounces"] == 3


def test_sendfleet_check_says_ok_when_the_rates_are_unknown(sandbox):
    send(sandbox, [f"bounce+{n}@example.com" for n in range(5)])
    out = StringIO()
    with pytest.raises(CommandError):  # the webhook is routed without a secret: an error
        call_command("sendfleet_check", stdout=out)
    line = reputation_line(out.getvalue())
    assert line.strip().startswith("ok") and "shared: unknown" in line
    assert "WEBHOOK_SECRET" in line
