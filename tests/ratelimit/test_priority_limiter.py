"""Priorities on the shared rate limit: bulk paced, transactional sends first (issue 20).

The tests drive the limiter with a fake clock (``SlidingWindowLimiter(clock=...)``), which every
kind of cache honours, Redis included (the script is given the time instead of reading the
server's): a small discrete-event simulation of senders asking for slots, whose recorded slot
times are checked against the configured window and interval. Real processes on a real Redis
with the real clock, and the send path: test_priority_processes.py.
"""

from __future__ import annotations

import heapq
import itertools
import math
import uuid
from dataclasses import dataclass, field
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from django_sendfleet.ratelimit import SendFleetRateLimitWait, SlidingWindowLimiter
from django_sendfleet.ratelimit.limiter import HIGH, LOW, Slot
from django_sendfleet.ratelimit.slot_schedule import Rate, SlotState, decide
from django_sendfleet.sandbox.throttling import SlidingLogThrottle
from tests.support.caches import redis_cache
from tests.support.examples import examples

LIMIT, SECONDS, MARGIN = 5, 1.0, 0.02
WINDOW = SECONDS + MARGIN
INTERVAL = WINDOW / LIMIT  # 0.204 s: exact in microseconds, as Redis counts
START = 1_000.0  # the fake clock's first reading, in seconds


class FakeClock:
    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> float:
        return self.now


def _limiter(alias: str, clock: FakeClock | None = None, **kwargs: Any) -> SlidingWindowLimiter:
    """A fresh key per call: tests never share state (CI's Redis is shared)."""
    options: dict[str, Any] = {"requests": LIMIT, "seconds": SECONDS, "margin": MARGIN}
    key_id = "p" + uuid.uuid4().hex[:7]
    return SlidingWindowLimiter(cache_alias=alias, key_id=key_id, clock=clock, **(options | kwargs))


# A simulation: senders ask for a slot at fake times; a refused one asks again after the wait
# it was told (a high-priority one, ``late`` seconds later still, as a loaded process wakes).


@dataclass
class Slots:
    """What a simulation recorded."""

    low: list[float] = field(default_factory=list)  # bulk admissions
    high: list[float] = field(default_factory=list)  # transactional admissions
    #: Per transactional send: (when it first asked, when it was admitted).
    high_waits: list[tuple[float, float]] = field(default_factory=list)

    @property
    def all(self) -> list[float]:
        return sorted(self.low + self.high)


def simulate(
    limiter: SlidingWindowLimiter,
    clock: FakeClock,
    *,
    bulk_senders: int,
    high_arrivals: list[float],
    until: float,
    late: float = 0.0,
) -> Slots:
    """Bulk senders that always want another slot, and one transactional send per arrival
    (seconds after START), until ``until`` seconds after START. At equal times bulk asks
    first: the order least kind to transactional sends."""
    slots = Slots()
    # (time, 0 for bulk / 1 for high, sequence, sender, first asked)
    events: list[tuple[float, int, int, str, float]] = []
    for number in range(bulk_senders):
        events.append((START, 0, number, f"bulk{number}", START))
    for number, arrival in enumerate(high_arrivals):
        events.append((START + arrival, 1, bulk_senders + number, f"high{number}", START + arrival))
    heapq.heapify(events)
    sequence = len(events)
    while events and events[0][0] <= START + until:
        now, kind, _, sender, first = heapq.heappop(events)
        clock.now = now
        if kind == 0:
            wait = limiter.try_acquire(priority=LOW)
            if wait == 0.0:
                slots.low.append(now)
        else:
            wait = limiter.try_acquire(priority=HIGH, waiter=sender)
            if wait == 0.0:
                slots.high.append(now)
                slots.high_waits.append((first, now))
                continue  # this send is done
            wait += late
        sequence += 1
        heapq.heappush(events, (now + wait, kind, sequence, sender, first))
    return slots


#: Redis counts whole microseconds: a wait may round either way by one.
TOLERANCE = 2e-6


