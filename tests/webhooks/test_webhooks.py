"""The webhook endpoint: signature, storage, effects on the log and the suppression list."""

import json
import time
from datetime import timedelta

import pytest
from django.core.mail import EmailMessage
from django.urls import reverse
from django.utils import timezone

from django_sendfleet import signals
from django_sendfleet.models import SendLog, Suppression, WebhookEvent
from django_sendfleet.webhooks.view import sign
from tests.support.webhooks import SECRET, event, kept_as_received, post_event

pytestmark = pytest.mark.django_db

OLD_SECRET = "whsec_previous_9876543210"


@pytest.fixture
def webhook_secret(settings):
    settings.SENDFLEET = {"WEBHOOK_SECRET": SECRET}
    return SECRET


@pytest.fixture
def tracking_events():
    events = []

    def receiver(sender, event, esp_name, **kwargs):
        events.append(event)

    signals.tracking.connect(receiver, weak=False)
    yield events
    signals.tracking.disconnect(receiver)


@pytest.mark.usefixtures("webhook_secret")
class TestTrust:
    def test_signed_event_is_stored_and_acknowledged(self, client, logged_send):
        answer = post_event(client, event())
        assert answer.status_code == 200
        stored = WebhookEvent.objects.get()
        assert stored.event_type == "email.delivered" and stored.outcome == "applied"
        assert stored.send_log == logged_send and stored.raw["to"] == "ann@example.com"

    def test_forged_signature_is_refused_and_nothing_stored(self, client, logged_send):
        answer = post_event(client, event(), secret="someone-elses-secret")
        assert answer.status_code == 403
        assert not WebhookEvent.objects.exists()
        assert SendLog.objects.get().status == "queued"

    def test_missing_signature_is_refused(self, client):
        assert post_event(client, event(), secret=None).status_code == 403
        assert not WebhookEvent.objects.exists()

    def test_signature_of_another_body_is_refused(self, client):
        other = sign(b'{"event_type": "email.sent"}', SECRET)
        assert post_event(client, event(), signature=other).status_code == 403

    def test_rotated_secrets_are_both_accepted(self, client, settings, logged_send):
        settings.SENDFLEET = {"WEBHOOK_SECRET": [SECRET, OLD_SECRET]}
        assert post_event(client, event("email.sent"), secret=OLD_SECRET).status_code == 200
        assert post_event(client, event("email.delivered"), secret=SECRET).status_code == 200
        assert WebhookEvent.objects.count() == 2

    def test_get_is_not_allowed(self, client):
        assert client.get(reverse("sendfleet-webhook")).status_code == 405

    @pytest.mark.parametrize(
        ("body", "why"),
        [(b"not json", "JSON"), (b"[1, 2]", "object"), (b'{"message_id": "m"}', "event_type")],
    )
    def test_malformed_signed_bodies_are_stored_unprocessable_and_acknowledged(
        self, client, body, why
    ):
        """Signed by SendFleet, which never retries: a 400 would lose it for good."""
        answer = post_event(client, None, body=body)
        assert answer.status_code == 200 and answer.json()["status"] == "unprocessable"
        stored = WebhookEvent.objects.get()
        assert stored.outcome == "unprocessable" and why in stored.detail
        assert kept_as_received(stored, body)

    def test_oversized_body_is_refused(self, client, settings):
        settings.SENDFLEET = {"WEBHOOK_SECRET": SECRET, "WEBHOOK_MAX_BODY_BYTES": 1024}
        answer = post_event(client, event(description="x" * 2000))
        assert answer.status_code == 400 and not WebhookEvent.objects.exists()

    def test_the_unsigned_event_header_never_decides_what_an_event_means(self, client, logged_send):
        # Without a type in the signed body, the header does not supply one...
        body = {"message_id": "msg-1", "to": "ann@example.com"}
        answer = post_event(client, body, HTTP_X_SENDFLEET_EVENT="email.complained")
        assert answer.status_code == 200 and answer.json()["status"] == "unprocessable"
        assert SendLog.objects.get().status == "queued" and not Suppression.objects.exists()
        # ...nor overrides the body's.
        answer = post_event(
            client, event("email.delivered"), HTTP_X_SENDFLEET_EVENT="email.complained"
        )
        assert answer.json()["status"] == "ok"
        assert SendLog.objects.get().status == "delivered" and not Suppression.objects.exists()


