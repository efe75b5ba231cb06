"""SENDFLEET["RATE_LIMIT"], held by every process and machine that sends with one API key.

SendFleet throttles each key with a sliding log (DRF's throttle): no more than N requests in
any W seconds, refused requests not counted. The limiter keeps the same log in a Django cache,
so an idle sender's burst of up to N goes out at once and only the excess waits:

- Django's ``RedisCache``: one Lua script per acquisition (trim, count, add or answer the
  wait), atomic on the server and timed by the Redis server's clock, so machines with skewed
  clocks agree. Each call ends within what is left of the send's wait (``bounded_redis``).
- Any other cache: the same log under a short lock taken with ``cache.add``; atomic as far as
  the backend's ``add`` is.
- ``DummyCache``, which stores nothing: a log in this process's memory.

LocMemCache and DummyCache are per process: ``is_shared()`` says so, for the system check.

A cache that fails (down, or too slow to answer in time) lets sends through without waiting,
and this process then leaves it alone for a while (``shared_cache``), so an outage costs one
bounded wait and one warning, not one per send.
"""

from __future__ import annotations

import bisect
import math
import random
import threading
import time
import uuid
from typing import TYPE_CHECKING

from django.core.cache import caches
from django.core.cache.backends.base import BaseCache
from django.core.cache.backends.dummy import DummyCache
from django.core.cache.backends.locmem import LocMemCache
from django.core.cache.backends.redis import RedisCache  # imports redis only when used

from . import shared_cache
from .bounded_redis import Script, evaluate
from .exceptions import SendFleetRateLimitWait

if TYPE_CHECKING:
    from .conf import SendFleetSettings

KEY_NAMESPACE = "sendfleet:ratelimit"
#: Seconds added to the window, so a request that reaches SendFleet a little later than the
#: one it replaces in the window is not throttled: 1% of the window, within these bounds.
MARGIN_FRACTION = 0.01
MIN_MARGIN = 0.02
MAX_MARGIN = 0.5
#: Seconds the generic backend's lock lives if its holder dies. Whole seconds: memcached and
#: RedisCache truncate timeouts to integers (and 0 would mean "expire now").
LOCK_TIMEOUT = 5

# KEYS[1]: a sorted set of admitted requests, scored by Redis server time in microseconds.
# ARGV: the most requests per window, the window in microseconds, a unique member.
# Returns 0 when admitted, else the microseconds until enough old entries leave the window.
SLIDING_LOG_SCRIPT = Script("""
if redis.replicate_commands then redis.replicate_commands() end -- Redis < 5: TIME, then write
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000000 + tonumber(time[2])
local limit = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
local count = redis.call('ZCARD', KEYS[1])
if count < limit then
  redis.call('ZADD', KEYS[1], now, ARGV[3])
  redis.call('PEXPIRE', KEYS[1], math.ceil(window / 1000) + 1000)
  return 0
end
local freeing = redis.call('ZRANGE', KEYS[1], count - limit, count - limit, 'WITHSCORES')
return math.max(1, tonumber(freeing[2]) + window - now)
""")


def default_margin(seconds: float) -> float:
    return min(max(seconds * MARGIN_FRACTION, MIN_MARGIN), MAX_MARGIN)


def is_shared(cache_alias: str) -> bool:
    """Whether other processes see this cache: False for LocMemCache and DummyCache."""
    return not isinstance(caches[cache_alias], LocMemCache | DummyCache)


