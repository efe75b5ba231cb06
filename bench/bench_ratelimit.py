"""The shared rate limiter against the API docs' own retry loop, through the sandbox.

Several processes send with one API key to a sandbox throttled to N requests per W seconds (a
scaled-down 60/min). Ours: each send first takes a slot from ``SlidingWindowLimiter`` on Redis
(default margin). Baseline: the error-handling example of SendFleet's docs (on a 429, sleep
2 ** attempt and retry, 3 attempts in all), against a fresh sandbox. Both start together from a
barrier, with their connection already open. Figures come from the sandbox's own log:
429 answers, messages lost (given up on), and utilisation = ideal span / actual span of the
accepted sends, where the ideal span of T sends at N per W is (ceil(T / N) - 1) * W.

    pip install -e ".[bench]" redis
    python bench/bench_ratelimit.py [--processes 4] [--messages 15] [--rate 10/2] [--runs 3]

Uses REDIS_URL when set, else starts redis-server on a free loopback port.
"""

from __future__ import annotations

import argparse
import math
import multiprocessing
import os
import platform
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from django_sendfleet.api.answers import parse_retry_after
from django_sendfleet.sandbox import SANDBOX_API_KEY, VERIFIED_DOMAIN, Sandbox


@dataclass(frozen=True)
class Run:
    approach: str
    sends: int
    throttled: int
    lost: int
    span: float
    ideal_span: float

    @property
    def utilisation(self) -> float:
        return self.ideal_span / self.span if self.span else 1.0


def _payload(number: int) -> dict[str, Any]:
    return {
        "to": f"user{number}@example.net",
        "from_email": f"shop@{VERIFIED_DOMAIN}",
        "subject": "Rate limit bench",
        "message": "Hello",
    }


def send_with_limiter(
    session: requests.Session, url: str, messages: int, rate: tuple[int, float]
) -> int:
    """Ours: a slot before every attempt; a 429 (none expected) waits Retry-After and retries."""
    from django_sendfleet.ratelimit import SlidingWindowLimiter

    limiter = SlidingWindowLimiter(requests=rate[0], seconds=rate[1], key_id=SANDBOX_API_KEY)
    for number in range(messages):
        for _attempt in range(6):
            limiter.acquire(max_wait=60)
            response = session.post(url, json=_payload(number), timeout=10)
            if response.status_code != 429:
                break
            time.sleep(parse_retry_after(response.headers.get("Retry-After")) or 1)
    return 0


def send_like_the_docs(
    session: requests.Session, url: str, messages: int, rate: tuple[int, float]
) -> int:
    """Baseline: the docs' ``send_email`` example, as written (3 attempts, sleep 2 ** attempt)."""
    lost = 0
    for number in range(messages):
        for attempt in range(3):
            response = session.post(url, json=_payload(number), timeout=10)
            if response.status_code == 200:
                break
            if response.status_code in (429, 502, 500):
                time.sleep(2**attempt)
                continue
            break
        else:
            lost += 1  # the example raises "Max retries exceeded"
    return lost


def _child(
    work: Callable[..., int],
    barrier: Any,
    results: Any,
    redis_url: str,
    url: str,
    messages: int,
    rate: tuple[int, float],
) -> None:
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
        # Warm up as a running worker is: the HTTP connection open (a GET is answered 405 and
        # not counted) and the Redis one too.
        session.headers["X-API-Key"] = SANDBOX_API_KEY
        session.get(url, timeout=10)
        cache.get("sendfleet-bench-warm-up")
        barrier.wait(timeout=120)
        results.put(work(session, url, messages, rate))


