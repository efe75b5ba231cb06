"""Waiting until the project has applied the webhook events the sandbox delivered.

django-sendfleet's webhook view stores an event, answers, and applies it after the answer
(``event_drain``), so a test that reads the send log as soon as every event was answered can
read it before the last ones were applied. ``wait_until_applied`` waits for that: for each
event the view accepted (a 2xx), until its stored row is finished, and then until no thread of
this process is applying events (their signal receivers run after the row is written). An
event the view stores is stored before the answer, so an accepted event with no row was not
stored in this project's database (another receiver): there is nothing to wait for.
"""

from __future__ import annotations

import time
from collections.abc import Iterable

from .webhooks import Delivery

#: Seconds between two looks at the stored events.
POLL_SECONDS = 0.005


def wait_until_applied(deliveries: Iterable[Delivery], deadline: float) -> bool:
    """Return True once every accepted delivery's event is applied (or failed, or refused)
    in this project's database, False if ``deadline`` (``time.monotonic()``) comes first."""
    wanted = {(d.event_type, d.message_id) for d in deliveries if 200 <= d.status < 300}
    if not wanted:
        return True
    # Stored and finished; then, for a server in this process (live_server), the batch that
    # finished them done with their receivers too.
    while (wanted := _unfinished(wanted)) or _applying_here():
        if time.monotonic() >= deadline:
            return False
        time.sleep(POLL_SECONDS)
    return True


def _applying_here() -> bool:
    if not _with_the_app():
        return False
    from ..webhooks import drain as event_drain

    return event_drain.applying()


def _with_the_app() -> bool:
    """Whether Django runs here with django-sendfleet installed (not the sandbox's CLI)."""
    # Imported here: the sandbox itself runs without Django settings.
    from django.apps import apps

    return apps.ready and apps.is_installed("django_sendfleet")


def _unfinished(wanted: set[tuple[str, str]]) -> set[tuple[str, str]]:
    """Those of ``wanted`` stored here and not finished yet."""
    if not _with_the_app():
        return set()
    from django.db import DatabaseError

    from ..models import SendLog, WebhookEvent

    Outcome = WebhookEvent.Outcome
    ids = {message_id for _, message_id in wanted}
    try:
        rows = list(
            WebhookEvent.objects.filter(message_id__in=ids).values_list(
                "event_type", "message_id", "outcome"
            )
        )
        # An event that came before its send was logged waits as unknown_message, and is
        # applied once the row is committed (the send path, or the worker, does it).
        logged = set(
            SendLog.objects.filter(message_id__in=ids).values_list("message_id", flat=True)
        )
    except (DatabaseError, RuntimeError):
        # No database here (not migrated, or pytest-django's blocker, which raises
        # RuntimeError): this project stored none of them.
        return set()
    return {
        (event_type, message_id)
        for event_type, message_id, outcome in rows
        if (event_type, message_id) in wanted
        and (
            outcome == Outcome.PENDING
            or (outcome == Outcome.UNKNOWN_MESSAGE and message_id in logged)
        )
    }
