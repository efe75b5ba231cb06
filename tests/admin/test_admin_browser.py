"""The admin in a real browser: Chromium, driven by Playwright, against pytest-django's server.

Logs in, filters the send log to failures, opens a failed row, resends a message through the
sandbox, and opens the dashboard, taking its screenshot (written to docs/images/dashboard.png
when SENDFLEET_UPDATE_SCREENSHOTS=1, else to the test's temporary directory).
Needs ``pip install playwright`` and Debian's ``chromium`` (Playwright's own browser downloads
are not used); the module is skipped without them.
"""

from __future__ import annotations

import datetime
import os
import random
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.utils import timezone

from django_sendfleet.error_table import SPECS_BY_CODE
from django_sendfleet.models import SendLog
from django_sendfleet.models.log_status import LogStatus

sync_api = pytest.importorskip(
    "playwright.sync_api", reason="playwright is not installed: pip install playwright"
)

CHROMIUM = Path("/usr/bin/chromium")
DOCS_SCREENSHOT = Path(__file__).resolve().parents[2] / "docs" / "images" / "dashboard.png"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
PASSWORD = "browser-test-password"

pytestmark = [
    pytest.mark.skipif(not CHROMIUM.exists(), reason=f"no Chromium at {CHROMIUM}"),
    # The live server's thread must see the rows this test writes: real commits.
    pytest.mark.django_db(transaction=True),
]


@pytest.fixture
def page(monkeypatch, live_server) -> Iterator[sync_api.Page]:
    # Playwright's sync API runs an event loop in this thread; Django's ORM refuses to run
    # beside one unless told it is safe, which it is here: the loop never touches the ORM.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    with sync_api.sync_playwright() as playwright:
        # Chromium does not start under libfaketime (.ci/faketime.sh): it keeps the real clock.
        # The server under test, in this process, keeps the faked one.
        real_clock = {name: value for name, value in os.environ.items() if name != "LD_PRELOAD"}
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, env=real_clock
        )
        context = browser.new_context(viewport={"width": 1280, "height": 900})
        context.set_default_timeout(15_000)
        yield context.new_page()
        browser.close()


def seed_thirty_days() -> None:
    """A month of sends with a realistic mix of outcomes, for the lists and the dashboard.

    Each row falls on one of the dashboard's 30 calendar days and never after now, whatever
    the time of day the test runs at.
    """
    rng = random.Random(2026)
    now = timezone.now()
    today = timezone.localdate()
    outcomes = [
        (LogStatus.DELIVERED, "", 78),
        (LogStatus.QUEUED, "", 8),
        (LogStatus.FAILED, "domain_not_verified", 3),
        (LogStatus.FAILED, "rate_limited", 2),
        (LogStatus.FAILED, "queue_error", 1),
        (LogStatus.REJECTED, "recipient_suppressed", 3),
        (LogStatus.BOUNCED, "", 3),
        (LogStatus.UNKNOWN, "network_error", 1),
        (LogStatus.COMPLAINED, "", 1),
    ]
    rows = []
    for days_ago in range(30):
        for n in range(rng.randint(25, 60)):
            status, code, _ = rng.choices(outcomes, weights=[w for *_, w in outcomes])[0]
            rows.append(
                SendLog(
                    created_at=on_day(today - datetime.timedelta(days=days_ago), rng, now),
                    mailer="default",
                    recipient=f"customer{rng.randint(1, 400)}@example.com",
                    from_email="shop@example.com",
                    subject=rng.choice(["Your receipt", "Order shipped", "Password reset"]),
                    status=status,
                    error_code=code,
                    http_status={"": 200, "rate_limited": 429, "queue_error": 502}.get(code, 403),
                    mode="" if code else "shared",
                    attempts=4 if code == "queue_error" else 1,
                    message_id="" if code else f"msg-{days_ago}-{n}",
                )
            )
    SendLog.objects.bulk_create(rows)


def on_day(day: datetime.date, rng: random.Random, now: datetime.datetime) -> datetime.datetime:
    """A time within ``day`` (the current time zone's), no later than ``now``."""
    start = timezone.make_aware(datetime.datetime.combine(day, datetime.time.min))
    return min(start + datetime.timedelta(minutes=rng.randint(0, 24 * 60 - 1)), now)


def log_in(page: sync_api.Page, base_url: str) -> None:
    page.goto(f"{base_url}/admin/login/?next=/admin/")
    page.fill("#id_username", "admin")
    page.fill("#id_password", PASSWORD)
    page.click("input[type=submit]")
    sync_api.expect(page).to_have_url(re.compile(r"/admin/$"))


def test_review_failures_resend_and_see_the_dashboard(
    page, live_server, django_user_model, sendfleet_settings, sandbox, tmp_path
):
    sendfleet_settings["LOG_CONTENT"] = True
    django_user_model.objects.create_superuser("admin", "admin@example.com", PASSWORD)
    seed_thirty_days()
    failed = SendLog.objects.create(
        created_at=timezone.now(),
        mailer="default",
        recipient="ann@example.com",
        from_email="shop@example.com",
        from_name="Shop",
        subject="Your invoice",
        text_body="Your invoice is attached below.",
        status=LogStatus.FAILED,
        error_code="domain_not_verified",
        http_status=403,
        attempts=1,
    )
    expect = sync_api.expect

    log_in(page, live_server.url)
    page.goto(f"{live_server.url}/admin/django_sendfleet/sendlog/")
    page.locator("#changelist-filter").get_by_role("link", name="failed", exact=True).click()
    expect(page).to_have_url(re.compile(r"status=failed"))
    # The URL changes when the new page arrives, before it is parsed: wait for its list.
    page.wait_for_load_state("load")
    status_cells = page.locator("#result_list tbody td.field-status")
    expect(status_cells.first).to_be_visible()
    statuses = status_cells.all_inner_texts()
    assert statuses and set(statuses) == {"failed"}

    page.locator(f'#result_list tr:has(input[value="{failed.pk}"]) th a').click()
    explanation = page.locator("#sendfleet-error-explanation")
    expect(explanation).to_contain_text("Error code domain_not_verified (HTTP 403)")
    expect(explanation).to_contain_text(SPECS_BY_CODE["domain_not_verified"].fix[:40])

    page.go_back()
    page.locator(f'input[name="_selected_action"][value="{failed.pk}"]').check()
    page.select_option("select[name=action]", "resend")
    page.locator("button[name=index]").click()
    expect(page.locator("ul.messagelist")).to_contain_text("Resent 1: 1 queued")
    assert [r.payload["subject"] for r in sandbox.accepted] == ["Your invoice"]
    assert SendLog.objects.filter(recipient="ann@example.com", status="queued").exists()

    page.get_by_role("link", name="Dashboard").click()
    expect(page.locator("svg.sendfleet-sends-chart rect").first).to_be_visible()
    expect(page.locator("svg.sendfleet-errors-chart")).to_contain_text("domain_not_verified")
    total = SendLog.objects.count()
    expect(page.locator("#sendfleet-total")).to_have_text(str(total))
    screenshot = (
        DOCS_SCREENSHOT
        if os.environ.get("SENDFLEET_UPDATE_SCREENSHOTS") == "1"
        else tmp_path / "dashboard.png"
    )
    page.screenshot(path=str(screenshot), full_page=True)
    assert screenshot.stat().st_size > 10_000
