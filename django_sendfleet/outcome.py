"""The outcome of a send as the sending app sees it: ``message.anymail_status``.

One of two status vocabularies. This one is per recipient of one send, shaped like
django-anymail's (``queued``, ``rejected``, ``invalid``, ``failed``, ``unknown``, and
``pending`` in the outbox). The other, ``log_status.LogStatus``, is a send log row's, which
delivery events move on (``delivered``, ``bounced``...); ``log_status_for`` maps one onto the
other.

The shape follows django-anymail's ``AnymailStatus``, so code that reads anymail's status
(``status``, ``message_id``, ``recipients``, ``esp_response``) works unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import requests

    from .exceptions import SendFleetError

__all__ = [
    "FAILED",
    "INVALID",
    "PENDING",
    "QUEUED",
    "REJECTED",
    "UNKNOWN",
    "RecipientStatus",
    "SendStatus",
]

PENDING = "pending"  # in the outbox, to be sent by a worker (QueuedEmailBackend)
QUEUED = "queued"  # accepted by SendFleet (200)
REJECTED = "rejected"  # suppressed: by SendFleet (422) or by the local list
INVALID = "invalid"  # refused locally: the API would not accept it
FAILED = "failed"  # SendFleet or the network refused it; nothing was sent
UNKNOWN = "unknown"  # the request may have reached SendFleet; check before resending
REFUSED_STATUSES = frozenset({REJECTED, INVALID})


@dataclass
class RecipientStatus:
    status: str
    message_id: str | None = None
    error: SendFleetError | None = None
    attempts: int = 0
    mode: str | None = None
    warnings: list[str] = field(default_factory=list)
    esp_response: requests.Response | None = None
    #: Milliseconds spent on this recipient's requests, retries and waits included.
    duration_ms: int | None = None


@dataclass
class SendStatus:
    """Per-recipient results of one message."""

    recipients: dict[str, RecipientStatus] = field(default_factory=dict)
    #: The answer to the message's last request.
    esp_response: requests.Response | None = None
    #: A pre_send receiver raised CancelSend: nothing was sent.
    cancelled: bool = False

    @property
    def status(self) -> set[str]:
        return {recipient.status for recipient in self.recipients.values()}

    @property
    def message_id(self) -> str | set[str] | None:
        """One id as a string, several (one per recipient) as a set, or None."""
        ids = {r.message_id for r in self.recipients.values() if r.message_id}
        if len(ids) == 1:
            return next(iter(ids))
        return ids or None

    @property
    def accepted(self) -> bool:
        """Accepted by SendFleet, or (queued backend) safely in the outbox."""
        return bool(self.status & {QUEUED, PENDING})

    @property
    def all_refused(self) -> bool:
        return bool(self.recipients) and self.status <= REFUSED_STATUSES

    def record(self, recipient: str, result: RecipientStatus) -> None:
        self.recipients[recipient] = result
        if result.esp_response is not None:
            self.esp_response = result.esp_response

    def errors(self) -> list[SendFleetError]:
        return [r.error for r in self.recipients.values() if r.error is not None]