def assert_never_over_the_limit(times: list[float], limit: int = LIMIT) -> None:
    """No more than ``limit`` admissions in any window (an entry a window old has left)."""
    times = sorted(times)
    for earlier, later in zip(times, times[limit:], strict=False):
        assert later - earlier >= WINDOW - TOLERANCE, (earlier, later)


def assert_paced(low: list[float]) -> None:
    """Bulk admissions at least one slot interval apart: no burst."""
    gaps = [later - earlier for earlier, later in itertools.pairwise(low)]
    assert min(gaps, default=INTERVAL) >= INTERVAL - TOLERANCE


def test_bulk_alone_is_paced_one_slot_per_interval(cache_alias: str) -> None:
    clock = FakeClock()
    limiter = _limiter(cache_alias, clock)
    slots = simulate(limiter, clock, bulk_senders=3, high_arrivals=[], until=10 * WINDOW)
    assert_paced(slots.low)
    assert_never_over_the_limit(slots.low)
    # And it uses them all (a sliding log alone sends LIMIT at once, then nothing for a
    # window): one admission every interval from the first to the last.
    assert len(slots.low) == math.floor(10 * WINDOW / INTERVAL + TOLERANCE) + 1


def test_a_transactional_send_waits_at_most_one_interval_while_bulk_drains(
    cache_alias: str,
) -> None:
    clock = FakeClock()
    limiter = _limiter(cache_alias, clock)
    # Arrivals more than a window apart, at every phase against bulk's slots; each wakes up
    # late by a third of an interval (within the grace it is waited for).
    arrivals = [WINDOW * (2 + 2.3 * number) + 0.037 * number for number in range(12)]
    late = INTERVAL / 3
    slots = simulate(
        limiter, clock, bulk_senders=3, high_arrivals=arrivals, until=32 * WINDOW, late=late
    )
    assert len(slots.high_waits) == len(arrivals)
    for asked, admitted in slots.high_waits:
        assert admitted - asked <= INTERVAL + late + TOLERANCE
    assert_never_over_the_limit(slots.all)
    assert_paced(slots.low)


@pytest.mark.parametrize("high_every", [None, 2.5, 6.0])
def test_bulk_takes_the_slots_transactional_mail_leaves(
    cache_alias: str, high_every: float | None
) -> None:
    """No starvation, and no fixed reserve: bulk uses >= 90 % of what is left to it."""
    clock = FakeClock()
    limiter = _limiter(cache_alias, clock)
    span = 20 * WINDOW
    arrivals = [] if high_every is None else _every(high_every * INTERVAL, span)
    slots = simulate(limiter, clock, bulk_senders=2, high_arrivals=arrivals, until=span)
    capacity = math.floor(span / INTERVAL + TOLERANCE) + 1  # the most paced slots in the span
    left_to_bulk = capacity - len(slots.high)
    assert len(slots.high) == len(arrivals)
    assert len(slots.low) >= 0.9 * left_to_bulk
    assert slots.low[-1] >= START + span - WINDOW  # still flowing at the end
    assert_never_over_the_limit(slots.all)


def _every(step: float, span: float) -> list[float]:
    return [step * number for number in range(1, int(span / step))]


def _fill(limiter: SlidingWindowLimiter, clock: FakeClock) -> None:
    """An idle key's burst goes at once, whatever bulk's pace; a millisecond apart, so the
    window frees one slot at a time."""
    for _ in range(LIMIT):
        assert limiter.try_acquire(priority=HIGH) == 0.0
        clock.now += 0.001


def test_a_waiting_sender_that_never_comes_back_holds_bulk_for_its_grace_only(
    cache_alias: str,
) -> None:
    clock = FakeClock()
    limiter = _limiter(cache_alias, clock)
    _fill(limiter, clock)
    wait = limiter.try_acquire(priority=HIGH, waiter="gone")  # then dies, never asking again
    clock.now += wait  # a slot is free; bulk leaves it to the waiting sender
    assert limiter.try_acquire(priority=LOW) > 0
    clock.now += limiter.rate.grace  # its word has lapsed
    assert limiter.try_acquire(priority=LOW) == 0.0


