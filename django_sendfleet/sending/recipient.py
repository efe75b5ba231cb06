"""Send one recipient: the one path ``EmailBackend`` and the queued worker both take.

In order: the local suppression list, the batch guard (an earlier error that rules this send
out), the pause after a 401 (``key_guard.py``), the shared rate limiter, the attempt, and what
the retry policy (``retry.py``) makes of a failure. The result is the recipient's
``RecipientStatus`` (``outcome.py``: what the app sees), or ``Deferred`` when the policy gives
the send back to the outbox. What follows a finished send is shared too: the log row's fields
(``send_log.outcome_fields``) and the failure signals (``finish_recipient`` below).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from .. import error_table
from ..api import client as client_module
from ..exceptions import (
    SendFleetAuthenticationError,
    SendFleetError,
    SendFleetKeyRefused,
    SendFleetRateLimitWait,
    SendFleetRecipientSuppressed,
    SendFleetReputationHold,
)
from ..message.priority import HIGH
from ..models import Suppression, normalise_email
from ..outcome import QUEUED, REJECTED, RecipientStatus
from ..reputation import guard as reputation_guard
from .batch import BatchGuard
from .failures import handle_failure
from .retry import Defer, GiveUp, RetryPolicy, WaitAndRetry

if TYPE_CHECKING:
    from django.core.mail import EmailMessage

    from ..api.client import Accepted, SendFleetClient
    from ..ratelimit import SlidingWindowLimiter
    from ..ratelimit.key_guard import KeyGuard
    from ..reputation.guard import ReputationGuard

logger = logging.getLogger("django_sendfleet")


@dataclass(frozen=True)
class Deferred:
    """The policy gave the send back to the outbox until ``when``; it is not finished."""

    when: datetime
    reason: str
    error: SendFleetError
    #: Attempts made so far, including earlier runs of the worker.
    attempts: int


class SuppressionCheck:
    """The local suppression list as one batch sees it.

    ``load`` asks the database once for a group of addresses; ``learn`` adds an address the
    batch itself found suppressed (a 422), so a later message of the batch is stopped too.
    """

    def __init__(self) -> None:
        self._asked: set[str] = set()
        self._suppressed: set[str] = set()
        self._stopped: list[str] = []
        #: Addresses as given -> as compared: each is normalised once, not at every step.
        self._normalised: dict[str, str] = {}

    def _normalise(self, address: str) -> str:
        normalised = self._normalised.get(address)
        if normalised is None:
            normalised = self._normalised[address] = normalise_email(address)
        return normalised

    def load(self, addresses: Iterable[str]) -> None:
        """Ask the database about the addresses not asked about yet: one query, or none."""
        wanted = {self._normalise(address) for address in addresses} - self._asked
        if wanted:
            self._asked |= wanted
            self._suppressed |= Suppression.objects.suppressed_among(wanted)

    def learn(self, address: str) -> None:
        self._suppressed.add(self._normalise(address))

    def stops(self, address: str) -> bool:
        if self._normalise(address) in self._suppressed:
            self._stopped.append(address)
            return True
        return False

    def stop(
        self, recipient: str, message: EmailMessage | None, attempts_before: int = 0
    ) -> RecipientStatus | None:
        """REJECTED when the list stops this send (nothing is sent), else None."""
        if not self.stops(recipient):
            return None
        logger.warning("SendFleet send to %s rejected: on the local suppression list", recipient)
        suppressed = SendFleetRecipientSuppressed(
            "On the local suppression list: not sent.", email_message=message, recipient=recipient
        )
        return RecipientStatus(REJECTED, error=suppressed, attempts=attempts_before)

    def count_stopped(self) -> None:
        """Record on the list's entries that they stopped these sends; one query."""
        if self._stopped:
            Suppression.objects.count_stopped_sends(self._stopped)
            self._stopped = []


