"""Transactional sends during a newsletter's drain, through the shared limiter (issue 20).

Several bulk processes drain a newsletter as fast as the limiter lets them, while one more
process sends transactional messages at random moments; all share one API key, on Redis, to the
sandbox throttled to a scaled-down N requests per W seconds. Two runs, the same in all but the
priority the bulk processes ask for:

- before: every send asks as ``"high"``, which is today's sliding log unchanged (high priority
  takes any free slot; nothing is paced or yields);
- after: bulk asks as ``"low"``: paced one slot per interval, yielding to waiting senders.

From the sandbox's log (its clock reads the same machine's time as the processes): the
transactional sends' waits (asked -> accepted by the API), in seconds and in slot intervals
(W / N); the drain's pattern (the most accepted within any 0.25 s, the share of the drain in
gaps over two intervals); bulk's share of the slots transactional mail left (accepted bulk /
(the allowance over the drain - transactional accepted during it), where the drain runs from
the first bulk send accepted to the last and the allowance over a span S is N x (1 + S / W),
the most a client can send in S without a 429); and 429s. The transactional sends come at
random moments within the drain's expected length.

    pip install -e ".[bench]" redis
    python bench/bench_priority_limiter.py [--bulk-processes 3] [--bulk 40] [--transactional 10]
        [--rate 10/2] [--runs 1]

Uses REDIS_URL when set, else starts redis-server on a free loopback port.
"""

from __future__ import annotations

import argparse
import itertools
import multiprocessing
import os
import platform
import random
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_ratelimit import _clear_limiter_key, _payload, redis_server

from django_sendfleet.sandbox import SANDBOX_API_KEY, Sandbox


@dataclass(frozen=True)
class Outcome:
    mode: str
    waits: list[float]  # transactional: asked -> accepted, seconds
    interval: float
    burst: int  # the most accepted within any BURST seconds
    gap_share: float  # share of the drain's span in gaps longer than two intervals
    bulk_share: float  # of the slots transactional mail left
    throttled: int
    span: float
    bulk: int


BURST = 0.25


def _limiter(rate: tuple[int, float]) -> Any:
    from django_sendfleet.ratelimit import SlidingWindowLimiter

    return SlidingWindowLimiter(requests=rate[0], seconds=rate[1], key_id=SANDBOX_API_KEY)


def bulk(
    session: requests.Session, url: str, count: int, rate: tuple[int, float], priority: str
) -> list[tuple[str, float]]:
    limiter = _limiter(rate)
    for number in range(count):
        address = f"bulk-{os.getpid()}-{number}@example.net"
        _send(limiter, priority, session, url, address)
    return []


def _send(limiter: Any, priority: str, session: requests.Session, url: str, address: str) -> None:
    """A slot, the request, and the answer's time to the limiter: as the send path does."""
    slot = limiter.take(max_wait=60, priority=priority)
    try:
        session.post(url, json=_payload_to(address), timeout=10)
    finally:
        limiter.answered(slot)


def transactional(
    session: requests.Session,
    url: str,
    plan: tuple[int, float],
    rate: tuple[int, float],
    priority: str,
) -> list[tuple[str, float]]:
    """``plan``: how many sends, at random moments within how many seconds from the start (the
    drain's expected length, less its ends). Returns (address, when it asked for a slot)."""
    count, within = plan
    limiter = _limiter(rate)
    rng = random.Random(os.getpid())
    start = time.monotonic()
    asked: list[tuple[str, float]] = []
    for number, moment in enumerate(sorted(rng.uniform(0.05, 0.85) * within for _ in range(count))):
        time.sleep(max(start + moment - time.monotonic(), 0))
        address = f"reset-{number}@example.net"
        asked.append((address, time.time()))
        _send(limiter, "high", session, url, address)
    return asked


def _payload_to(address: str) -> dict[str, Any]:
    return _payload(0) | {"to": address}


def _child(work: Any, barrier: Any, results: Any, redis_url: str, url: str, *args: Any) -> None:
    import django
    from django.conf import settings

    settings.configure(
        CACHES={
            "default": {
                "BACKEND": "django.core.cache.backends.redis.RedisCache",
                "LOCATION": redis_url,
            }
        }
    )
    django.setup()
    from django.core.cache import cache

    with requests.Session() as session:
        session.headers["X-API-Key"] = SANDBOX_API_KEY
        session.get(url, timeout=10)  # warm, as a running worker is (a GET is not counted)
        cache.get("sendfleet-bench-warm-up")
        barrier.wait(timeout=120)
        results.put(work(session, url, *args))


