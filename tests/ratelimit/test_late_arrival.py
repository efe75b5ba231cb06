"""A request that reaches SendFleet late after its slot costs the next send no 429 (issue 20).

SendFleet counts a request from its arrival; the limiter gave its slot a moment before. The
margin added to the window covers that moment while it is short and steady, but on a loaded
machine, or across a pause (a garbage collection, a process swapped out), the arrival comes
later than the margin allows, and the send that replaces it in the window a window later was
refused: bench_priority.py saw 3-4 x 429 a drain on a loaded 2-core machine. The send path now
tells the limiter when each request was answered (``SlidingWindowLimiter.answered``), and the
window counts the request from then: never before its arrival.

Here the real send path (``EmailBackend``) and the in-process sandbox share one clock, the
sandbox's, which the test moves instead of sleeping: the first request is held in flight for
0.2 s, ten times the margin. The rules themselves, with a fake clock on every cache and any
delays: test_priority_limiter.py.
"""

from __future__ import annotations

import uuid
from types import SimpleNamespace
from typing import Any

import pytest

from django_sendfleet.api.client import SendFleetClient
from django_sendfleet.backends import EmailBackend
from django_sendfleet.ratelimit import SlidingWindowLimiter
from django_sendfleet.ratelimit import limiter as ratelimit
from tests.support.messages import message

REQUESTS, SECONDS, MARGIN = 2, 1.0, 0.02
IN_FLIGHT = 0.2  # the first request's time from its slot to its arrival at SendFleet


@pytest.fixture(params=["redis", "locmem"])
def limiter_cache(request: pytest.FixtureRequest, settings: Any) -> str:
    """The limiter's state on Redis (its Lua scripts) and under the generic cache lock."""
    if request.param == "redis":
        location = request.getfixturevalue("redis_url")
        backend = {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": location}
    else:
        backend = {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}
    settings.CACHES = {**settings.CACHES, "limiter": backend}
    return "limiter"


@pytest.mark.django_db
def test_a_request_that_arrives_late_costs_the_next_send_no_429(
    sandbox: Any, sendfleet_settings: Any, monkeypatch: Any, limiter_cache: str
) -> None:
    sandbox.set_rate_limit(REQUESTS, SECONDS)
    clock = sandbox.clock
    # The limiter's sleeps move the shared clock forward instead of waiting.
    fake_time = SimpleNamespace(monotonic=clock.monotonic, time=clock.time, sleep=clock.advance)
    monkeypatch.setattr(ratelimit, "time", fake_time)
    in_flight = iter([IN_FLIGHT])
    attempt = SendFleetClient.attempt

    def late_attempt(self: SendFleetClient, payload: dict[str, Any], **kwargs: Any) -> Any:
        clock.advance(next(in_flight, 0.0))  # the request reaches SendFleet this much later
        return attempt(self, payload, **kwargs)

    monkeypatch.setattr(SendFleetClient, "attempt", late_attempt)

    connection = EmailBackend()
    connection.open()
    # The limiter the backend would build, on the sandbox's clock (Redis is given its time).
    connection.limiter = SlidingWindowLimiter(
        requests=REQUESTS,
        seconds=SECONDS,
        margin=MARGIN,
        cache_alias=limiter_cache,
        key_id="late" + uuid.uuid4().hex[:8],
        clock=clock.time,
    )
    try:
        sent = connection.send_messages([message(to=[f"r{n}@example.com"]) for n in range(3)])
    finally:
        connection.close()

    assert sent == 3
    # The third send replaced the first in the window: it went once SendFleet's window (from
    # the first's late arrival) had let the first go, and was accepted at its first attempt.
    assert [request.status for request in sandbox.requests] == [200, 200, 200]
    first, _, third = (request.time for request in sandbox.requests)
    assert third - first >= SECONDS
