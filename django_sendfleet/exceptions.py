"""Every way a send through SendFleet can fail, as exception classes.

Which HTTP answer maps to which class, its ``error_code`` and whether it is retried are decided
in one place, ``django_sendfleet.error_table``: each row of the table names one class here, and
gives the class its code and retryability (``error_table.bind_exceptions``). These classes only
carry the facts of one failure.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django.core.exceptions import ImproperlyConfigured, SuspiciousOperation

if TYPE_CHECKING:
    from datetime import datetime

    import requests
    from django.core.mail import EmailMessage

__all__ = [
    "SendFleetAPIError",
    "SendFleetAccountNotAuthorized",
    "SendFleetAuthenticationError",
    "SendFleetBYOCNotConfigured",
    "SendFleetConfigurationError",
    "SendFleetConnectionFailed",
    "SendFleetDKIMNotVerified",
    "SendFleetDomainError",
    "SendFleetDomainModeMismatch",
    "SendFleetDomainNotRegistered",
    "SendFleetDomainNotVerified",
    "SendFleetError",
    "SendFleetForbidden",
    "SendFleetGatewayError",
    "SendFleetInvalidAddress",
    "SendFleetInvalidMessage",
    "SendFleetKeyRefused",
    "SendFleetLeaseExpired",
    "SendFleetMalformedResponse",
    "SendFleetNetworkError",
    "SendFleetQueueError",
    "SendFleetRateLimitWait",
    "SendFleetRateLimited",
    "SendFleetRecipientSuppressed",
    "SendFleetRecipientsRefused",
    "SendFleetReputationHold",
    "SendFleetSendingSuspended",
    "SendFleetServerError",
    "SendFleetSoftBounce",
    "SendFleetUnsupportedFeature",
    "SendFleetUsageLimitExceeded",
    "SendFleetValidationError",
    "SendFleetWebhookValidationError",
]


class SendFleetConfigurationError(ImproperlyConfigured):
    """The SendFleet settings are missing or wrong. Never swallowed by ``fail_silently``."""


class SendFleetError(Exception):
    """Base class of every error raised while sending through SendFleet."""

    #: The API's ``error`` value, or the library's name for answers that carry none; set on
    #: each class by its row of the error table.
    error_code: str | None = None
    #: Whether the table's row allows a retry; an instance may know better (``retryable``).
    retryable_by_default: bool = False

    def __init__(
        self,
        detail: str = "",
        *,
        email_message: EmailMessage | None = None,
        recipient: str | None = None,
        payload: dict[str, Any] | None = None,
        response: requests.Response | None = None,
        status_code: int | None = None,
        retryable: bool | None = None,
        attempts: int = 0,
    ) -> None:
        super().__init__(detail)
        self.detail = detail
        self.email_message = email_message
        self.recipient = recipient
        self.payload = payload
        self.response = response
        self.status_code = status_code
        self.retryable = type(self).retryable_by_default if retryable is None else retryable
        #: How many HTTP requests were made for this recipient before giving up.
        self.attempts = attempts

    def __str__(self) -> str:
        parts = []
        if self.status_code:
            parts.append(f"HTTP {self.status_code}")
        if self.error_code:
            parts.append(f"[{self.error_code}]")
        if self.detail:
            parts.append(self.detail)
        if self.recipient:
            parts.append(f"(recipient {self.recipient})")
        return " ".join(parts) or type(self).__name__


class SendFleetInvalidMessage(SendFleetError, ValueError):
    """The message cannot be sent as it is; it was refused locally and no request was made."""


class SendFleetInvalidAddress(SendFleetInvalidMessage):
    """An address of the message (from, reply-to or a recipient) cannot be sent to: not exactly
    one valid mailbox, or a non-ASCII local part. The whole message is refused before any of
    its requests, as Django's SMTP backend and django-anymail (``AnymailInvalidAddress``) do.

    ``field`` names the message's field (``to``, ``cc``, ``bcc``, ``from_email``...) and
    ``value`` the value as given.
    """

    def __init__(self, detail: str = "", *, field: str = "", value: str = "", **kwargs: Any):
        super().__init__(detail, **kwargs)
        self.field = field
        self.value = value


class SendFleetUnsupportedFeature(SendFleetError, ValueError):
    """The message uses something the SendFleet API cannot carry (attachments, custom headers...).

    Set ``SENDFLEET["IGNORE_UNSUPPORTED_FEATURES"] = True`` to drop such parts instead.
    """


class SendFleetRecipientsRefused(SendFleetError):
    """Every recipient of a message was refused (suppressed or invalid); nothing was sent.

    Set ``SENDFLEET["IGNORE_RECIPIENT_STATUS"] = True`` to report this only in
    ``message.anymail_status``.
    """


class SendFleetNetworkError(SendFleetError):
    """No usable HTTP answer: the connection failed, dropped or timed out.

    ``may_have_been_sent`` tells whether the request may have reached SendFleet. When it may
    have, the backend does not retry: the API has no idempotency key, so a retry could send
    the email twice.
    """

    may_have_been_sent = True

    def __init__(
        self,
        detail: str = "",
        *,
        cause: str = "",
        cause_type: type[BaseException] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(detail, **kwargs)
        #: The underlying error's type and text, secrets redacted, and its class. The error
        #: itself is not chained (``__cause__``): its frames hold the request's headers, and so
        #: the API key, and Django's error reports show them.
        self.cause = cause
        self.cause_type = cause_type


class SendFleetConnectionFailed(SendFleetNetworkError):
    """The connection to SendFleet could not be opened: nothing was sent, so a retry is safe."""

    may_have_been_sent = False


class SendFleetLeaseExpired(SendFleetError):
    """A queued send's worker stopped mid-send: the email may have been sent. Never resent."""


