"""SendFleet's error table, as data: the one place that says what each failure means.

Each row names an error code, the exception class raised for it, whether and how it is retried,
what it does to the rest of a batch, and what an operator should do. The client, the backend,
the admin and the docs all read this table; nothing else hard-codes a status or a code.

The rows' schema: ``error_spec.py``; an HTTP answer to its row's exception: ``api/answers.py``.

The API sends no ``error`` field for 400, 401, the 429 throttle and most 500s: for those the
library uses its own names (``validation_error``, ``authentication_failed``, ``rate_limited``,
``server_error``). Rows without an HTTP status are failures found before or instead of an answer.
"""

from __future__ import annotations

import random
from collections.abc import Mapping

from . import exceptions as exc
from .error_spec import BatchEffect, ErrorSpec

__all__ = ["ERROR_TABLE", "ErrorSpec", "spec_for_code"]


def _exponential(first: float, count: int) -> tuple[tuple[float, float], ...]:
    return tuple((first * 2**n, first * 2**n) for n in range(count))


_QUEUE_BACKOFF = _exponential(1, 3)  # 1, 2, 4 s: at most 4 attempts in all

ERROR_TABLE: tuple[ErrorSpec, ...] = (
    ErrorSpec(
        "validation_error",
        400,
        exc.SendFleetValidationError,
        False,
        sent_by_api=False,
        meaning="The API refused the payload; the answer lists the fields at fault.",
        fix="Fix the fields named in the error. The backend checks most of them before sending, "
        "so this usually means an address or text the API's validator rejects.",
    ),
    ErrorSpec(
        "authentication_failed",
        401,
        exc.SendFleetAuthenticationError,
        False,
        batch_effect=BatchEffect.STOP_BATCH,
        sent_by_api=False,
        meaning="The X-API-Key header is missing, or the key is unknown, revoked or expired.",
        fix="Create a key in Dashboard -> API Keys and set SENDFLEET['API_KEY']. After 10 "
        "consecutive 401s within 60 s SendFleet blocks the server's IP for a while.",
    ),
    ErrorSpec(
        "unauthorized",
        403,
        exc.SendFleetAccountNotAuthorized,
        False,
        batch_effect=BatchEffect.STOP_BATCH,
        meaning="The account's email is not verified, it is not approved for Shared SES, or it "
        "has no active Growth/Pro plan.",
        fix="Verify the account's email address; for Shared SES submit the verification request "
        "and wait for approval; check the plan in Dashboard -> Billing.",
    ),
    ErrorSpec(
        "domain_not_registered",
        403,
        exc.SendFleetDomainNotRegistered,
        False,
        batch_effect=BatchEffect.SKIP_DOMAIN,
        meaning="The from_email's domain has not been added to the account.",
        fix="Dashboard -> Domains -> Add domain, then complete its DNS verification. Check that "
        "DEFAULT_FROM_EMAIL (or the message's from_email) uses that domain.",
    ),
    ErrorSpec(
        "domain_not_verified",
        403,
        exc.SendFleetDomainNotVerified,
        False,
        batch_effect=BatchEffect.SKIP_DOMAIN,
        meaning="The domain is registered but SES has not confirmed its TXT ownership record.",
        fix="Add the TXT ownership record at your DNS provider, wait for propagation (up to "
        "48 h), then click Verify on the domain's page.",
    ),
    ErrorSpec(
        "dkim_not_verified",
        403,
        exc.SendFleetDKIMNotVerified,
        False,
        batch_effect=BatchEffect.SKIP_DOMAIN,
        meaning="The domain's ownership is verified, but its 3 DKIM CNAME records are not.",
        fix="Add all 3 DKIM CNAME records shown on the domain's page, wait for propagation, "
        "then click Verify DKIM.",
    ),
    ErrorSpec(
        "domain_mode_mismatch",
        403,
        exc.SendFleetDomainModeMismatch,
        False,
        batch_effect=BatchEffect.SKIP_DOMAIN,
        meaning="The domain's sending mode (BYOC or Shared) does not match the account's plan.",
        fix="Change the plan to match, or add the domain again in the plan's mode.",
    ),
    ErrorSpec(
        "sending_suspended",
        403,
        exc.SendFleetSendingSuspended,
        False,
        batch_effect=BatchEffect.STOP_BATCH,
        meaning="The account's sending is suspended, usually for high bounce or complaint rates.",
        fix="Contact SendFleet support about reinstatement and review the recipient lists.",
    ),
    ErrorSpec(
        "forbidden",
        403,
        exc.SendFleetForbidden,
        False,
        sent_by_api=False,
        meaning="SendFleet refused the request with a 403 this library does not know.",
        fix="Read the error's detail; check the account and domain in the dashboard.",
    ),
    ErrorSpec(
        "recipient_suppressed",
        422,
        exc.SendFleetRecipientSuppressed,
        False,
        recipient_status="rejected",
        meaning="The recipient is on the account's suppression list after a hard bounce or a "
        "spam complaint.",
        fix="Remove the address from your lists; never resend to it. Contact SendFleet support "
        "if it was suppressed in error.",
    ),
    ErrorSpec(
        "usage_limit_exceeded",
        429,
        exc.SendFleetUsageLimitExceeded,
        False,
        batch_effect=BatchEffect.STOP_BATCH,
        meaning="The plan's monthly SendFleet quota is used up (Starter BYOC 50, Growth 25,000, "
        "Pro 100,000; the paid BYOC plan has no SendFleet cap, only AWS SES's own sending quota "
        "in your account). It resets at 00:00 UTC on the 1st of the calendar month.",
        fix="Upgrade the plan in Dashboard -> Billing, or wait for the monthly reset.",
    ),
    ErrorSpec(
        "rate_limited",
        429,
        exc.SendFleetRateLimited,
        True,
        backoff=_exponential(1, 5),
        honours_retry_after=True,
        sent_by_api=False,
        meaning="The per-key rate limit (60 requests a minute) was exceeded.",
        fix="Retried automatically after the answer's Retry-After if present (at least 1 s), "
        "else after 1, 2, 4... s, within SENDFLEET['MAX_RETRY_WAIT']. Spread bursts out, or use "
        "the queued backend.",
    ),
    ErrorSpec(
        "server_error",
        500,
        exc.SendFleetServerError,
        True,
        backoff=((2.0, 5.0),),
        sent_by_api=False,
        meaning="An unexpected error inside SendFleet.",
        fix="Retried once after 2-5 s. If it persists, contact SendFleet support with the time "
        "of the send.",
    ),
    ErrorSpec(
        "queue_error",
        502,
        exc.SendFleetQueueError,
        True,
        backoff=_QUEUE_BACKOFF,
        meaning="SendFleet could not enqueue the email in AWS SQS.",
        fix="Retried after 1, 2 and 4 s (4 attempts in all); after that treat it as failed and "
        "alert.",
    ),
    ErrorSpec(
        "byoc_not_configured",
        503,
        exc.SendFleetBYOCNotConfigured,
        False,
        meaning="SendFleet's BYOC relay credentials are not configured on its infrastructure.",
        fix="An issue on SendFleet's side: contact support. Not retried.",
    ),
    ErrorSpec(
        "gateway_error",
        None,
        exc.SendFleetGatewayError,
        False,
        sent_by_api=False,
        recipient_status="unknown",
        meaning="A 5xx other than the documented ones, likely from a proxy in front of "
        "SendFleet; the email may or may not have been queued.",
        fix="Not retried, since a retry could send twice. Check the send in SendFleet's "
        "dashboard before resending.",
    ),
    ErrorSpec(
        "api_error",
        None,
        exc.SendFleetAPIError,
        False,
        sent_by_api=False,
        meaning="An HTTP answer the API does not document.",
        fix="Read the error's detail and status; check SENDFLEET['API_URL'].",
    ),
    ErrorSpec(
        "malformed_response",
        None,
        exc.SendFleetMalformedResponse,
        False,
        sent_by_api=False,
        recipient_status="unknown",
        meaning="A 2xx answer without the documented JSON body: the email may have been queued.",
        fix="Not retried, since a retry could send twice. Check SENDFLEET['API_URL'] points at "
        "the API and not at another page.",
    ),
    ErrorSpec(
        "connection_failed",
        None,
        exc.SendFleetConnectionFailed,
        True,
        backoff=_QUEUE_BACKOFF,
        sent_by_api=False,
        meaning="The connection to SendFleet could not be opened; nothing was sent.",
        fix="Retried after 1, 2 and 4 s, as for a 502. Check the network, DNS and "
        "SENDFLEET['API_URL'].",
    ),
    ErrorSpec(
        "network_error",
        None,
        exc.SendFleetNetworkError,
        False,
        sent_by_api=False,
        recipient_status="unknown",
        meaning="The connection dropped or timed out after the request was sent: the email may "
        "have been queued.",
        fix="Not retried: the API has no idempotency key, so a retry could send twice. Check the "
        "send in SendFleet's dashboard before resending; raise SENDFLEET['TIMEOUT'] if the "
        "API is slow.",
    ),
    ErrorSpec(
        "rate_limit_wait",
        None,
        exc.SendFleetRateLimitWait,
        True,
        batch_effect=BatchEffect.STOP_BATCH,
        sent_by_api=False,
        meaning="SENDFLEET['RATE_LIMIT'] had no free slot within MAX_RETRY_WAIT, so the send "
        "was not attempted: nothing was sent.",
        fix="Send again after error.retry_after seconds, raise MAX_RETRY_WAIT, or use the "
        "queued backend (its workers reschedule instead of waiting).",
    ),
    ErrorSpec(
        "key_refused",
        None,
        exc.SendFleetKeyRefused,
        False,
        batch_effect=BatchEffect.STOP_BATCH,
        sent_by_api=False,
        meaning="SendFleet refused this API key (401) a moment ago, so it is not used until "
        "SENDFLEET['KEY_REFUSED_PAUSE'] has passed: 10 refusals within 60 s get the server's "
        "IP blocked. Nothing was sent; queued sends are held, not failed.",
        fix="Fix SENDFLEET['API_KEY'] (a new key is used at once), or once the key works "
        "again run 'manage.py sendfleet_requeue --key-fixed'.",
    ),
    ErrorSpec(
        "reputation_hold",
        None,
        exc.SendFleetReputationHold,
        False,
        batch_effect=BatchEffect.STOP_BATCH,
        sent_by_api=False,
        meaning="A bulk send (its mailer's OPTIONS, its connection's bulk=True or "
        "SENDFLEET['BULK'] made it bulk; the message says which) was not attempted: the "
        "account's bounce or complaint rate over the last 7 days is at danger "
        "(docs/reputation.md), and SendFleet suspends accounts whose rates stay high. Nothing "
        "was sent. A queued send is held (pending) and waits; a synchronous send is failed, and "
        "nothing sends it later. Transactional mailers keep sending.",
        fix="Find the cause on the admin dashboard (the mailer, the bouncing domains) and clean "
        "the list. Held queued sends go out once the level falls below danger, or when an "
        "operator releases them there; send a failed synchronous one again then.",
    ),
    ErrorSpec(
        "lease_expired",
        None,
        exc.SendFleetLeaseExpired,
        False,
        sent_by_api=False,
        recipient_status="unknown",
        meaning="A queued send's worker stopped (killed, crashed, timed out) while sending: "
        "the email may have been sent.",
        fix="Not resent automatically, since that could send twice. Check the send in "
        "SendFleet's dashboard before resending; look at why the worker stopped.",
    ),
    ErrorSpec(
        "soft_bounce",
        None,
        exc.SendFleetSoftBounce,
        False,
        sent_by_api=False,
        recipient_status="queued",
        meaning="Not an error of the send, which SendFleet accepted: an email.bounced event "
        "said the bounce was transient (a full mailbox, a server refusing for now) and SES "
        "gave up. The row is bounced, the address is not suppressed, and the bounce rate "
        "counts hard bounces only.",
        fix="Nothing for one. Many to one domain: that domain's mail servers have a problem; "
        "resend later from the admin if the message matters.",
    ),
    ErrorSpec(
        "invalid_message",
        None,
        exc.SendFleetInvalidMessage,
        False,
        sent_by_api=False,
        recipient_status="invalid",
        meaning="Refused locally before any request: a field the API would reject (too long, "
        "CR/LF in a header, a blank body; an address has its own row, invalid_address).",
        fix="Fix the message; the error names the field.",
    ),
    ErrorSpec(
        "invalid_address",
        None,
        exc.SendFleetInvalidAddress,
        False,
        sent_by_api=False,
        recipient_status="invalid",
        meaning="Refused locally before any request: an address of the message (from, "
        "reply-to, or any to, cc or bcc recipient) is not exactly one valid mailbox, or its "
        "part before the @ is not ASCII. The whole message is refused, as Django's SMTP "
        "backend does, so a recipient is never dropped unnoticed. A ValueError.",
        fix="Fix the address; the error names the field (error.field) and the value "
        "(error.value). With fail_silently, the message is skipped and the others are sent.",
    ),
    ErrorSpec(
        "unsupported_feature",
        None,
        exc.SendFleetUnsupportedFeature,
        False,
        sent_by_api=False,
        recipient_status="invalid",
        meaning="The message uses something the API cannot carry: attachments or inline images, "
        "custom headers, non-HTML alternatives, several reply-to addresses, or django-anymail's "
        "send_at, merge_data, template_id, tags, metadata, tracking and the like.",
        fix="Remove the feature, or set SENDFLEET['IGNORE_UNSUPPORTED_FEATURES'] = True to drop "
        "it with a log line.",
    ),
    ErrorSpec(
        "recipients_refused",
        None,
        exc.SendFleetRecipientsRefused,
        False,
        sent_by_api=False,
        recipient_status="rejected",
        meaning="Every recipient of the message was suppressed or invalid; nothing was sent.",
        fix="Check the recipients. Set SENDFLEET['IGNORE_RECIPIENT_STATUS'] = True to report "
        "this only in message.anymail_status.",
    ),
)