def test_a_sender_that_will_not_wait_so_long_holds_nothing(cache_alias: str) -> None:
    clock = FakeClock()
    limiter = _limiter(cache_alias, clock)
    _fill(limiter, clock)
    wait = limiter.try_acquire(priority=HIGH, waiter="hasty", will_wait=0.01)  # it will raise
    assert wait > 0.01
    clock.now += wait
    assert limiter.try_acquire(priority=LOW) == 0.0


def test_an_unknown_priority_is_refused(cache_alias: str) -> None:
    limiter = _limiter(cache_alias)
    with pytest.raises(ValueError, match="priority"):
        limiter.try_acquire(priority="urgent")
    with pytest.raises(ValueError, match="priority"):
        limiter.acquire(1.0, priority="bulk")


# Any arrivals: the limit is never exceeded and bulk never bursts, on every cache; and the
# Redis script decides exactly as the Python rules do.

_requests = st.lists(
    st.tuples(
        st.integers(min_value=0, max_value=400_000),  # microseconds since the last request
        st.sampled_from([HIGH, LOW]),
        st.sampled_from([None, "w1", "w2", "w3"]),  # the high sender's waiter id
        st.sampled_from([None, 50_000, 2_000_000]),  # how long it will wait (microseconds)
    ),
    max_size=80,
)


