"""Posting signed events to the webhook endpoint, and what a stored one must give back."""

import json
from decimal import Decimal

from django.urls import reverse

from django_sendfleet.webhooks.body import unescape_body
from django_sendfleet.webhooks.view import sign


def post_webhook(client, body: bytes, secret: str | None = None, **headers):
    """POST a body to the webhook endpoint through Django's test client, signed with
    ``secret`` when one is given (headers may carry a signature of their own)."""
    if secret is not None:
        headers.setdefault("HTTP_X_SENDFLEET_SIGNATURE", sign(body, secret))
    return client.post(
        reverse("sendfleet-webhook"), data=body, content_type="application/json", **headers
    )


SECRET = "whsec_current_0123456789"


def post_event(client, event, secret=SECRET, signature=None, body=None, **headers):
    body = body if body is not None else json.dumps(event).encode()
    if signature is not None:
        headers["HTTP_X_SENDFLEET_SIGNATURE"] = signature
    return post_webhook(client, body, secret=secret, **headers)


def kept_as_received(stored, body):
    """The stored event gives back what was signed: its JSON, or the body's exact bytes."""
    if stored.raw is None:
        return unescape_body(stored.raw_body) == body
    # Numbers compared as the decimals written: PostgreSQL's jsonb keeps 1e18 as written,
    # where Python's float parser rounds it.
    return exact_json(json.dumps(stored.raw)) == exact_json(body)


def exact_json(text):
    return json.loads(text, parse_float=Decimal, parse_int=Decimal)


def event(event_type="email.delivered", message_id="msg-1", **fields):
    return {"event_type": event_type, "message_id": message_id, "to": "ann@example.com"} | fields