SPECS_BY_CODE: Mapping[str, ErrorSpec] = {spec.code: spec for spec in ERROR_TABLE}
SPECS_BY_EXCEPTION: Mapping[type[exc.SendFleetError], ErrorSpec] = {
    spec.exception: spec for spec in ERROR_TABLE
}
# The rows chosen by HTTP status alone, for answers whose ``error`` is absent or unknown: the
# library's own names for an HTTP status (400, 401, 403, 429, 500).
_SPEC_BY_STATUS: Mapping[int, ErrorSpec] = {
    spec.http_status: spec
    for spec in ERROR_TABLE
    if spec.http_status is not None and not spec.sent_by_api
}


def bind_exceptions() -> None:
    """Give each row's exception class its code and retryability: the table is their source."""
    for spec in ERROR_TABLE:
        spec.exception.error_code = spec.code
        spec.exception.retryable_by_default = spec.retryable


bind_exceptions()


def spec_for_code(code: str | None) -> ErrorSpec | None:
    """The error table's row for an error code (``"domain_not_verified"``...), or None."""
    return SPECS_BY_CODE.get(code) if code else None


def spec_for_answer(status: int, api_code: str | None) -> ErrorSpec:
    """The row for an HTTP answer: by its ``error`` code when the API sent one, else by status."""
    spec = SPECS_BY_CODE.get(api_code) if api_code else None
    if spec is not None and spec.sent_by_api and spec.http_status == status:
        return spec
    if status in _SPEC_BY_STATUS:
        return _SPEC_BY_STATUS[status]
    if status >= 500:
        return SPECS_BY_CODE["gateway_error"]
    return SPECS_BY_CODE["api_error"]


def spec_for_error(error: exc.SendFleetError) -> ErrorSpec:
    """The row of the error's class (or of its nearest class in the table, for a subclass)."""
    for cls in type(error).__mro__:
        spec = SPECS_BY_EXCEPTION.get(cls)
        if spec is not None:
            return spec
    raise LookupError(f"{type(error).__name__} has no row in the SendFleet error table")


def retry_wait(error: exc.SendFleetError, attempt: int) -> float | None:
    """Seconds to wait before retrying after ``attempt`` failed attempts, or None: give up."""
    spec = spec_for_error(error)
    if not (spec.retryable and error.retryable) or attempt > len(spec.backoff):
        return None
    retry_after = getattr(error, "retry_after", None)
    if spec.honours_retry_after and retry_after is not None:
        # SendFleet: wait at least 1 s (the first backoff) after a throttle, whatever the header
        # says: a Retry-After of 0, a negative delay or a date in the past is retried at once.
        return max(float(retry_after), spec.backoff[0][0])
    shortest, longest = spec.backoff[attempt - 1]
    return random.uniform(shortest, longest)