def run(
    mode: str,
    *,
    bulk_processes: int,
    bulk_each: int,
    transactional_count: int,
    rate: tuple[int, float],
    redis_url: str,
) -> Outcome:
    priority = "high" if mode == "before" else "low"
    context = multiprocessing.get_context("spawn")
    barrier, results = context.Barrier(bulk_processes + 1), context.Queue()
    with Sandbox(rate_limit=rate) as sandbox:
        warm_up_key = sandbox.add_key()  # the sandbox's first answer is slow: not in the run
        requests.post(sandbox.url, headers={"X-API-Key": warm_up_key}, json=_payload(0))
        drain = bulk_processes * bulk_each * rate[1] / rate[0]  # at the limit's rate
        jobs: list[tuple[Any, Any]] = [(bulk, bulk_each)] * bulk_processes
        jobs.append((transactional, (transactional_count, drain)))
        children = [
            context.Process(
                target=_child,
                args=(work, barrier, results, redis_url, sandbox.url, count, rate, priority),
            )
            for work, count in jobs
        ]
        for child in children:
            child.start()
        asked = dict(pair for _ in children for pair in results.get(timeout=900))
        for child in children:
            child.join()
        prefix = SANDBOX_API_KEY.split(".")[0]
        sent = bulk_processes * bulk_each + transactional_count
        # The sandbox records a request as it answers: the last may be a moment behind.
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            recorded = [request for request in sandbox.requests if request.key_prefix == prefix]
            if sum(request.status == 200 for request in recorded) >= sent:
                break
            time.sleep(0.05)
    accepted = {r.payload["to"]: r.time for r in recorded if r.status == 200 and r.payload}
    assert len(accepted) == sent, "every message accepted"
    bulk_times = sorted(when for address, when in accepted.items() if address not in asked)
    times = sorted(accepted.values())
    interval = rate[1] / rate[0]
    # The drain: from the first bulk send accepted to the last.
    span = bulk_times[-1] - bulk_times[0]
    in_drain = [when for when in times if bulk_times[0] <= when <= bulk_times[-1]]
    gaps = [later - earlier for earlier, later in itertools.pairwise(in_drain)]
    # The most a client can send in the span without a 429: N at once, then N per window.
    allowance = rate[0] * (1 + span / rate[1])
    left = allowance - (len(in_drain) - len(bulk_times))
    return Outcome(
        mode=mode,
        waits=[accepted[address] - when for address, when in asked.items()],
        interval=interval,
        burst=max(sum(start <= other < start + BURST for other in times) for start in times),
        gap_share=sum(gap for gap in gaps if gap > 2 * interval) / span,
        bulk_share=len(bulk_times) / left,
        throttled=sum(request.status == 429 for request in recorded),
        span=span,
        bulk=len(bulk_times),
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bulk-processes", type=int, default=3)
    parser.add_argument("--bulk", type=int, default=40, help="messages per bulk process")
    parser.add_argument("--transactional", type=int, default=10)
    parser.add_argument("--rate", default="10/2", help="requests/seconds, e.g. 10/2")
    parser.add_argument("--runs", type=int, default=1)
    args = parser.parse_args()
    count, seconds = args.rate.split("/")
    rate = (int(count), float(seconds))
    print(
        f"{args.bulk_processes} bulk processes x {args.bulk} messages and "
        f"{args.transactional} transactional sends, one key, sandbox at {rate[0]} per "
        f"{rate[1]:g} s; Python {platform.python_version()}, {os.cpu_count()} cores, "
        f"load {os.getloadavg()[0]:.1f}"
    )
    outcomes: list[Outcome] = []
    with redis_server() as redis_url:
        for _ in range(args.runs):
            for mode in ("before", "after"):
                _clear_limiter_key(redis_url)
                outcomes.append(
                    run(
                        mode,
                        bulk_processes=args.bulk_processes,
                        bulk_each=args.bulk,
                        transactional_count=args.transactional,
                        rate=rate,
                        redis_url=redis_url,
                    )
                )
    print(
        "| limiter | transactional wait: median / p90 / max (s) | max in slot intervals "
        f"| most sent in {BURST:g} s | drain in gaps > 2 intervals | bulk's share of the "
        "slots left | 429s | bulk sent | drain span (s) |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for o in outcomes:
        waits = sorted(o.waits)
        p90 = waits[min(len(waits) - 1, round(0.9 * (len(waits) - 1)))]
        label = "before (sliding log, FIFO)" if o.mode == "before" else "**after** (bulk paced)"
        print(
            f"| {label} | {statistics.median(waits):.2f} / {p90:.2f} / {waits[-1]:.2f} "
            f"| {waits[-1] / o.interval:.1f} | {o.burst} | {o.gap_share:.0%} "
            f"| {o.bulk_share:.1%} | {o.throttled} | {o.bulk} | {o.span:.2f} |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