def run(
    approach: str,
    work: Callable[..., int],
    *,
    processes: int,
    messages: int,
    rate: tuple[int, float],
    redis_url: str,
) -> Run:
    context = multiprocessing.get_context("spawn")
    barrier, results = context.Barrier(processes), context.Queue()
    with Sandbox(rate_limit=rate) as sandbox:
        # The sandbox's first answer is slow (first-use imports in this process) and would hold
        # back the throttle's clock for the first burst: answer one with another key first.
        warm_up_key = sandbox.add_key()
        requests.post(sandbox.url, headers={"X-API-Key": warm_up_key}, json=_payload(0))
        children = [
            context.Process(
                target=_child,
                args=(work, barrier, results, redis_url, sandbox.url, messages, rate),
            )
            for _ in range(processes)
        ]
        for child in children:
            child.start()
        lost = sum(results.get(timeout=600) for _ in children)
        for child in children:
            child.join()
        prefix = SANDBOX_API_KEY.split(".")[0]
        recorded = [request for request in sandbox.requests if request.key_prefix == prefix]
    accepted = sorted(request.time for request in recorded if request.status == 200)
    assert len(accepted) + lost == processes * messages, "every message is accepted or lost"
    return Run(
        approach=approach,
        sends=len(accepted),
        throttled=sum(request.status == 429 for request in recorded),
        lost=lost,
        span=accepted[-1] - accepted[0],
        ideal_span=(math.ceil(len(accepted) / rate[0]) - 1) * rate[1],
    )


@contextmanager
def redis_server() -> Iterator[str]:
    """REDIS_URL, or a redis-server of our own on a free loopback port, stopped afterwards."""
    if os.environ.get("REDIS_URL"):
        yield os.environ["REDIS_URL"]
        return
    server = shutil.which("redis-server")
    if server is None:
        sys.exit("Set REDIS_URL or install redis-server.")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with tempfile.TemporaryDirectory() as directory:
        command = [server, "--port", str(port), "--bind", "127.0.0.1"]
        command += ["--save", "", "--appendonly", "no", "--dir", directory]
        process = subprocess.Popen(command, stdout=subprocess.DEVNULL)
        try:
            import redis

            url = f"redis://127.0.0.1:{port}/0"
            for _ in range(100):
                try:
                    redis.Redis.from_url(url).ping()
                    break
                except redis.ConnectionError:
                    time.sleep(0.05)
            yield url
        finally:
            process.terminate()
            process.wait(timeout=10)


def _clear_limiter_key(redis_url: str) -> None:
    import redis

    client = redis.Redis.from_url(redis_url)
    for key in client.scan_iter("*sendfleet:ratelimit:*"):
        client.delete(key)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--processes", type=int, default=4)
    parser.add_argument("--messages", type=int, default=15, help="per process")
    parser.add_argument("--rate", default="10/2", help="requests/seconds, e.g. 10/2")
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    count, seconds = args.rate.split("/")
    rate = (int(count), float(seconds))

    print(
        f"{args.processes} processes x {args.messages} messages, one key, sandbox at "
        f"{rate[0]} per {rate[1]:g} s; Python {platform.python_version()}, "
        f"{os.cpu_count()} cores, load {os.getloadavg()[0]:.1f}"
    )
    options = {"processes": args.processes, "messages": args.messages, "rate": rate}
    runs: list[Run] = []
    with redis_server() as redis_url:
        for _ in range(args.runs):
            for approach, work in (("limiter", send_with_limiter), ("docs", send_like_the_docs)):
                _clear_limiter_key(redis_url)
                runs.append(run(approach, work, redis_url=redis_url, **options))

    print("| approach | run | accepted | 429s | lost | span (s) | ideal (s) | utilisation |")
    print("|---|---|---|---|---|---|---|---|")
    for approach, label in (("limiter", "shared limiter (ours)"), ("docs", "docs' retry loop")):
        mine = [r for r in runs if r.approach == approach]
        for number, r in enumerate(mine, 1):
            print(
                f"| {label} | {number} | {r.sends} | {r.throttled} | {r.lost} | {r.span:.2f} "
                f"| {r.ideal_span:.2f} | {r.utilisation:.1%} |"
            )
        median = statistics.median(r.utilisation for r in mine)
        print(
            f"| {label} | all | {sum(r.sends for r in mine)} | "
            f"{sum(r.throttled for r in mine)} | {sum(r.lost for r in mine)} | | | "
            f"**{median:.1%}** (median) |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
