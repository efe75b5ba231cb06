"""Password resets during a newsletter's drain, on each task engine (issue 20, "Measured").

For each engine (django-tasks-db's ``db_worker``, RQ through django-tasks-rq, Celery through
django-tasks-fennel, as docs/queued.md and tests/support/engines.py set them up), W worker processes
drain a newsletter of B bulk rows (``QueuedEmailBackend(bulk=True)``, 100 rows a task, all
queued before the drain) through the shared limiter on Redis, to the sandbox throttled to a
scaled-down N requests per S seconds. During the drain, at random moments:

- T transactional messages are queued, each on its own, through ``QueuedEmailBackend()``;
- (``--sync``) Y synchronous ``EmailBackend().send_messages()`` calls are made, as a view
  would, from a process of their own (a web process; warmed up by one send before the drain)
  that runs the same code as the workers.

From the sandbox's log (its clock is this machine's): each transactional row's wait from its
commit to its acceptance by the API, each synchronous send's wait from the call to the
acceptance, both also in slot intervals (S / N); bulk's share of the slots transactional mail
left (accepted bulk / (the allowance over the drain - accepted transactional), where the
allowance over a span D is N x (1 + D / S)); 429s; every row sent exactly once (rows accepted
twice, rows never accepted).

The goal (issue 20): transactional rows within 2 slot intervals + 0.5 s (p99 and max),
synchronous sends within 1 interval + 0.5 s, bulk >= 90 % of the slots left, no 429.

``--baseline PATH`` also runs the workers and the synchronous sender from another checkout
(the code before priorities, first in, first out: ``mkdir /tmp/sendfleet-fifo && git archive
0e81d34 | tar -x -C /tmp/sendfleet-fifo``): today's figures beside the new ones. Its workers
share the database (the columns added since are ignored; this process queues the rows). Its
processes start in that directory with ``PYTHONSAFEPATH`` (``python -m`` and Celery's Django
fixup would otherwise put this checkout first on sys.path); the limiter's entries late in each
drain are printed by priority to show which code ran (before priorities every send was "high").

    pip install -e ".[bench,engines]"
    DATABASE_URL=postgres://USER@127.0.0.1:PORT/DB python bench/bench_priority.py \\
        [--engines db_worker,rq,celery] [--workers 4] [--bulk 1000] [--transactional 20] \\
        [--sync 20] [--rate 10/2] [--baseline /tmp/sendfleet-fifo]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "bench")]
os.environ["DJANGO_SETTINGS_MODULE"] = "tests.settings"

NEWS_FROM = "news@example.com"
SHOP_FROM = "shop@example.com"
ROWS_PER_TASK = 100

# The synchronous sender: a process of its own (``python -c``), with the workers' environment
# and code. One warm-up send, "ready", then a line [begin, moments] on stdin: a send at each
# moment (seconds after begin, epoch), the call's start times printed as JSON at the end.
SYNC_SENDER = """
import json, sys, time
import django
django.setup()
from django.core.mail import EmailMessage
from django_sendfleet.backends import EmailBackend

def send(address):
    message = EmailMessage("Your receipt", "Body", "shop@example.com", [address])
    EmailBackend().send_messages([message])

send("warm-up@example.com")
print("ready", flush=True)
begin, moments = json.loads(sys.stdin.readline())
started = {}
for n, moment in enumerate(moments):
    time.sleep(max(0.0, begin + moment - time.time()))
    address = f"view{n}@example.com"
    started[address] = time.time()
    send(address)
