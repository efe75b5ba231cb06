"""Bounce and complaint rates over the last 7 days, per account mode and per mailer.

Why: docs/internals.md#reputation-the-7-day-rates
"""

from __future__ import annotations

import datetime
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from ..conf.thresholds import Thresholds
from ..error_table import SPECS_BY_CODE
from ..exceptions import SendFleetSoftBounce
from ..models import rollups
from ..models.log_status import LogStatus
from ..outcome import UNKNOWN as UNKNOWN_OUTCOME
from .levels import UNKNOWN, level_for, worst

WINDOW_DAYS = 7
SHARED = "shared"
BYOC = "byoc"

_ACCEPTED = frozenset(
    {LogStatus.QUEUED, LogStatus.DELIVERED, LogStatus.BOUNCED, LogStatus.COMPLAINED}
)
#: A ``failed`` row with one of these codes was failed by an ``email.failed`` event after
#: SendFleet accepted it: blank for a send answered 200, or an outcome a later event resolved.
_FAILED_AFTER_SENDING = frozenset(
    {""}
    | {spec.code for spec in SPECS_BY_CODE.values() if spec.recipient_status == UNKNOWN_OUTCOME}
)


@dataclass(frozen=True)
class Counts:
    sends: int = 0
    hard_bounces: int = 0
    complaints: int = 0

    def __add__(self, other: Counts) -> Counts:
        return Counts(
            self.sends + other.sends,
            self.hard_bounces + other.hard_bounces,
            self.complaints + other.complaints,
        )


def counts_of(status: str, error_code: str, rows: int) -> Counts:
    """What ``rows`` send log rows with this status and error code count for."""
    if status == LogStatus.FAILED and error_code in _FAILED_AFTER_SENDING:
        return Counts(sends=rows)
    if status not in _ACCEPTED:
        return Counts()
    hard = status == LogStatus.BOUNCED and error_code != SendFleetSoftBounce.error_code
    return Counts(
        sends=rows,
        hard_bounces=rows if hard else 0,
        complaints=rows if status == LogStatus.COMPLAINED else 0,
    )


@dataclass(frozen=True)
class Rate:
    """One rate of one scope, and what it means."""

    events: int
    sends: int
    #: events / sends; None when no event can inform it (or nothing was sent).
    value: float | None
    level: str
    thresholds: tuple[float, float]
    #: Why the level is unknown (empty otherwise).
    reason: str = ""

    @property
    def shown(self) -> str:
        """The rate as people read it: "2.41 %", or "unknown"."""
        return percent(self.value)


@dataclass(frozen=True)
class Rates:
    """The two rates of an account mode (``mailer`` None) or of one mailer in it."""

    mode: str
    mailer: str | None
    counts: Counts
    bounce: Rate
    complaint: Rate

    @property
    def level(self) -> str:
        return worst(self.bounce.level, self.complaint.level)


@dataclass(frozen=True)
class Snapshot:
    """Every rate of the window ``first_day``..``last_day``."""

    first_day: datetime.date
    last_day: datetime.date
    thresholds: Thresholds
    #: Per account mode: what SendFleet (or AWS) judges.
    accounts: dict[str, Rates] = field(default_factory=dict)
    #: Per (mode, mailer): where the bounces come from.
    mailers: dict[tuple[str, str], Rates] = field(default_factory=dict)
    #: Per day and mode: the trend.
    days: dict[datetime.date, dict[str, Counts]] = field(default_factory=dict)

    def modes_of(self, mailer: str) -> set[str]:
        """The modes this mailer sent in during the window; every mode if it sent nothing."""
        modes = {mode for mode, alias in self.mailers if alias == mailer}
        return modes or set(self.accounts)


def compute(
    thresholds: Thresholds, events_arrive: bool, today: datetime.date | None = None
) -> Snapshot:
    """The rates of the ``WINDOW_DAYS`` days ending ``today``, from the rollups.

    ``events_arrive``: whether delivery events can reach the app (``WEBHOOK_SECRET`` is set);
    they never do for BYOC.
    """
    last_day = today or rollups.today()
    first_day = last_day - datetime.timedelta(days=WINDOW_DAYS - 1)
    by = ("day", "mailer", "mode", "status", "error_code")
    rows = rollups.totals(first_day, last_day, by=by)
    return summarise(first_day, last_day, rows.items(), thresholds, events_arrive)


