"""The sandbox's default world: one key, domain and address for every documented outcome.

The keys are fixed so docs, demos and tests can name them. They are sandbox keys: they mean
nothing to the real SendFleet.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .plans import BYOC, DEFAULT_PLAN, SHARED, get_plan
from .world import Account, ApiKey, Domain

if TYPE_CHECKING:
    from .state import SandboxState

DEFAULT_ACCOUNT = "default"

# Keys of the "default" account.
SANDBOX_API_KEY = "sbxlive1.LiveSandboxKeyForLocalTesting001"
REVOKED_API_KEY = "sbxrevk1.RevokedSandboxKeyAnswers40100000"
EXPIRED_API_KEY = "sbxexpd1.ExpiredSandboxKeyAnswers40100000"

# Keys of accounts whose state is the only thing wrong with them.
UNAPPROVED_API_KEY = "sbxunap1.UnapprovedAccountAnswers40300000"
SUSPENDED_API_KEY = "sbxsusp1.SuspendedAccountAnswers403000000"
BYOC_BROKEN_API_KEY = "sbxbyoc1.BrokenByocRelayAnswers5030000000"
QUOTA_API_KEY = "sbxquot1.QuotaOfThreeThenAnswers429000000"
QUOTA_ACCOUNT_LIMIT = 3

# Domains of the "default" account.
VERIFIED_DOMAIN = "example.com"
NO_SPF_DOMAIN = "nospf.example.com"  # verified, but no SPF or DMARC: accepted with warnings
UNVERIFIED_DOMAIN = "unverified.example"  # domain_not_verified
NO_DKIM_DOMAIN = "nodkim.example"  # dkim_not_verified
# One domain in each sending mode: the one that doesn't match the plan's mode answers
# domain_mode_mismatch (byoc.example on the Shared plans, shared.example on the BYOC ones).
BYOC_DOMAIN = "byoc.example"
SHARED_DOMAIN = "shared.example"
UNREGISTERED_DOMAIN = "unregistered.example"  # domain_not_registered: never added

SUPPRESSED_EMAIL = "suppressed@example.net"


def mode_mismatch_domain(plan: str) -> str:
    """The ready-made domain whose mode doesn't match ``plan``: domain_mode_mismatch."""
    return BYOC_DOMAIN if get_plan(plan).mode == SHARED else SHARED_DOMAIN


def populate(state: SandboxState, plan: str = DEFAULT_PLAN) -> None:
    """The default account on ``plan``, with its keys, domains (in the plan's mode) and a
    suppressed address; and one account for each account-level error."""
    mode = get_plan(plan).mode
    state.add_account(Account(DEFAULT_ACCOUNT, plan=plan))
    state.add_key(ApiKey(SANDBOX_API_KEY))
    state.add_key(ApiKey(REVOKED_API_KEY, state="revoked"))
    state.add_key(ApiKey(EXPIRED_API_KEY, state="expired"))
    state.add_domain(Domain(VERIFIED_DOMAIN, mode=mode))
    state.add_domain(Domain(NO_SPF_DOMAIN, mode=mode, spf_verified=False, dmarc=False))
    state.add_domain(Domain(UNVERIFIED_DOMAIN, state="txt_unverified", mode=mode))
    state.add_domain(Domain(NO_DKIM_DOMAIN, state="dkim_unverified", mode=mode))
    state.add_domain(Domain(BYOC_DOMAIN, mode=BYOC))
    state.add_domain(Domain(SHARED_DOMAIN, mode=SHARED))
    state.suppress(SUPPRESSED_EMAIL)

    for name, key, state_name, account_plan, quota in (
        ("unapproved", UNAPPROVED_API_KEY, "unapproved", "growth", None),
        ("suspended", SUSPENDED_API_KEY, "suspended", "growth", None),
        ("byoc_broken", BYOC_BROKEN_API_KEY, "byoc_broken", "byoc", None),
        ("quota", QUOTA_API_KEY, "active", "growth", QUOTA_ACCOUNT_LIMIT),
    ):
        state.add_account(Account(name, state=state_name, plan=account_plan, quota=quota))
        state.add_key(ApiKey(key, account=name))
        state.add_domain(Domain(VERIFIED_DOMAIN, account=name, mode=get_plan(account_plan).mode))
