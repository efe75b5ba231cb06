"""What the sandbox answers: the response type and every body SendFleet documents.

The rules in ``state.py`` and the scripted answers of ``faults.py`` build their answers here, so
a scripted ``domain_not_verified`` reads exactly like one the rules produce.
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .plans import BYOC

NO_CREDENTIALS = "Authentication credentials were not provided."
INVALID_KEY = "Invalid API key."
REVOKED_KEY = "API key has been revoked."
EXPIRED_KEY = "API key has expired."
IP_BLOCKED = "Too many failed authentication attempts. This IP is temporarily blocked."
QUEUED = "Email queued for delivery."
QUEUED_BYOC = "Email queued for delivery via your SES account."
# The records SendFleet asks for; the warnings quote them so they can be pasted into DNS.
SPF_RECORD = "v=spf1 include:amazonses.com ~all"
DMARC_RECORD = "v=DMARC1; p=none;"
MALFORMED_BODY = b"<html>ok</html>"
_MODE_NAMES = {"shared": "Shared", "byoc": "BYOC"}


@dataclass(frozen=True)
class Response:
    """What the server should answer. ``body`` is sent as JSON unless ``raw_body`` is set."""

    status: int
    body: dict[str, Any]
    headers: dict[str, str] = field(default_factory=dict)
    raw_body: bytes | None = None
    delay: float = 0.0  # seconds to wait before answering; inf: never answer
    drop: bool = False  # close the connection instead of answering


def error(status: int, code: str, detail: str) -> Response:
    return Response(status, {"success": False, "error": code, "detail": detail})


def accepted(mode: str, warnings: list[str]) -> Response:
    body: dict[str, Any] = {
        "success": True,
        "message": QUEUED_BYOC if mode == BYOC else QUEUED,
        "message_id": str(uuid.uuid4()),
        "mode": mode,
    }
    if warnings:
        body["warnings"] = warnings
    return Response(200, body)


def spf_warning(domain: str) -> str:
    return f'SPF record not verified. Add this TXT record to {domain}: "{SPF_RECORD}"'


def dmarc_warning(domain: str) -> str:
    return f'DMARC record not found. Add this TXT record to _dmarc.{domain}: "{DMARC_RECORD}"'


def not_authenticated(detail: str) -> Response:
    return Response(401, {"detail": detail})


def ip_blocked() -> Response:
    return Response(403, {"detail": IP_BLOCKED})


def throttled(wait: float, retry_after: bool = True) -> Response:
    """DRF's throttle answer: no ``error`` field; ``Retry-After`` unless told otherwise."""
    seconds = max(1, math.ceil(wait))
    unit = "second" if seconds == 1 else "seconds"
    body = {"detail": f"Request was throttled. Expected available in {seconds} {unit}."}
    return Response(429, body, {"Retry-After": str(seconds)} if retry_after else {})


def field_errors(errors: dict[str, list[str]]) -> Response:
    return Response(400, dict(errors))


def unauthorized() -> Response:
    return error(
        403,
        "unauthorized",
        "Your account is not approved for sending. Verify your email address and, for Shared "
        "SES, wait for your verification request to be approved.",
    )


def sending_suspended() -> Response:
    return error(
        403,
        "sending_suspended",
        "API sending has been suspended for this account because of high bounce or complaint "
        "rates. Contact support.",
    )


def domain_not_registered(domain: str) -> Response:
    return error(
        403,
        "domain_not_registered",
        f"Domain '{domain}' is not registered in your account. Add it in Dashboard > Domains, "
        "then complete DNS verification.",
    )


def domain_not_verified(domain: str) -> Response:
    return error(
        403,
        "domain_not_verified",
        f"Domain '{domain}' is not yet verified by SES. Add the TXT record and click Verify in "
        "the dashboard.",
    )


def dkim_not_verified(domain: str) -> Response:
    return error(
        403,
        "dkim_not_verified",
        f"DKIM for domain '{domain}' is not yet verified. Add the 3 DKIM CNAME records and "
        "click Verify DKIM in the dashboard.",
    )


def domain_mode_mismatch(domain: str, domain_mode: str, plan_mode: str) -> Response:
    return error(
        403,
        "domain_mode_mismatch",
        f"Domain '{domain}' is set up for {_MODE_NAMES[domain_mode]} sending but your plan "
        f"uses {_MODE_NAMES[plan_mode]}. Change your plan or add the domain in the matching "
        "mode.",
    )


def recipient_suppressed(recipient: str) -> Response:
    return error(
        422,
        "recipient_suppressed",
        f"Recipient '{recipient}' is on your suppression list after a hard bounce or spam "
        "complaint. Do not resend to this address.",
    )


def usage_limit_exceeded(quota: int) -> Response:
    return error(
        429,
        "usage_limit_exceeded",
        f"Monthly email quota of {quota} reached. Upgrade your plan or wait for the reset at "
        "the start of next month.",
    )


def byoc_not_configured() -> Response:
    return error(
        503,
        "byoc_not_configured",
        "SendFleet's BYOC relay credentials are not configured. Contact support.",
    )


def server_error() -> Response:
    return Response(500, {"detail": "Internal server error."})


def queue_error() -> Response:
    return error(502, "queue_error", "Failed to enqueue email.")


def malformed() -> Response:
    """A 200 a client must not take for an acceptance."""
    return Response(200, {}, {"Content-Type": "text/html; charset=utf-8"}, raw_body=MALFORMED_BODY)


@dataclass(frozen=True)
class Context:
    """What a scripted answer may quote about the request it answers."""

    recipient: str
    domain: str
    plan_mode: str
    quota: int | None


#: One answer per documented error, by the library's name for it (``error_table.py``).
DOCUMENTED_ERRORS: dict[str, Callable[[Context], Response]] = {
    "validation_error": lambda c: field_errors({"to": ["Enter a valid email address."]}),
    "authentication_failed": lambda c: not_authenticated(INVALID_KEY),
    "unauthorized": lambda c: unauthorized(),
    "domain_not_registered": lambda c: domain_not_registered(c.domain),
    "domain_not_verified": lambda c: domain_not_verified(c.domain),
    "dkim_not_verified": lambda c: dkim_not_verified(c.domain),
    "domain_mode_mismatch": lambda c: domain_mode_mismatch(
        c.domain, "byoc" if c.plan_mode == "shared" else "shared", c.plan_mode
    ),
    "sending_suspended": lambda c: sending_suspended(),
    "recipient_suppressed": lambda c: recipient_suppressed(c.recipient),
    "usage_limit_exceeded": lambda c: usage_limit_exceeded(c.quota or 0),
    "server_error": lambda c: server_error(),
    "queue_error": lambda c: queue_error(),
    "byoc_not_configured": lambda c: byoc_not_configured(),
    "ip_blocked": lambda c: ip_blocked(),
}