def summarise(
    first_day: datetime.date,
    last_day: datetime.date,
    rows: Iterable[tuple[tuple[datetime.date, str, str, str, str], int]],
    thresholds: Thresholds,
    events_arrive: bool,
) -> Snapshot:
    accounts: dict[str, Counts] = defaultdict(Counts)
    mailers: dict[tuple[str, str], Counts] = defaultdict(Counts)
    days: dict[datetime.date, dict[str, Counts]] = {
        first_day + datetime.timedelta(days=n): defaultdict(Counts) for n in range(WINDOW_DAYS)
    }
    for (day, mailer, mode, status, error_code), sends in rows:
        counts = counts_of(status, error_code, sends)
        if not counts.sends or not mode or day not in days:
            continue  # not sent, or dated in the future (clock skew)
        accounts[mode] += counts
        if mailer:  # rows logged without an alias count for the account only
            mailers[(mode, mailer)] += counts
        days[day][mode] += counts
    snapshot = Snapshot(first_day, last_day, thresholds)
    for mode, counts in accounts.items():
        snapshot.accounts[mode] = rates_of(mode, None, counts, thresholds, events_arrive)
    for (mode, mailer), counts in mailers.items():
        snapshot.mailers[(mode, mailer)] = rates_of(mode, mailer, counts, thresholds, events_arrive)
    snapshot.days.update({day: dict(by_mode) for day, by_mode in days.items()})
    return snapshot


def rates_of(
    mode: str,
    mailer: str | None,
    counts: Counts,
    thresholds: Thresholds,
    events_arrive: bool,
) -> Rates:
    # Events inform the figure; below MIN_SENDS it is shown, but not judged.
    informed = mode == SHARED and events_arrive
    unknown = why_unknown(mode, counts, thresholds, events_arrive)
    return Rates(
        mode,
        mailer,
        counts,
        _rate(counts.hard_bounces, counts.sends, thresholds.bounce, thresholds, informed, unknown),
        _rate(counts.complaints, counts.sends, thresholds.complaint, thresholds, informed, unknown),
    )


def why_unknown(mode: str, counts: Counts, thresholds: Thresholds, events_arrive: bool) -> str:
    """Why these counts cannot be judged, or "" when they can."""
    if mode != SHARED:
        return (
            "SendFleet sends no delivery events for BYOC: see the rates in your own AWS SES "
            "account (its reputation dashboard)"
        )
    if not events_arrive:
        return "SENDFLEET['WEBHOOK_SECRET'] is not set, so no bounce or complaint event arrives"
    if not counts.sends:
        return f"nothing was sent in {WINDOW_DAYS} days"
    if counts.sends < thresholds.min_sends:
        return (
            f"{counts.sends} send(s) in {WINDOW_DAYS} days, fewer than "
            f"SENDFLEET['REPUTATION']['MIN_SENDS'] ({thresholds.min_sends})"
        )
    return ""


def _rate(
    events: int,
    sends: int,
    levels: tuple[float, float],
    thresholds: Thresholds,
    informed: bool,
    unknown: str,
) -> Rate:
    value = events / sends if informed and sends else None
    if unknown or value is None:
        return Rate(events, sends, value, UNKNOWN, levels, unknown)
    return Rate(
        events, sends, value, level_for(value, levels, events, thresholds.min_events), levels
    )


def percent(value: float | None) -> str:
    """A rate as people read it: "2.41 %", "0.083 %", or "unknown"."""
    if value is None:
        return "unknown"
    digits = 3 if 0 < value < 0.01 else 2
    return f"{value * 100:.{digits}f} %"


def by_level(rates: Mapping[str, Rates]) -> list[Rates]:
    """Account modes, Shared first: the one SendFleet judges."""
    return sorted(rates.values(), key=lambda r: (r.mode != SHARED, r.mode))
