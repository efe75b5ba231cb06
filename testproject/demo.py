"""The django-sendfleet demo: Django's own mail functions, sent through the bundled sandbox.

Run from the repository root: ``python -m testproject.demo``. It starts a SendFleet sandbox and
testproject's web server on 127.0.0.1, migrates testproject's database (and empties it, when it
is testproject's own SQLite file, so that every run tells the same story), sends a handful of
messages that show each outcome, lets the sandbox deliver its signed webhook events (delivered,
bounced, complained) to the web server, and prints what became of every recipient. Then the
reputation guard (``demo_reputation.py``): a bulk newsletter whose bounces put the account at
danger is held while a password reset still goes out. No account and no network are needed.
"""

from __future__ import annotations

import logging
import os
import secrets
import sys
import textwrap
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django_sendfleet.sandbox import SANDBOX_API_KEY, Sandbox

from . import demo_reputation

BURST_LIMIT = (5, 2)  # the sandbox's rate limit during the burst: 5 requests per 2 seconds
BURST_SIZE = 8


@dataclass
class Row:
    scenario: str
    recipient: str
    status: str
    message_id: str
    attempts: str
    note: str
    final: str = "-"  # the send log's status once the webhook events are in


def main() -> int:
    sandbox = Sandbox().start()
    os.environ["SENDFLEET_API_URL"] = sandbox.url
    os.environ["SENDFLEET_API_KEY"] = SANDBOX_API_KEY
    os.environ["SENDFLEET_WEBHOOK_SECRET"] = webhook_secret = secrets.token_urlsafe(24)
    # Keep message content in the log so the admin's "resend" action has something to send.
    os.environ["SENDFLEET_LOG_CONTENT"] = "1"
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "testproject.settings")
    import django

    django.setup()
    prepare_database()
    # The table below reports every outcome; the library's own log lines would repeat it.
    logging.getLogger("django_sendfleet").setLevel(logging.CRITICAL)
    logging.getLogger("django.tasks").setLevel(logging.WARNING)  # a line per queued send
    web = start_web_server()
    webhook_url = f"http://127.0.0.1:{web.server_port}/sendfleet/webhook/"
    sandbox.configure_webhook(webhook_url, webhook_secret)
    print(f"SendFleet sandbox listening at {sandbox.url}")
    print(f"testproject receiving its webhook events at {webhook_url}\n")
    try:
        # First, on an empty send log: the rates it shows are the newsletter's alone. The
        # scenarios below then send (transactional mail) while the account is at danger.
        reputation_story = demo_reputation.run(sandbox)
        rows = run_scenarios(sandbox)
        if not sandbox.wait_for_webhooks(timeout=30):
            print("Some webhook events were still being delivered after 30 s.")
        demo_reputation.wait_for_events(sandbox)  # and applied, for the final statuses
        add_final_statuses(rows)
        print_table(rows)
        deliveries = sandbox.webhook_deliveries
        print(
            f"\n{len(sandbox.accepted)} emails accepted by the sandbox, "
            f"{len(sandbox.requests)} HTTP requests made, "
            f"{sandbox.connections_opened} TCP connection(s) opened; "
            f"{len(deliveries)} signed webhook events delivered "
            f"({sum(d.status == 200 for d in deliveries)} answered 200)."
        )
    finally:
        sandbox.stop()
        web.shutdown()
    print_suppressions()
    print("\n" + "\n".join(reputation_story))
    print_admin_instructions()
    return 0


