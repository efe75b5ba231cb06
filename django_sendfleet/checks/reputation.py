"""``sendfleet_check``'s reputation line: each account mode's bounce and complaint rates over
the last 7 days against their thresholds (``reputation.py``), and the sends held for them.

A rate at warning or danger is a warning, not an error: email still goes out (transactional
mail always), and a deploy should not fail because of last week's list. ``--json`` carries
every figure for monitoring.
"""

from __future__ import annotations

from typing import Any

from django.apps import apps
from django.db import DatabaseError

from ..exceptions import SendFleetConfigurationError
from ..queued.held import held_count
from ..reputation import state as reputation_state
from ..reputation.levels import DANGER, HEALTHY, UNKNOWN, worst
from ..reputation.rates import WINDOW_DAYS, Rate, Rates, Snapshot, percent
from .check_result import OK, WARNING, CheckResult

FIX = (
    "See where the bounces and complaints come from on the admin dashboard (the mailer, the "
    "domains) and clean the lists; mark newsletters and campaigns BULK so that they stop at "
    "danger (docs/reputation.md)."
)


def check_reputation() -> CheckResult | None:
    if not apps.is_installed("django_sendfleet"):
        return None
    try:
        seen = reputation_state.check_now()
        held = held_count()
    except SendFleetConfigurationError:
        return None  # check_settings reports it
    except DatabaseError as error:
        seen, held = None, 0
        reason = f"{type(error).__name__}: {error}"
    else:
        reason = "see the log"
    if seen is None:
        return CheckResult("reputation", WARNING, f"the rates could not be read ({reason})")
    snapshot = seen.snapshot
    data = as_data(snapshot, held)
    if not snapshot.accounts:
        return CheckResult("reputation", OK, f"no sends in the last {WINDOW_DAYS} days", data=data)
    level = worst(*(rates.level for rates in snapshot.accounts.values()))
    message = "; ".join(describe(rates) for rates in snapshot.accounts.values())
    if held:
        message += f"; {held} bulk send(s) held"
    if level in (UNKNOWN, HEALTHY):
        return CheckResult("reputation", OK, message, data=data)
    return CheckResult("reputation", WARNING, message, FIX, data)


def describe(rates: Rates) -> str:
    """One account mode's line: its level, each rate against its thresholds, its sends."""
    if rates.bounce.value is None:
        return f"{rates.mode}: unknown ({rates.bounce.reason})"
    figures = f"bounce rate {_against(rates.bounce)}, complaint rate {_against(rates.complaint)}"
    level = rates.level if rates.level != UNKNOWN else f"unknown ({rates.bounce.reason})"
    held = " (bulk mailers held)" if rates.level == DANGER else ""
    return f"{rates.mode}: {level}{held}, {figures}, {rates.counts.sends} send(s)"


def _against(rate: Rate) -> str:
    warning, danger = rate.thresholds
    return f"{percent(rate.value)} (warning {percent(warning)}, danger {percent(danger)})"


def as_data(snapshot: Snapshot, held: int) -> dict[str, Any]:
    def scope(rates: Rates) -> dict[str, Any]:
        return {
            "level": rates.level,
            "sends": rates.counts.sends,
            "hard_bounces": rates.counts.hard_bounces,
            "complaints": rates.counts.complaints,
            **{
                name: {
                    "rate": rate.value,
                    "level": rate.level,
                    "warning": rate.thresholds[0],
                    "danger": rate.thresholds[1],
                    "unknown_because": rate.reason,
                }
                for name, rate in (("bounce", rates.bounce), ("complaint", rates.complaint))
            },
        }

    return {
        "window_days": WINDOW_DAYS,
        "first_day": snapshot.first_day.isoformat(),
        "last_day": snapshot.last_day.isoformat(),
        "modes": {mode: scope(rates) for mode, rates in snapshot.accounts.items()},
        "mailers": {
            f"{mode}:{mailer}": {"mode": mode, "mailer": mailer, **scope(rates)}
            for (mode, mailer), rates in snapshot.mailers.items()
        },
        "held_bulk_sends": held,
    }
