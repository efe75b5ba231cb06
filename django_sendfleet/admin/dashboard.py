"""The admin dashboard: sends per day by status and the top error codes, drawn as inline SVG,
and the outbox panel (rows waiting per priority and mailer, ``backlog.py``).

Both charts come from one query of the per-day rollups (``rollups.py``): a few hundred rows
for the last ``DAYS`` days however big the log is. Days are those of ``settings.TIME_ZONE``, as
the rollups count them. The charts are plain SVG markup built here: no JavaScript, no CDN, and
they work offline.
"""

from __future__ import annotations

import datetime
import math
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field

from django.utils.html import escape, format_html
from django.utils.http import urlencode
from django.utils.safestring import SafeString, mark_safe

from ..conf import SendFleetSettings
from ..error_table import SPECS_BY_CODE
from ..exceptions import SendFleetConfigurationError
from ..models import rollups
from ..models.log_status import LogStatus
from ..queued import backlog

DAYS = 30
TOP_ERROR_CODES = 10

# Bottom of the stack first: the healthy statuses, then the ones that need a look.
STATUS_COLOURS: dict[str, str] = {
    "delivered": "#2e7d32",
    "queued": "#64b5f6",
    "sending": "#1565c0",
    "pending": "#9e9e9e",
    "unknown": "#fbc02d",
    "rejected": "#8d6e63",
    "bounced": "#ef6c00",
    "complained": "#8e24aa",
    "failed": "#c62828",
}
OTHER_STATUS_COLOUR = "#78909c"  # a status added to LogStatus without a colour here
ERROR_BAR_COLOUR = "#c62828"

# Sends chart geometry, in SVG user units.
CHART_WIDTH = 800
CHART_HEIGHT = 280
PLOT_LEFT = 56
PLOT_RIGHT = 8
PLOT_TOP = 12
PLOT_BOTTOM = 40
Y_TICKS = 4
# Error chart geometry.
ERROR_ROW_HEIGHT = 26
ERROR_LABEL_WIDTH = 210
ERROR_COUNT_WIDTH = 70


@dataclass
class Dashboard:
    days: list[datetime.date]
    sends_by_day: dict[datetime.date, Counter[str]]
    totals_by_status: Counter[str]
    errors: list[tuple[str, int]]
    total: int = field(init=False)

    def __post_init__(self) -> None:
        self.total = sum(self.totals_by_status.values())

    def status_rows(self) -> list[tuple[str, str, int]]:
        """(status, colour, sends) for every status, in stacking order."""
        return [(s, colour, self.totals_by_status[s]) for s, colour in stacking_order()]


@dataclass(frozen=True)
class OutboxRow:
    """One line of the outbox panel: a priority, and a mailer with rows waiting at it."""

    priority: str
    mailer: str
    waiting: int
    due: int
    oldest_due: str
    to_send: str


def outbox_context() -> dict[str, object]:
    """The dashboard context of the outbox panel: rows waiting per priority and mailer, the
    oldest due row's age, the time to send them at the key's rate (``backlog.py``)."""
    figures = backlog.collect()
    rows = []
    for priority, groups in figures.by_priority():
        if not groups:
            rows.append(OutboxRow(priority, "", 0, 0, "", ""))
        for group in groups:
            oldest, drain = group.oldest_due_seconds, group.drain_seconds
            rows.append(
                OutboxRow(
                    priority,
                    group.mailer or "default",
                    group.waiting,
                    group.due,
                    "" if oldest is None else backlog.duration(oldest),
                    "" if drain is None or not group.due else f"about {backlog.duration(drain)}",
                )
            )
    try:
        late = backlog.late_high_priority(figures, SendFleetSettings())
    except SendFleetConfigurationError:
        late = None
    return {
        "outbox_rows": rows,
        "outbox_late": None if late is None else backlog.duration(late.total_seconds()),
    }


def stacking_order() -> list[tuple[str, str]]:
    """Every status with its colour, in the order the bars stack them."""
    statuses = [s for s in STATUS_COLOURS if s in LogStatus.values]
    statuses += [s for s in LogStatus.values if s not in STATUS_COLOURS]
    return [(status, STATUS_COLOURS.get(status, OTHER_STATUS_COLOUR)) for status in statuses]


def collect(today: datetime.date | None = None) -> Dashboard:
    """Count the last ``DAYS`` days of sends, by day, status and error code, from the rollups."""
    today = today or rollups.today()
    first_day = today - datetime.timedelta(days=DAYS - 1)
    counts = rollups.totals(first_day, today, by=("day", "status", "error_code"))
    return summarise(first_day, [(*key, sends) for key, sends in counts.items()])


def summarise(
    first_day: datetime.date, rows: Iterable[tuple[datetime.date, str, str, int]]
) -> Dashboard:
    """The dashboard of ``DAYS`` days from ``first_day``, from (day, status, error code, sends)."""
    days = [first_day + datetime.timedelta(days=n) for n in range(DAYS)]
    sends_by_day: dict[datetime.date, Counter[str]] = {day: Counter() for day in days}
    totals_by_status: Counter[str] = Counter()
    errors: Counter[str] = Counter()
    for day, status, error_code, sends in rows:
        if day in sends_by_day:  # rows dated in the future (clock skew) are left out
            sends_by_day[day][status] += sends
            totals_by_status[status] += sends
            if error_code:
                errors[error_code] += sends
    return Dashboard(days, sends_by_day, totals_by_status, errors.most_common(TOP_ERROR_CODES))


def axis_top(value: int) -> int:
    """The y axis' top: ``Y_TICKS`` round steps (1, 2 or 5 times a power of ten) above ``value``."""
    wanted_step = max(value / Y_TICKS, 1)
    magnitude = 10 ** math.floor(math.log10(wanted_step))
    step = next(m * magnitude for m in (1, 2, 5, 10) if m * magnitude >= wanted_step)
    return step * Y_TICKS


