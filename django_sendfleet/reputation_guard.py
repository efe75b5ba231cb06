"""The reputation guard at send time: bulk mailers stop while the account is at danger.

A mailer with ``BULK: True`` (a newsletter, a campaign) does not send while a rate of the
account mode it sends in is at ``danger`` (``reputation_levels.py``), unless an operator has
released that danger. Its sends are not attempted: the synchronous backend raises
``SendFleetReputationHold``; the queued worker holds the row (``pending``, with the reason)
and looks again after ``HOLD_RECHECK``, so nothing is dropped. Transactional mailers (the
default) are never held: password resets keep going out while the newsletter waits.

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

from . import reputation_state
from .conf import SendFleetSettings
from .exceptions import SendFleetReputationHold
from .reputation import Rates, percent
from .reputation_levels import DANGER

logger = logging.getLogger("django_sendfleet")

#: How long the worker holds a bulk row before looking at the level again.
HOLD_RECHECK = timedelta(minutes=5)


class ReputationGuard:
    """One mailer's view of the reputation levels, for each of its sends."""

    def __init__(self, mailer: str, bulk: bool) -> None:
        self.mailer = mailer
        self.bulk = bulk

    @classmethod
    def for_mailer(cls, mailer: str, settings: SendFleetSettings) -> ReputationGuard | None:
        """None where there is no send log to count from."""
        if not apps.is_installed("django_sendfleet"):
            return None
        return cls(mailer, settings.bulk)

    def __repr__(self) -> str:
        return f"<ReputationGuard {self.mailer} bulk={self.bulk}>"

    def hold(self) -> SendFleetReputationHold | None:
        """The error that holds this send, or None: it may go."""
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
            f"Mailer {self.mailer!r} is marked BULK and the account's reputation is at danger "
            f"({figures}, last 7 days): bulk email waits until the level falls or an operator "
            "releases it from the admin dashboard. Transactional mailers keep sending."
        )
