"""Many workers, one key: how much of the API's allowance queued sending uses on each engine.

For each engine (django-tasks-db's ``db_worker``, RQ through django-tasks-rq, Celery through
django-tasks-fennel: set up as docs/queued.md and tests/support/engines.py have them), W worker
processes drain an outbox of M messages (one task each unless ``--per-task``, all written in
one transaction) through the shared limiter on Redis, to the sandbox throttled to a
scaled-down N requests per S seconds, the limiter set to the same. As in
bench/bench_ratelimit.py the workers are warm (a few messages are sent first, then the sandbox
and the limiter are reset) and the figures come from the sandbox's log: 429 answers, the span
from the first accepted send to the last, and

    utilisation = accepted / allowance over that span, allowance = N * (1 + span / S)

(N in the first window, then N per S; exactly M when the sends keep to the limit with no gap,
so 100 % is the most a client that never gets a 429 can reach). bench_ratelimit.py's
``ideal span / span`` is printed too. Needs PostgreSQL (a throwaway test database is created
next to DATABASE_URL's) and Redis (REDIS_URL, or a redis-server of our own).

    pip install -e ".[bench,engines]"
    DATABASE_URL=postgres://USER@127.0.0.1:PORT/DB python bench/bench_engines.py \\
        [--engines db_worker,rq,celery] [--workers 4] [--messages 200] [--rate 20/2] \\
        [--runs 1] [--per-task 1]
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "bench")]
os.environ["DJANGO_SETTINGS_MODULE"] = "tests.settings"


FROM = "shop@example.com"


@dataclass(frozen=True)
class Run:
    engine: str
    accepted: int
    throttled: int
    span: float
    rate: tuple[int, float]

    @property
    def allowance(self) -> float:
        requests, seconds = self.rate
        return requests * (1 + self.span / seconds)

    @property
    def utilisation(self) -> float:
        return self.accepted / self.allowance

    @property
    def ideal_span(self) -> float:
        requests, seconds = self.rate
        return (math.ceil(self.accepted / requests) - 1) * seconds

    @property
    def span_ratio(self) -> float:
        return self.ideal_span / self.span if self.span else 1.0


def queue_in_one_transaction(count: int, prefix: str, per_task: int) -> None:
    """``count`` messages, ``per_task`` to a ``send_messages`` call (so to a task), released
    together when the transaction commits."""
    from django.core.mail import EmailMessage
    from django.db import transaction

    from django_sendfleet.backends import QueuedEmailBackend

    backend = QueuedEmailBackend()
    with transaction.atomic():
        for start in range(0, count, per_task):
            numbers = range(start, min(count, start + per_task))
            backend.send_messages(
                [
                    EmailMessage(
                        f"Hello {n}", "Body", "shop@example.com", [f"{prefix}{n}@example.com"]
                    )
                    for n in numbers
                ]
            )


def drain(engine_name: str, args: argparse.Namespace, redis_url: str, log: Path) -> Run:
    from bench_ratelimit import _clear_limiter_key
    from django.test import override_settings

    from django_sendfleet.models import SendLog
    from django_sendfleet.sandbox import SANDBOX_API_KEY, Sandbox
    from tests.support.engines import ENGINES
    from tests.support.worker_processes import Workers, wait_for, worker_environment

    def outbox_empty() -> bool:
        return not SendLog.objects.filter(status__in=["pending", "sending"]).exists()

    engine = ENGINES[engine_name]
    broker_url = engine.broker_url(redis_url)
    engine.clear_broker(broker_url)
    _clear_limiter_key(redis_url)
    SendLog.objects.all().delete()
    rate = args.rate
    with Sandbox(rate_limit=rate) as sandbox, override_settings(**engine.settings(broker_url)):
        engine.start_app(broker_url)
        env = worker_environment(sandbox.url, redis_url, engine.backend, broker_url)
        env["SENDFLEET_TEST_RATE_LIMIT"] = f"{rate[0]}/{rate[1]:g}s"
        workers = Workers(engine.worker_command, env, log)
        workers.start(args.workers)
        try:
            with override_settings(SENDFLEET={"API_URL": sandbox.url, "API_KEY": SANDBOX_API_KEY}):
                # Warm up: every worker started, connected to the database, Redis and the
                # sandbox, as running workers are. Then forget it all.
                queue_in_one_transaction(args.workers * 2, "warm-up", 1)
                wait_for(outbox_empty, 120, "the warm-up sends", log)
                time.sleep(rate[1] + 0.5)  # the limiter's log and the sandbox's window empty
                sandbox.reset()
                _clear_limiter_key(redis_url)

                queue_in_one_transaction(args.messages, "user", args.per_task)
                timeout = 60 + 3 * args.messages * rate[1] / rate[0]
                wait_for(outbox_empty, timeout, "the outbox to drain", log)
        finally:
            workers.stop()
    accepted = sorted(request.time for request in sandbox.requests if request.status == 200)
    sent_to = [request.payload["to"] for request in sandbox.accepted]
    assert len(sent_to) == len(set(sent_to)) == args.messages, "each message accepted once"
    return Run(
        engine=engine_name,
        accepted=len(accepted),
        throttled=sum(request.status == 429 for request in sandbox.requests),
        span=accepted[-1] - accepted[0],
        rate=rate,
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--engines", default="db_worker,rq,celery")
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--messages", type=int, default=200)
    parser.add_argument("--rate", default="20/2", help="requests/seconds, e.g. 20/2")
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument(
        "--per-task", type=int, default=1, help="messages per send_messages call (<= 100)"
    )
    args = parser.parse_args()
    count, seconds = args.rate.split("/")
    args.rate = (int(count), float(seconds))
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

    print(
        f"{args.workers} workers x {len(engines)} engines, {args.messages} messages "
        f"({args.per_task} a task), one key, "
        f"sandbox and limiter at {args.rate[0]} per {args.rate[1]:g} s; Python "
        f"{platform.python_version()}, Django {django.get_version()}, {os.cpu_count()} cores, "
        f"load {os.getloadavg()[0]:.1f}"
    )
    runs: list[Run] = []
    database = connection.creation.create_test_db(verbosity=0, autoclobber=True)
    log = Path(tempfile.mkdtemp()) / "workers.log"
    try:
        with redis_server() as redis_url:
            for _ in range(args.runs):
                for name in engines:
                    runs.append(drain(name, args, redis_url, log))
                    print(f"  {name}: {runs[-1]}", flush=True)
    finally:
        connection.creation.destroy_test_db(database, verbosity=0)
    print(f"(worker output: {log})")

    print("| engine | run | accepted | 429s | span (s) | utilisation | ideal span / span |")
    print("|---|---|---|---|---|---|---|")
    for name in engines:
        mine = [run for run in runs if run.engine == name]
        for number, run in enumerate(mine, 1):
            print(
                f"| {name} | {number} | {run.accepted} | {run.throttled} | {run.span:.2f} "
                f"| {run.utilisation:.1%} | {run.span_ratio:.1%} |"
            )
        if len(mine) > 1:
            print(
                f"| {name} | median | | {sum(r.throttled for r in mine)} | | "
                f"**{statistics.median(r.utilisation for r in mine):.1%}** | "
                f"{statistics.median(r.span_ratio for r in mine):.1%} |"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
