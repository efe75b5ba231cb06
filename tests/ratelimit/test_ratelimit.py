"""The shared rate limiter, against a real Redis, Django's other caches and the sandbox.

Redis: ``REDIS_URL`` when set (CI starts a server), else a redis-server this session starts on
a free loopback port; the Redis tests skip only when neither is there. Windows are small
(5 requests per 0.5 s) so the whole file runs in seconds.
"""

from __future__ import annotations

import logging
import math
import multiprocessing
import random
import signal
import subprocess
import threading
import time
import traceback
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import requests

from django_sendfleet.exceptions import SendFleetError
from django_sendfleet.ratelimit import (
    SendFleetRateLimitWait,
    SlidingWindowLimiter,
    is_shared,
    shared_cache,
)
from django_sendfleet.ratelimit.limiter import admit
from django_sendfleet.sandbox import SANDBOX_API_KEY, VERIFIED_DOMAIN, Sandbox
from django_sendfleet.sandbox.throttling import SlidingLogThrottle
from tests.support.caches import redis_cache
from tests.support.network import free_port

REQUESTS, SECONDS = 5, 0.5

CLOCK_SLACK = 0.002  # seconds: Redis's clock against this process's, and rounding
# The default margin (20 ms at this window) is sized for real windows. These windows are 120
# times shorter than SendFleet's, but the time from taking a slot to the sandbox's clock reading
# the request is not: a busy 2-core machine stalls a process for up to ~0.1 s. Tests through the
# sandbox check that processes share one log, so they take a margin no stall reaches: a loaded
# 2-core machine was seen to stall a process for more than 0.25 s between its slot and its
# request reaching the sandbox, which the sandbox then counted in the next window.
SANDBOX_MARGIN = 1.0


def _limiter(alias: str, **kwargs: Any) -> SlidingWindowLimiter:
    options: dict[str, Any] = {"requests": REQUESTS, "seconds": SECONDS, "key_id": _new_key_id()}
    return SlidingWindowLimiter(cache_alias=alias, **(options | kwargs))


def _new_key_id() -> str:
    """A fresh key prefix per test, so tests never share a window (CI's Redis is shared)."""
    return "t" + uuid.uuid4().hex[:7]


# Semantics, on every kind of cache.


@dataclass
class Timed:
    """What an action returned, between two readings of the local clock."""

    value: Any
    start: float
    end: float


def _timed(action: Callable[[], Any]) -> Timed:
    start = time.monotonic()
    value = action()
    return Timed(value, start, time.monotonic())


def _assert_wait_for(wait: Timed, admitted: Timed, window: float) -> None:
    """``wait.value`` is the time until what was admitted during ``admitted`` leaves the window.

    Bounded by local clock readings only, so a stalled test process cannot make it flaky.
    """
    earliest = admitted.start + window - wait.end
    latest = admitted.end + window - wait.start
    assert earliest - CLOCK_SLACK <= wait.value <= latest + CLOCK_SLACK


def test_a_burst_goes_at_once_and_the_next_waits_a_window(cache_alias: str) -> None:
    limiter = _limiter(cache_alias)
    window = SECONDS + limiter.margin
    burst = _timed(lambda: [limiter.try_acquire() for _ in range(REQUESTS)])
    assert burst.value == [0.0] * REQUESTS

    wait = _timed(limiter.try_acquire)
    _assert_wait_for(wait, burst, window)

    waited = _timed(lambda: limiter.acquire(max_wait=2))
    assert waited.end >= burst.start + window - CLOCK_SLACK  # not before the first one left
    assert waited.value <= waited.end - waited.start


def test_the_window_slides_instead_of_resetting(cache_alias: str) -> None:
    # No margin, so the waits are exactly the server's.
    limiter = _limiter(cache_alias, requests=4, seconds=0.6, margin=0)
    first = _timed(lambda: [limiter.try_acquire() for _ in range(2)])  # t = 0
    time.sleep(0.3)
    second = _timed(lambda: [limiter.try_acquire() for _ in range(2)])  # t = 0.3
    assert first.value == second.value == [0.0, 0.0]
    wait = _timed(limiter.try_acquire)
    _assert_wait_for(wait, first, 0.6)  # until the first two leave, at t = 0.6
    time.sleep(wait.value)

    # t = 0.6: a fixed window would start afresh with 4; the sliding log frees only the 2 that
    # left (a few microseconds apart, hence acquire), and the next slot is when the t = 0.3 pair
    # leaves.
    limiter.acquire(max_wait=0.05)
    limiter.acquire(max_wait=0.05)
    _assert_wait_for(_timed(limiter.try_acquire), second, 0.6)