class RecipientSender:
    """Sends the recipients of one batch, one at a time, through one client."""

    def __init__(
        self,
        *,
        client: SendFleetClient,
        limiter: SlidingWindowLimiter | None,
        policy: RetryPolicy,
        suppressions: SuppressionCheck | None,
        key_guard: KeyGuard | None = None,
        guard: BatchGuard | None = None,
        reputation: ReputationGuard | None = None,
    ) -> None:
        self.client = client
        self.key_guard = key_guard
        self.reputation = reputation
        self.limiter = limiter
        self.policy = policy
        self.suppressions = suppressions
        self.guard = guard or BatchGuard()

    def send(
        self,
        recipient: str,
        payload: dict[str, Any],
        from_domain: str,
        *,
        attempts_before: int = 0,
        message: EmailMessage | None = None,
        priority: str = HIGH,
    ) -> RecipientStatus | Deferred:
        """``priority`` ("high" or "low", ``priority.py``) is what the rate limiter is told."""
        if self.suppressions is not None:
            stopped = self.suppressions.stop(recipient, message, attempts_before)
            if stopped is not None:
                return stopped
        earlier = self.guard.blocker(from_domain)
        blocker = (
            earlier
            or self._key_refused(recipient, payload, message)
            or self._reputation_hold(recipient, payload, message)
        )
        if blocker is not None:
            hold = self.policy.before_blocked(blocker)
            if isinstance(blocker, SendFleetReputationHold) and blocker is not earlier:
                # Only the policy knows what becomes of the send: a queued one waits.
                reputation_guard.say_what_happens(blocker, waits=hold is not None)
            if hold is not None:
                return Deferred(hold.when, hold.reason, blocker, attempts_before)
            if earlier is not None:
                logger.warning(
                    "SendFleet skipped %s: an earlier send in this batch failed with %s",
                    recipient,
                    blocker.error_code,
                )
            else:  # the pause after a 401, or a reputation hold: this send's own reason
                logger.warning(
                    "SendFleet did not send to %s [%s]: %s",
                    recipient,
                    blocker.error_code,
                    blocker.detail,
                )
            status = error_table.spec_for_error(blocker).recipient_status
            return RecipientStatus(status, error=blocker, attempts=attempts_before)
        return self._attempt_until_done(
            recipient, payload, from_domain, attempts_before, message, priority
        )

    def _key_refused(
        self, recipient: str, payload: dict[str, Any], message: EmailMessage | None
    ) -> SendFleetKeyRefused | None:
        """The pause after a recent 401 for this key (any process's), as this batch's blocker."""
        if self.key_guard is None:
            return None
        try:
            self.key_guard.check()
        except SendFleetKeyRefused as refused:
            refused.recipient, refused.payload, refused.email_message = recipient, payload, message
            self.guard.record(refused, "")  # stops the batch: no more cache reads for it
            return refused
        return None

    def _reputation_hold(
        self, recipient: str, payload: dict[str, Any], message: EmailMessage | None
    ) -> SendFleetReputationHold | None:
        """A bulk mailer's hold while the account is at danger, as this batch's blocker."""
        hold = self.reputation.hold() if self.reputation is not None else None
        if hold is not None:
            hold.recipient, hold.payload, hold.email_message = recipient, payload, message
            self.guard.record(hold, "")  # stops the batch: the rest waits too
        return hold

    def _attempt_until_done(
        self,
        recipient: str,
        payload: dict[str, Any],
        from_domain: str,
        attempts: int,
        message: EmailMessage | None,
        priority: str = HIGH,
    ) -> RecipientStatus | Deferred:
        started = time.monotonic()
        waited = 0.0
        limiter = self.limiter
        while True:
            # The request built and the connection to the API open before the slot is taken:
            # from the slot to the request's arrival is then the send alone (client.prepare).
            self.client.prepare(payload)
            slot = None
            if limiter is not None:
                try:
                    slot = limiter.take(self.policy.limiter_budget(waited), priority=priority)
                    waited += slot.waited
                except SendFleetRateLimitWait as wait:
                    # No slot in time: nothing was sent by this attempt.
                    wait.attempts, wait.recipient, wait.payload = attempts, recipient, payload
                    decision: Defer | GiveUp | WaitAndRetry = self.policy.after_limiter_wait(wait)
                    return self._stop(decision, wait, attempts, from_domain, started, message)
            attempts += 1
            failure: SendFleetError | None = None
            try:
                accepted = self.client.attempt(payload, attempt=attempts)
            except SendFleetError as raised:
                failure = raised
            finally:
                if limiter is not None and slot is not None:
                    # SendFleet counted the request at its arrival, at the latest now: the
                    # window counts it from now (a late arrival then costs no 429).
                    limiter.answered(slot)
            if failure is not None:
                error: SendFleetError = failure
                error.attempts = attempts
                if isinstance(error, SendFleetAuthenticationError) and self.key_guard is not None:
                    error.refused_until = self.key_guard.record_refusal()
                decision = self.policy.after_failure(error, attempts, waited)
                if isinstance(decision, WaitAndRetry):
                    logger.info(
                        "SendFleet %s for %s; retry %d in %.1f s",
                        error.error_code,
                        recipient,
                        attempts,
                        decision.seconds,
                    )
                    client_module.wait_before_retry(decision.seconds)
                    waited += decision.seconds
                    continue
                return self._stop(decision, error, attempts, from_domain, started, message)
            return _queued(recipient, accepted, attempts, started)

    def _stop(
        self,
        decision: Defer | GiveUp | WaitAndRetry,
        error: SendFleetError,
        attempts: int,
        from_domain: str,
        started: float,
        message: EmailMessage | None,
    ) -> RecipientStatus | Deferred:
        error.email_message = message
        if not (isinstance(decision, Defer) and isinstance(error, SendFleetRateLimitWait)):
            # A send given back to wait for the limiter says nothing about the next one.
            self.guard.record(error, from_domain)
        if isinstance(decision, Defer):
            return Deferred(decision.when, decision.reason, error, attempts)
        if isinstance(decision, GiveUp) and decision.note:
            error.detail += decision.note
            error.args = (error.detail,)
        result = RecipientStatus(
            error_table.spec_for_error(error).recipient_status,
            error=error,
            attempts=attempts,
            esp_response=error.response,
            duration_ms=client_module.milliseconds_since(started),
        )
        logger.warning(
            "SendFleet send to %s %s after %d attempt(s): %s",
            error.recipient,
            result.status,
            attempts,
            error,
        )
        return result


