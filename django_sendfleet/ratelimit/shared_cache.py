"""Calls to the cache that every sending process shares (``RATE_LIMIT_CACHE``), bounded in
time and failing open.

The rate limiter keeps its log there, and the key guard the API key refusals. A cache that
fails or stalls must neither stop nor stall email, so each call made through ``call``:

- is given a timeout (at least ``MIN_CALL_TIMEOUT``): on Django's ``RedisCache`` a bound on
  the whole call (``bounded_redis``), whatever the cache's own socket timeouts;
- fails open: a cache that fails (down, or no answer in time) gives the caller its default;
- after a failure, is not made at all for ``SKIP_CACHE_AFTER_FAILURE`` seconds in this
  process, so an outage costs one bounded wait and one warning per process, not one per send.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

from django.conf import settings
from django.core.cache import caches
from django.core.cache.backends.base import BaseCache
from django.core.cache.backends.redis import RedisCache  # imports redis only when used

from . import bounded_redis

logger = logging.getLogger("django_sendfleet")

#: Seconds a call may take when the caller gives no timeout, and the least it is given however
#: little the caller has left, so a busy but healthy cache has time to answer.
DEFAULT_CALL_TIMEOUT = 1.0
MIN_CALL_TIMEOUT = 0.25
#: Seconds this process leaves a cache alone after it failed.
SKIP_CACHE_AFTER_FAILURE = 30.0

T = TypeVar("T")


def call(
    alias: str,
    action: Callable[[BaseCache, float], T],
    default: T,
    timeout: float | None = None,
) -> T:
    """``action(cache, timeout)``; ``default`` when the cache fails or is being left alone."""
    timeout = max(DEFAULT_CALL_TIMEOUT if timeout is None else timeout, MIN_CALL_TIMEOUT)
    health = _health(alias)
    if health.skipped():
        return default
    try:
        result = action(caches[alias], timeout)
    except Exception as error:
        health.failed(error)
        return default
    health.answered()
    return result


def get(alias: str, key: str, timeout: float | None = None) -> Any:
    """``cache.get(key)``, bounded; None when the cache fails."""
    return call(alias, lambda cache, seconds: _get(cache, key, seconds), None, timeout)


def store(alias: str, key: str, value: Any, ttl: int, timeout: float | None = None) -> bool:
    """``cache.set(key, value, ttl)``, bounded; False when the cache fails."""
    return call(
        alias, lambda cache, seconds: _store(cache, key, value, ttl, seconds), False, timeout
    )


def delete(alias: str, key: str, timeout: float | None = None) -> bool:
    """``cache.delete(key)``, bounded; False when the cache fails."""
    return call(alias, lambda cache, seconds: _delete(cache, key, seconds), False, timeout)


def forget_failures() -> None:
    """Use every cache again at once, as if none had failed (for tests)."""
    with _health_lock:
        _healths.clear()


def _get(cache: BaseCache, key: str, timeout: float) -> Any:
    if not isinstance(cache, RedisCache):
        return cache.get(key)
    redis_key = cache.make_and_validate_key(key)
    value = bounded_redis.run(cache, redis_key, timeout, "GET", redis_key)
    return None if value is None else _serializer(cache).loads(value)


def _store(cache: BaseCache, key: str, value: Any, ttl: int, timeout: float) -> bool:
    if not isinstance(cache, RedisCache):
        cache.set(key, value, ttl)
        return True
    redis_key = cache.make_and_validate_key(key)
    stored = _serializer(cache).dumps(value)
    bounded_redis.run(cache, redis_key, timeout, "SET", redis_key, stored, "EX", ttl)
    return True


def _delete(cache: BaseCache, key: str, timeout: float) -> bool:
    if not isinstance(cache, RedisCache):
        cache.delete(key)
        return True
    redis_key = cache.make_and_validate_key(key)
    bounded_redis.run(cache, redis_key, timeout, "DEL", redis_key)
    return True


def _serializer(cache: RedisCache) -> Any:
    """How the cache stores values (its OPTIONS may choose), so they read as its own: Django's
    RedisCacheClient has no public way to it, nor do django-stubs."""
    client: Any = cache._cache
    return client._serializer


class _Health:
    """Whether this process currently leaves one cache alone, after it failed."""

    def __init__(self, alias: str) -> None:
        self.alias = alias
        self._lock = threading.Lock()
        self._skip_until: float | None = None  # set while the cache is failing

    def skipped(self) -> bool:
        with self._lock:
            return self._skip_until is not None and time.monotonic() < self._skip_until

    def failed(self, error: Exception) -> None:
        with self._lock:
            first = self._skip_until is None
            self._skip_until = time.monotonic() + SKIP_CACHE_AFTER_FAILURE
        # One warning per outage; a retry that fails again is only noted.
        logger.log(
            logging.WARNING if first else logging.INFO,
            "SendFleet shared cache %r failed (%s: %s); sending without waiting for it "
            "(rate limiter, API key refusals) for the next %g s.",
            self.alias,
            type(error).__name__,
            error,
            SKIP_CACHE_AFTER_FAILURE,
        )

    def answered(self) -> None:
        with self._lock:
            recovered, self._skip_until = self._skip_until is not None, None
        if recovered:
            logger.info("SendFleet shared cache %r answers again.", self.alias)


_health_lock = threading.Lock()
_healths: dict[tuple[str, str], _Health] = {}


def _health(alias: str) -> _Health:
    """One per cache alias and location, for the whole process (Django's cache objects are
    per thread)."""
    key = (alias, repr(settings.CACHES[alias].get("LOCATION")))
    with _health_lock:
        if key not in _healths:
            _healths[key] = _Health(alias)
        return _healths[key]
