"""Run a sandbox from the command line: ``python -m django_sendfleet.sandbox --help``."""

from __future__ import annotations

import argparse
import ipaddress
import logging
import os
import signal
import sys
import threading
from collections.abc import Sequence

from . import (
    BYOC_BROKEN_API_KEY,
    DEFAULT_ACCOUNT,
    EXPIRED_API_KEY,
    QUOTA_API_KEY,
    REVOKED_API_KEY,
    SANDBOX_API_KEY,
    SUSPENDED_API_KEY,
    UNAPPROVED_API_KEY,
    Sandbox,
)
from .plans import DEFAULT_PLAN, PLANS, SENDING_MODES
from .world import DOMAIN_STATES


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a host name: we can't promise what it resolves to


def parse_rate_limit(text: str) -> tuple[int, float]:
    """``"60/60"`` -> (60 requests, 60.0 seconds)."""
    try:
        requests, seconds = text.split("/")
        return int(requests), float(seconds)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not REQUESTS/SECONDS, e.g. 60/60.") from None


def parse_domain(text: str) -> tuple[str, str, str]:
    """``"NAME[:state[:mode]]"`` -> (name, state, mode)."""
    parts = text.split(":")
    name = parts[0]
    state = parts[1] if len(parts) > 1 else "verified"
    mode = parts[2] if len(parts) > 2 else ""  # "": the plan's mode
    if len(parts) > 3 or not name or state not in DOMAIN_STATES or mode not in ("", *SENDING_MODES):
        raise argparse.ArgumentTypeError(
            f"{text!r} is not NAME[:STATE[:MODE]] with STATE one of {', '.join(DOMAIN_STATES)} "
            f"and MODE one of {', '.join(SENDING_MODES)}."
        )
    return name, state, mode


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m django_sendfleet.sandbox",
        description="Serve a local SendFleet-compatible API for development and tests.",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8025)
    parser.add_argument(
        "--allow-non-loopback",
        action="store_true",
        help="allow --host to be something other than a loopback address",
    )
    parser.add_argument(
        "--rate-limit",
        type=parse_rate_limit,
        default=(60, 60.0),
        metavar="REQUESTS/SECONDS",
        help="per-key rate limit (default: 60/60)",
    )
    parser.add_argument(
        "--latency", type=float, default=0.0, help="seconds to wait before every answer"
    )
    parser.add_argument(
        "--key", action="append", default=[], help="another valid key for the default account"
    )
    parser.add_argument(
        "--domain",
        type=parse_domain,
        action="append",
        default=[],
        metavar="NAME[:STATE[:MODE]]",
        help="another domain for the default account, e.g. acme.test:verified:shared",
    )
    parser.add_argument(
        "--suppress", action="append", default=[], metavar="EMAIL", help="suppress an address"
    )
    parser.add_argument(
        "--plan",
        choices=list(PLANS),
        default=DEFAULT_PLAN,
        help=f"the default account's SendFleet plan (default: {DEFAULT_PLAN}): its sending mode, "
        "monthly quota, success message and whether it has webhooks",
    )
    parser.add_argument(
        "--quota", type=int, help="monthly quota of the default account (default: the plan's)"
    )
    parser.add_argument(
        "--usage-lag",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="seconds before a send shows in the usage count the quota reads (SendFleet: up "
        "to 30; default: 0)",
    )
    parser.add_argument(
        "--webhook-url",
        help="POST signed delivery events for accepted messages here, e.g. "
        "http://127.0.0.1:8000/sendfleet/webhook/",
    )
    parser.add_argument(
        "--webhook-secret",
        default=os.environ.get("SENDFLEET_WEBHOOK_SECRET", ""),
        help="the signing secret (default: $SENDFLEET_WEBHOOK_SECRET)",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log every request")
    return parser


def build_sandbox(options: argparse.Namespace) -> Sandbox:
    sandbox = Sandbox(
        host=options.host,
        port=options.port,
        rate_limit=options.rate_limit,
        latency=options.latency,
        plan=options.plan,
        usage_lag=options.usage_lag,
    )
    for key in options.key:
        sandbox.add_key(key)
    for name, state, mode in options.domain:
        sandbox.add_domain(name, state=state, mode=mode or None)
    for email in options.suppress:
        sandbox.suppress(email)
    if options.quota is not None:
        sandbox.state.account(DEFAULT_ACCOUNT).quota = options.quota
    return sandbox


def configure_webhook(sandbox: Sandbox, options: argparse.Namespace) -> None:
    if options.webhook_url:
        sandbox.configure_webhook(options.webhook_url, options.webhook_secret)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    options = parser.parse_args(argv)
    if not options.allow_non_loopback and not is_loopback(options.host):
        parser.error(
            f"refusing to serve on {options.host!r}, which is not a loopback address: anyone "
            "who can reach it could use the sandbox. Pass --allow-non-loopback to do it anyway."
        )
    if options.verbose:
        logging.basicConfig(level=logging.DEBUG, format="%(asctime)s %(message)s")

    if options.webhook_url and not options.webhook_secret:
        parser.error("--webhook-url needs --webhook-secret (or $SENDFLEET_WEBHOOK_SECRET).")
    if options.usage_lag < 0 or options.usage_lag > 30:
        parser.error("--usage-lag is 0 to 30 seconds (SendFleet: up to 30).")
    sandbox = build_sandbox(options)
    configure_webhook(sandbox, options)
    try:
        sandbox.start()
    except OSError as exc:
        parser.exit(1, f"Cannot serve on {options.host}:{options.port}: {exc}\n")
    print(f"SendFleet sandbox serving at {sandbox.url}", flush=True)
    plan = sandbox.plan
    quota = sandbox.state.account(DEFAULT_ACCOUNT).monthly_quota
    print(
        f"Plan: {plan.label} ({plan.mode}), "
        + ("no monthly cap" if quota is None else f"{quota:,} sends a month")
        + ("" if plan.has_webhooks else ", no webhooks (BYOC plans have none)")
    )
    print(f"Control API at {sandbox.base_url}/_sandbox/")
    print("Sandbox keys (they only work here):")
    for label, key in (
        ("valid", SANDBOX_API_KEY),
        ("revoked", REVOKED_API_KEY),
        ("expired", EXPIRED_API_KEY),
        ("unapproved account", UNAPPROVED_API_KEY),
        ("suspended account", SUSPENDED_API_KEY),
        ("broken BYOC relay", BYOC_BROKEN_API_KEY),
        ("quota of 3", QUOTA_API_KEY),
        *(("valid (--key)", key) for key in options.key),
    ):
        print(f"  {label:<20} {key}")
    if options.webhook_url:
        print(f"Delivering signed webhook events to {options.webhook_url}")
    print("Press Ctrl-C to stop.", flush=True)

    stopping = threading.Event()
    signal.signal(signal.SIGTERM, lambda signum, frame: stopping.set())
    try:
        while not stopping.wait(0.5):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        sandbox.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