def test_a_wait_longer_than_max_wait_raises_at_once(cache_alias: str) -> None:
    limiter = _limiter(cache_alias)
    # Free slots need no wait, so max_wait=0 is enough.
    fill = _timed(lambda: [limiter.acquire(max_wait=0) for _ in range(REQUESTS)])

    started = time.monotonic()
    with pytest.raises(SendFleetRateLimitWait) as raised:
        limiter.acquire(max_wait=0.2)
    refused = Timed(raised.value.retry_after, started, time.monotonic())
    assert refused.end - refused.start < SECONDS / 2  # reported, not slept through
    _assert_wait_for(refused, fill, SECONDS + limiter.margin)
    error = raised.value
    assert isinstance(error, SendFleetError)
    assert error.error_code == "rate_limit_wait"
    assert error.retryable is True
    assert "MAX_RETRY_WAIT" in str(error)


def test_limits_of_different_keys_and_rates_are_separate(cache_alias: str) -> None:
    key_id = _new_key_id()
    one = _limiter(cache_alias, key_id=key_id, requests=1)
    other_rate = _limiter(cache_alias, key_id=key_id, requests=2)
    other_key = _limiter(cache_alias, requests=1)
    assert one.try_acquire() == 0.0
    assert one.try_acquire() > 0
    assert other_rate.try_acquire() == 0.0
    assert other_key.try_acquire() == 0.0


def test_the_log_matches_the_servers_throttle() -> None:
    """``admit`` against the sandbox's throttle (DRF's semantics) on one random schedule."""
    rng = random.Random(7)
    throttle = SlidingLogThrottle(REQUESTS, SECONDS)
    log: list[float] = []
    now = 0.0
    for _ in range(500):
        now += rng.choice([0.0, 0.01, 0.05, 0.1, 0.25, SECONDS])
        expected_wait = throttle.wait("k", now)
        wait = admit(log, now, REQUESTS, SECONDS)
        assert (wait == 0.0) == throttle.allow("k", now)
        if wait:
            assert wait == pytest.approx(expected_wait, abs=1e-5)
    # An entry exactly one window old has left, as on the server.
    assert admit([0.0] * REQUESTS, SECONDS, REQUESTS, SECONDS) == 0.0


# Configuration and keys.


def test_for_settings_follows_rate_limit(settings: Any) -> None:
    settings.SENDFLEET = {"API_KEY": SANDBOX_API_KEY, "RATE_LIMIT": "10/2s"}
    from django_sendfleet.conf import SendFleetSettings

    limiter = SlidingWindowLimiter.for_settings(SendFleetSettings(), "default")
    assert limiter is not None
    assert (limiter.requests, limiter.seconds, limiter.key_id) == (10, 2.0, "sbxlive1")
    settings.SENDFLEET = {"API_KEY": SANDBOX_API_KEY, "RATE_LIMIT": None}
    assert SlidingWindowLimiter.for_settings(SendFleetSettings(), "default") is None


def test_the_cache_key_never_holds_the_secret(settings: Any, redis_url: str) -> None:
    import redis

    from django_sendfleet.conf import SendFleetSettings

    prefix, secret = _new_key_id(), uuid.uuid4().hex
    settings.CACHES = {"default": redis_cache(redis_url)}
    settings.SENDFLEET = {"API_KEY": f"{prefix}.{secret}", "RATE_LIMIT": "5/s"}
    limiters = [
        SlidingWindowLimiter.for_settings(SendFleetSettings(), "default"),
        # A caller passing the whole key by mistake still stores only the prefix.
        SlidingWindowLimiter(requests=5, seconds=1, key_id=f"{prefix}.{secret}"),
    ]
    for limiter in limiters:
        assert limiter is not None
        assert limiter.try_acquire() == 0.0
        assert prefix in limiter.cache_key and secret not in limiter.cache_key
        assert secret not in repr(limiter)
    stored = [key.decode() for key in redis.Redis.from_url(redis_url).scan_iter(f"*{prefix}*")]
    assert stored and all(secret not in key for key in stored)