class SendFleetRateLimitWait(SendFleetError):
    """The shared rate limit would make this send wait longer than it may. Nothing was sent.

    ``retry_after`` is the seconds until the limiter expected a free slot.
    """

    def __init__(self, detail: str = "", *, retry_after: float, **kwargs: Any) -> None:
        super().__init__(detail, **kwargs)
        self.retry_after = retry_after


class SendFleetReputationHold(SendFleetError):
    """A bulk mailer's send was not attempted: the account's bounce or complaint rate is at
    danger (``reputation_guard.py``). Nothing was sent. The queued worker holds the row
    (``pending``) and looks again at ``held_until``; transactional mailers are never held."""

    def __init__(self, detail: str = "", *, held_until: datetime | None = None, **kwargs: Any):
        super().__init__(detail, **kwargs)
        self.held_until = held_until


class SendFleetSoftBounce(SendFleetError):
    """Not raised by a send: a delivery event said the message bounced temporarily. Its row
    stays ``bounced`` with this error code, so the bounce rate counts hard bounces only."""


class SendFleetWebhookValidationError(SendFleetError, SuspiciousOperation):
    """A webhook request failed signature or shape validation."""

    error_code = "webhook_invalid"


class SendFleetAPIError(SendFleetError):
    """SendFleet answered, but not with a usable 2xx."""


class SendFleetMalformedResponse(SendFleetAPIError):
    """A 2xx answer without the JSON body the API documents: the email may have been queued."""


class SendFleetValidationError(SendFleetAPIError):
    """400: the API refused the payload; ``field_errors`` holds its field -> messages dict."""

    def __init__(
        self, detail: str = "", *, field_errors: dict[str, Any] | None = None, **kwargs: Any
    ) -> None:
        super().__init__(detail, **kwargs)
        self.field_errors: dict[str, Any] = field_errors or {}


class SendFleetAuthenticationError(SendFleetAPIError):
    """401: the API key is missing, unknown, revoked or expired.

    ``refused_until``: the key is not used again before then (``key_guard.py``).
    """

    refused_until: datetime | None = None


class SendFleetKeyRefused(SendFleetError):
    """SendFleet refused this API key (401) a moment ago: it is not used until ``refused_until``,
    so that refusals never add up to SendFleet's IP block. Nothing was sent."""

    def __init__(self, detail: str = "", *, refused_until: datetime, **kwargs: Any) -> None:
        super().__init__(detail, **kwargs)
        self.refused_until = refused_until


class SendFleetForbidden(SendFleetAPIError):
    """403: the key works, but the account or domain cannot send. Fix it in the dashboard."""


class SendFleetAccountNotAuthorized(SendFleetForbidden):
    """403 ``unauthorized``: account email unverified, not approved for Shared, or no plan."""


class SendFleetSendingSuspended(SendFleetForbidden):
    """403 ``sending_suspended``: the account's sending is suspended."""


class SendFleetDomainError(SendFleetForbidden):
    """A 403 about the sender's domain; other domains of the account may still send."""


class SendFleetDomainNotRegistered(SendFleetDomainError):
    """403 ``domain_not_registered``: the sender's domain is not in the account."""


class SendFleetDomainNotVerified(SendFleetDomainError):
    """403 ``domain_not_verified``: the domain's TXT ownership record is not confirmed."""


class SendFleetDKIMNotVerified(SendFleetDomainError):
    """403 ``dkim_not_verified``: the domain's DKIM records are not confirmed."""


class SendFleetDomainModeMismatch(SendFleetDomainError):
    """403 ``domain_mode_mismatch``: the domain's mode (BYOC/Shared) is not the plan's."""


class SendFleetRecipientSuppressed(SendFleetAPIError):
    """422 ``recipient_suppressed``: never send to this address again."""


class SendFleetUsageLimitExceeded(SendFleetAPIError):
    """429 ``usage_limit_exceeded``: the monthly quota is used up until the 1st or an upgrade."""


class SendFleetRateLimited(SendFleetAPIError):
    """429 without an ``error``: the per-key rate limit (60 requests a minute)."""

    def __init__(self, detail: str = "", *, retry_after: float | None = None, **kwargs: Any):
        super().__init__(detail, **kwargs)
        self.retry_after = retry_after


class SendFleetServerError(SendFleetAPIError):
    """500 or another unexpected 5xx from SendFleet."""


class SendFleetGatewayError(SendFleetServerError):
    """A 5xx SendFleet does not document (a proxy's 504, say): the email may have been queued."""


class SendFleetQueueError(SendFleetServerError):
    """502 ``queue_error``: SendFleet could not enqueue the email; safe to retry."""


class SendFleetBYOCNotConfigured(SendFleetServerError):
    """503 ``byoc_not_configured``: SendFleet's own relay is misconfigured; contact support."""
