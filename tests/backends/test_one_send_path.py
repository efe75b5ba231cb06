"""Both backends take one send path: the same fault gives the same record, field by field.

Every case of the fault matrix whose outcome is meant to be the same for both backends is run
through ``EmailBackend`` and then through ``QueuedEmailBackend`` and its worker, against the
same sandbox (reset in between). During each send, as soon as SendFleet accepts it, a signed
``email.delivered`` event for it is posted to the webhook endpoint: before the send is
recorded, as happens when the API is slow to answer and quick to deliver. What each backend
leaves must be identical: the send log row, the signals (with the mailer alias and the
sending backend as sender), and the webhook events applied to the row.
"""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from django.core.cache import caches
from django.test import Client
from django.urls import reverse

from django_sendfleet import signals
from django_sendfleet.api import client as client_module
from django_sendfleet.backends import EmailBackend, QueuedEmailBackend
from django_sendfleet.models import SendLog, Suppression, WebhookEvent
from django_sendfleet.webhooks.view import sign
from tests.support.fault_matrix import MATRIX, Fault, World, run_queued, run_sync

pytestmark = [pytest.mark.usefixtures("sendfleet_settings"), pytest.mark.django_db]

SECRET = "whsec_one_send_path_0123456789"
SIGNALS = ("send_failed", "send_forbidden", "recipient_suppressed", "post_send")
#: Cases whose outcome differs in kind by design (a held quota row): the matrix covers them.
SAME_OUTCOME = [case for case in MATRIX if case.queued is None]
ROW_FIELDS = (
    "mailer",
    "recipient",
    "from_email",
    "subject",
    "status",
    "error_code",
    "http_status",
    "attempts",
    "mode",
    "warnings",
    "detail",
)


@pytest.fixture
def fired():
    calls: list[tuple[str, type, dict[str, Any]]] = []
    receivers = []
    for name in SIGNALS:

        def receiver(sender, _name=name, **kwargs):
            calls.append((_name, sender, kwargs))

        getattr(signals, name).connect(receiver, weak=False)
        receivers.append((getattr(signals, name), receiver))
    yield calls
    for signal, receiver in receivers:
        signal.disconnect(receiver)


@pytest.fixture
def events_on_acceptance(monkeypatch):
    """Post a signed delivery event for each accepted send before the backend records it."""
    original = client_module.SendFleetClient.attempt
    webhook = Client()

    def attempt(self, payload, *, attempt=1):
        accepted = original(self, payload, attempt=attempt)
        body = json.dumps(
            {"event_type": "email.delivered", "message_id": accepted.message_id}
        ).encode()
        response = webhook.post(
            reverse("sendfleet-webhook"),
            data=body,
            content_type="application/json",
            HTTP_X_SENDFLEET_SIGNATURE=sign(body, SECRET),
        )
        assert response.status_code == 200
        return accepted

    monkeypatch.setattr(client_module.SendFleetClient, "attempt", attempt)


def record(backend: type, world: World, fired: list[Any]) -> dict[str, Any]:
    """What a send left behind, in terms both backends must agree on."""
    [row] = SendLog.objects.filter(recipient=world.recipient)
    row_fields = {name: getattr(row, name) for name in ROW_FIELDS}
    # A message id differs per send; whether there is one does not.
    row_fields["has_message_id"] = bool(row.message_id)
    # Details quote numbers that differ between runs of the same case: a port chosen for each
    # run, the throttle's "available in N seconds" as the clock moves.
    row_fields["detail"] = re.sub(r"\d+", "N", row.detail)
    signals_seen = []
    for name, sender, kwargs in fired:
        status = kwargs.get("status")
        if name == "post_send" and status is not None and status.status == {"pending"}:
            continue  # the outbox write: the queued backend's extra, earlier post_send
        error = kwargs.get("error")
        message = kwargs.get("message")
        signals_seen.append(
            {
                "signal": name,
                "sender is the sending backend": sender is backend,
                "mailer": kwargs.get("mailer"),
                "recipient": kwargs.get("recipient"),
                "error": (type(error).__name__, error.error_code) if error else None,
                "error_code": kwargs.get("error_code"),
                "from_domain": kwargs.get("from_domain"),
                "source": kwargs.get("source"),
                "message": (message.to, message.subject, message.body) if message else None,
                "statuses": (
                    {address: r.status for address, r in status.recipients.items()}
                    if status is not None
                    else None
                ),
            }
        )
    events = list(
        WebhookEvent.objects.order_by("pk").values_list("event_type", "outcome", "send_log_id")
    )
    return {
        "row": row_fields,
        "signals": signals_seen,
        "events": [(kind, outcome, link == row.pk) for kind, outcome, link in events],
        "suppressed": sorted(Suppression.objects.values_list("email", flat=True)),
    }


@pytest.mark.parametrize("case", SAME_OUTCOME, ids=lambda c: c.id)
def test_both_backends_leave_the_same_record(
    case: Fault,
    sandbox,
    sendfleet_settings,
    monkeypatch,
    fired,
    events_on_acceptance,
    django_capture_on_commit_callbacks,
):
    baseline = dict(sendfleet_settings, WEBHOOK_SECRET=SECRET)
    records = {}
    for backend in (EmailBackend, QueuedEmailBackend):
        sandbox.reset()
        sendfleet_settings.clear()
        sendfleet_settings.update(baseline)
        WebhookEvent.objects.all().delete_whole()  # digests too: each backend starts afresh
        for model in (SendLog, Suppression):
            model.objects.all().delete()
        caches["default"].clear()
        fired.clear()
        world = World(sandbox, sendfleet_settings, monkeypatch)
        case.arrange(world)
        try:
            if backend is EmailBackend:
                with django_capture_on_commit_callbacks(execute=True):
                    run_sync(case, world)
            else:
                run_queued(case, world, django_capture_on_commit_callbacks)
            records[backend.__name__] = record(backend, world, fired)
        finally:
            for cleanup in world.cleanups:
                cleanup()

    assert records["QueuedEmailBackend"] == records["EmailBackend"]
    accepted = records["EmailBackend"]["row"]["has_message_id"]
    if accepted:  # the early event was applied by both, not left waiting
        assert ("email.delivered", "applied", True) in records["EmailBackend"]["events"]
        assert records["EmailBackend"]["row"]["status"] == "delivered"
