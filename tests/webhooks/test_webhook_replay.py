"""A stored event's digest outlives whatever deletes the event: a replayed delivery is refused
as a duplicate after the admin's bulk delete too (issue 23, item 5)."""

from __future__ import annotations

import json

import pytest
from django.urls import reverse

from django_sendfleet.models import SendLog, Suppression, WebhookEvent
from tests.support.webhooks import SECRET, event, post_event

pytestmark = pytest.mark.django_db


@pytest.fixture
def complaint(settings):
    settings.SENDFLEET = {"WEBHOOK_SECRET": SECRET}
    SendLog.objects.create(
        message_id="msg-1", recipient="ann@example.com", from_email="shop@example.com"
    )
    return json.dumps(event("email.complained")).encode()


def replay_after(client, body, delete):
    assert post_event(client, None, body=body).status_code == 200
    assert Suppression.objects.filter(email="ann@example.com").exists()
    Suppression.objects.all().delete()  # the operator lifts it, knowing why
    delete()
    return post_event(client, None, body=body)


def test_a_replayed_complaint_after_the_admins_bulk_delete_suppresses_nobody(
    admin_client, client, complaint
):
    def bulk_delete():
        pks = list(WebhookEvent.objects.values_list("pk", flat=True))
        changelist = reverse("admin:django_sendfleet_webhookevent_changelist")
        data = {"action": "delete_selected", "_selected_action": pks, "post": "yes"}
        assert admin_client.post(changelist, data).status_code == 302

    answer = replay_after(client, complaint, bulk_delete)
    assert answer.status_code == 200
    assert not Suppression.objects.exists()
    [kept] = WebhookEvent.objects.all()
    assert kept.pruned_at is not None and kept.raw is None and kept.recipient == ""


def test_deleting_an_event_in_code_keeps_its_digest(client, complaint):
    answer = replay_after(client, complaint, lambda: WebhookEvent.objects.get().delete())
    assert answer.status_code == 200
    assert not Suppression.objects.exists()
    assert WebhookEvent.objects.count() == 1


def test_an_event_deleted_before_it_was_processed_is_never_applied(complaint):
    stored = WebhookEvent.objects.create(event_type="complained", digest="d" * 64)
    WebhookEvent.objects.filter(pk=stored.pk).delete()
    stored.refresh_from_db()
    assert stored.outcome == WebhookEvent.Outcome.UNPROCESSABLE