def test_per_process_caches_are_not_shared(settings: Any, redis_url: str, tmp_path: Any) -> None:
    settings.CACHES = {
        "default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"},
        "dummy": {"BACKEND": "django.core.cache.backends.dummy.DummyCache"},
        "redis": redis_cache(redis_url),
        "file": {
            "BACKEND": "django.core.cache.backends.filebased.FileBasedCache",
            "LOCATION": str(tmp_path),
        },
    }
    assert not is_shared("default")
    assert not is_shared("dummy")
    assert is_shared("redis")
    assert is_shared("file")


def test_a_cache_outage_lets_sends_through(settings: Any, caplog: Any) -> None:
    pytest.importorskip("redis")
    settings.CACHES = {"default": redis_cache(f"redis://127.0.0.1:{free_port()}/0")}
    limiter = _limiter("default", requests=1)
    with caplog.at_level(logging.WARNING, logger="django_sendfleet"):
        assert limiter.try_acquire() == 0.0
        assert limiter.try_acquire() == 0.0
    assert "sending without waiting" in caplog.text


# Concurrency: processes on Redis, threads on the generic cache and in-process logs, all
# sending through a sandbox throttled exactly like the limiter.


def _payload(number: int) -> dict[str, Any]:
    return {
        "to": f"user{number}@example.net",
        "from_email": f"shop@{VERIFIED_DOMAIN}",
        "subject": "Rate limit test",
        "message": "Hello",
    }


def _send_through_limiter(start: Callable[[], Any], url: str, count: int) -> int:
    """Wait for the start, then send ``count`` messages, each after taking a slot."""
    # The whole key goes in as key_id on purpose: only its prefix may be used.
    limiter = SlidingWindowLimiter(
        requests=REQUESTS, seconds=SECONDS, key_id=SANDBOX_API_KEY, margin=SANDBOX_MARGIN
    )
    with requests.Session() as session:
        session.headers["X-API-Key"] = SANDBOX_API_KEY
        # Open the connection first (GET is answered 405 and not counted), as a running
        # worker's is: a fresh process's first request takes ~0.1 s, a fifth of this window.
        session.get(url, timeout=5)
        start()
        for number in range(count):
            limiter.acquire(max_wait=30)
            session.post(url, json=_payload(number), timeout=5)
    return count


def _in_child(
    work: Callable[..., Any], barrier: Any, results: Any, redis_url: str, *args: Any
) -> None:
    """A spawned process: configure Django with Redis as the default cache, then work."""
    try:
        import django
        from django.conf import settings

        settings.configure(CACHES={"default": redis_cache(redis_url)})
        django.setup()
        results.put(("ok", work(lambda: barrier.wait(timeout=60), *args)))
    except BaseException:
        results.put(("error", traceback.format_exc()))


def _run_in_processes(count: int, work: Callable[..., Any], *args: Any) -> list[Any]:
    context = multiprocessing.get_context("spawn")
    barrier, results = context.Barrier(count), context.Queue()
    processes = [
        context.Process(target=_in_child, args=(work, barrier, results, *args))
        for _ in range(count)
    ]
    for process in processes:
        process.start()
    try:
        outcomes = [results.get(timeout=60) for _ in processes]
    finally:
        for process in processes:
            process.join(timeout=10)
            if process.is_alive():
                process.kill()
    errors = [detail for status, detail in outcomes if status == "error"]
    assert not errors, errors[0]
    return [value for _, value in outcomes]


def _assert_never_throttled(sandbox: Sandbox, sends: int) -> None:
    statuses = [request.status for request in sandbox.requests if request.payload]
    assert statuses.count(429) == 0
    assert statuses == [200] * sends


