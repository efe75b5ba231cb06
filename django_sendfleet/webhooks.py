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
from typing import Any

from django.contrib.auth.decorators import login_not_required
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.debug import sensitive_variables
from django.views.decorators.http import require_POST

from .conf import SendFleetSettings
from .events import process_event, store_event
from .exceptions import SendFleetWebhookValidationError
from .tracking import normalise, raw_event_type

logger = logging.getLogger("django_sendfleet")

SIGNATURE_HEADER = "X-SendFleet-Signature"
EVENT_HEADER = "X-SendFleet-Event"
_SIGNATURE_PREFIX = "sha256="


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
@login_not_required  # nor log in: LoginRequiredMiddleware would redirect every event away.
@require_POST
@sensitive_variables("secrets")  # kept out of Django's error reports (a database error's)
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


def _refuse(status: int, reason: str) -> JsonResponse:
    body: dict[str, Any] = {"status": "refused", "detail": reason}
    return JsonResponse(body, status=status)