def test_no_secret_configured_refuses_every_event(client, settings, logged_send):
    settings.SENDFLEET = {}
    answer = post_event(client, event())
    assert answer.status_code == 403 and not WebhookEvent.objects.exists()


@pytest.mark.usefixtures("webhook_secret")
class TestEffects:
    def test_duplicate_delivery_is_acknowledged_and_takes_effect_once(
        self, client, logged_send, tracking_events
    ):
        body = json.dumps(event("email.bounced", bounce_type="Permanent")).encode()
        assert post_event(client, None, body=body).status_code == 200
        assert post_event(client, None, body=body).json()["status"] == "duplicate"
        assert WebhookEvent.objects.count() == 1 and len(tracking_events) == 1
        assert Suppression.objects.get().hits == 0

    def test_out_of_order_events_never_undo_a_worse_outcome(self, client, logged_send):
        post_event(client, event("email.bounced", bounce_type="Permanent"))
        post_event(client, event("email.delivered"))
        post_event(client, event("email.sent"))
        assert SendLog.objects.get().status == "bounced"

    def test_complaint_after_delivery_moves_forward(self, client, logged_send):
        post_event(client, event("email.delivered"))
        post_event(client, event("email.complained"))
        assert SendLog.objects.get().status == "complained"
        entry = Suppression.objects.get(email="ann@example.com")
        assert entry.reason == "complaint" and entry.source == "webhook"

    def test_hard_bounce_suppresses_and_signals(self, client, logged_send):
        calls = []

        def receiver(sender, **kwargs):
            calls.append(kwargs)

        signals.recipient_suppressed.connect(receiver)
        try:
            post_event(client, event("email.bounced", bounce_type="Permanent"))
        finally:
            signals.recipient_suppressed.disconnect(receiver)
        assert Suppression.objects.get().reason == "hard_bounce"
        assert calls[0]["source"] == "webhook" and calls[0]["recipient"] == "ann@example.com"

    def test_bounce_without_type_counts_as_permanent(self, client, logged_send):
        post_event(client, event("email.bounced"))
        assert Suppression.objects.filter(email="ann@example.com").exists()

    def test_soft_bounce_does_not_suppress(self, client, logged_send):
        post_event(client, event("email.bounced", bounce_type="Transient"))
        assert SendLog.objects.get().status == "bounced"
        assert not Suppression.objects.exists()

    def test_sent_event_confirms_an_unknown_send(self, client):
        SendLog.objects.create(message_id="msg-1", recipient="ann@example.com", status="unknown")
        post_event(client, event("email.sent"))
        assert SendLog.objects.get().status == "queued"

    def test_recipient_falls_back_to_the_logged_send(self, client, logged_send, tracking_events):
        post_event(client, {"event_type": "email.complained", "message_id": "msg-1"})
        assert tracking_events[0].recipient == "ann@example.com"
        assert Suppression.objects.get().email == "ann@example.com"
        assert WebhookEvent.objects.get().recipient == "ann@example.com"

    @pytest.mark.parametrize("field", ["to", "recipient", "email"])
    def test_recipient_field_names(self, client, field, tracking_events):
        post_event(client, {"event_type": "email.delivered", "message_id": "m", field: "b@x.org"})
        assert tracking_events[0].recipient == "b@x.org"

    def test_unknown_message_id_is_stored_and_reported(self, client):
        assert post_event(client, event(message_id="never-sent")).status_code == 200
        assert WebhookEvent.objects.get().outcome == "unknown_message"

    def test_unknown_event_type_is_stored_not_an_error(self, client, logged_send, tracking_events):
        assert post_event(client, event("email.opened")).status_code == 200
        assert WebhookEvent.objects.get().outcome == "unknown_type"
        assert tracking_events[0].event_type == "unknown"
        assert SendLog.objects.get().status == "queued"

    def test_tracking_event_is_normalised_like_anymail(self, client, logged_send, tracking_events):
        # Signed an hour ago: well inside WEBHOOK_MAX_AGE on any date, at any time of day.
        signed = (timezone.now() - timedelta(hours=1)).replace(microsecond=0)
        post_event(
            client,
            event(
                "email.bounced",
                bounce_type="Permanent",
                description="No such user",
                timestamp=f"{signed:%Y-%m-%dT%H:%M:%S}Z",
            ),
        )
        [tracked] = tracking_events
        assert tracked.event_type == "bounced" and tracked.message_id == "msg-1"
        assert tracked.description == "No such user" and tracked.permanent is True
        assert tracked.timestamp.isoformat() == f"{signed:%Y-%m-%dT%H:%M:%S}+00:00"
        assert tracked.esp_event["bounce_type"] == "Permanent"

    def test_a_receiver_that_raises_does_not_lose_the_event(self, client, logged_send):
        def broken(sender, **kwargs):
            raise RuntimeError("receiver bug")

        signals.tracking.connect(broken)
        try:
            assert post_event(client, event("email.delivered")).status_code == 200
        finally:
            signals.tracking.disconnect(broken)
        assert WebhookEvent.objects.get().outcome == "applied"
        assert SendLog.objects.get().status == "delivered"

    def test_events_that_arrive_before_the_log_row_are_applied_when_it_is_written(
        self, client, sendfleet_sandbox, settings, django_capture_on_commit_callbacks
    ):
        from django_sendfleet.sandbox import SANDBOX_API_KEY

        settings.SENDFLEET = {
            "WEBHOOK_SECRET": SECRET,
            "API_KEY": SANDBOX_API_KEY,
            "API_URL": sendfleet_sandbox.url,
        }
        from django_sendfleet.backends import EmailBackend

        class EarlyEvents(EmailBackend):
            """Deliver the message's events between the send and the log write."""

            def _send_message(self, message, *args):
                sent = super()._send_message(message, *args)
                message_id = message.anymail_status.message_id
                post_event(client, event("email.delivered", message_id=message_id))
                return sent

        message = EmailMessage("Hi", "Body", "shop@example.com", ["ann@example.com"])
        with django_capture_on_commit_callbacks(execute=True):
            EarlyEvents().send_messages([message])
        row = SendLog.objects.get()
        assert row.status == "delivered"
        assert WebhookEvent.objects.get().send_log == row


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("sendfleet_socket_sandbox")  # posts over HTTP to live_server
def test_sandbox_delivers_signed_events_to_the_live_endpoint(
    live_server, sendfleet_settings, sandbox
):
    """End to end: the backend sends, the sandbox posts signed events over HTTP to Django."""
    sendfleet_settings["WEBHOOK_SECRET"] = SECRET
    sandbox.configure_webhook(live_server.url + reverse("sendfleet-webhook"), SECRET)
    recipients = [
        "ann@example.com",
        "bounce@example.com",
        "complaint@example.com",
        "softbounce@example.com",
        "fail@example.com",
    ]
    EmailMessage("Hi", "Body", "shop@example.com", recipients).send()
    assert sandbox.wait_for_webhooks()
    # Each event is applied right after its answer: wait for the last ones.
    deadline = time.monotonic() + 10
    while WebhookEvent.objects.filter(outcome="pending").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert {d.status for d in sandbox.webhook_deliveries} == {200}
    assert len(sandbox.webhook_deliveries) == 11
    assert dict(SendLog.objects.values_list("recipient", "status")) == {
        "ann@example.com": "delivered",
        "bounce@example.com": "bounced",
        "complaint@example.com": "complained",
        "softbounce@example.com": "bounced",
        "fail@example.com": "failed",
    }
    assert set(Suppression.objects.values_list("email", "reason")) == {
        ("bounce@example.com", "hard_bounce"),
        ("complaint@example.com", "complaint"),
    }
    assert not WebhookEvent.objects.exclude(outcome="applied").exists()


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("sendfleet_socket_sandbox")  # posts over HTTP to live_server
def test_sandbox_webhooks_with_a_wrong_secret_are_refused(live_server, sendfleet_settings, sandbox):
    sendfleet_settings["WEBHOOK_SECRET"] = SECRET
    sandbox.configure_webhook(live_server.url + reverse("sendfleet-webhook"), "not-the-secret")
    EmailMessage("Hi", "Body", "shop@example.com", ["ann@example.com"]).send()
    assert sandbox.wait_for_webhooks()
    assert {d.status for d in sandbox.webhook_deliveries} == {403}
    assert not WebhookEvent.objects.exists()
    assert SendLog.objects.get().status == "queued"


def test_events_reach_the_view_behind_login_required_middleware(settings, webhook_secret, client):
    """SendFleet cannot log in, and never retries: a redirect to the login page loses events."""
    settings.MIDDLEWARE = [
        *settings.MIDDLEWARE,
        "django.contrib.auth.middleware.LoginRequiredMiddleware",
    ]
    response = post_event(client, event(message_id="no-such-message"))
    assert response.status_code == 200
    assert WebhookEvent.objects.filter(message_id="no-such-message").exists()