print(json.dumps(started), flush=True)
"""


@dataclass
class Run:
    engine: str
    code: str  # "this" or "baseline"
    bulk: int
    rate: tuple[int, float]
    transactional_waits: list[float] = field(default_factory=list)
    sync_waits: list[float] = field(default_factory=list)
    bulk_accepted: int = 0
    span: float = 0.0
    throttled: int = 0
    accepted_twice: int = 0
    never_accepted: int = 0
    #: The limiter's entries seen by priority late in the drain: the baseline's are all
    #: "high" (before priorities every send asked as high), this code's bulk is "low".
    entries: dict[str, int] = field(default_factory=dict)
    load: float = 0.0  # the machine's 5-minute load average as the run ended

    @property
    def interval(self) -> float:
        return self.rate[1] / self.rate[0]

    @property
    def bulk_share(self) -> float:
        """Accepted bulk sends over the slots transactional mail left during the drain."""
        requests, seconds = self.rate
        allowance = requests * (1 + self.span / seconds)
        left = allowance - len(self.transactional_waits) - len(self.sync_waits)
        return self.bulk_accepted / left if left > 0 else 1.0


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))] if ordered else 0.0


def queue_newsletter(count: int) -> None:
    from django.core.mail import EmailMessage
    from django.db import transaction

    from django_sendfleet.backends import QueuedEmailBackend

    backend = QueuedEmailBackend(bulk=True)
    with transaction.atomic():
        for start in range(0, count, ROWS_PER_TASK):
            backend.send_messages(
                [
                    EmailMessage("News", "Body", NEWS_FROM, [f"reader{n}@example.com"])
                    for n in range(start, min(count, start + ROWS_PER_TASK))
                ]
            )


def at_random_moments(count: int, within: float, send, started: dict[str, float]) -> None:
    """``send(n)`` ``count`` times at random moments over ``within`` seconds; records each
    call's start (epoch seconds) in ``started``."""
    from django.db import connection

    moments = sorted(random.uniform(0, within) for _ in range(count))
    begin = time.monotonic()
    try:
        for n, moment in enumerate(moments):
            time.sleep(max(0.0, begin + moment - time.monotonic()))
            send(n, started)
    finally:
        connection.close()


def queue_reset(n: int, started: dict[str, float]) -> None:
    from django.core.mail import EmailMessage

    from django_sendfleet.backends import QueuedEmailBackend

    address = f"reset{n}@example.com"
    QueuedEmailBackend().send_messages(
        [EmailMessage("Your password", "Body", SHOP_FROM, [address])]
    )
    started[address] = time.time()  # committed: from here the task may run


def start_workers(engine: Any, env: dict[str, str], log: Path, cwd: str, count: int) -> Any:
    """``count`` workers started in ``cwd``: Celery's Django fixup puts the working directory
    first on sys.path, so the baseline's workers start in the baseline's checkout."""
    from tests.support.worker_processes import Workers

    workers = Workers(engine.worker_command, env, log)
    with log.open("ab") as output:
        workers.processes = [
            subprocess.Popen(
                list(engine.worker_command(number)),
                env=env,
                cwd=cwd,
                stdout=output,
                stderr=subprocess.STDOUT,
            )
            for number in range(count)
        ]
    return workers


def limiter_entries(redis_url: str) -> dict[str, int]:
    """The limiter's log for the bench's key, counted by priority (its members' prefix)."""
    import redis

    from django_sendfleet.conf import SendFleetSettings
    from django_sendfleet.ratelimit import SlidingWindowLimiter

    limiter = SlidingWindowLimiter.for_settings(SendFleetSettings())
    assert limiter is not None
    counts: dict[str, int] = {}
    for member in redis.Redis.from_url(redis_url).zrange(limiter.cache_key, 0, -1):
        priority = member.decode().split(":")[0]
        counts[priority] = counts.get(priority, 0) + 1
    return counts


class SyncSender:
    """The synchronous sends' process (``SYNC_SENDER``), running the code the workers run."""

    def __init__(self, env: dict[str, str], cwd: str, log: Path) -> None:
        self.output = log.open("a")
        self.process = subprocess.Popen(
            [sys.executable, "-c", SYNC_SENDER],
            env=env,
            cwd=cwd,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self.output,
            text=True,
        )

    def ready(self) -> None:
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        if line.strip() != "ready":
            raise RuntimeError(f"the synchronous sender did not start: {line!r}; see the log")

    def start(self, moments: list[float]) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(json.dumps([time.time(), moments]) + "\n")
        self.process.stdin.flush()

    def started(self, timeout: float) -> dict[str, float]:
        assert self.process.stdout is not None
        out, _ = self.process.communicate(timeout=timeout)
        return json.loads(out.strip().splitlines()[-1])

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        self.output.close()


