"""Receive SendFleet's signed delivery events.

SendFleet POSTs one JSON event per request, signed with HMAC-SHA256 of the raw body, and never
retries a delivery it could not make. So the endpoint trusts nothing before the signature
checks out, stores every verified event before answering 200 (an acknowledged event is never
lost), and does only database writes in the request; slow work belongs to signal receivers.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
from collections.abc import Iterable
from dataclasses import replace
from typing import Any

from django.db import IntegrityError, transaction
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.utils import timezone
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from . import signals
from .conf import SendFleetSettings
from .exceptions import SendFleetWebhookValidationError
from .models import SendLog, Suppression, WebhookEvent
from .status import LogStatus, statuses_an_event_may_replace
from .suppressions import suppress
from .tracking import TrackingEvent, normalise, raw_event_type

logger = logging.getLogger("django_sendfleet")

SIGNATURE_HEADER = "X-SendFleet-Signature"
EVENT_HEADER = "X-SendFleet-Event"
_SIGNATURE_PREFIX = "sha256="

_STATUS_FOR_EVENT = {
    "sent": LogStatus.QUEUED,  # proves an "unknown" send did reach SendFleet
    "delivered": LogStatus.DELIVERED,
    "failed": LogStatus.FAILED,
    "bounced": LogStatus.BOUNCED,
    "complained": LogStatus.COMPLAINED,
}


def sign(body: bytes, secret: str) -> str:
    """The signature header value SendFleet sends for this body."""
    digest = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return _SIGNATURE_PREFIX + digest


def verify_signature(body: bytes, header: str | None, secrets: tuple[str, ...]) -> None:
    """Raise ``SendFleetWebhookValidationError`` unless one of the secrets signed this body."""
    if not secrets:
        raise SendFleetWebhookValidationError("No SENDFLEET['WEBHOOK_SECRET'] is configured.")
    if not header or not header.startswith(_SIGNATURE_PREFIX):
        raise SendFleetWebhookValidationError(f"Missing or malformed {SIGNATURE_HEADER} header.")
    given = header.encode()
    # Compare against every secret (no early exit), each in constant time.
    matches = [hmac.compare_digest(sign(body, secret).encode(), given) for secret in secrets]
    if not any(matches):
        raise SendFleetWebhookValidationError("Webhook signature does not match.")


@csrf_exempt  # SendFleet cannot send a CSRF token; the HMAC signature authenticates instead.
@require_POST
def webhook_view(request: HttpRequest) -> HttpResponse:
    settings = SendFleetSettings()
    secrets = settings.webhook_secrets
    if not secrets:
        logger.error("SendFleet webhook refused: SENDFLEET['WEBHOOK_SECRET'] is not set")
        return _refuse(403, "Webhook secret not configured.")
    limit = settings.webhook_max_body_bytes
    try:
        declared = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        return _refuse(400, "Invalid Content-Length.")
    if declared > limit:
        return _refuse(400, f"Body larger than {limit} bytes.")
    body = request.body
    if len(body) > limit:
        return _refuse(400, f"Body larger than {limit} bytes.")
    try:
        verify_signature(body, request.headers.get(SIGNATURE_HEADER), secrets)
    except SendFleetWebhookValidationError as error:
        logger.warning("SendFleet webhook refused: %s", error.detail)
        return _refuse(403, error.detail)

    try:
        raw = json.loads(body)
    except (UnicodeDecodeError, ValueError):
        return _refuse(400, "Body is not JSON.")
    if not isinstance(raw, dict):
        return _refuse(400, "Body is not a JSON object.")
    raw_type = raw_event_type(raw, request.headers.get(EVENT_HEADER))
    if raw_type is None:
        return _refuse(400, "Event has no event_type.")

    event = normalise(raw, raw_type)
    stored = store_event(event, raw_type, hashlib.sha256(body).hexdigest())
    if stored is None:
        return JsonResponse({"status": "duplicate"})
    process_event(stored, event)
    return JsonResponse({"status": "ok"})


def store_event(event: TrackingEvent, raw_type: str, digest: str) -> WebhookEvent | None:
    """Store the event (committed before anything else happens); None if already stored."""
    try:
        with transaction.atomic():
            return WebhookEvent.objects.create(
                event_type=raw_type[:64],
                message_id=(event.message_id or "")[:100],
                recipient=(event.recipient or "")[:254],
                raw=event.esp_event,
                digest=digest,
            )
    except IntegrityError:
        if WebhookEvent.objects.filter(digest=digest).exists():
            return None
        raise


def process_event(stored: WebhookEvent, event: TrackingEvent) -> None:
    """Apply a stored event to the send log and the suppression list, then tell receivers.

    A failure here leaves the event stored with outcome ``failed`` for review in the admin;
    the answer is still 200, since SendFleet would not retry anyway.
    """
    try:
        with transaction.atomic():
            event = _apply(stored, event)
    except Exception:
        logger.exception("SendFleet webhook event %s could not be processed", stored.pk)
        WebhookEvent.objects.filter(pk=stored.pk).update(outcome=WebhookEvent.Outcome.FAILED)
        return
    signals.tracking.send_robust(WebhookEvent, event=event, esp_name=event.esp_name)
    if event.suppresses_recipient and event.recipient:
        signals.recipient_suppressed.send_robust(
            WebhookEvent, message=None, recipient=event.recipient, error=None, source="webhook"
        )


def apply_waiting_events(message_ids: Iterable[str]) -> None:
    """Apply stored events that arrived before their send was logged.

    The backend writes its log rows once per batch, after the requests, so SendFleet's first
    events can arrive before the row they update exists: they wait as ``unknown_message``.
    Called after the rows are committed. Events still ``pending`` are included: one stored
    before this query may have looked for its row before the rows were committed. Applying
    an event twice is harmless (statuses only move forward, suppression is an upsert).
    """
    ids = {message_id for message_id in message_ids if message_id}
    if not ids:
        return
    waiting = WebhookEvent.objects.filter(
        message_id__in=ids,
        outcome__in=(WebhookEvent.Outcome.PENDING, WebhookEvent.Outcome.UNKNOWN_MESSAGE),
    ).order_by("received_at", "id")
    for stored in waiting:
        event = normalise(stored.raw, stored.event_type)
        # Without a recipient in the event, suppression had to wait for the row too.
        suppressed_late = event.suppresses_recipient and not event.recipient
        with transaction.atomic():
            event = _apply(stored, event)
        if suppressed_late and event.recipient:
            signals.recipient_suppressed.send_robust(
                WebhookEvent, message=None, recipient=event.recipient, error=None, source="webhook"
            )


def _apply(stored: WebhookEvent, event: TrackingEvent) -> TrackingEvent:
    row = SendLog.objects.filter(message_id=event.message_id).first() if event.message_id else None
    if row is not None and not event.recipient:
        # SendFleet's docs don't name the recipient field: fall back to the send we logged.
        event = replace(event, recipient=row.recipient)
        stored.recipient = row.recipient
    new_status = _STATUS_FOR_EVENT.get(event.event_type)
    if new_status is not None and row is not None:
        SendLog.objects.filter(
            pk=row.pk, status__in=statuses_an_event_may_replace(new_status)
        ).update(status=new_status, updated_at=timezone.now())
    if event.suppresses_recipient and event.recipient:
        reason = (
            Suppression.Reason.COMPLAINT
            if event.event_type == "complained"
            else Suppression.Reason.HARD_BOUNCE
        )
        suppress(event.recipient, reason, source="webhook", message_id=event.message_id or "")
    if event.event_type == "unknown":
        outcome = WebhookEvent.Outcome.UNKNOWN_TYPE
        logger.warning("SendFleet webhook event of unknown type %r stored", stored.event_type)
    elif row is None:
        outcome = WebhookEvent.Outcome.UNKNOWN_MESSAGE
        logger.info("SendFleet webhook event for unknown message id %r", event.message_id)
    else:
        outcome = WebhookEvent.Outcome.APPLIED
    stored.outcome = outcome
    stored.send_log = row
    stored.save(update_fields=["outcome", "send_log", "recipient"])
    return event


def _refuse(status: int, reason: str) -> JsonResponse:
    body: dict[str, Any] = {"status": "refused", "detail": reason}
    return JsonResponse(body, status=status)
