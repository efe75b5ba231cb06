"""Which mailers an event may touch: those of the account whose webhook secret signed it.

A project with two SendFleet accounts gives each mailer its account's secret (``MAILERS``
``OPTIONS`` ``webhook_secret``; mailers without one use ``SENDFLEET["WEBHOOK_SECRET"]``). An
event signed with one account's secret then moves only rows of that account's mailers, and
suppresses only such a row's own recipient, never an address another account's event names.
With one secret for every mailer (one account), events are bound to no mailer in particular.
"""

from __future__ import annotations

import hmac
import json
from dataclasses import dataclass

from ..conf import SendFleetSettings, mailer_options
from ..conf.mailers import backend_path, configured_mailers, is_sendfleet_backend
from ..credentials.secret import Secret, reveal


@dataclass(frozen=True)
class SigningAccounts:
    """Every accepted secret, with the mailers each may touch (None: every mailer)."""

    secrets: tuple[Secret[str], ...]
    mailers: tuple[frozenset[str] | None, ...]

    def mailers_for(self, signed: list[bool]) -> frozenset[str] | None:
        """The mailers the matching secrets are bound to (``signed[i]``: secret i signed)."""
        bound = [self.mailers[i] for i, match in enumerate(signed) if match]
        union: frozenset[str] = frozenset()
        for mailers in bound:
            if mailers is None:
                return None
            union |= mailers
        return union


def signing_accounts(project: SendFleetSettings) -> SigningAccounts:
    """The project's secrets, and each SendFleet mailer's own."""
    own: dict[str, tuple[Secret[str], ...]] = {}
    for alias, config in configured_mailers().items():
        # The options first: looking a backend up is the dearer check, and every webhook
        # request asks (with one project-wide secret, no mailer names one).
        options = {str(name).lower() for name in (config.get("OPTIONS") or {})}
        if "webhook_secret" in options and is_sendfleet_backend(backend_path(alias)):
            own[alias] = SendFleetSettings(mailer_options(alias)).webhook_secrets
    if not own:
        return SigningAccounts(project.webhook_secrets, (None,) * len(project.webhook_secrets))
    sendfleet_mailers = {
        alias for alias in configured_mailers() if is_sendfleet_backend(backend_path(alias))
    }
    shared = frozenset(sendfleet_mailers - set(own))
    secrets: list[Secret[str]] = []
    mailers: list[set[str]] = []

    def bind(secret: Secret[str], to: set[str] | frozenset[str]) -> None:
        for i, known in enumerate(secrets):
            if hmac.compare_digest(reveal(known).encode(), reveal(secret).encode()):
                mailers[i] |= to
                return
        secrets.append(secret)
        mailers.append(set(to))

    for secret in project.webhook_secrets:
        bind(secret, shared)
    for alias, alias_secrets in own.items():
        for secret in alias_secrets:
            bind(secret, {alias})
    return SigningAccounts(tuple(secrets), tuple(frozenset(m) for m in mailers))


def bound_to(mailers: frozenset[str] | None) -> str:
    """``WebhookEvent.mailers``: "" for every mailer, else the aliases as a JSON list (an alias
    may hold any character, a comma included)."""
    return "" if mailers is None else json.dumps(sorted(mailers))


def mailers_of(stored_mailers: str) -> frozenset[str] | None:
    """The mailers a stored event may touch; None for every mailer (``bound_to``)."""
    return None if not stored_mailers else frozenset(json.loads(stored_mailers))
