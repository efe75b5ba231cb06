"""The sandbox's time: real time plus an offset a test can move forward.

Rate windows, IP blocks, the usage lag and the month of the quota all read this clock, so a
test can jump over a Retry-After, a block or a month boundary without sleeping. The in-process
sandbox moves it forward by every retry wait it records instead of sleeping.
"""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime


class SandboxClock:
    """``monotonic()`` for intervals and ``now()`` for calendar dates, both shifted alike.

    ``frozen_at`` (epoch seconds) gives a clock that only moves when advanced, for tests of
    the rules that must not depend on how fast the machine runs.
    """

    def __init__(self, frozen_at: float | None = None) -> None:
        self._lock = threading.Lock()
        self._offset = 0.0
        self._frozen_at = frozen_at

    @property
    def offset(self) -> float:
        """Seconds this clock is ahead of real time."""
        return self._offset

    def monotonic(self) -> float:
        base = time.monotonic() if self._frozen_at is None else self._frozen_at
        return base + self._offset

    def time(self) -> float:
        """Seconds since the epoch, like ``time.time()``."""
        base = time.time() if self._frozen_at is None else self._frozen_at
        return base + self._offset

    def now(self) -> datetime:
        """The current UTC date and time."""
        return datetime.fromtimestamp(self.time(), UTC)

    def advance(self, seconds: float) -> None:
        """Move forward by ``seconds``: what would happen over that time happens at once."""
        if not 0 <= seconds < float("inf"):
            raise ValueError("The clock moves forward by a number of seconds >= 0.")
        with self._lock:
            self._offset += seconds

    def travel_to(self, when: datetime) -> None:
        """Jump forward to ``when`` (an aware datetime); the clock never goes back."""
        if when.tzinfo is None:
            raise ValueError("Give an aware datetime, e.g. datetime(2027, 1, 1, tzinfo=UTC).")
        self.advance(max(0.0, when.timestamp() - self.time()))