def test_processes_sharing_redis_keep_to_the_limit(settings: Any, redis_url: str) -> None:
    import redis

    settings.CACHES = {"default": redis_cache(redis_url)}
    limiter = SlidingWindowLimiter(
        requests=REQUESTS, seconds=SECONDS, key_id=SANDBOX_API_KEY, margin=SANDBOX_MARGIN
    )
    client = redis.Redis.from_url(redis_url)
    client.delete(limiter.cache_key)  # CI's Redis outlives this session

    # Every admission stays in the sorted set for a whole window: polling it well inside a
    # window sees each one, with the Redis server time it was admitted at.
    admitted: dict[bytes, float] = {}
    done = threading.Event()

    def watch() -> None:
        while not done.is_set():
            admitted.update(client.zrange(limiter.cache_key, 0, -1, withscores=True))
            time.sleep(0.02)

    processes, each = 3, 6
    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        with Sandbox(rate_limit=(REQUESTS, SECONDS)) as sandbox:
            _run_in_processes(processes, _send_through_limiter, redis_url, sandbox.url, each)
            _assert_never_throttled(sandbox, processes * each)
    finally:
        done.set()
        watcher.join()

    times = sorted(score / 1e6 for score in admitted.values())
    assert len(times) == processes * each
    gaps = [later - earlier for earlier, later in zip(times, times[REQUESTS:], strict=False)]
    assert min(gaps) >= SECONDS + limiter.margin - 1e-6  # never more than REQUESTS per window
    tightest = (math.ceil(len(times) / REQUESTS) - 1) * (SECONDS + limiter.margin)
    # Paced, not over-throttled: within a slack for processes a loaded machine starves (the
    # allowance's utilisation is measured, side by side, by bench/bench_ratelimit.py).
    assert times[-1] - times[0] <= tightest * 1.5


_PER_PROCESS_CACHES = {
    "locmem": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "LOCATION": "threads"},
    "dummy": {"BACKEND": "django.core.cache.backends.dummy.DummyCache"},
}


@pytest.mark.parametrize("backend", sorted(_PER_PROCESS_CACHES))
def test_threads_sharing_a_per_process_cache_keep_to_the_limit(settings: Any, backend: str) -> None:
    settings.CACHES = {"default": _PER_PROCESS_CACHES[backend]}
    threads_count, each = 3, 5
    start = threading.Barrier(threads_count)
    failures: list[BaseException] = []

    def send(url: str) -> None:
        try:
            _send_through_limiter(lambda: start.wait(timeout=30), url, each)
        except BaseException as error:
            failures.append(error)

    with Sandbox(rate_limit=(REQUESTS, SECONDS)) as sandbox:
        threads = [threading.Thread(target=send, args=(sandbox.url,)) for _ in range(threads_count)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=30)
        assert not failures, failures[0]
        _assert_never_throttled(sandbox, threads_count * each)


# A stalled Redis: the server process frozen with SIGSTOP, so connections are accepted by the
# kernel and commands sent, but nothing is ever answered (as with a Redis swapping, paused by
# its host, or behind a dead network path). Each call the limiter makes is bounded by what is
# left of the send's wait budget, and after a failure this process leaves the cache alone for
# a while: a stalled cache costs one bounded wait, not one per recipient.


class FreezableRedis:
    """A redis-server of this test's own, which the test can freeze and thaw."""

    def __init__(self, directory: Any) -> None:
        import shutil

        server = shutil.which("redis-server")
        if server is None:
            pytest.skip("redis-server is not on PATH")
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        command = [server, "--port", str(self.port), "--bind", "127.0.0.1"]
        command += ["--save", "", "--appendonly", "no", "--dir", str(directory)]
        self.process = subprocess.Popen(
            command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        self.frozen = False

    def wait_until_ready(self) -> None:
        import redis

        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                if redis.Redis.from_url(self.url, socket_timeout=1).ping():
                    return
            except redis.RedisError:
                time.sleep(0.05)
        pytest.fail("redis-server did not start")

    def freeze(self) -> None:
        self.process.send_signal(signal.SIGSTOP)
        self.frozen = True

    def thaw(self) -> None:
        self.process.send_signal(signal.SIGCONT)
        self.frozen = False

    def stop(self) -> None:
        self.thaw()  # a stopped process cannot act on SIGTERM
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)


@pytest.fixture
def freezable_redis(settings: Any, tmp_path: Any) -> Iterator[FreezableRedis]:
    """A fresh redis-server as the default cache, thawed and stopped after the test; and no
    cache failure remembered from another test."""
    pytest.importorskip("redis")
    server = FreezableRedis(tmp_path)
    try:
        server.wait_until_ready()
        settings.CACHES = {"default": redis_cache(server.url)}
        shared_cache.forget_failures()
        yield server
    finally:
        server.stop()
        shared_cache.forget_failures()


