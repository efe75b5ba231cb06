"""The sandbox's two request limits: the per-key rate limit and the per-IP block on failed auth.

Both take the current time as an argument so they can be tested with a fake clock.
"""

from __future__ import annotations

from collections import deque


class SlidingLogThrottle:
    """At most ``requests`` admitted requests per key in any ``seconds``-long window.

    Same semantics as DRF's ``SimpleRateThrottle``: a refused request is not logged, so a
    client retrying while throttled does not push its own window further out.
    """

    def __init__(self, requests: int, seconds: float) -> None:
        self.configure(requests, seconds)
        self._logs: dict[str, deque[float]] = {}

    def configure(self, requests: int, seconds: float) -> None:
        if requests < 1 or seconds <= 0:
            raise ValueError("A rate limit needs at least 1 request per a positive duration.")
        self.requests = requests
        self.seconds = seconds

    def allow(self, key: str, now: float) -> bool:
        log = self._logs.setdefault(key, deque())
        while log and log[0] <= now - self.seconds:
            log.popleft()
        if len(log) >= self.requests:
            return False
        log.append(now)
        return True

    def wait(self, key: str, now: float) -> float:
        """Seconds until ``allow(key)`` can succeed again."""
        log = self._logs.get(key)
        if not log or len(log) < self.requests:
            return 0.0
        # The window frees up when enough of the oldest entries have left it.
        return log[len(log) - self.requests] + self.seconds - now

    def clear(self) -> None:
        self._logs.clear()


class AuthFailureBlock:
    """Blocks an IP for ``block_seconds`` after ``failures`` consecutive 401s in ``window``.

    SendFleet only says "temporarily blocked"; the sandbox picks 60 seconds.
    """

    def __init__(
        self, failures: int = 10, window: float = 60.0, block_seconds: float = 60.0
    ) -> None:
        self.failures = failures
        self.window = window
        self.block_seconds = block_seconds
        self._failure_times: dict[str, deque[float]] = {}
        self._blocked_until: dict[str, float] = {}

    def is_blocked(self, ip: str, now: float) -> bool:
        until = self._blocked_until.get(ip)
        if until is None:
            return False
        if now < until:
            return True
        del self._blocked_until[ip]
        return False

    def record_failure(self, ip: str, now: float) -> None:
        times = self._failure_times.setdefault(ip, deque())
        while times and times[0] <= now - self.window:
            times.popleft()
        times.append(now)
        if len(times) >= self.failures:
            self._blocked_until[ip] = now + self.block_seconds
            del self._failure_times[ip]

    def record_success(self, ip: str) -> None:
        """Any answer other than a 401 breaks the run of consecutive failures."""
        self._failure_times.pop(ip, None)

    def clear(self) -> None:
        self._failure_times.clear()
        self._blocked_until.clear()
