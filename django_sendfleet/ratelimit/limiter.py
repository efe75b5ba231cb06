"""SENDFLEET["RATE_LIMIT"], held by every process and machine that sends with one API key:
one sliding log per key in a Django cache, shared by transactional and bulk sends.

Why: docs/internals.md#ratelimit-one-log-for-every-sender
"""

from __future__ import annotations

import math
import random
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.core.cache import caches
from django.core.cache.backends.base import BaseCache
from django.core.cache.backends.dummy import DummyCache
from django.core.cache.backends.locmem import LocMemCache
from django.core.cache.backends.redis import RedisCache  # imports redis only when used

from ..exceptions import SendFleetRateLimitWait
from . import shared_cache
from .bounded_redis import evaluate
from .slot_schedule import (
    ANSWERED_SCRIPT,
    HIGH,
    LOW,
    SLOT_SCRIPT,
    Rate,
    SlotState,
    admit,
    answered,
    decide,
)

if TYPE_CHECKING:
    from ..conf import SendFleetSettings

__all__ = [
    "HIGH",
    "LOW",
    "SendFleetRateLimitWait",
    "SlidingWindowLimiter",
    "Slot",
    "admit",
    "is_shared",
]

KEY_NAMESPACE = "sendfleet:ratelimit"
#: Seconds added to the window, so a request that reaches SendFleet a little later than the
#: one it replaces in the window is not throttled: 1% of the window, within these bounds.
MARGIN_FRACTION = 0.01
MIN_MARGIN = 0.02
MAX_MARGIN = 0.5
#: Seconds ``answered`` gives the cache: the send is done, it must not wait long for this.
ANSWERED_TIMEOUT = 0.25
#: Seconds the generic backend's lock lives if its holder dies. Whole seconds: memcached and
#: RedisCache truncate timeouts to integers (and 0 would mean "expire now").
LOCK_TIMEOUT = 5


def default_margin(seconds: float) -> float:
    return min(max(seconds * MARGIN_FRACTION, MIN_MARGIN), MAX_MARGIN)


def is_shared(cache_alias: str) -> bool:
    """Whether other processes see this cache: False for LocMemCache and DummyCache."""
    return not isinstance(caches[cache_alias], LocMemCache | DummyCache)


def forget_windows() -> None:
    """Empty the windows of every limiter made in this process, in their caches and in memory:
    for test isolation (the sandbox's helpers), so that one test's sends never make the next
    test's wait."""
    for alias, base_key in list(_windows_made):
        if alias not in settings.CACHES:  # a cache a test configured, gone with its settings
            continue
        for key in (base_key, base_key + ":lock", *(base_key + s for s in _STATE_SUFFIXES)):
            shared_cache.delete(alias, key)
    _process_states.clear()


def _check_priority(priority: str) -> None:
    if priority not in (HIGH, LOW):
        raise ValueError(f"priority must be {HIGH!r} or {LOW!r}, not {priority!r}")


@dataclass(frozen=True)
class Slot:
    """A slot ``take`` got: ``waited`` seconds for it; ``entry`` names its admission in the
    shared log (its member on Redis, its time elsewhere), None when the cache failed open."""

    waited: float
    entry: str | float | None = None


