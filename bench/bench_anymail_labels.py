"""Per-message cost of django-anymail's ``tags`` and ``metadata`` (issue 22): the same sends
with and without them, in one process.

SendFleet's API has no field for them: they are checked and bounded once per message
(``message/tags.py``), stored on each recipient's send log row, and passed to the signals. So
the contenders differ only in that work. Two paths, each with and without the attributes:

- ``EmailBackend`` sending (send log and suppression check on, as shipped) to a loopback HTTP
  server answering as SendFleet does;
- ``QueuedEmailBackend`` queuing (the outbox rows written; the task goes to Django's dummy task
  backend, so nothing is sent): the cheaper path, where the rows' extra JSON weighs most.

SQLite in a temporary file. Interleaved rounds, the order rotating each round; the figures are
per-message CPU time (every thread of the process: the server and SQLite run in it), as the
ratio of the medians, the median of each round's own ratio ("paired") and the ratio of the
best rounds ("best"). Goal: within 5 %.

    python bench/bench_anymail_labels.py [--rounds 30] [--batch 100] [--clock cpu|wall]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

import loopback_api
import throwaway_project  # noqa: F401  (bench/ is on sys.path when run as a script)

TAGS = ["order", "shipping"]


def metadata(n: int) -> dict[str, object]:
    return {"order_id": n, "customer_id": n * 7, "campaign": "december", "priority": True}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--clock", choices=("cpu", "wall"), default="cpu")
    args = parser.parse_args()
    clock = time.process_time if args.clock == "cpu" else time.perf_counter

    server = loopback_api.start()

    import django
    from django.conf import settings

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    settings.SENDFLEET = loopback_api.sendfleet_settings(server)
    try:
        from django.tasks.backends.dummy import DummyBackend
    except ImportError:  # Django 5.2: the backport
        from django_tasks.backends.dummy import DummyBackend  # type: ignore[no-redef]
    from django.test.utils import override_settings

    dummy = f"{DummyBackend.__module__}.{DummyBackend.__name__}"
    # override_settings, so that the task backends are built again from the new setting.
    override_settings(TASKS={"default": {"BACKEND": dummy}}).enable()

    from django.core.mail import EmailMultiAlternatives

    from django_sendfleet.backends import EmailBackend, QueuedEmailBackend
    from django_sendfleet.models import SendLog

    def batch(labelled: bool) -> list[EmailMultiAlternatives]:
        messages = []
        for n in range(args.batch):
            message = EmailMultiAlternatives(
                f"Order {n} shipped",
                f"Hello, order {n} is on its way.",
                "Shop <shop@example.com>",
                [f"Customer {n} <customer{n}@example.com>"],
            )
            message.attach_alternative(f"<p>Order <b>{n}</b> is on its way.</p>", "text/html")
            if labelled:
                message.tags = TAGS  # type: ignore[attr-defined]
                message.metadata = metadata(n)  # type: ignore[attr-defined]
            messages.append(message)
        return messages

    def per_message_seconds(backend_class: type, labelled: bool) -> float:
        messages = batch(labelled)
        started = clock()
        with backend_class() as connection:
            sent = connection.send_messages(messages)
        elapsed = clock() - started
        assert sent == args.batch, (backend_class, sent)
        return elapsed / args.batch

    contenders = {
        "EmailBackend, plain": (EmailBackend, False),
        "EmailBackend, tags + metadata": (EmailBackend, True),
        "QueuedEmailBackend queuing, plain": (QueuedEmailBackend, False),
        "QueuedEmailBackend queuing, tags + metadata": (QueuedEmailBackend, True),
    }
    results: dict[str, list[float]] = {name: [] for name in contenders}
    for backend_class, labelled in contenders.values():  # warm up
        per_message_seconds(backend_class, labelled)
    order = list(contenders)
    for round_number in range(args.rounds):
        shift = round_number % len(order)
        for name in order[shift:] + order[:shift]:
            results[name].append(per_message_seconds(*contenders[name]))
    server.shutdown()
    labelled_rows = SendLog.objects.exclude(tags=[]).count()
    assert labelled_rows == (args.rounds + 1) * args.batch * 2, labelled_rows

    print(f"{'':44} {'':>15}  {'vs plain':>8}  {'paired':>7}  {'best':>6}")
    for name, times in results.items():
        plain = results[name.replace("tags + metadata", "plain")]
        median = statistics.median(times)
        # Each round's own ratio (robust to slow drift), and the best round of each (robust
        # to other processes' load, which only ever adds time).
        paired = statistics.median(t / p for t, p in zip(times, plain, strict=True))
        ratio = median / statistics.median(plain)
        best = min(times) / min(plain)
        print(f"{name:44} {median * 1e6:7.0f} us/message  {ratio:8.3f}  {paired:7.3f}  {best:6.3f}")
    print(
        f"({args.clock} time; {args.rounds} rounds x {args.batch} messages, rotated; "
        f"{labelled_rows} rows with tags and metadata written; Django {django.__version__})"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
