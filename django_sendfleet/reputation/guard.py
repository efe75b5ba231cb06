"""The reputation guard at send time: bulk mailers stop while the account is at danger.

A mailer with ``BULK: True`` (a newsletter, a campaign) does not send while a rate of the
account mode it sends in is at ``danger`` (``reputation_levels.py``), unless an operator has
released that danger. Its sends are not attempted: the synchronous backend raises
``SendFleetReputationHold`` and the send is failed (it does not wait); the queued worker holds
the row (``pending``, with the reason) and looks again after ``HOLD_RECHECK``, so nothing is
dropped. Transactional mailers (the default) are never held: password resets keep going out
while the newsletter waits. The hold's message names what made the send bulk (a mailer's
``OPTIONS``, a connection's ``bulk=True`` or ``SENDFLEET["BULK"]``) and what became of it.

Every send asks ``reputation_state.current()``, which refreshes this process's figures at most
every few seconds (that is when level changes are noticed and announced); the check itself is
a few attribute reads. A hold is confirmed against the stored levels before it is made.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import timedelta

from django.apps import apps
from django.utils import timezone

from ..conf import SendFleetSettings, mailer_options
from ..exceptions import SendFleetReputationHold
from . import state as reputation_state
from .levels import DANGER
from .rates import Rates, percent

logger = logging.getLogger("django_sendfleet")

#: How long the worker holds a bulk row before looking at the level again.
HOLD_RECHECK = timedelta(minutes=5)


class ReputationGuard:
    """One mailer's view of the reputation levels, for each of its sends."""

    def __init__(self, mailer: str, bulk: bool, made_bulk_by: str = "") -> None:
        self.mailer = mailer
        self.bulk = bulk
        #: What made these sends bulk, as the hold's message says it.
        self.made_bulk_by = made_bulk_by or f"Mailer {mailer!r} is marked bulk"

    @classmethod
    def for_mailer(cls, mailer: str, settings: SendFleetSettings) -> ReputationGuard | None:
        """None where there is no send log to count from."""
        if not apps.is_installed("django_sendfleet"):
            return None
        bulk = settings.bulk
        return cls(mailer, bulk, made_bulk_by(mailer, settings) if bulk else "")

    def __repr__(self) -> str:
        return f"<ReputationGuard {self.mailer} bulk={self.bulk}>"

    def hold(self) -> SendFleetReputationHold | None:
        """The error that holds this send, or None: it may go. Its message says why; the send
        path ends it with what became of the send (``say_what_happens``)."""
        seen = reputation_state.current()  # also keeps the levels current for everyone
        if not self.bulk or seen is None:
            return None
        snapshot = seen.snapshot
        modes = {
            mode
            for mode in snapshot.modes_of(self.mailer)
            if mode not in seen.released and snapshot.accounts[mode].level == DANGER
        }
        if not modes:
            return None
        try:
            with reputation_state.savepoint_in_callers_transaction():
                modes = reputation_state.held_modes(modes)
        except Exception:  # as for the figures: never stop a send for want of them
            logger.exception("SendFleet could not confirm a reputation hold; sending")
            return None
        if not modes:
            return None
        return SendFleetReputationHold(
            self._reason(modes, snapshot.accounts),
            held_until=timezone.now() + HOLD_RECHECK,
        )

    def _reason(self, modes: set[str], accounts: Mapping[str, Rates]) -> str:
        figures = "; ".join(
            f"{mode}: bounce rate {percent(accounts[mode].bounce.value)}, complaint rate "
            f"{percent(accounts[mode].complaint.value)}"
            for mode in sorted(modes)
        )
        return (
            f"{self.made_bulk_by}, and the account's reputation is at danger ({figures}, "
            "last 7 days)"
        )


def made_bulk_by(mailer: str, settings: SendFleetSettings) -> str:
    """Which setting made a mailer's sends bulk, in the words of a hold's message.

    A mailer's own ``bulk`` option is either its ``MAILERS`` ``OPTIONS`` (Django 6.1) or the
    keyword its connection was opened with (``get_connection(bulk=True)``); the send is told
    which, so that a hold never blames a mailer that is not marked bulk.
    """
    if not settings.given("BULK"):
        return "SENDFLEET['BULK'] is True, which makes every mailer's sends bulk"
    options = mailer_options(mailer)
    if "bulk" in options and SendFleetSettings(options).bulk:
        return f"Mailer {mailer!r} is marked bulk in its MAILERS OPTIONS"
    return f"This connection (mailer {mailer!r}) was opened with bulk=True"


def say_what_happens(hold: SendFleetReputationHold, *, waits: bool) -> None:
    """End the hold's message with what becomes of the send, once the send path knows: a
    queued send waits in the outbox, a synchronous one is failed and is not sent later."""
    if waits:
        outcome = (
            "this queued send waits in the outbox until the level falls below danger or an "
            "operator releases it on the admin dashboard (Reputation panel)"
        )
    else:
        outcome = (
            "this synchronous send was not attempted and is failed; nothing sends it later. "
            "Send it again once the level falls below danger or the danger is released "
            "(reputation_release.release_held_sends()), or send bulk mail through "
            "QueuedEmailBackend, whose sends wait instead"
        )
    hold.detail = f"{hold.detail}: {outcome}. Transactional mailers keep sending."
    hold.args = (hold.detail,)
