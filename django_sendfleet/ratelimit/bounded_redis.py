"""Commands to the Redis server behind Django's ``RedisCache``, each call ending in time.

redis-py's own calls wait as long as the cache's socket timeouts allow: forever by default with
redis-py 5, 5 s retried with redis-py 8. A stalled Redis (a frozen process, a host paused or
swapping, a dead network path) then stalls whoever calls it. The calls made here are bounded by
the caller's timeout instead, from connecting to the answer, and never retried.

They go over connections of their own, made by the cache's connection class with the cache's
connection options (address, database, password, TLS), kept for reuse while healthy. A call
that fails or runs out of time closes its connection, so a late answer is never read as the
next call's.
"""

from __future__ import annotations

import hashlib
import os
import threading
import time
import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from django.core.cache.backends.redis import RedisCache
    from redis.connection import ConnectionPool


class _Connection(Protocol):
    """What is used of a redis-py connection (whose methods are not annotated)."""

    socket_timeout: float | None
    socket_connect_timeout: float | None

    def send_command(self, *args: Any) -> None: ...
    def can_read(self, timeout: float = 0) -> bool: ...
    def read_response(self) -> Any: ...
    def disconnect(self) -> None: ...


@dataclass(frozen=True)
class Script:
    """A Lua script, run with EVALSHA (EVAL the first time a server sees it)."""

    text: str
    sha: str = field(init=False)

    def __post_init__(self) -> None:
        digest = hashlib.sha1(self.text.encode(), usedforsecurity=False).hexdigest()
        object.__setattr__(self, "sha", digest)


def run(cache: RedisCache, key: str, timeout: float, *command: Any) -> Any:
    """Send ``command`` (about ``key``, a key as the cache made it) to the server holding it;
    raise ``redis.TimeoutError`` (or another ``redis.RedisError``) unless it answers within
    ``timeout`` seconds."""
    return _connections_for(cache, key).call(timeout, lambda call: call(*command))


def evaluate(
    cache: RedisCache,
    script: Script,
    key: str,
    args: Sequence[Any],
    timeout: float,
    more_keys: Sequence[str] = (),
) -> Any:
    """Run ``script`` with ``key`` as KEYS[1] (and ``more_keys`` after it, on the same
    server) and ``args`` as ARGV, as ``run`` does."""
    from redis.exceptions import NoScriptError

    keys = (key, *more_keys)

    def evaluate_with(call: Callable[..., Any]) -> Any:
        try:
            return call("EVALSHA", script.sha, len(keys), *keys, *args)
        except NoScriptError:  # first use on this server, or after SCRIPT FLUSH
            return call("EVAL", script.text, len(keys), *keys, *args)

    return _connections_for(cache, key).call(timeout, evaluate_with)


class _Connections:
    """Idle connections to one server, for one process (a forked child makes its own)."""

    def __init__(self, make: Callable[[], _Connection]) -> None:
        self._make = make
        self._lock = threading.Lock()
        self._idle: list[_Connection] = []
        self._pid = os.getpid()

    def call(self, timeout: float, talk: Callable[[Callable[..., Any]], Any]) -> Any:
        """``talk(call)`` on one connection, every ``call(*command)`` within the deadline."""
        deadline = time.monotonic() + timeout
        connection = self._take()
        try:
            answer = talk(lambda *command: _call(connection, deadline, *command))
        except BaseException:
            connection.disconnect()
            raise
        with self._lock:
            if self._pid == os.getpid():
                self._idle.append(connection)
        return answer

    def _take(self) -> _Connection:
        with self._lock:
            if self._pid != os.getpid():  # forked: the parent's sockets are not ours
                self._idle, self._pid = [], os.getpid()
            if self._idle:
                return self._idle.pop()
        return self._make()


def _call(connection: _Connection, deadline: float, *command: Any) -> Any:
    import redis

    left = deadline - time.monotonic()
    if left <= 0:
        raise redis.TimeoutError("no time left to call Redis")
    # Used when the connection (re)connects: connecting and the handshake's answers.
    connection.socket_connect_timeout = left
    connection.socket_timeout = left
    connection.send_command(*command)
    # Waits for the answer's first bytes at most until the deadline, whatever timeout the
    # socket has. Redis writes an answer this small at once, so the rest is there too.
    if not connection.can_read(timeout=max(deadline - time.monotonic(), 0.001)):
        raise redis.TimeoutError(f"Redis did not answer within {left:.2f} s")
    return connection.read_response()


def _connections_for(cache: RedisCache, key: str) -> _Connections:
    # Django has no public way to the redis-py client; _cache is its RedisCacheClient.
    pool = cache._cache.get_client(key, write=True).connection_pool
    with _lock:
        connections = _connections.get(pool)
        if connections is None:
            connections = _connections[pool] = _Connections(_connection_factory(pool))
        return connections


def _connection_factory(pool: ConnectionPool) -> Callable[[], _Connection]:
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    options = {
        **pool.connection_kwargs,
        # One try within the caller's timeout: redis-py 8 retries timeouts 3 times by default.
        "retry": Retry(NoBackoff(), 0),
        "retry_on_timeout": False,
        "health_check_interval": 0,
    }
    connection_class = pool.connection_class
    return lambda: connection_class(**options)


_lock = threading.Lock()
# Per redis-py pool of the cache (Django makes one per cache object, so per thread): dropped
# with it.
_connections: weakref.WeakKeyDictionary[ConnectionPool, _Connections] = weakref.WeakKeyDictionary()
