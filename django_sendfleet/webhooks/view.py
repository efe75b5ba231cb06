"""Receive SendFleet's signed delivery events.

SendFleet POSTs one JSON event per request, signed with HMAC-SHA256 of the raw body, expects a
2xx within 5 seconds, and never retries a delivery it could not make. So the endpoint trusts
nothing before the signature checks out, then stores every verified body, whatever it holds
(``event_store.py``), commits it and answers 2xx: an acknowledged event is never lost. Nothing
else happens before the answer: applying the event and telling ``tracking`` receivers run once
the answer is sent (``AnswerThenProcess``), so a slow receiver or a busy database cannot make
SendFleet give up on an event.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
from typing import Any

from django.contrib.auth.decorators import login_not_required
from django.db import transaction
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.debug import sensitive_variables
from django.views.decorators.http import require_POST

from ..conf import SendFleetSettings
from ..credentials.secret import Secret, reveal
from ..exceptions import SendFleetWebhookValidationError
from ..models import WebhookEvent
from .accounts import signing_accounts
from .drain import after_answer
from .store import store_event

logger = logging.getLogger("django_sendfleet")

SIGNATURE_HEADER = "X-SendFleet-Signature"
#: Sent by SendFleet, but not signed: never read (the type comes from the signed body).
EVENT_HEADER = "X-SendFleet-Event"
_SIGNATURE_PREFIX = "sha256="


def sign(body: bytes, secret: str | Secret[str]) -> str:
    """The signature header value SendFleet sends for this body."""
    digest = hmac.new(reveal(secret).encode(), body, hashlib.sha256).hexdigest()
    return _SIGNATURE_PREFIX + digest


def verify_signature(
    body: bytes, header: str | None, secrets: tuple[str | Secret[str], ...]
) -> list[bool]:
    """Raise ``SendFleetWebhookValidationError`` unless one of the secrets signed this body;
    else which of them did."""
    if not secrets:
        raise SendFleetWebhookValidationError("No SENDFLEET['WEBHOOK_SECRET'] is configured.")
    if not header or not header.startswith(_SIGNATURE_PREFIX):
        raise SendFleetWebhookValidationError(f"Missing or malformed {SIGNATURE_HEADER} header.")
    given = header.encode()
    # Compare against every secret (no early exit), each in constant time.
    matches = [hmac.compare_digest(sign(body, secret).encode(), given) for secret in secrets]
    if not any(matches):
        raise SendFleetWebhookValidationError("Webhook signature does not match.")
    return matches


@transaction.non_atomic_requests  # the event is committed on its own, before the answer
@csrf_exempt  # SendFleet cannot send a CSRF token; the HMAC signature authenticates instead.
@login_not_required  # nor log in: LoginRequiredMiddleware would redirect every event away.
@require_POST
@sensitive_variables("secrets")  # with DEBUG off; with it on, they show as Secret('****')
def webhook_view(request: HttpRequest) -> HttpResponse:
    """SendFleet's delivery events: verified, stored and committed before the 200, then applied."""
    settings = SendFleetSettings()
    accounts = signing_accounts(settings)
    secrets = accounts.secrets  # Secrets: revealed only into the HMAC (sign)
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
        signed = verify_signature(body, request.headers.get(SIGNATURE_HEADER), secrets)
    except SendFleetWebhookValidationError as error:
        logger.warning("SendFleet webhook refused: %s", error.detail)
        return _refuse(403, error.detail)

    mailers = accounts.mailers_for(signed)  # the signing account's: all when None
    stored = store_event(body, max_age=settings.webhook_max_age, mailers=mailers)
    if stored is None:
        return AnswerThenProcess({"status": "duplicate"}, event=None)
    if stored.outcome != WebhookEvent.Outcome.PENDING:
        logger.warning(
            "SendFleet webhook event %s stored, not applied: %s", stored.pk, stored.detail
        )
        answer = {"status": stored.outcome, "detail": stored.detail}
        return AnswerThenProcess(answer, event=None)
    return AnswerThenProcess({"status": "ok"}, event=stored)


class AnswerThenProcess(JsonResponse):
    """An answer that processes its event (``event_drain.after_answer``) once it has been sent.

    A WSGI server calls the response's ``close()`` after writing its last byte (PEP 3333):
    gunicorn's sync and gthread workers, uWSGI, mod_wsgi and runserver do, and Django's ASGI
    handler after the last message. So the work runs in the worker that answered, after the
    answer, with nothing more to set up: no long-lived thread to lose when a worker is recycled
    (under a burst, a short-lived one takes what the answering thread leaves), no task queue
    to run. Should a server or middleware never call ``close()``, the event stays
    ``pending`` and the retries (at later events, and ``sendfleet_retry_events``) process it
    once ``PROCESSING_LEASE`` has passed.
    """

    def __init__(self, data: dict[str, Any], *, event: WebhookEvent | None) -> None:
        super().__init__(data)
        # The client sees the answer end here, not when the connection closes after the work.
        self["Content-Length"] = str(len(self.content))
        self._event = event
        self._processed = False

    def close(self) -> None:
        try:
            if not self._processed:
                self._processed = True
                after_answer(self._event)
        except Exception:
            logger.exception("SendFleet webhook: processing after the answer failed")
        finally:
            super().close()  # request_finished: closes the database connection after the work


def _refuse(status: int, reason: str) -> JsonResponse:
    body: dict[str, Any] = {"status": "refused", "detail": reason}
    return JsonResponse(body, status=status)
