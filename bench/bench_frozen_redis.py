"""send_mail to 4 recipients while the rate limiter's Redis is frozen, against a healthy Redis.

A redis-server of its own is frozen with SIGSTOP: connections are accepted, nothing is
answered. Each run times, through EmailBackend and the sandbox, with RATE_LIMIT on:

- healthy: Redis answering (the baseline);
- frozen, first send: the first send after Redis froze (one bounded wait is expected);
- frozen, next send: the send after it (the cache is left alone for a while).

Before the fix these took 5 s per recipient with redis-py 8 and never ended with redis-py 5.

    pip install -e ".[test]"
    python bench/bench_frozen_redis.py [--recipients 4] [--max-retry-wait 1] [--runs 5]
"""

from __future__ import annotations

import argparse
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipients", type=int, default=4)
    parser.add_argument("--max-retry-wait", type=float, default=1.0)
    parser.add_argument("--runs", type=int, default=5)
    options = parser.parse_args()
    server = shutil.which("redis-server")
    if server is None:
        sys.exit("redis-server is not on PATH")

    import django
    import redis
    from django.conf import settings

    from django_sendfleet.sandbox import SANDBOX_API_KEY, Sandbox

    with tempfile.TemporaryDirectory() as directory, Sandbox(rate_limit=(10**6, 60)) as sandbox:
        port = _free_port()
        command = [server, "--port", str(port), "--bind", "127.0.0.1", "--save", ""]
        command += ["--appendonly", "no", "--dir", directory]
        process = subprocess.Popen(command, stdout=subprocess.DEVNULL)
        url = f"redis://127.0.0.1:{port}/0"
        try:
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                try:
                    redis.Redis.from_url(url, socket_timeout=1).ping()
                    break
                except redis.RedisError:
                    time.sleep(0.05)
            backend = "django_sendfleet.backends.EmailBackend"
            settings.configure(
                INSTALLED_APPS=["django_sendfleet"],
                DATABASES={"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}},
                CACHES={
                    "default": {
                        "BACKEND": "django.core.cache.backends.redis.RedisCache",
                        "LOCATION": url,
                    }
                },
                SENDFLEET={
                    "API_KEY": SANDBOX_API_KEY,
                    "API_URL": sandbox.url,
                    "RATE_LIMIT": "6000/min",  # never a wait: only the cache's cost is timed
                    "MAX_RETRY_WAIT": options.max_retry_wait,
                    "SEND_LOG": False,
                    "CHECK_SUPPRESSIONS": False,
                },
                **(
                    {"MAILERS": {"default": {"BACKEND": backend}}}
                    if django.VERSION >= (6, 1)
                    else {"EMAIL_BACKEND": backend}
                ),
            )
            django.setup()
            from django.core.management import call_command

            call_command("migrate", verbosity=0)
            run_all(process, options)
        finally:
            process.send_signal(signal.SIGCONT)
            process.terminate()
            process.wait(timeout=10)


def run_all(process: subprocess.Popen[bytes], options: argparse.Namespace) -> None:
    import logging

    import redis
    from django.core.mail import send_mail

    from django_sendfleet.ratelimit import shared_cache

    logging.getLogger("django_sendfleet").setLevel(logging.ERROR)  # the expected warning
    recipients = [f"user{n}@example.net" for n in range(options.recipients)]

    def timed_send() -> float:
        start = time.perf_counter()
        send_mail("Hi", "Body", "shop@example.com", recipients)
        return time.perf_counter() - start

    times: dict[str, list[float]] = {"healthy": [], "frozen, first send": [], "frozen, next": []}
    for _ in range(options.runs):
        process.send_signal(signal.SIGCONT)
        shared_cache.forget_failures()
        timed_send()  # warm: connections open
        times["healthy"].append(timed_send())
        process.send_signal(signal.SIGSTOP)
        times["frozen, first send"].append(timed_send())
        times["frozen, next"].append(timed_send())
    print(
        f"redis-py {redis.__version__}, {options.recipients} recipients, "
        f"MAX_RETRY_WAIT={options.max_retry_wait:g} s, {options.runs} runs (median, max)"
    )
    baseline = statistics.median(times["healthy"])
    for name, values in times.items():
        median = statistics.median(values)
        print(
            f"  {name:<20} {median * 1000:8.1f} ms {max(values) * 1000:8.1f} ms"
            f"   x{median / baseline:.1f} healthy"
        )


if __name__ == "__main__":
    main()