def prepare_database() -> None:
    """Migrate; testproject's own SQLite file is then emptied, so that every run starts from
    the same state (the reputation part needs a week without earlier runs' bounces). Any
    other database is only migrated."""
    from django.apps import apps
    from django.conf import settings
    from django.core.management import call_command
    from django.db import connection

    from testproject.settings import BASE_DIR

    call_command("migrate", verbosity=0)
    database = BASE_DIR / "db.sqlite3"
    if str(settings.DATABASES["default"]["NAME"]) != str(database):
        return
    tables = set(connection.introspection.table_names())
    if all(model._meta.db_table in tables for model in apps.get_models()):
        call_command("flush", interactive=False, verbosity=0)
        return
    # Migrated before a migration it records as applied had its operations: start afresh.
    connection.close()
    for path in (database, *database.parent.glob(f"{database.name}-*")):  # -wal, -shm
        path.unlink(missing_ok=True)
    call_command("migrate", verbosity=0)


def start_web_server() -> Any:
    """testproject's WSGI app on a free loopback port, in a thread: the webhook receiver."""
    from django.core.servers.basehttp import ThreadedWSGIServer, WSGIRequestHandler
    from django.core.wsgi import get_wsgi_application

    class QuietHandler(WSGIRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadedWSGIServer(("127.0.0.1", 0), QuietHandler)
    server.set_app(get_wsgi_application())
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def add_final_statuses(rows: list[Row]) -> None:
    from django_sendfleet.models import SendLog

    final = dict(SendLog.objects.values_list("message_id", "status"))
    for row in rows:
        row.final = final.get(row.message_id, row.status)


def print_suppressions() -> None:
    from django_sendfleet.models import Suppression

    print("\nLocal suppression list (no request is ever made to these addresses):")
    for entry in Suppression.objects.order_by("created_at"):
        print(f"  {entry.email:<28} {entry.reason:<13} from {entry.source}")


def print_admin_instructions() -> None:
    """Create (or reset) an admin user and say how to review the demo's sends in the admin."""
    from django.contrib.auth import get_user_model

    from django_sendfleet.models import SendLog, Suppression

    password = secrets.token_urlsafe(9)
    user, _ = get_user_model().objects.get_or_create(
        username="demo", defaults={"email": "demo@example.com"}
    )
    user.is_staff = user.is_superuser = True
    user.set_password(password)
    user.save()
    print(
        f"\nThe send log has {SendLog.objects.count()} rows and the suppression list "
        f"{Suppression.objects.count()} entries. Review them in the Django admin:\n"
        "  .venv/bin/python -m django_sendfleet.sandbox --port 8025 &   # for the resend action\n"
        "  .venv/bin/python testproject/manage.py runserver\n"
        "  open http://127.0.0.1:8000/admin/django_sendfleet/sendlog/ and log in as "
        f"demo / {password}"
    )


def run_scenarios(sandbox: Sandbox) -> list[Row]:
    from django.core.mail import EmailMessage, EmailMultiAlternatives, send_mail

    rows: list[Row] = []

    def record(scenario: str, send: Callable[[], list[EmailMessage]]) -> None:
        try:
            messages = send()
            error = None
        except Exception as caught:  # the demo shows every outcome, errors included
            messages = [caught.email_message] if getattr(caught, "email_message", None) else []
            error = caught
        for message in messages:
            for address, result in message.anymail_status.recipients.items():
                note = "; ".join(result.warnings)
                if result.error is not None:
                    note = f"{type(result.error).__name__}: {result.error.detail}"
                rows.append(
                    Row(
                        scenario,
                        address,
                        result.status,
                        result.message_id or "-",
                        str(result.attempts or "-"),
                        note,
                    )
                )
        if error is not None and not messages:
            rows.append(Row(scenario, "-", "error", "-", "-", f"{type(error).__name__}: {error}"))

    def plain() -> list[EmailMessage]:
        message = EmailMessage("Your receipt", "Thanks for your order.", None, ["ann@example.com"])
        message.send()
        return [message]

    def html() -> list[EmailMessage]:
        message = EmailMultiAlternatives("Your order shipped", "", None, ["bob@example.com"])
        message.attach_alternative(
            "<h1>Shipped!</h1><p>Track it <a href='https://example.com/t/1'>here</a>.</p>",
            "text/html",
        )
        message.send()
        return [message]

    def fan_out() -> list[EmailMessage]:
        message = EmailMessage(
            "Team update",
            "One request per recipient.",
            None,
            to=["Carol <carol@example.com>", "dave@example.com"],
            cc=["CAROL@example.com", "erin@example.com"],
            bcc=["frank@example.com"],
        )
        message.send()
        return [message]

    def suppressed() -> list[EmailMessage]:
        message = EmailMessage(
            "Newsletter", "Hello!", None, ["gina@example.com", "suppressed@example.net"]
        )
        message.send()
        return [message]

    def suppressed_again() -> list[EmailMessage]:
        # The 422 above added the address to the local list: this time no request is made.
        message = EmailMessage(
            "Newsletter #2", "Hello again!", None, ["gina@example.com", "suppressed@example.net"]
        )
        message.send()
        return [message]

    def unverified_domain() -> list[EmailMessage]:
        send_mail(
            "Hello",
            "From a domain SES has not verified.",
            "news@unverified.example",
            ["hank@example.com"],
        )
        return []

    def burst() -> list[EmailMessage]:
        sandbox.set_rate_limit(*BURST_LIMIT)
        time.sleep(BURST_LIMIT[1])  # let the earlier scenarios' requests leave the window
        messages = [
            EmailMessage(f"Burst {n}", "Paced by Retry-After.", None, [f"burst{n}@example.com"])
            for n in range(1, BURST_SIZE + 1)
        ]
        started = time.monotonic()
        with default_mailer() as connection:
            connection.send_messages(messages)
        print(
            f"Burst of {BURST_SIZE} under a {BURST_LIMIT[0]}/{BURST_LIMIT[1]}s limit took "
            f"{time.monotonic() - started:.1f} s (throttled sends waited for Retry-After).\n"
        )
        return messages

    def bounce_and_complaint() -> list[EmailMessage]:
        # The sandbox answers these addresses with a hard bounce and a spam complaint event.
        message = EmailMessage(
            "Welcome", "Hello!", None, ["bounce@example.com", "complaint@example.com"]
        )
        message.send()
        return [message]

    def warnings() -> list[EmailMessage]:
        message = EmailMessage(
            "DNS", "SPF and DMARC missing.", "ops@nospf.example.com", ["ivy@example.com"]
        )
        message.send()
        return [message]

    record("plain text (send_mail)", plain)
    record("HTML only", html)
    record("to+cc+bcc fan-out", fan_out)
    record("suppressed recipient", suppressed)
    record("suppressed, again", suppressed_again)
    record("unverified domain", unverified_domain)
    record("DNS warnings", warnings)
    record("bounce and complaint", bounce_and_complaint)
    record("throttled burst", burst)
    return rows


def default_mailer():
    """The default mailer: ``mailers.default`` on Django 6.1+, ``get_connection()`` before."""
    from django.core import mail

    if hasattr(mail, "mailers"):
        return mail.mailers.default
    return mail.get_connection()


def print_table(rows: list[Row]) -> None:
    headers = Row("scenario", "recipient", "sent as", "msg id", "tries", "note", "finally")
    rows = [
        Row(r.scenario, r.recipient, r.status, r.message_id[:8], r.attempts, r.note, r.final)
        for r in rows
    ]
    columns = ["scenario", "recipient", "status", "final", "message_id", "attempts"]
    widths = {c: max(len(getattr(r, c)) for r in [headers, *rows]) for c in columns}

    def line(row: Row) -> str:
        cells = [getattr(row, c).ljust(widths[c]) for c in columns]
        note = textwrap.shorten(row.note, 70, placeholder="...") if row.note else ""
        return "  ".join([*cells, note]).rstrip()

    print(line(headers))
    print("  ".join("-" * widths[c] for c in columns) + "  " + "-" * 4)
    for row in rows:
        print(line(row))


if __name__ == "__main__":
    sys.exit(main())
