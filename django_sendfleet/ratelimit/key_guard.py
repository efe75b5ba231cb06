"""After SendFleet refuses the API key, stop using it for a while, in every process.

SendFleet blocks a server's IP for a while after 10 consecutive 401 answers within 60 s. A
batch already stops at its first 401 (``batch.py``), but ten web requests each sending one
email with a revoked key would still get the IP blocked, and then no key works from it. So a
401 is remembered, per key, for ``KEY_REFUSED_PAUSE`` seconds: in the rate limiter's cache,
shared by every process that has a shared cache, and in this process's memory in any case.
While it lasts, sends with that key are not attempted: ``EmailBackend`` raises
``SendFleetKeyRefused`` saying why and until when, and the queued worker holds its rows
(``pending`` until the pause ends), so nothing is lost. A fixed key is another key: it is not
paused. ``manage.py sendfleet_requeue --key-fixed`` lifts the pause at once.

The key itself is never stored: the cache entry is named by a hash of it.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from ..exceptions import SendFleetKeyRefused
from . import limiter as ratelimit
from . import shared_cache

if TYPE_CHECKING:
    from ..conf import SendFleetSettings

logger = logging.getLogger("django_sendfleet")

KEY_NAMESPACE = "sendfleet:key-refused"

# This process's own memory of refusals: used whatever the cache (LocMemCache and DummyCache
# are per process or store nothing), and when the cache fails.
_refused_here: dict[str, datetime] = {}
_lock = threading.Lock()


def cache_key_for(api_key: str) -> str:
    """The name of a key's refusal, here and in the cache: a hash, never the key."""
    return f"{KEY_NAMESPACE}:{hashlib.sha256(api_key.encode()).hexdigest()[:24]}"


def forget_refusals(api_keys: Iterable[str] = (), cache_aliases: Iterable[str] = ()) -> None:
    """Lift every pause this process knows of, and those of ``api_keys`` (another process may
    have recorded them), here and in ``cache_aliases``: for test isolation (the sandbox's
    helpers), so that one test's 401 does not refuse the next test's sends."""
    with _lock:
        names = set(_refused_here)
        _refused_here.clear()
    names.update(cache_key_for(key) for key in api_keys)
    for alias in cache_aliases:
        for name in names:
            shared_cache.delete(alias, name)


class KeyGuard:
    """The refusal state of one API key."""

    def __init__(self, api_key: str, cache_alias: str, pause_seconds: float) -> None:
        self.cache_key = cache_key_for(api_key)
        self.cache_alias = cache_alias
        self.pause_seconds = pause_seconds

    @classmethod
    def for_settings(cls, settings: SendFleetSettings) -> KeyGuard:
        return cls(settings.api_key.value, settings.rate_limit_cache, settings.key_refused_pause)

    def __repr__(self) -> str:
        return f"<KeyGuard {self.cache_key}>"

    def refused_until(self) -> datetime | None:
        """When the pause after a 401 ends, if one is running."""
        now = datetime.now(UTC)
        with _lock:
            until = _refused_here.get(self.cache_key)
        # A cache other processes do not see (LocMemCache, DummyCache) holds nothing that this
        # process's own memory does not: it is read only when shared.
        if (until is None or until <= now) and ratelimit.is_shared(self.cache_alias):
            until = self._from_cache()
        return until if until is not None and until > now else None

    def check(self) -> None:
        """Raise ``SendFleetKeyRefused`` while the pause lasts."""
        until = self.refused_until()
        if until is not None:
            raise SendFleetKeyRefused(
                "SendFleet refused this API key (HTTP 401); it is not used again until "
                f"{until:%Y-%m-%d %H:%M:%S} UTC, because 10 refusals within 60 s get this "
                "server's IP blocked by SendFleet. Fix SENDFLEET['API_KEY'] (a new key is "
                "used at once), or run 'manage.py sendfleet_requeue --key-fixed' once the key "
                "works again.",
                refused_until=until,
            )

    def record_refusal(self) -> datetime:
        """A 401 for this key: pause it, here and for every process sharing the cache."""
        until = datetime.now(UTC) + timedelta(seconds=self.pause_seconds)
        with _lock:
            _refused_here[self.cache_key] = until
        # Bounded, and a cache outage must not hide the refusal from this process.
        ttl = max(1, round(self.pause_seconds))
        if not shared_cache.store(self.cache_alias, self.cache_key, until.timestamp(), ttl):
            logger.warning(
                "SendFleet could not share an API key refusal through cache %r",
                self.cache_alias,
            )
        logger.error(
            "SendFleet refused the API key (401): not using it until %s UTC",
            f"{until:%H:%M:%S}",
        )
        return until

    def clear(self) -> None:
        with _lock:
            _refused_here.pop(self.cache_key, None)
        if not shared_cache.delete(self.cache_alias, self.cache_key):
            logger.warning("SendFleet could not clear an API key refusal in the cache")

    def _from_cache(self) -> datetime | None:
        # Bounded; fails open (None): SendFleet's own 401 still answers, and is recorded again.
        stamp = shared_cache.get(self.cache_alias, self.cache_key)
        if not isinstance(stamp, int | float):
            return None
        until = datetime.fromtimestamp(stamp, UTC)
        with _lock:
            _refused_here[self.cache_key] = until
        return until
