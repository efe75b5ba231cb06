"""The demo's reputation guard part (docs/reputation.md), run by ``python -m testproject.demo``.

A newsletter mailer marked ``bulk`` (before Django 6.1: a connection opened with ``bulk=True``)
sends a first wave with a share of addresses the sandbox bounces; its bounce events reach
testproject's webhook view and the account's bounce rate crosses into danger. The second wave is
then held (queued rows stay ``pending`` with the reason; before 6.1 the synchronous send is
refused and failed, and the message says so), while a password reset from the default,
transactional, mailer still goes out.
"""

from __future__ import annotations

import textwrap
import time
from typing import Any

import django

WAVE_ONE = 8  # of which BOUNCING bounce: 37.5 %, far past SES's 5 % review level
BOUNCING = 3  # MIN_EVENTS (default 3): fewer bounces are never danger
WAVE_TWO = 5


def wait_for_events(sandbox: Any, timeout: float = 30) -> None:
    """Until the sandbox has posted its events and the web server has applied them (the view
    answers each event first and applies it right after)."""
    from django_sendfleet.models import WebhookEvent

    sandbox.wait_for_webhooks(timeout=timeout)
    deadline = time.monotonic() + timeout
    unapplied = WebhookEvent.objects.filter(outcome__in=["pending", "failed"])
    while unapplied.exists() and time.monotonic() < deadline:
        time.sleep(0.05)


def run(sandbox: Any) -> list[str]:
    """Send the campaign and the reset; return the story to print."""
    from django.test.utils import override_settings

    mailers: dict[str, Any] = {}
    if django.VERSION >= (6, 1):
        mailers["MAILERS"] = {
            "default": {"BACKEND": "django_sendfleet.backends.EmailBackend"},
            "newsletter": {
                "BACKEND": "django_sendfleet.backends.QueuedEmailBackend",
                "OPTIONS": {"bulk": True},
            },
        }
    # testproject's settings judge the rates from 8 sends (SENDFLEET["REPUTATION"]).
    with override_settings(**mailers):
        return _story(sandbox)


def _story(sandbox: Any) -> list[str]:
    from django.core.mail import EmailMessage, get_connection, send_mail

    from django_sendfleet import signals
    from django_sendfleet.exceptions import SendFleetReputationHold
    from django_sendfleet.queued.held import held_rows
    from django_sendfleet.reputation import state as reputation_state
    from django_sendfleet.reputation.guard import HOLD_RECHECK
    from django_sendfleet.reputation.rates import percent

    queued = django.VERSION >= (6, 1)
    bulk = "a mailer marked bulk" if queued else "a connection opened with bulk=True"
    lines = [f"Reputation guard: a newsletter ({bulk}) with bouncing addresses"]

    def announce(sender: type, mode: str, mailer: str | None, level: str, **kwargs: Any) -> None:
        if mailer is None:
            rates = kwargs["rates"]
            lines.append(
                f"  reputation_changed: {mode} account {kwargs['previous']} -> {level} (bounce "
                f"rate {rates.bounce.shown}, danger at {percent(rates.bounce.thresholds[1])})"
            )

    def newsletter(addresses: list[str]) -> None:
        messages = [EmailMessage("Our news", "Hello!", None, [to]) for to in addresses]
        if queued:  # the queued backend: the worker holds what the guard stops
            from django.core import mail

            mail.mailers["newsletter"].send_messages(messages)
        else:  # one connection opened bulk: the default mailer itself stays transactional
            get_connection(bulk=True).send_messages(messages)

    signals.reputation_changed.connect(announce, weak=False)
    try:
        wave = [f"reader{n}@example.com" for n in range(WAVE_ONE - BOUNCING)]
        wave += [f"bounce+{n}@example.com" for n in range(BOUNCING)]
        newsletter(wave)
        wait_for_events(sandbox)
        lines.append(f"  wave 1: {WAVE_ONE} sent, {BOUNCING} of them to addresses that hard-bounce")
        reputation_state.check_now()  # what every sending process does every few seconds
        try:
            newsletter([f"reader{n}@example.com" for n in range(100, 100 + WAVE_TWO)])
            statuses = sorted(set(held_rows().values_list("status", "error_code")))
            lines.append(
                f"  wave 2: {held_rows().count()} of {WAVE_TWO} held in the outbox, not failed "
                f"(status, error_code: {statuses}); the worker looks at the level again every "
                f"{HOLD_RECHECK.seconds // 60} minutes"
            )
        except SendFleetReputationHold as hold:  # before Django 6.1: the synchronous backend
            lines.append("  wave 2: refused with SendFleetReputationHold, every recipient failed:")
            lines += textwrap.wrap(hold.detail, 96, initial_indent="    ", subsequent_indent="    ")
        reset = send_mail("Reset your password", "Click the link.", None, ["ann@example.com"])
        lines.append(
            f"  a password reset from the default (transactional) mailer: "
            f"{'sent' if reset else 'not sent'}"
        )
    finally:
        signals.reputation_changed.disconnect(announce)
    if queued:
        lines.append(
            "  Release the held sends on the admin dashboard (Reputation panel), or they go out "
            "once the level falls."
        )
    return lines
