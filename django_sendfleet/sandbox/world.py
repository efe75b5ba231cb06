"""What a sandbox knows about its customers: accounts (each on a plan), API keys and domains."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

from .plans import DEFAULT_PLAN, SENDING_MODES, Plan, get_plan

ACCOUNT_STATES = ("active", "unapproved", "suspended", "byoc_broken")
KEY_STATES = ("valid", "revoked", "expired")
DOMAIN_STATES = ("verified", "txt_unverified", "dkim_unverified")

# The login address of accounts created without one. Its domain is never registered, which
# is what makes a send without from_email fail with domain_not_registered.
LOGIN_EMAIL_DOMAIN = "login.sendfleet.invalid"


def check_choice(value: str, choices: tuple[str, ...], what: str) -> None:
    if value not in choices:
        raise ValueError(f"Unknown {what} {value!r}: choose one of {', '.join(choices)}.")


def domain_key(name: str) -> str:
    """Compare domains case-insensitively and IDN-insensitively (bücher.de == xn--bcher-kva.de)."""
    name = name.strip().rstrip(".").lower()
    try:
        return name.encode("idna").decode("ascii")
    except UnicodeError:
        return name


def key_prefix(key: str) -> str:
    """The public part of a key (before the dot): the only part the sandbox ever records."""
    prefix, dot, _secret = key.partition(".")
    return prefix if dot else ""


@dataclass
class Account:
    """One SendFleet account. ``quota`` overrides the plan's monthly quota when not None."""

    name: str
    state: str = "active"  # one of ACCOUNT_STATES
    plan: str = DEFAULT_PLAN  # a name from plans.PLANS
    quota: int | None = None
    login_email: str = ""
    used: int = 0  # sends accepted in ``used_month``
    used_month: str = ""  # "YYYY-MM" that ``used`` counts; another month starts from 0
    suppressed: set[str] = field(default_factory=set)
    #: Times (sandbox clock, epoch seconds) of recent sends the usage count may not show yet.
    recent_sends: deque[float] = field(default_factory=deque, repr=False)

    def __post_init__(self) -> None:
        check_choice(self.state, ACCOUNT_STATES, "account state")
        get_plan(self.plan)
        if self.quota is not None and self.quota < 0:
            raise ValueError("A monthly quota is a number of sends >= 0.")
        self.login_email = self.login_email or f"{self.name}@{LOGIN_EMAIL_DOMAIN}"
        self.suppressed = {email.lower() for email in self.suppressed}

    @property
    def plan_info(self) -> Plan:
        return get_plan(self.plan)

    @property
    def plan_mode(self) -> str:
        return self.plan_info.mode

    @property
    def monthly_quota(self) -> int | None:
        """Sends allowed a calendar month (UTC); None: SendFleet sets no cap."""
        return self.quota if self.quota is not None else self.plan_info.monthly_quota

    def used_in(self, month: str) -> int:
        return self.used if self.used_month == month else 0

    def usage_seen(self, month: str, now: float, lag: float) -> int:
        """The usage count the quota check reads: sends within the last ``lag`` seconds are
        not in it yet."""
        self._forget_older_than(now - lag)
        return max(0, self.used_in(month) - len(self.recent_sends))

    def count_send(self, month: str, now: float, lag: float) -> None:
        self.used = self.used_in(month) + 1
        self.used_month = month
        self._forget_older_than(now - lag)
        if lag > 0:
            self.recent_sends.append(now)

    def _forget_older_than(self, when: float) -> None:
        while self.recent_sends and self.recent_sends[0] <= when:
            self.recent_sends.popleft()

    def forget_usage(self) -> None:
        self.used = 0
        self.recent_sends.clear()


@dataclass
class ApiKey:
    key: str
    state: str = "valid"  # one of KEY_STATES
    account: str = "default"

    def __post_init__(self) -> None:
        check_choice(self.state, KEY_STATES, "key state")


@dataclass
class Domain:
    name: str
    account: str = "default"
    state: str = "verified"  # one of DOMAIN_STATES
    mode: str = "shared"  # one of SENDING_MODES
    spf_verified: bool = True
    dmarc: bool = True

    def __post_init__(self) -> None:
        self.name = self.name.strip().lower()
        check_choice(self.state, DOMAIN_STATES, "domain state")
        check_choice(self.mode, SENDING_MODES, "domain mode")