def _in_thread(action: Callable[[], Any], timeout: float) -> Timed:
    """Run ``action`` in a thread: a stall fails the test instead of hanging it (redis-py 5
    waits for a frozen server forever)."""
    outcome: list[Any] = []

    def run() -> None:
        try:
            outcome.append(action())
        except BaseException as error:
            outcome.append(error)

    thread = threading.Thread(target=run, daemon=True)
    start = time.monotonic()
    thread.start()
    thread.join(timeout)
    assert not thread.is_alive(), f"still waiting after {timeout} s"
    (value,) = outcome
    if isinstance(value, BaseException):
        raise value
    return Timed(value, start, time.monotonic())


def _cache_warnings(caplog: Any) -> list[logging.LogRecord]:
    return [
        record
        for record in caplog.records
        if record.name == "django_sendfleet"
        and record.levelno >= logging.WARNING
        and "rate limiter" in record.getMessage()
    ]


#: MAX_RETRY_WAIT in these tests; the stalled sends must end within a few times it.
BUDGET = 2.0


def test_a_frozen_redis_costs_one_bounded_wait_per_process(
    freezable_redis: FreezableRedis, sendfleet_settings: Any, sandbox: Any, caplog: Any
) -> None:
    from django.core.mail import send_mail

    sendfleet_settings.update(RATE_LIMIT="60/min", MAX_RETRY_WAIT=BUDGET)
    # No database: the sends run in a thread, outside the test's transaction.
    sendfleet_settings.update(SEND_LOG=False, CHECK_SUPPRESSIONS=False)
    recipients = [f"user{number}@example.net" for number in range(4)]
    send_mail("Hi", "Body", "shop@example.com", [recipients[0]])  # the limiter works on Redis
    freezable_redis.freeze()
    with caplog.at_level(logging.INFO, logger="django_sendfleet"):
        sent = _in_thread(lambda: send_mail("Hi", "Body", "shop@example.com", recipients), 30)
        again = _in_thread(lambda: send_mail("Hi", "Body", "shop@example.com", recipients), 30)
    assert sent.value == again.value == 1
    # One bounded wait for the first call to the frozen server, then none: the cache is left
    # alone. (Before: 5 s per recipient with redis-py 8, forever with redis-py 5.)
    assert sent.end - sent.start < 4 * BUDGET
    assert again.end - again.start < BUDGET
    assert [r.status for r in sandbox.requests if r.payload].count(200) == 9  # fail open
    (warning,) = _cache_warnings(caplog)
    assert "TimeoutError" in warning.getMessage()


@pytest.mark.parametrize("priority", ["high", "low"])
@pytest.mark.parametrize("budget", [0.3, 2.0])
def test_a_limiter_call_waits_no_longer_than_its_budget(
    freezable_redis: FreezableRedis, budget: float, priority: str
) -> None:
    limiter = _limiter("default")
    assert limiter.try_acquire() == 0.0
    freezable_redis.freeze()
    waited = _in_thread(lambda: limiter.acquire(max_wait=budget, priority=priority), 30)
    assert waited.value <= waited.end - waited.start
    assert budget * 0.9 <= waited.end - waited.start < budget + 2  # the budget, not 5 s or more


def test_the_limiter_uses_redis_again_once_it_answers(
    freezable_redis: FreezableRedis, caplog: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    import redis

    monkeypatch.setattr(shared_cache, "SKIP_CACHE_AFTER_FAILURE", 1.5)
    limiter = _limiter("default", requests=1, seconds=10)  # on Redis, a second call must wait

    def calls_wait() -> bool:
        """Two calls in a row: the second waits on Redis, not when the cache is skipped."""
        waits = _in_thread(lambda: [limiter.try_acquire(timeout=0.2) for _ in range(2)], 30)
        return waits.value[1] > 0

    freezable_redis.freeze()
    with caplog.at_level(logging.INFO, logger="django_sendfleet"):
        assert not calls_wait()  # the first call fails (in 0.25 s), the second skips the cache
        time.sleep(1.7)
        assert not calls_wait()  # tried again: still frozen
        freezable_redis.thaw()
        assert not calls_wait()  # skipped for a while after the last failure
        time.sleep(1.7)
        assert calls_wait()  # back on Redis
    assert redis.Redis.from_url(freezable_redis.url).zcard(limiter.cache_key) >= 1
    assert len(_cache_warnings(caplog)) == 1  # one warning for the whole outage
    assert any("answers again" in record.getMessage() for record in caplog.records)