class SlidingWindowLimiter:
    """No more than ``requests`` acquisitions in any ``seconds`` (plus a small margin)."""

    def __init__(
        self,
        *,
        requests: int,
        seconds: float,
        cache_alias: str = "default",
        key_id: str,
        margin: float | None = None,
    ) -> None:
        if requests < 1 or seconds <= 0:
            raise ValueError("A rate limit needs at least 1 request per a positive duration.")
        self.requests = requests
        self.seconds = float(seconds)
        self.margin = default_margin(self.seconds) if margin is None else margin
        self.cache_alias = cache_alias
        # Only the part before the dot: the secret after it must never reach a cache key.
        self.key_id = key_id.split(".", 1)[0]
        self._base_key = f"{KEY_NAMESPACE}:{self.key_id}:{requests}/{self.seconds:g}s"
        caches[cache_alias]

    @classmethod
    def for_settings(
        cls, settings: SendFleetSettings, cache_alias: str | None = None
    ) -> SlidingWindowLimiter | None:
        """The limiter for SENDFLEET["RATE_LIMIT"] and the key's prefix; None when disabled."""
        rate = settings.rate_limit
        if rate is None:
            return None
        requests, seconds = rate
        return cls(
            requests=requests,
            seconds=seconds,
            cache_alias=cache_alias or settings.rate_limit_cache,
            key_id=settings.api_key_prefix,
        )

    def __repr__(self) -> str:
        return (
            f"<SlidingWindowLimiter {self.key_id} {self.requests}/{self.seconds:g}s "
            f"cache={self.cache_alias!r}>"
        )

    @property
    def cache_key(self) -> str:
        """The key the log is stored under, as the cache's key function makes it."""
        return caches[self.cache_alias].make_key(self._base_key)

    def acquire(self, max_wait: float) -> float:
        """Take a slot, sleeping for one if needed; return the seconds waited.

        Raises ``SendFleetRateLimitWait`` without sleeping when the slot is further away than
        what is left of ``max_wait``. Each call to the cache is bounded by what is left too.
        """
        started = time.monotonic()
        while True:
            wait = self.try_acquire(timeout=max_wait - (time.monotonic() - started))
            waited = time.monotonic() - started
            if wait == 0.0:
                return waited
            if waited + wait > max_wait:
                raise SendFleetRateLimitWait(
                    f"The rate limit of {self.requests} requests per {self.seconds:g} s "
                    f"needs a wait of {wait:.2f} s, more than the {max(max_wait - waited, 0):.2f}"
                    " s this send may still wait (MAX_RETRY_WAIT)",
                    retry_after=wait,
                )
            # Another sender may take the slot first; then the loop waits for the next one.
            time.sleep(wait)

    def try_acquire(self, timeout: float | None = None) -> float:
        """Take a slot if one is free: 0.0 when taken, else the seconds until one frees up.

        The cache gets ``timeout`` seconds to answer (``shared_cache.call``'s default if None):
        on Redis a bound on the call, elsewhere on the wait for the lock. A cache that fails,
        or is left alone after failing, answers 0.0 (fail open): SendFleet's own throttle still
        holds (its 429s are retried), and an outage of the cache must not stop email.
        """
        window = self.seconds + self.margin
        if isinstance(caches[self.cache_alias], DummyCache):
            return _process_logs.try_acquire(self._base_key, self.requests, window)

        def take_slot(cache: BaseCache, seconds: float) -> float:
            if isinstance(cache, RedisCache):
                return self._try_on_redis(cache, window, seconds)
            return self._try_with_cache_lock(cache, window, seconds)

        return shared_cache.call(self.cache_alias, take_slot, 0.0, timeout)

    def _try_on_redis(self, cache: RedisCache, window: float, timeout: float) -> float:
        key = cache.make_key(self._base_key)
        args = (self.requests, round(window * 1_000_000), uuid.uuid4().hex)
        microseconds = evaluate(cache, SLIDING_LOG_SCRIPT, key, args, timeout)
        return int(microseconds) / 1_000_000

    def _try_with_cache_lock(self, cache: BaseCache, window: float, timeout: float) -> float:
        lock_key = self._base_key + ":lock"
        token = uuid.uuid4().hex
        # A dead holder's lock expires after LOCK_TIMEOUT; the caller may not wait that long.
        give_up = time.monotonic() + min(2 * LOCK_TIMEOUT, timeout)
        while not cache.add(lock_key, token, LOCK_TIMEOUT):
            if time.monotonic() > give_up:
                raise TimeoutError(f"could not take the lock {lock_key!r} in {timeout:.2f} s")
            time.sleep(random.uniform(0.001, 0.005))
        try:
            log: list[float] = cache.get(self._base_key) or []
            # Wall-clock time: the only clock other processes (and machines) share.
            wait = admit(log, time.time(), self.requests, window)
            if wait == 0.0:
                cache.set(self._base_key, log, math.ceil(window) + 1)
            return wait
        finally:
            # No compare-and-delete in the cache API: this small race is bounded by the expiry.
            if cache.get(lock_key) == token:
                cache.delete(lock_key)


def admit(log: list[float], now: float, limit: int, window: float) -> float:
    """The sliding log, on a sorted list of admission times changed in place.

    Drops the entries that left the window, then admits ``now`` if fewer than ``limit`` are
    left: returns 0.0, else the seconds until enough of the oldest have left.
    """
    del log[: bisect.bisect_right(log, now - window)]
    if len(log) < limit:
        bisect.insort(log, now)
        return 0.0
    return max(log[len(log) - limit] + window - now, 1e-6)


class _ProcessLogs:
    """Logs in this process's memory, for caches that store nothing (DummyCache)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._logs: dict[str, list[float]] = {}

    def try_acquire(self, key: str, limit: int, window: float) -> float:
        with self._lock:
            return admit(self._logs.setdefault(key, []), time.monotonic(), limit, window)


_process_logs = _ProcessLogs()
