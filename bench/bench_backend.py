"""Per-message cost of django-sendfleet's backend against django-anymail's Postmark backend
and against the floor: a bare ``requests.Session`` loop posting the same JSON.

All contenders post to the same loopback HTTP server (it answers each in its API's shape) in
one process, in interleaved rounds, so machine noise hits all alike. Ours runs twice: bare
(send log and suppression check off) and as shipped (both on, SQLite in a temporary file).
The figures are ratios of the medians of per-message time against anymail's and the floor's.

    python bench/bench_backend.py [--rounds 15] [--batch 100]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

import loopback_api
import throwaway_project  # noqa: F401  (bench/ is on sys.path when run as a script)

# As in production: with DEBUG on, Django logs every query (on SQLite it even quotes each
# parameter with extra queries), a cost of the settings, not of the package.
os.environ.setdefault("DJANGO_DEBUG", "0")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--batch", type=int, default=100)
    args = parser.parse_args()

    server = loopback_api.start()
    base = f"http://127.0.0.1:{server.server_port}"

    import django
    from django.conf import settings

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    settings.SENDFLEET = {
        "API_KEY": "benchkey.0123456789abcdef0123456789abcdef",
        "API_URL": f"{base}/api/send/",
        "RATE_LIMIT": None,  # anymail has no limiter: compare the per-message cost alone
    }
    settings.ANYMAIL = {"POSTMARK_SERVER_TOKEN": "bench-token", "POSTMARK_API_URL": f"{base}/"}

    from anymail.backends.postmark import EmailBackend as PostmarkBackend
    from django.core.mail import EmailMultiAlternatives

    from django_sendfleet.backends import EmailBackend
    from django_sendfleet.models import SendLog, Suppression

    # A realistic suppression list to check against (none of the bench's recipients).
    Suppression.objects.bulk_create(
        Suppression(email=f"gone{n}@example.org") for n in range(10_000)
    )

    class SendFleetBare(EmailBackend):
        def __init__(self, **kwargs: object) -> None:
            super().__init__(send_log=False, check_suppressions=False, **kwargs)

    class SendFleetLogged(EmailBackend):
        def __init__(self, **kwargs: object) -> None:
            super().__init__(send_log=True, check_suppressions=True, **kwargs)

    def messages() -> list[EmailMultiAlternatives]:
        batch = []
        for n in range(args.batch):
            message = EmailMultiAlternatives(
                f"Order {n} shipped",
                f"Hello, order {n} is on its way.",
                "Shop <shop@example.com>",
                [f"Customer {n} <customer{n}@example.com>"],
                reply_to=["help@example.com"],
            )
            message.attach_alternative(
                f"<p>Hello, order <b>{n}</b> is on its way.</p>", "text/html"
            )
            batch.append(message)
        return batch

    import requests

    class Floor:
        """The least any client can do: the same JSON bodies, one kept-alive session."""

        payloads = [
            {
                "to": f"customer{n}@example.com",
                "from_email": "shop@example.com",
                "from_name": "Shop",
                "subject": f"Order {n} shipped",
                "message": f"Hello, order {n} is on its way.",
                "html": f"<p>Hello, order <b>{n}</b> is on its way.</p>",
                "reply_to": "help@example.com",
            }
            for n in range(args.batch)
        ]

        def __enter__(self) -> Floor:
            self.session = requests.Session()
            self.session.headers["X-API-Key"] = settings.SENDFLEET["API_KEY"]
            return self

        def __exit__(self, *exc: object) -> None:
            self.session.close()

        def send_messages(self, batch: list[object]) -> int:
            for payload in self.payloads:
                response = self.session.post(settings.SENDFLEET["API_URL"], json=payload)
                response.raise_for_status()
                response.json()
            return len(self.payloads)

    def per_message_seconds(backend_class: type) -> float:
        batch = messages()
        started = time.perf_counter()
        with backend_class() as connection:
            sent = connection.send_messages(batch)
        elapsed = time.perf_counter() - started
        assert sent == args.batch, (backend_class, sent)
        return elapsed / args.batch

    contenders = {
        "floor: a requests.Session loop": Floor,
        "django-anymail Postmark backend": PostmarkBackend,
        "django-sendfleet, log + suppression check off": SendFleetBare,
        "django-sendfleet, log + suppression check on": SendFleetLogged,
    }
    results: dict[str, list[float]] = {name: [] for name in contenders}
    for backend_class in contenders.values():  # warm up
        per_message_seconds(backend_class)
    order = list(contenders)
    for round_number in range(args.rounds):
        # Rotate the order so no contender always runs first or last.
        shift = round_number % len(order)
        for name in order[shift:] + order[:shift]:
            results[name].append(per_message_seconds(contenders[name]))
    server.shutdown()
    logged_rows = SendLog.objects.count()

    baseline = statistics.median(results["django-anymail Postmark backend"])
    floor = statistics.median(results["floor: a requests.Session loop"])
    print(f"{'':48} {'':>15}  {'vs anymail':>10}  {'vs floor':>8}")
    for name, times in results.items():
        median = statistics.median(times)
        print(
            f"{name:48} {median * 1e6:7.0f} us/message  {median / baseline:10.2f}  "
            f"{median / floor:8.2f}"
        )
    print(
        f"({args.rounds} rounds x {args.batch} messages, rotated; {logged_rows} log rows written)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