def drain(engine_name: str, args: argparse.Namespace, redis_url: str, log: Path, baseline: str):
    from bench_ratelimit import _clear_limiter_key
    from django.test import override_settings

    from django_sendfleet.models import SendLog
    from django_sendfleet.sandbox import SANDBOX_API_KEY, Sandbox
    from tests.support.engines import ENGINES
    from tests.support.worker_processes import wait_for, worker_environment

    def outbox_empty() -> bool:
        return not SendLog.objects.filter(status__in=["pending", "sending"]).exists()

    engine = ENGINES[engine_name]
    broker_url = engine.broker_url(redis_url)
    engine.clear_broker(broker_url)
    _clear_limiter_key(redis_url)
    SendLog.objects.all().delete()
    rate = args.rate
    run = Run(engine_name, "baseline" if baseline else "this", args.bulk, rate)
    limiter_settings = {
        "API_KEY": SANDBOX_API_KEY,
        "RATE_LIMIT": f"{rate[0]}/{rate[1]:g}s",
        "MAX_RETRY_WAIT": 30,
    }
    redis_cache = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": redis_url,
        }
    }
    with Sandbox(rate_limit=rate) as sandbox, override_settings(**engine.settings(broker_url)):
        engine.start_app(broker_url)
        env = worker_environment(sandbox.url, redis_url, engine.backend, broker_url)
        env["SENDFLEET_TEST_RATE_LIMIT"] = f"{rate[0]}/{rate[1]:g}s"
        if baseline:
            # PYTHONSAFEPATH: "python -m" would put the working directory (this checkout)
            # before PYTHONPATH, and the workers would run this code, not the baseline's.
            env |= {"PYTHONPATH": baseline, "PYTHONSAFEPATH": "1"}
        workers = start_workers(engine, env, log, baseline or str(ROOT), args.workers)
        sync = SyncSender(env | {"PYTHONSAFEPATH": "1"}, baseline or str(ROOT), log)
        try:
            with override_settings(
                SENDFLEET={"API_URL": sandbox.url, **limiter_settings}, CACHES=redis_cache
            ):
                # Warm up: every worker started and connected, as running workers are, and
                # the synchronous sender too.
                for n in range(args.workers * 2):
                    queue_reset(1000 + n, {})
                sync.ready()
                wait_for(outbox_empty, 120, "the warm-up sends", log)
                time.sleep(rate[1] + 0.5)
                sandbox.reset()
                _clear_limiter_key(redis_url)

                queue_newsletter(args.bulk)
                drain_time = args.bulk * rate[1] / rate[0]
                started: dict[str, float] = {}
                sync.start(sorted(random.uniform(0, 0.8 * drain_time) for _ in range(args.sync)))
                queuer = threading.Thread(
                    target=at_random_moments,
                    args=(args.transactional, 0.8 * drain_time, queue_reset, started),
                )
                queuer.start()
                queuer.join()
                for priority, count in limiter_entries(redis_url).items():
                    run.entries[priority] = run.entries.get(priority, 0) + count
                started |= sync.started(timeout=60 + drain_time)
                wait_for(outbox_empty, 60 + 3 * drain_time, "the outbox to drain", log)
                time.sleep(1)  # the last answer recorded
        finally:
            sync.stop()
            workers.stop()
    accepted: dict[str, float] = {}
    for request in sandbox.requests:
        if request.status == 200:
            address = request.payload["to"]
            run.accepted_twice += address in accepted
            accepted[address] = request.time
    expected = set(started) | {f"reader{n}@example.com" for n in range(args.bulk)}
    run.never_accepted = len(expected - set(accepted))
    for address, at in started.items():
        waits = run.sync_waits if address.startswith("view") else run.transactional_waits
        if address in accepted:
            waits.append(accepted[address] - at)
    bulk_times = [at for address, at in accepted.items() if address.startswith("reader")]
    run.bulk_accepted = len(bulk_times)
    run.span = max(accepted.values()) - min(accepted.values())
    run.throttled = sum(r.status == 429 for r in sandbox.requests)
    run.load = os.getloadavg()[1]
    return run


