"""The limiter's priorities across real processes on a real Redis, and from the send path
(issue 20). The rules themselves, with a fake clock on every cache: test_priority_limiter.py.
"""

from __future__ import annotations

import itertools
import multiprocessing
import threading
import time
import traceback
import uuid
from collections.abc import Callable
from typing import Any

import pytest

from django_sendfleet.ratelimit import SlidingWindowLimiter
from django_sendfleet.ratelimit.limiter import HIGH, LOW
from tests.support.caches import redis_cache

# Real processes on a real Redis, with the real clock: two bulk drains and one transactional
# sender share one key. The slot times are Redis's own (server time, microseconds).

REAL = {"requests": 5, "seconds": 1.0}
#: A loaded machine may stall the transactional sender between waking and asking: it is waited
#: for that long past its slot, so the check below is about the rules, not about speed.
REAL_GRACE = 30.0


def _real_limiter(key_id: str) -> SlidingWindowLimiter:
    return SlidingWindowLimiter(key_id=key_id, waiter_grace=REAL_GRACE, **REAL)


def _drain_bulk(start: Any, key_id: str, count: int) -> None:
    limiter = _real_limiter(key_id)
    start()
    for _ in range(count):
        limiter.acquire(max_wait=60, priority=LOW)


def _send_transactional(
    start: Any, key_id: str, count: int, redis_url: str
) -> list[tuple[int, float]]:
    """Each send asks as ``acquire`` does; returns per send when it was first refused (on
    Redis's clock, as the slots), or 0.0 when a slot was free at once."""
    import redis

    client = redis.Redis.from_url(redis_url)
    now = _redis_clock(client)
    limiter = _real_limiter(key_id)
    start()
    refused: list[tuple[int, float]] = []
    for number in range(count):
        time.sleep(0.2 + 0.07 * number)  # into the drain, at different phases
        _until_the_window_is_full(client, limiter, now)
        waiter, first_refusal = uuid.uuid4().hex, None
        while (wait := limiter.try_acquire(priority=HIGH, waiter=waiter, will_wait=60)) > 0:
            if first_refusal is None:
                first_refusal = now()
            time.sleep(wait)
        refused.append((number, first_refusal or 0.0))
    return refused


def _redis_clock(client: Any) -> Callable[[], float]:
    """Now on Redis's clock, which times the slots: this machine's, shifted by the difference
    (none on one machine; another host's may differ, and .ci/faketime.sh fakes this one's).
    The difference is taken from the quickest of several round trips, against its midpoint:
    read once, after the answer, it came out early by however long a loaded machine took to
    run this process again, and every refusal then looked earlier than it was."""
    samples = []
    for _ in range(20):
        before = time.time()
        seconds, microseconds = client.time()
        after = time.time()
        samples.append((after - before, seconds + microseconds / 1e6 - (before + after) / 2))
    offset = min(samples)[1]
    return lambda: time.time() + offset


def _until_the_window_is_full(
    client: Any, limiter: SlidingWindowLimiter, now: Callable[[], float]
) -> None:
    """Wait (a few windows at most) until the drain has filled the window, so the send that
    follows most likely finds no free slot, however late a loaded machine wakes the drains."""
    deadline = time.monotonic() + 5 * limiter.rate.window
    while time.monotonic() < deadline:
        since = (now() - limiter.rate.window) * 1e6
        if client.zcount(limiter.cache_key, f"({since}", "+inf") >= limiter.requests:
            return
        time.sleep(0.002)


def _child(work: Any, barrier: Any, results: Any, redis_url: str, *args: Any) -> None:
    try:
        import django
        from django.conf import settings

        settings.configure(CACHES={"default": redis_cache(redis_url)})
        django.setup()
        results.put(("ok", work.__name__, work(lambda: barrier.wait(timeout=60), *args)))
    except BaseException:
        results.put(("error", work.__name__, traceback.format_exc()))


