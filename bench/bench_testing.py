"""Per-test cost of the in-process sandbox against the socket sandbox, side by side.

One "test" is what a user's test pays: ``use_sendfleet_sandbox(socket=...)`` builds a fresh
sandbox with the ready-made world, points the backend at it (settings overridden) and removes
it afterwards, around a test body that runs in a transaction rolled back at the end, as in
Django's ``TestCase``. Three bodies: testproject's receipt view through Django's test client (one
send), a batch of ten recipients, and a failure path (a 502, then the retry). Waits between
retries are recorded, not slept, in both kinds (in process by the sandbox; for the socket
sandbox by replacing ``client.wait_before_retry``, as docs/testing.md shows), so the figure is
the transport's cost. The kinds alternate within each round, the order flipping every round.

    python bench/bench_testing.py [--rounds 40]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "testproject.settings")
os.environ["DATABASE_URL"] = f"sqlite:///{Path(tempfile.mkdtemp()) / 'bench.sqlite3'}"

KINDS = {"in process": False, "socket": True}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=40, help="tests per body and kind")
    args = parser.parse_args()

    import django

    django.setup()
    from django.core.mail import EmailMessage
    from django.core.management import call_command
    from django.db import transaction
    from django.test import Client
    from django.test.utils import setup_test_environment

    from django_sendfleet.api import client as client_module
    from django_sendfleet.sandbox.base import BaseSandbox
    from django_sendfleet.sandbox.testing import use_sendfleet_sandbox

    setup_test_environment()  # locmem mail, ALLOWED_HOSTS for the test client, as a test run
    call_command("migrate", verbosity=0)
    browser = Client()
    waits: list[float] = []

    def view_sends(sandbox: BaseSandbox) -> None:
        answer = browser.post("/shop/receipt/", {"email": "ann@example.com"})
        assert answer.json() == {"sent": 1}, answer.content
        assert sandbox.recipients == ["ann@example.com"]

    def batch_of_ten(sandbox: BaseSandbox) -> None:
        to = [f"user{n}@example.com" for n in range(10)]
        EmailMessage("Hi", "Body", "shop@example.com", to).send()
        assert len(sandbox.accepted) == 10

    def failure_path(sandbox: BaseSandbox) -> None:
        sandbox.inject_fault(502)
        EmailMessage("Hi", "Body", "shop@example.com", ["ann@example.com"]).send()
        assert [r.status for r in sandbox.requests] == [502, 200]

    bodies: dict[str, Callable[[BaseSandbox], None]] = {
        "view sends one email": view_sends,
        "batch of 10 recipients": batch_of_ten,
        "502 then a retry": failure_path,
    }

    def one_test(body: Callable[[BaseSandbox], None], socket: bool) -> float:
        started = time.perf_counter()
        with use_sendfleet_sandbox(socket=socket) as sandbox, transaction.atomic():
            body(sandbox)
            transaction.set_rollback(True)
        return time.perf_counter() - started

    # With the socket sandbox the waits are recorded as docs/testing.md shows; in process the
    # client's own wait_before_retry hands them to the sandbox.
    original_wait: Any = client_module.wait_before_retry

    def run(body: Callable[[BaseSandbox], None], socket: bool) -> float:
        client_module.wait_before_retry = waits.append if socket else original_wait
        try:
            return one_test(body, socket)
        finally:
            client_module.wait_before_retry = original_wait

    for body in bodies.values():  # warm up both kinds
        for socket in KINDS.values():
            run(body, socket)
    times: dict[tuple[str, str], list[float]] = {
        (name, kind): [] for name in bodies for kind in KINDS
    }
    for round_number in range(args.rounds):
        kinds = list(KINDS.items())
        if round_number % 2:
            kinds.reverse()
        for name, body in bodies.items():
            for kind, socket in kinds:
                times[name, kind].append(run(body, socket))

    print(f"{args.rounds} tests per body and kind, alternating; per-test wall time, median")
    print(f"{'test body':<24} {'in process':>11} {'socket':>11} {'ratio':>7}")
    ratios = []
    for name in bodies:
        inprocess = statistics.median(times[name, "in process"])
        socket_time = statistics.median(times[name, "socket"])
        ratios.append(inprocess / socket_time)
        print(
            f"{name:<24} {inprocess * 1000:8.2f} ms {socket_time * 1000:8.2f} ms "
            f"{inprocess / socket_time:7.2f}"
        )
    geometric = statistics.geometric_mean(ratios)
    print(f"{'geometric mean':<24} {'':>11} {'':>11} {geometric:7.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
