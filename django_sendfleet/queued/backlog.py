"""The outbox's backlog, per mailer and priority: for ``sendfleet_check`` and the dashboard.

For each mailer and priority with rows waiting (``pending``): how many, how many of them are
due (the others are held or backing off until ``not_before``), how long ago the oldest due one
was queued, and about how long the key's rate limit needs to send them. One grouped query on
the outbox's partial index, however big the send log is.

The time to drain is an estimate at ``RATE_LIMIT`` (the key's 60 a minute): a mailer's low
rows go after every high row of the same key, and rows of one priority on one key share its
slots, so a group's estimate is the time to send every row of its key that goes before or with
it. Held rows count as waiting but not in the estimate: they go when their hold ends.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from typing import Any

from django.db.models import Count, Min, Q
from django.utils import timezone

from ..conf import SendFleetSettings, mailer_options
from ..exceptions import SendFleetConfigurationError
from ..message.priority import HIGH, PRIORITIES, name_of
from ..models import SendLog
from ..models.log_status import LogStatus


@dataclass(frozen=True)
class Group:
    """The rows one mailer has waiting at one priority."""

    mailer: str
    priority: str
    waiting: int
    due: int
    #: Seconds since the oldest due row was queued; None when none is due.
    oldest_due_seconds: float | None
    #: About how long until the last due row of this group is sent; None without a rate limit.
    drain_seconds: float | None

    def as_data(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Backlog:
    groups: list[Group]

    def waiting(self, priority: str) -> int:
        return sum(group.waiting for group in self.groups if group.priority == priority)

    def oldest_due_seconds(self, priority: str) -> float | None:
        ages = [
            group.oldest_due_seconds
            for group in self.groups
            if group.priority == priority and group.oldest_due_seconds is not None
        ]
        return max(ages, default=None)

    def by_priority(self) -> list[tuple[str, list[Group]]]:
        """Every priority, most urgent first, with its groups (none when nothing waits)."""
        return [(p, [g for g in self.groups if g.priority == p]) for p in PRIORITIES]

    def summary(self) -> str:
        """ "high: 0 waiting; low: newsletter 9,400 waiting, about 2 h 37 min"."""
        parts = []
        for priority, groups in self.by_priority():
            if not groups:
                parts.append(f"{priority}: 0 waiting")
                continue
            parts.append(f"{priority}: " + ", ".join(describe(group) for group in groups))
        return "; ".join(parts)


def collect(now: datetime | None = None) -> Backlog:
    """The backlog as it is now."""
    now = now or timezone.now()
    due = Q(not_before__isnull=True) | Q(not_before__lte=now)
    rows = (
        SendLog.objects.filter(status=LogStatus.PENDING)
        .values("mailer", "priority")
        .annotate(
            waiting=Count("pk"),
            due=Count("pk", filter=due),
            oldest_due=Min("created_at", filter=due),
        )
        .order_by("priority", "mailer")
    )
    counted = [
        (row["mailer"], name_of(row["priority"]), row["waiting"], row["due"], row["oldest_due"])
        for row in rows
    ]
    # Rows of one priority of a mailer may come from several ranks: one group each.
    merged: dict[tuple[str, str], list[Any]] = {}
    for mailer, priority, waiting, due_rows, oldest in counted:
        group = merged.setdefault((mailer, priority), [0, 0, None])
        group[0] += waiting
        group[1] += due_rows
        if oldest is not None and (group[2] is None or oldest < group[2]):
            group[2] = oldest
    keys = {mailer: _key_and_rate(mailer) for mailer, _ in merged}
    groups = []
    for (mailer, priority), (waiting, due_rows, oldest) in merged.items():
        key, rate = keys[mailer]
        ahead = sum(
            other[1]
            for (other_mailer, other_priority), other in merged.items()
            if keys[other_mailer][0] == key
            and PRIORITIES.index(other_priority) <= PRIORITIES.index(priority)
        )
        groups.append(
            Group(
                mailer=mailer,
                priority=priority,
                waiting=waiting,
                due=due_rows,
                oldest_due_seconds=None if oldest is None else (now - oldest).total_seconds(),
                drain_seconds=None if rate is None else ahead * rate[1] / rate[0],
            )
        )
    groups.sort(key=lambda g: (PRIORITIES.index(g.priority), g.mailer))
    return Backlog(groups)


def _key_and_rate(mailer: str) -> tuple[str, tuple[int, float] | None]:
    """Which key's slots a mailer's rows share (its prefix), and that key's rate limit."""
    settings = SendFleetSettings(mailer_options(mailer))
    try:
        return settings.api_key_prefix, settings.rate_limit
    except SendFleetConfigurationError:
        return f"mailer:{mailer}", None  # sendfleet_check's settings lines say what is wrong


def describe(group: Group) -> str:
    """ "newsletter 9,400 waiting (9,000 due, the oldest queued 3 min ago), about 2 h 30 min"."""
    text = f"{group.mailer or 'default'} {group.waiting:,} waiting"
    if group.due != group.waiting:
        text += f" ({group.due:,} due, {group.waiting - group.due:,} held or backing off)"
    if group.oldest_due_seconds is not None:
        text += f", oldest due queued {duration(group.oldest_due_seconds)} ago"
    if group.drain_seconds is not None and group.due:
        text += f", about {duration(group.drain_seconds)} to send"
    return text


def duration(seconds: float) -> str:
    """ "2 h 37 min", "12 min", "40 s": to the minute past an hour, else to the second."""
    seconds = max(round(seconds), 0)
    if seconds < 60:
        return f"{seconds} s"
    minutes = round(seconds / 60) if seconds >= 3600 else seconds // 60
    hours, minutes = divmod(minutes, 60)
    if hours:
        return f"{hours} h {minutes} min" if minutes else f"{hours} h"
    rest = seconds % 60
    return f"{minutes} min {rest} s" if rest and minutes < 10 else f"{minutes} min"


def late_high_priority(backlog: Backlog, settings: SendFleetSettings) -> timedelta | None:
    """How long the oldest due high-priority row has waited, when longer than
    ``HIGH_PRIORITY_MAX_WAIT``; else None."""
    limit = settings.high_priority_max_wait
    oldest = backlog.oldest_due_seconds(HIGH)
    if limit is None or oldest is None or oldest <= limit.total_seconds():
        return None
    return timedelta(seconds=oldest)