class SlidingWindowLimiter:
    """No more than ``requests`` acquisitions in any ``seconds`` (plus a small margin); bulk
    (``priority="low"``) paced and yielding to transactional sends (``"high"``).

    ``waiter_grace``: seconds past the slot it was told of that a waiting high-priority sender
    is still waited for (one slot interval by default). ``clock``: seconds, instead of the
    Redis server's clock or this machine's; every sender of the key must share it (tests).
    """

    def __init__(
        self,
        *,
        requests: int,
        seconds: float,
        cache_alias: str = "default",
        key_id: str,
        margin: float | None = None,
        waiter_grace: float | None = None,
        clock: Callable[[], float] | None = None,
    ) -> None:
        if requests < 1 or seconds <= 0:
            raise ValueError("A rate limit needs at least 1 request per a positive duration.")
        self.requests = requests
        self.seconds = float(seconds)
        self.margin = default_margin(self.seconds) if margin is None else margin
        window = self.seconds + self.margin
        self.rate = Rate(
            requests, window, window / requests if waiter_grace is None else waiter_grace
        )
        self.cache_alias = cache_alias
        self.clock = clock
        # Only the part before the dot: the secret after it must never reach a cache key.
        self.key_id = key_id.split(".", 1)[0]
        self._base_key = f"{KEY_NAMESPACE}:{self.key_id}:{requests}/{self.seconds:g}s"
        _windows_made.add((cache_alias, self._base_key))
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
    def interval(self) -> float:
        """Seconds between two bulk slots at the most: the window (with its margin) / N."""
        return self.rate.interval

    @property
    def cache_key(self) -> str:
        """The key the log is stored under, as the cache's key function makes it."""
        return caches[self.cache_alias].make_key(self._base_key)

    def acquire(self, max_wait: float, priority: str = HIGH) -> float:
        """Take a slot, sleeping for one if needed; return the seconds waited.

        Raises ``SendFleetRateLimitWait`` without sleeping when the slot is further away than
        what is left of ``max_wait``. Each call to the cache is bounded by what is left too.
        A high-priority sender that sleeps for its slot is known to be waiting, so bulk senders
        leave it the next one. ``take`` does the same and lets the slot be ``answered``.
        """
        return self.take(max_wait, priority).waited

    def take(self, max_wait: float, priority: str = HIGH) -> Slot:
        """``acquire``, returning the ``Slot``: pass it to ``answered`` once the request sent
        in it has been answered (or failed), so that the window counts it from then."""
        _check_priority(priority)
        waiter = uuid.uuid4().hex if priority == HIGH else None
        started = time.monotonic()
        while True:
            left = max_wait - (time.monotonic() - started)
            wait, entry = self._try(left, priority, waiter, left)
            waited = time.monotonic() - started
            if wait == 0.0:
                return Slot(waited, entry)
            if waited + wait > max_wait:
                raise SendFleetRateLimitWait(
                    f"The rate limit of {self.requests} requests per {self.seconds:g} s "
                    f"needs a wait of {wait:.2f} s, more than the {max(max_wait - waited, 0):.2f}"
                    " s this send may still wait (MAX_RETRY_WAIT)",
                    retry_after=wait,
                )
            # Another sender may take the slot first; then the loop waits for the next one.
            time.sleep(wait)

    def try_acquire(
        self,
        timeout: float | None = None,
        *,
        priority: str = HIGH,
        waiter: str | None = None,
        will_wait: float | None = None,
    ) -> float:
        """Take a slot if one is free for ``priority``: 0.0 when taken, else the seconds until
        it may ask again.

        ``waiter`` (high priority): an id of the sender's own, if it will ask again after the
        answered wait, when that is at most ``will_wait`` seconds (any, if None); bulk then
        leaves it the next slot. ``acquire`` passes one.

        The cache gets ``timeout`` seconds to answer (``shared_cache.call``'s default if None):
        on Redis a bound on the call, elsewhere on the wait for the lock. A cache that fails,
        or is left alone after failing, answers 0.0 (fail open): SendFleet's own throttle still
        holds (its 429s are retried), and an outage of the cache must not stop email.
        """
        _check_priority(priority)
        bound = math.inf if will_wait is None else will_wait
        return self._try(timeout, priority, waiter, bound)[0]

    def answered(self, slot: Slot) -> None:
        """The request sent in ``slot`` has been answered, or failed: its entry in the log
        moves to now, the latest SendFleet can have counted it at, so the slot that replaces
        it in the window is not given before SendFleet's window lets it go, however late the
        request arrived. Fails open (and bounded) like ``try_acquire``."""
        entry = slot.entry
        if entry is None:
            return
        if isinstance(caches[self.cache_alias], DummyCache):
            _process_states.answered(self._base_key, entry, self._now(monotonic=True))
            return

        def move(cache: BaseCache, seconds: float) -> None:
            if isinstance(cache, RedisCache):
                key = cache.make_key(self._base_key)
                now = "" if self.clock is None else _microseconds(self.clock())
                args = (entry, _microseconds(self.rate.window), now)
                evaluate(cache, ANSWERED_SCRIPT, key, args, seconds)
            elif isinstance(entry, float):
                self._with_cache_lock(
                    cache, seconds, lambda state, now: answered(state.log, entry, now)
                )

        shared_cache.call(self.cache_alias, move, None, ANSWERED_TIMEOUT)

    def _now(self, *, monotonic: bool = False) -> float:
        if self.clock is not None:
            return self.clock()
        return time.monotonic() if monotonic else time.time()

    def _try(
        self, timeout: float | None, priority: str, waiter: str | None, will_wait: float
    ) -> tuple[float, str | float | None]:
        """``try_acquire``, with the admission's entry (None unless admitted, or failed open)."""
        request = (priority, waiter, will_wait)
        if isinstance(caches[self.cache_alias], DummyCache):
            now = self._now(monotonic=True)
            wait = _process_states.decide(self._base_key, now, self.rate, *request)
            return wait, (now if wait == 0.0 else None)

        def take_slot(cache: BaseCache, seconds: float) -> tuple[float, str | float | None]:
            if isinstance(cache, RedisCache):
                return self._try_on_redis(cache, seconds, *request)
            wait, now = self._with_cache_lock(
                cache, seconds, lambda state, now: decide(state, now, self.rate, *request)
            )
            return wait or 0.0, (now if wait == 0.0 else None)

        failed_open: tuple[float, str | float | None] = (0.0, None)
        return shared_cache.call(self.cache_alias, take_slot, failed_open, timeout)

    def _try_on_redis(
        self,
        cache: RedisCache,
        timeout: float,
        priority: str,
        waiter: str | None,
        will_wait: float,
    ) -> tuple[float, str | None]:
        key = cache.make_key(self._base_key)
        more_keys = [cache.make_key(self._base_key + suffix) for suffix in _STATE_SUFFIXES]
        rate = self.rate
        member = uuid.uuid4().hex
        args = (
            rate.limit,
            _microseconds(rate.window),
            _microseconds(rate.interval),
            _microseconds(rate.grace),
            member,
            priority,
            waiter or "",
            -1 if math.isinf(will_wait) else _microseconds(will_wait),
            "" if self.clock is None else _microseconds(self.clock()),
        )
        wait = int(evaluate(cache, SLOT_SCRIPT, key, args, timeout, more_keys)) / 1_000_000
        # The script stores the admission as "<priority>:<member>".
        return wait, (f"{priority}:{member}" if wait == 0.0 else None)

    def _with_cache_lock(
        self, cache: BaseCache, timeout: float, change: Callable[[SlotState, float], float | None]
    ) -> tuple[float | None, float]:
        """``change(state, now)`` on the stored state, under the lock; the log and the next
        bulk slot are written back unless it answers a wait (> 0). Returns (its answer, now)."""
        lock_key = self._base_key + ":lock"
        token = uuid.uuid4().hex
        # A dead holder's lock expires after LOCK_TIMEOUT; the caller may not wait that long.
        give_up = time.monotonic() + min(2 * LOCK_TIMEOUT, timeout)
        while not cache.add(lock_key, token, LOCK_TIMEOUT):
            if time.monotonic() > give_up:
                raise TimeoutError(f"could not take the lock {lock_key!r} in {timeout:.2f} s")
            time.sleep(random.uniform(0.001, 0.005))
        try:
            log_key, next_key, waiting_key = self._base_key, *self._state_keys()
            stored = cache.get_many([log_key, next_key, waiting_key])
            state = SlotState(
                stored.get(log_key) or [],
                stored.get(next_key) or 0.0,
                stored.get(waiting_key) or {},
            )
            # Wall-clock time: the only clock other processes (and machines) share.
            now = self._now()
            answer = change(state, now)
            lasts = math.ceil(self.rate.window) + 1
            changed: dict[str, Any] = {waiting_key: state.waiting}
            if not answer:
                changed |= {log_key: state.log, next_key: state.next_low}
            # The log's key keeps today's layout (a sorted list), which older versions read.
            cache.set_many(changed, max(lasts, math.ceil(_latest(state.waiting) - now) + 1))
            return answer, now
        finally:
            # No compare-and-delete in the cache API: this small race is bounded by the expiry.
            if cache.get(lock_key) == token:
                cache.delete(lock_key)

    def _state_keys(self) -> list[str]:
        return [self._base_key + suffix for suffix in _STATE_SUFFIXES]


#: Beside the log: the next bulk slot's earliest time, and the waiting high-priority senders.
_STATE_SUFFIXES = (":next-low", ":waiting")


def _microseconds(seconds: float) -> int:
    return round(seconds * 1_000_000)


def _latest(waiting: dict[str, float]) -> float:
    return max(waiting.values(), default=0.0)


class _ProcessStates:
    """Shared state in this process's memory, for caches that store nothing (DummyCache)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._states: dict[str, SlotState] = {}

    def decide(
        self,
        key: str,
        now: float,
        rate: Rate,
        priority: str,
        waiter: str | None,
        will_wait: float,
    ) -> float:
        with self._lock:
            state = self._states.setdefault(key, SlotState())
            return decide(state, now, rate, priority, waiter, will_wait)

    def answered(self, key: str, admitted: float | str, now: float) -> None:
        with self._lock:
            state = self._states.get(key)
            if state is not None and isinstance(admitted, float):
                answered(state.log, admitted, now)

    def clear(self) -> None:
        with self._lock:
            self._states.clear()


_process_states = _ProcessStates()
#: (cache alias, key) of each limiter made in this process: what forget_windows() empties.
_windows_made: set[tuple[str, str]] = set()