def test_processes_sharing_one_key_leave_transactional_sends_the_next_slot(
    settings: Any, redis_url: str
) -> None:
    import redis

    settings.CACHES = {"default": redis_cache(redis_url)}
    key_id = "p" + uuid.uuid4().hex[:7]
    limiter = _real_limiter(key_id)
    client = redis.Redis.from_url(redis_url)

    admitted: dict[bytes, float] = {}  # every admission stays a window: polling sees each
    done = threading.Event()

    def watch() -> None:
        while not done.is_set():
            admitted.update(client.zrange(limiter.cache_key, 0, -1, withscores=True))
            time.sleep(0.02)

    bulk_each, transactional = 15, 8
    work = [
        (_drain_bulk, (bulk_each,)),
        (_drain_bulk, (bulk_each,)),
        (_send_transactional, (transactional, redis_url)),
    ]
    context = multiprocessing.get_context("spawn")
    barrier, results = context.Barrier(len(work)), context.Queue()
    processes = [
        context.Process(
            target=_child,
            args=(target, barrier, results, redis_url, key_id, *more),
        )
        for target, more in work
    ]
    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        for process in processes:
            process.start()
        outcomes = [results.get(timeout=120) for _ in processes]
    finally:
        time.sleep(0.1)
        done.set()
        watcher.join()
        for process in processes:
            process.join(timeout=10)
            if process.is_alive():
                process.kill()
    errors = [detail for status, _, detail in outcomes if status == "error"]
    assert not errors, errors[0]
    (refusals,) = [value for _, name, value in outcomes if name == "_send_transactional"]

    entries = sorted(
        (score / 1e6, member.decode().split(":")[0]) for member, score in admitted.items()
    )
    times = [when for when, _ in entries]
    low = [when for when, kind in entries if kind == LOW]
    high = [when for when, kind in entries if kind == HIGH]
    assert (len(low), len(high)) == (2 * bulk_each, transactional)
    window = limiter.rate.window
    for earlier, later in zip(times, times[REAL["requests"] :], strict=False):
        assert later - earlier >= window - 1e-6  # never more than 5 in any window
    gaps = [later - earlier for earlier, later in itertools.pairwise(low)]
    assert min(gaps) >= limiter.interval - 1e-6  # two drains together, still paced

    # From a transactional send's first refusal to its slot, bulk took a slot only when one
    # more stayed free for it: the next free slot was the transactional send's.
    for (number, refused_at), admitted_at in zip(refusals, high, strict=True):
        if not refused_at:
            continue  # a slot was free when it asked
        assert refused_at < admitted_at, number
        for when in low:
            if refused_at < when < admitted_at:
                in_window = sum(when - window < other <= when for other in times)
                assert in_window <= REAL["requests"] - 1, (number, when)
    assert any(refused_at for _, refused_at in refusals), "the drain never saturated the key"


# The send path tells the limiter each message's priority.


@pytest.mark.django_db
def test_each_send_asks_the_limiter_with_its_messages_priority(
    settings: Any, redis_url: str, sendfleet_settings: Any, sandbox: Any
) -> None:
    import redis

    from django_sendfleet.conf import SendFleetSettings
    from tests.support.messages import message

    settings.CACHES = {"default": redis_cache(redis_url)}
    # A key of this test's own: its window on the shared Redis holds only this test's sends.
    sendfleet_settings.update(API_KEY=sandbox.add_key(), RATE_LIMIT="60/min")
    limiter = SlidingWindowLimiter.for_settings(SendFleetSettings(), "default")
    assert limiter is not None

    bulk, transactional = message(to=["ann@example.com"]), message(to=["bob@example.com"])
    bulk.priority = LOW
    assert bulk.send() == transactional.send() == 1

    members = redis.Redis.from_url(redis_url).zrange(limiter.cache_key, 0, -1)
    assert sorted(member.decode().split(":")[0] for member in members) == [HIGH, LOW]