def sends_chart(dashboard: Dashboard, changelist_url: str) -> SafeString:
    """A stacked bar per day, one segment per status; each segment links to its rows."""
    plot_width = CHART_WIDTH - PLOT_LEFT - PLOT_RIGHT
    plot_height = CHART_HEIGHT - PLOT_TOP - PLOT_BOTTOM
    busiest = max((sum(c.values()) for c in dashboard.sends_by_day.values()), default=0)
    top = axis_top(busiest)
    slot = plot_width / len(dashboard.days)
    bar_width = max(slot * 0.75, 1)
    parts: list[str] = []
    for tick in range(Y_TICKS + 1):
        value = top * tick // Y_TICKS
        y = PLOT_TOP + plot_height - plot_height * tick / Y_TICKS
        parts.append(
            format_html(
                '<line class="grid" x1="{}" x2="{}" y1="{}" y2="{}"/>'
                '<text class="axis" x="{}" y="{}" text-anchor="end">{}</text>',
                PLOT_LEFT,
                CHART_WIDTH - PLOT_RIGHT,
                coord(y),
                coord(y),
                PLOT_LEFT - 6,
                coord(y + 4),
                f"{value:,}",
            )
        )
    order = stacking_order()
    # Each segment is one f-string of parts escaped once here: format_html, escaping every
    # argument of every segment, took most of the page's time (about 0.3 ms a segment).
    status_links = {s: escape(f"{changelist_url}?{urlencode({'status': s})}") for s, _ in order}
    status_labels = {status: escape(status) for status, _ in order}
    for index, day in enumerate(dashboard.days):
        x = PLOT_LEFT + index * slot + (slot - bar_width) / 2
        y = PLOT_TOP + plot_height
        day_query = escape(f"&{urlencode(_day_range(day))}")
        day_label = day.isoformat()
        for status, colour in order:
            sends = dashboard.sends_by_day[day][status]
            if not sends:
                continue
            height = plot_height * sends / top
            y -= height
            parts.append(
                f'<a href="{status_links[status]}{day_query}"><rect x="{coord(x)}" y="{coord(y)}" '
                f'width="{coord(bar_width)}" height="{coord(height)}" fill="{colour}">'
                f"<title>{day_label}: {sends:,} {status_labels[status]}</title></rect></a>"
            )
        if index % 5 == 0 or index == len(dashboard.days) - 1:
            parts.append(
                format_html(
                    '<text class="axis" x="{}" y="{}" text-anchor="middle">{}</text>',
                    coord(x + bar_width / 2),
                    CHART_HEIGHT - PLOT_BOTTOM + 16,
                    day.strftime("%b %d"),
                )
            )
    return _svg(
        CHART_WIDTH,
        CHART_HEIGHT,
        f"Sends per day by status, last {DAYS} days",
        "sendfleet-sends-chart",
        parts,
    )


def errors_chart(dashboard: Dashboard, changelist_url: str) -> SafeString:
    """One horizontal bar per error code, longest first; hover shows the error table's meaning."""
    height = max(len(dashboard.errors), 1) * ERROR_ROW_HEIGHT + 4
    bar_space = CHART_WIDTH - ERROR_LABEL_WIDTH - ERROR_COUNT_WIDTH
    most = max((sends for _, sends in dashboard.errors), default=0)
    parts: list[str] = []
    if not dashboard.errors:
        parts.append(
            format_html(
                '<text class="axis" x="8" y="18">No errors in the last {} days.</text>',
                DAYS,
            )
        )
    for row, (code, sends) in enumerate(dashboard.errors):
        y = row * ERROR_ROW_HEIGHT + 4
        spec = SPECS_BY_CODE.get(code)
        meaning = spec.meaning if spec else "Not in the error table."
        width = max(bar_space * sends / most, 1)
        parts.append(
            format_html(
                '<a href="{}?{}"><title>{}: {}</title>'
                '<text class="label" x="{}" y="{}" text-anchor="end">{}</text>'
                '<rect x="{}" y="{}" width="{}" height="{}" fill="{}"/>'
                '<text class="count" x="{}" y="{}">{}</text></a>',
                changelist_url,
                urlencode({"error_code": code}),
                code,
                meaning,
                ERROR_LABEL_WIDTH - 8,
                y + 15,
                code,
                ERROR_LABEL_WIDTH,
                y + 2,
                coord(width),
                ERROR_ROW_HEIGHT - 8,
                ERROR_BAR_COLOUR,
                coord(ERROR_LABEL_WIDTH + width + 6),
                y + 15,
                f"{sends:,}",
            )
        )
    return _svg(
        CHART_WIDTH,
        height,
        f"Top error codes, last {DAYS} days",
        "sendfleet-errors-chart",
        parts,
    )


def _day_range(day: datetime.date) -> dict[str, str]:
    """The changelist's date filter parameters for one day, as its own links write them."""
    next_day = day + datetime.timedelta(days=1)
    return {
        "created_at__gte": str(rollups.start_of(day)),
        "created_at__lt": str(rollups.start_of(next_day)),
    }


def _svg(width: int, height: int, title: str, css_class: str, parts: list[str]) -> SafeString:
    return format_html(
        '<svg xmlns="http://www.w3.org/2000/svg" class="{}" viewBox="0 0 {} {}" width="100%" '
        'role="img" aria-label="{}"><title>{}</title>{}</svg>',
        css_class,
        width,
        height,
        title,
        title,
        mark_safe("".join(parts)),  # each part was built with format_html
    )


def coord(value: float) -> str:
    """Coordinates with one decimal: enough for the eye, short markup."""
    return f"{value:.1f}".removesuffix(".0")