@settings(
    max_examples=examples(40),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(requests=_requests)
def test_any_arrivals_keep_the_limit_and_pace_bulk(cache_alias: str, requests: list[Any]) -> None:
    clock = FakeClock()
    limiter = _limiter(cache_alias, clock)
    low: list[float] = []
    high: list[float] = []
    for gap, priority, waiter, will_wait in requests:
        clock.now += gap / 1e6
        bound = None if will_wait is None else will_wait / 1e6
        wait = limiter.try_acquire(priority=priority, waiter=waiter, will_wait=bound)
        if wait == 0.0:
            (low if priority == LOW else high).append(clock.now)
        else:
            assert wait > 0
    assert_never_over_the_limit(low + high)
    assert_paced(low)


@settings(
    max_examples=examples(60),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(requests=_requests)
def test_the_redis_script_decides_as_the_python_rules(
    settings: Any, redis_url: str, requests: list[Any]
) -> None:
    settings.CACHES = {"default": redis_cache(redis_url)}
    clock = FakeClock()
    limiter = _limiter("default", clock)
    # The rules in microseconds, the unit the script counts in.
    window_us = round(WINDOW * 1e6)
    rate = Rate(LIMIT, window_us, window_us / LIMIT)
    state, now_us = SlotState(), round(START * 1e6)
    for gap, priority, waiter, will_wait in requests:
        now_us += gap
        clock.now = now_us / 1e6
        bound = math.inf if will_wait is None else will_wait
        expected = decide(
            state, now_us, rate, priority, waiter if priority == HIGH else None, bound
        )
        seconds = None if will_wait is None else will_wait / 1e6
        waiter = waiter if priority == HIGH else None
        answer = limiter.try_acquire(priority=priority, waiter=waiter, will_wait=seconds)
        assert answer == pytest.approx(expected / 1e6, abs=1e-9)


# A request's entry moves to its answer (``take``, then ``answered``): SendFleet counts it from
# its arrival, which may come later after its slot than the margin covers (a loaded machine, a
# pause in the sender or in the API's front end).


def _take_now(limiter: SlidingWindowLimiter, priority: str = HIGH) -> Slot:
    """A slot at the fake clock's time, or SendFleetRateLimitWait: ``take`` with no wait."""
    return limiter.take(0.0, priority=priority)


def test_an_answered_slot_is_counted_from_its_answer(cache_alias: str) -> None:
    clock = FakeClock()
    limiter = _limiter(cache_alias, clock)
    first = _take_now(limiter)
    clock.now += 0.3  # its request arrived late; answered now
    limiter.answered(first)
    for _ in range(LIMIT - 1):
        limiter.answered(_take_now(limiter))  # answered at once
        clock.now += 0.001
    # Counted from its slot, the first would have left the window here, and a slot would be
    # given that SendFleet refuses: its window still holds the late arrival.
    clock.now = START + WINDOW + 0.01
    assert limiter.try_acquire() == pytest.approx(0.3 - 0.01, abs=TOLERANCE)
    clock.now = START + 0.3 + WINDOW
    assert limiter.try_acquire() == 0.0


def test_a_request_answered_after_its_window_is_counted_again_from_its_answer(
    cache_alias: str,
) -> None:
    clock = FakeClock()
    limiter = _limiter(cache_alias, clock)
    slow = _take_now(limiter)
    clock.now += 2 * WINDOW  # in flight longer than a window: its entry has left the log
    for _ in range(LIMIT - 1):
        _take_now(limiter)
        clock.now += 0.001
    assert limiter.try_acquire(priority=LOW) == 0.0  # its slot taken by bulk meanwhile
    limiter.answered(slow)
    with pytest.raises(SendFleetRateLimitWait):  # it may have arrived just now: counted
        _take_now(limiter)


def test_a_slot_answered_early_stays_where_it_is(cache_alias: str) -> None:
    """``answered`` only ever moves an entry later: an answer timed before the slot (a clock
    read elsewhere) is ignored."""
    clock = FakeClock()
    limiter = _limiter(cache_alias, clock)
    slots = []
    for _ in range(LIMIT):
        slots.append(_take_now(limiter))
        clock.now += 0.001
    clock.now = START - 1.0
    for slot in slots:
        limiter.answered(slot)
    clock.now = START + WINDOW + 0.0005
    assert limiter.try_acquire() == 0.0


_late_sends = st.lists(
    st.tuples(
        st.integers(min_value=0, max_value=300_000),  # microseconds since the last one asked
        st.sampled_from([HIGH, LOW]),
        st.integers(min_value=0, max_value=600_000),  # from its slot to its arrival
        st.integers(min_value=0, max_value=100_000),  # from its arrival to its answer
    ),
    max_size=60,
)


@settings(
    max_examples=examples(30),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(sends=_late_sends)
def test_sendfleets_throttle_accepts_every_request_however_late_it_arrives(
    cache_alias: str, sends: list[Any]
) -> None:
    """The sandbox's throttle (SendFleet's rule, on the same clock) never refuses a request
    sent in a slot, whatever the delay between its slot and its arrival (below the margin or
    far above it), so long as it is answered within a window of its slot."""
    clock = FakeClock()
    limiter = _limiter(cache_alias, clock)
    throttle = SlidingLogThrottle(LIMIT, SECONDS)
    # (time, order, kind, send number, slot): kinds "ask", "arrive", "answer"
    events: list[tuple[float, int, str, int, Slot | None]] = []
    order = itertools.count()
    asked = START
    for number, (gap, _, _, _) in enumerate(sends):
        asked += gap / 1e6
        heapq.heappush(events, (asked, next(order), "ask", number, None))
    refused = []
    while events:
        now, _, kind, number, slot = heapq.heappop(events)
        clock.now = now
        _, priority, late, answer_after = sends[number]
        if kind == "ask":
            try:
                slot = _take_now(limiter, priority)
            except SendFleetRateLimitWait as wait:
                heapq.heappush(events, (now + wait.retry_after, next(order), kind, number, None))
                continue
            heapq.heappush(events, (now + late / 1e6, next(order), "arrive", number, slot))
        elif kind == "arrive":
            if not throttle.allow("key", now):
                refused.append(number)
            heapq.heappush(events, (now + answer_after / 1e6, next(order), "answer", number, slot))
        else:
            assert slot is not None
            limiter.answered(slot)
    assert refused == []
