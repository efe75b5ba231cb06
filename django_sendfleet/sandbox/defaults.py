"""The sandbox's default world: one key, domain and address for every documented outcome.

The keys are fixed so docs, demos and tests can name them. They are sandbox keys: they mean
nothing to the real SendFleet.
"""

from __future__ import annotations

from .state import Account, ApiKey, Domain, SandboxState

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
BYOC_DOMAIN = "byoc.example"  # domain_mode_mismatch (the account's plan is Shared)
UNREGISTERED_DOMAIN = "unregistered.example"  # domain_not_registered: never added

SUPPRESSED_EMAIL = "suppressed@example.net"


def populate(state: SandboxState) -> None:
    state.add_account(Account(DEFAULT_ACCOUNT))
    state.add_key(ApiKey(SANDBOX_API_KEY))
    state.add_key(ApiKey(REVOKED_API_KEY, state="revoked"))
    state.add_key(ApiKey(EXPIRED_API_KEY, state="expired"))
    state.add_domain(Domain(VERIFIED_DOMAIN))
    state.add_domain(Domain(NO_SPF_DOMAIN, spf_verified=False, dmarc=False))
    state.add_domain(Domain(UNVERIFIED_DOMAIN, state="txt_unverified"))
    state.add_domain(Domain(NO_DKIM_DOMAIN, state="dkim_unverified"))
    state.add_domain(Domain(BYOC_DOMAIN, mode="byoc"))
    state.suppress(SUPPRESSED_EMAIL)

    for name, key, state_name, plan_mode, quota in (
        ("unapproved", UNAPPROVED_API_KEY, "unapproved", "shared", 25000),
        ("suspended", SUSPENDED_API_KEY, "suspended", "shared", 25000),
        ("byoc_broken", BYOC_BROKEN_API_KEY, "byoc_broken", "byoc", 25000),
        ("quota", QUOTA_API_KEY, "active", "shared", QUOTA_ACCOUNT_LIMIT),
    ):
        state.add_account(Account(name, state=state_name, plan_mode=plan_mode, quota=quota))
        state.add_key(ApiKey(key, account=name))
        state.add_domain(Domain(VERIFIED_DOMAIN, account=name, mode=plan_mode))
