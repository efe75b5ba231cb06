"""Per-send cost of the reputation guard: the same send with the guard off, on for a
transactional mailer, and on for a bulk mailer (the account healthy, so nothing is held).

One process, one loopback HTTP server answering as SendFleet does, SQLite in a temporary file
with a week of rollups (a few hundred rows, as a busy project has); the send log and the
suppression check on in all three, as shipped. Interleaved rounds (the order rotates each
round), so machine noise hits all alike; the figures are the ratio of the medians of
per-message time to the guard off's, and the median of each round's own ratio ("paired").
Every send asks ``reputation_state.current()``; the process's figures are refreshed (one query
of the rollups, one of the stored levels) when older than ``REFRESH_SECONDS``, as in
production, so the refreshes are in the cost. The cost of one refresh is reported too.

    python bench/bench_reputation.py [--rounds 15] [--batch 100] [--clock cpu|wall]
"""

from __future__ import annotations

import argparse
import datetime
import statistics
import sys
import time

import loopback_api
import throwaway_project  # noqa: F401  (bench/ is on sys.path when run as a script)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument(
        "--clock",
        choices=("cpu", "wall"),
        default="cpu",
        help="cpu (default): the process's CPU time, every thread's (the loopback server and "
        "SQLite run in it), which a busy machine does not inflate; wall: elapsed time",
    )
    args = parser.parse_args()
    clock = time.process_time if args.clock == "cpu" else time.perf_counter

    server = loopback_api.start()

    import django
    from django.conf import settings

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    # The webhook's secret: Shared rates are known, levels judged.
    settings.SENDFLEET = loopback_api.sendfleet_settings(
        server, WEBHOOK_SECRET="bench-webhook-secret"
    )

    from django.core.mail import EmailMessage

    from django_sendfleet.backends import EmailBackend
    from django_sendfleet.backends.dispositions import SendNow
    from django_sendfleet.models import rollups
    from django_sendfleet.models.rollups import SendRollup
    from django_sendfleet.reputation import state as reputation_state

    # A week of traffic: 5 mailers x 2 modes x 6 outcomes a day, about 1 % hard bounces.
    today = rollups.today()
    outcomes = {"delivered": 9000, "queued": 400, "bounced": 100, "complained": 2}
    outcomes |= {"failed": 30, "rejected": 20}
    SendRollup.objects.bulk_create(
        SendRollup(
            day=today - datetime.timedelta(days=age),
            mailer=f"mailer{m}",
            mode=mode,
            status=status,
            error_code="",
            sends=sends,
        )
        for age in range(8)
        for m in range(5)
        for mode in ("shared", "byoc")
        for status, sends in outcomes.items()
    )
    assert reputation_state.check_now().snapshot.accounts["shared"].level == "healthy"

    class SendNowUnguarded(SendNow):
        def start(self, suppressions):  # type: ignore[no-untyped-def]
            super().start(suppressions)
            self.sender.reputation = None  # as before the guard existed

    class GuardOff(EmailBackend):
        disposition_class = SendNowUnguarded

    class Transactional(EmailBackend):
        """The guard on, mailer not bulk: it keeps the figures current, never holds."""

    class Bulk(EmailBackend):
        def __init__(self, **kwargs: object) -> None:
            super().__init__(bulk=True, **kwargs)

    def per_message_seconds(backend_class: type) -> float:
        batch = [
            EmailMessage(f"Order {n}", "Shipped.", "Shop <shop@example.com>", [f"c{n}@example.com"])
            for n in range(args.batch)
        ]
        started = clock()
        with backend_class() as connection:
            sent = connection.send_messages(batch)
        elapsed = clock() - started
        assert sent == args.batch, (backend_class, sent)
        return elapsed / args.batch

    contenders = {
        "guard off": GuardOff,
        "guard on, transactional mailer": Transactional,
        "guard on, bulk mailer (healthy)": Bulk,
    }
    results: dict[str, list[float]] = {name: [] for name in contenders}
    for backend_class in contenders.values():  # warm up
        per_message_seconds(backend_class)
    order = list(contenders)
    refreshes_before = _refresh_count(reputation_state)
    for round_number in range(args.rounds):
        shift = round_number % len(order)
        for name in order[shift:] + order[:shift]:
            results[name].append(per_message_seconds(contenders[name]))
    refreshes = _refresh_count(reputation_state) - refreshes_before
    server.shutdown()

    # The guard's own per-send work, alone: the check a send makes between two refreshes.
    from django_sendfleet.reputation.guard import ReputationGuard

    guard = ReputationGuard("mailer0", bulk=True)
    reputation_state.check_now()
    calls = 100_000
    started = clock()
    for _ in range(calls):
        guard.hold()
    check_seconds = (clock() - started) / calls

    refresh_times = []
    for _ in range(20):
        started = clock()
        reputation_state.check_now()
        refresh_times.append(clock() - started)

    baseline = statistics.median(results["guard off"])
    print(f"{'':34} {'':>15}  {'vs guard off':>12}  {'paired':>7}")
    for name, times in results.items():
        median = statistics.median(times)
        # Each round's ratio to the guard off in the same round: robust to slow drift.
        paired = statistics.median(
            t / off for t, off in zip(times, results["guard off"], strict=True)
        )
        print(f"{name:34} {median * 1e6:7.0f} us/message  {median / baseline:12.3f}  {paired:7.3f}")
    print(
        f"({args.clock} time; {args.rounds} rounds x {args.batch} messages, rotated; "
        f"{refreshes} refreshes of the "
        f"figures during the rounds; one refresh: {statistics.median(refresh_times) * 1e3:.1f} ms "
        f"median over {SendRollup.objects.count()} rollup rows)"
    )
    refresh = statistics.median(refresh_times)
    sends_per_refresh = reputation_state.REFRESH_SECONDS / baseline
    print(
        f"The check alone: {check_seconds * 1e6:.2f} us a send ({check_seconds / baseline:.3%} "
        f"of one); a refresh every {reputation_state.REFRESH_SECONDS:g} s adds "
        f"{refresh / sends_per_refresh * 1e6:.1f} us a send at {1 / baseline:.0f} sends/s "
        f"({refresh / sends_per_refresh / baseline:.3%}) in one sending thread."
    )
    return 0


def _refresh_count(module: object) -> int:
    """How many times the figures were refreshed: counted by wrapping ``_refresh`` once."""
    counter = getattr(module, "_bench_refreshes", None)
    if counter is None:
        original = module._refresh  # type: ignore[attr-defined]
        counter = [0]

        def counted():  # type: ignore[no-untyped-def]
            counter[0] += 1
            return original()

        module._refresh = counted  # type: ignore[attr-defined]
        module._bench_refreshes = counter  # type: ignore[attr-defined]
    return counter[0]


if __name__ == "__main__":
    sys.exit(main())