def finish_recipient(
    *,
    backend_class: type,
    mailer: str,
    message: EmailMessage | None,
    recipient: str,
    from_domain: str,
    result: RecipientStatus,
    suppressions: SuppressionCheck | None,
    tags: list[str] | None = None,
    metadata: dict[str, Any] | None = None,
) -> None:
    """What follows a finished send that failed: the suppression list, then the signals (with
    the send's ``tags`` and the recipient's ``metadata``)."""
    error = result.error
    if error is None:
        return
    if isinstance(error, SendFleetRecipientSuppressed) and suppressions is not None:
        suppressions.learn(recipient)
    handle_failure(
        backend_class, mailer, message, recipient, error, from_domain, tags=tags, metadata=metadata
    )


def _queued(recipient: str, accepted: Accepted, attempts: int, started: float) -> RecipientStatus:
    logger.info(
        "SendFleet send to %s queued: message_id=%s mode=%s attempts=%d",
        recipient,
        accepted.message_id,
        accepted.mode,
        attempts,
    )
    return RecipientStatus(
        QUEUED,
        message_id=accepted.message_id,
        attempts=attempts,
        mode=accepted.mode,
        warnings=accepted.warnings,
        esp_response=accepted.response,
        duration_ms=client_module.milliseconds_since(started),
    )