HEADER = (
    "| engine | code | bulk rows | sends | n | p50 (s) | p99 (s) | max | goal (s) | met "
    "| bulk share of the slots left | 429s | every row sent once | load (5 min) |\n"
    "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"
)


def row(run: Run, label: str, waits: list[float], goal_intervals: float) -> str:
    goal = goal_intervals * run.interval + 0.5
    p50, p99, most = (percentile(waits, 0.5), percentile(waits, 0.99), max(waits, default=0.0))
    met = "yes" if waits and p99 <= goal and most <= goal else "no"
    once = "yes" if not (run.accepted_twice or run.never_accepted) else "no"
    if once == "no":
        once += f" ({run.accepted_twice} twice, {run.never_accepted} never)"
    code = "FIFO (before)" if run.code == "baseline" else "priorities"
    return (
        f"| {run.engine} | {code} | {run.bulk} | {label} | {len(waits)} | {p50:.2f} | "
        f"{p99:.2f} | {most:.2f} ({most / run.interval:.1f} intervals) | {goal:.2f} | {met} | "
        f"{run.bulk_share:.1%} | {run.throttled} | {once} | {run.load:.1f} |"
    )


def rows(run: Run) -> list[str]:
    return [
        row(run, "queued transactional", run.transactional_waits, 2),
        *([row(run, "synchronous", run.sync_waits, 1)] if run.sync_waits else []),
    ]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--engines", default="db_worker,rq,celery")
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--bulk", default="1000", help="bulk rows; a list runs each: 1000,5000")
    parser.add_argument("--transactional", type=int, default=20)
    parser.add_argument("--sync", type=int, default=20)
    parser.add_argument("--rate", default="10/2", help="requests/seconds, e.g. 10/2")
    parser.add_argument("--baseline", default="", help="a checkout to run today's code from")
    parser.add_argument("--seed", type=int, default=20)
    args = parser.parse_args()
    count, seconds = args.rate.split("/")
    args.rate = (int(count), float(seconds))
    random.seed(args.seed)
    if not os.environ.get("DATABASE_URL", "").startswith(("postgres://", "postgresql://")):
        sys.exit("Set DATABASE_URL to a PostgreSQL database (the workers share it).")

    import django

    django.setup()
    from bench_ratelimit import redis_server
    from django.db import connection

    from tests.support.engines import ENGINES

    engines = args.engines.split(",")
    for name in engines:
        if not ENGINES[name].available():
            sys.exit(f"{name} is not installed: pip install -e '.[bench,engines]'")
    sizes = [int(size) for size in args.bulk.split(",")]
    print(
        f"{args.workers} workers, newsletters of {args.bulk} rows ({ROWS_PER_TASK} a task), "
        f"{args.transactional} queued resets and {args.sync} synchronous sends at random moments"
        f" of the drain; sandbox and limiter at {args.rate[0]} per {args.rate[1]:g} s; Python "
        f"{platform.python_version()}, Django {django.get_version()}, {os.cpu_count()} cores, "
        f"load {os.getloadavg()[0]:.1f}"
    )
    runs: list[Run] = []
    database = connection.creation.create_test_db(verbosity=0, autoclobber=True)
    log = Path(tempfile.mkdtemp()) / "workers.log"
    try:
        with redis_server() as redis_url:
            for size in sizes:
                args.bulk = size
                for name in engines:
                    for baseline in ([args.baseline] if args.baseline else []) + [""]:
                        runs.append(drain(name, args, redis_url, log, baseline))
                        print("\n".join(f"  {line}" for line in rows(runs[-1])), flush=True)
                        print(f"    limiter entries late in the drain: {runs[-1].entries}")
    finally:
        connection.creation.destroy_test_db(database, verbosity=0)
    print(f"(worker output: {log})")
    print(HEADER)
    for run in runs:
        print("\n".join(rows(run)))
    medians = [statistics.median(run.transactional_waits) for run in runs]
    print(f"median transactional waits per run: {', '.join(f'{m:.2f}' for m in medians)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
