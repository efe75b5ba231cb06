"""SendFleet's plans, as far as they change what the API answers.

From SendFleet's public pages: a plan is BYOC (email goes out through the customer's own SES
account) or Shared SES; the monthly quotas are Starter BYOC 50, Growth 25,000 and Pro 100,000,
and the paid BYOC plan has no SendFleet cap (SES's own limits apply); webhooks exist on the
Shared SES plans (Growth and Pro) only; a BYOC send is acknowledged with "Email queued for
delivery via your SES account.".
"""

from __future__ import annotations

from dataclasses import dataclass

SHARED = "shared"
BYOC = "byoc"
SENDING_MODES = (SHARED, BYOC)


@dataclass(frozen=True)
class Plan:
    name: str  # as given to --plan and to the fixtures
    label: str  # as SendFleet's pages name it
    mode: str  # SHARED or BYOC: the mode the account's domains must be in
    monthly_quota: int | None  # None: SendFleet sets no cap

    @property
    def has_webhooks(self) -> bool:
        return self.mode == SHARED


PLANS: dict[str, Plan] = {
    plan.name: plan
    for plan in (
        Plan("starter-byoc", "Starter BYOC", BYOC, 50),
        Plan("byoc", "BYOC", BYOC, None),
        Plan("growth", "Growth", SHARED, 25_000),
        Plan("pro", "Pro", SHARED, 100_000),
    )
}
DEFAULT_PLAN = "growth"
#: The plan an account gets when only its sending mode is given.
PLAN_FOR_MODE = {SHARED: "growth", BYOC: "byoc"}


def get_plan(name: str) -> Plan:
    try:
        return PLANS[name]
    except KeyError:
        raise ValueError(f"Unknown plan {name!r}: choose one of {', '.join(PLANS)}.") from None
