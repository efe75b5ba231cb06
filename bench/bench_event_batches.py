"""What applying webhook events costs per event, by the number applied per transaction.

Stores signed-and-verified events (the mix bench_webhooks.py posts: sent and delivered for
every message, a hard bounce for every fourth) on a throwaway SQLite file with the documented
options, then applies them the way the webhook's work after the answer does
(``event_drain.apply_batch``), in batches of each size in turn, each size on events of its
own, one process, nothing else running. The baseline is the smallest size, run in the same
process: the figure is each size's CPU per event as a share of it.

    python bench/bench_event_batches.py --events-per-size 512 --sizes 1,8,32,128,256
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import throwaway_project  # noqa: F401  (first: the throwaway database)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events-per-size", type=int, default=512)
    parser.add_argument("--sizes", default="1,8,32,128,256")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    sizes = [int(size) for size in args.sizes.split(",")]

    import django

    django.setup()
    from bench_webhooks import events_for, seed_send_log
    from django.core.management import call_command

    from django_sendfleet.models import WebhookEvent
    from django_sendfleet.webhooks import drain as event_drain
    from django_sendfleet.webhooks.store import store_event

    call_command("migrate", verbosity=0)
    per_size: dict[int, list[float]] = {size: [] for size in sizes}
    for _ in range(args.rounds):
        for size in sizes:
            events = events_for(args.events_per_size)
            seed_send_log(events)
            stored = [store_event(json.dumps(event).encode(), max_age=None) for event in events]
            started = time.process_time()
            for start in range(0, len(stored), size):
                event_drain.apply_batch(stored[start : start + size])
            per_size[size].append((time.process_time() - started) / len(stored) * 1000)
            applied = WebhookEvent.objects.filter(outcome="applied").count()
            assert applied == len(stored), f"{applied} of {len(stored)} applied"
    baseline = statistics.median(per_size[sizes[0]])
    print(f"{args.events_per_size} events per size, median of {args.rounds} rounds")
    for size in sizes:
        cpu = statistics.median(per_size[size])
        print(
            f"{size:>4} per transaction: {cpu:.3f} ms of CPU per event "
            f"({cpu / baseline:.2f} x {sizes[0]} per transaction)"
        )


if __name__ == "__main__":
    main()
