"""When a failed attempt is tried again: the one thing the web backend and the worker do apart.

Why: docs/internals.md#sending-waiting-or-rescheduling-a-retry
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Protocol

from django.utils import timezone

from .. import error_table
from ..exceptions import (
    SendFleetAuthenticationError,
    SendFleetError,
    SendFleetKeyRefused,
    SendFleetRateLimitWait,
    SendFleetReputationHold,
    SendFleetUsageLimitExceeded,
)


@dataclass(frozen=True)
class WaitAndRetry:
    """Sleep this many seconds in this process, then attempt again."""

    seconds: float


@dataclass(frozen=True)
class Defer:
    """Nothing more now: give the send back to the outbox until ``when``."""

    when: datetime
    reason: str


@dataclass(frozen=True)
class GiveUp:
    """The error is the recipient's outcome. ``note`` is added to its detail when set."""

    note: str = ""


Decision = WaitAndRetry | Defer | GiveUp


class RetryPolicy(Protocol):
    def limiter_budget(self, waited: float) -> float:
        """Seconds this send may still wait for a rate-limiter slot."""

    def after_limiter_wait(self, wait: SendFleetRateLimitWait) -> Defer | GiveUp:
        """No slot within the budget: nothing was sent."""

    def after_failure(self, error: SendFleetError, attempts: int, waited: float) -> Decision:
        """An attempt failed; ``attempts`` made so far, ``waited`` seconds spent waiting."""

    def before_blocked(self, blocker: SendFleetError) -> Defer | None:
        """An earlier send of the batch rules this one out: hold it, or None to fail it."""


class WaitInProcess:
    """The synchronous backend: sleep between attempts within ``MAX_RETRY_WAIT``."""

    def __init__(self, max_retry_wait: float) -> None:
        self.max_retry_wait = max_retry_wait

    def limiter_budget(self, waited: float) -> float:
        return max(self.max_retry_wait - waited, 0.0)

    def after_limiter_wait(self, wait: SendFleetRateLimitWait) -> GiveUp:
        return GiveUp()

    def after_failure(self, error: SendFleetError, attempts: int, waited: float) -> Decision:
        wait = error_table.retry_wait(error, attempts)
        if wait is None:
            return GiveUp()
        if waited + wait > self.max_retry_wait:
            return GiveUp(
                f" (not retried: waiting {wait:.1f} s more would pass "
                f"MAX_RETRY_WAIT={self.max_retry_wait:g} s)"
            )
        return WaitAndRetry(wait)

    def before_blocked(self, blocker: SendFleetError) -> None:
        return None


class Reschedule:
    """The queued worker: retries and holds go back to the outbox; nothing sleeps for them."""

    def __init__(self, max_retry_wait: float) -> None:
        self.max_retry_wait = max_retry_wait

    def limiter_budget(self, waited: float) -> float:
        return max(self.max_retry_wait - waited, 0.0)

    def after_limiter_wait(self, wait: SendFleetRateLimitWait) -> Defer:
        when = timezone.now() + timedelta(seconds=wait.retry_after)
        return Defer(when, "waiting for the shared rate limit")

    def after_failure(self, error: SendFleetError, attempts: int, waited: float) -> Decision:
        hold = self.before_blocked(error)
        if hold is not None:
            return hold
        wait = error_table.retry_wait(error, attempts)
        if wait is None:
            return GiveUp()
        return Defer(timezone.now() + timedelta(seconds=wait), f"retry {attempts} in {wait:.1f} s")

    def before_blocked(self, blocker: SendFleetError) -> Defer | None:
        # Neither an exhausted quota nor a refused key nor the account's reputation is the
        # message's fault: hold it until the quota resets, the key's pause ends (a fixed key is
        # used then), or it is time to look at the reputation level again.
        if isinstance(blocker, SendFleetReputationHold) and blocker.held_until:
            return Defer(blocker.held_until, "held while the account's reputation is at danger")
        if isinstance(blocker, SendFleetUsageLimitExceeded):
            return Defer(start_of_next_month(timezone.now()), "held until the monthly quota resets")
        refused_until = getattr(blocker, "refused_until", None)
        if (
            isinstance(blocker, SendFleetAuthenticationError | SendFleetKeyRefused)
            and refused_until
        ):
            return Defer(refused_until, "held while SendFleet refuses the API key")
        return None


def start_of_next_month(now: datetime) -> datetime:
    """SendFleet's monthly quota resets at 00:00 UTC on the 1st."""
    now = now.astimezone(UTC)
    year, month = (now.year + 1, 1) if now.month == 12 else (now.year, now.month + 1)
    return datetime(year, month, 1, tzinfo=UTC)
