"""The schema of a row of the error table (``error_table.py``): what one failure means."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from . import exceptions as exc

__all__ = [
    "ErrorSpec",
]


class BatchEffect(enum.Enum):
    """What an error means for the other sends of the same ``send_messages`` call."""

    NONE = "none"
    #: Every later send would fail the same way (or worse: 10 consecutive 401s block the IP).
    STOP_BATCH = "stop_batch"
    #: Later sends from the same sender domain would fail the same way.
    SKIP_DOMAIN = "skip_domain"


@dataclass(frozen=True)
class ErrorSpec:
    code: str
    http_status: int | None
    exception: type[exc.SendFleetError]
    retryable: bool
    #: Seconds to wait before each retry, as (shortest, longest); its length caps the retries.
    backoff: tuple[tuple[float, float], ...] = ()
    #: Wait as long as the answer's ``Retry-After`` says, when it has one (SendFleet's docs do not
    #: promise the header), but never less than the first backoff.
    honours_retry_after: bool = False
    batch_effect: BatchEffect = BatchEffect.NONE
    #: The answer carries this code in its ``error`` field (else the library names it).
    sent_by_api: bool = True
    #: The recipient's status in ``anymail_status`` when this error ends a send.
    recipient_status: str = "failed"
    meaning: str = ""
    fix: str = ""

    @property
    def max_attempts(self) -> int:
        return 1 + len(self.backoff)

    @property
    def retry_description(self) -> str:
        """How this failure is retried, in words: for the docs and the admin alike."""
        if not self.retryable:
            return "Not retried."
        if not self.backoff:  # rate_limit_wait: nothing was attempted, so nothing to retry
            return (
                "Not retried by this send, since nothing was sent: send it again later. The "
                "queued worker does so when a slot is free."
            )
        waits = ", ".join(
            f"{low:g}" if low == high else f"{low:g}-{high:g}" for low, high in self.backoff
        )
        count = len(self.backoff)
        text = f"Retried up to {count} {'time' if count == 1 else 'times'} after {waits} s"
        if self.honours_retry_after:
            text += (
                f" (or after Retry-After, if the answer has one; at least {self.backoff[0][0]:g} s)"
            )
        return text + f": {self.max_attempts} attempts in all, within MAX_RETRY_WAIT."
