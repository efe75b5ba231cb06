"""The reputation panel of the admin dashboard, and the button that releases held sends.

The panel shows each account mode's bounce and complaint rates over the last 7 days against
their thresholds (a gauge drawn as inline SVG, like the dashboard's charts), the rates per
mailer (which one bounces), the day-by-day trend, the recipient domains with the most hard
bounces, and the bulk sends the guard holds. Figures are computed afresh when the page is
opened (``reputation_state.check_now``) from the rollups, as is the count of held sends; only
the bouncing domains read the log: the week's ``bounced`` rows, through the status index.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.db.models import Count, Value
from django.db.models.functions import Lower, StrIndex, Substr
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.urls import URLPattern, path, reverse
from django.utils.html import format_html
from django.utils.http import urlencode
from django.utils.safestring import SafeString, mark_safe
from django.views.decorators.http import require_POST

from ..conf import SendFleetSettings, mailer_options
from ..conf.mailers import configured_mailers
from ..exceptions import SendFleetConfigurationError, SendFleetReputationHold, SendFleetSoftBounce
from ..models import SendLog, rollups
from ..models.log_status import LogStatus
from ..queued.held import held_count, release_held_sends
from ..reputation import state as reputation_state
from ..reputation.levels import DANGER, HEALTHY, UNKNOWN, WARNING
from ..reputation.rates import WINDOW_DAYS, Counts, Rate, Rates, Snapshot, percent
from .dashboard import coord

if TYPE_CHECKING:
    from django.contrib.admin import ModelAdmin

TOP_DOMAINS = 10
LEVEL_COLOURS = {HEALTHY: "#2e7d32", WARNING: "#ef6c00", DANGER: "#c62828", UNKNOWN: "#9e9e9e"}
GAUGE_WIDTH = 320
GAUGE_HEIGHT = 50
GAUGE_TOP = 14
GAUGE_BAR = 20


@dataclass(frozen=True)
class AccountView:
    rates: Rates
    bounce_gauge: SafeString
    complaint_gauge: SafeString

    @property
    def colour(self) -> str:
        return LEVEL_COLOURS[self.rates.level]


@dataclass(frozen=True)
class DayView:
    day: datetime.date
    mode: str
    counts: Counts
    bounce_rate: str
    complaint_rate: str


@dataclass(frozen=True)
class Panel:
    snapshot: Snapshot
    accounts: list[AccountView]
    mailers: list[tuple[Rates, bool]]  # with whether the mailer is BULK
    trend: list[DayView]
    domains: list[tuple[str, int]]
    held: int
    held_url: str
    release_url: str
    can_release: bool
    window_days: int = WINDOW_DAYS


def panel(model_admin: ModelAdmin, request: HttpRequest, changelist_url: str) -> dict[str, Any]:
    """The dashboard context of the reputation panel: ``{"reputation": Panel or None}``."""
    seen = reputation_state.check_now()
    if seen is None:
        return {"reputation": None}
    snapshot = seen.snapshot
    accounts = [
        AccountView(rates, gauge(rates.bounce, "bounce"), gauge(rates.complaint, "complaint"))
        for rates in sorted(snapshot.accounts.values(), key=_shared_first)
    ]
    bulk = {alias: _is_bulk(alias) for alias in configured_mailers()}
    mailers = [
        (rates, bulk.get(mailer, False))
        for (mode, mailer), rates in sorted(snapshot.mailers.items())
    ]
    return {
        "reputation": Panel(
            snapshot=snapshot,
            accounts=accounts,
            mailers=mailers,
            trend=trend(snapshot),
            domains=bouncing_domains(snapshot.first_day),
            held=held_count(),
            held_url=f"{changelist_url}?"
            + urlencode(
                {"status": "pending", "error_code": str(SendFleetReputationHold.error_code)}
            ),
            release_url=reverse(
                f"{model_admin.admin_site.name}:{_url_name(model_admin)}",
                current_app=model_admin.admin_site.name,
            ),
            can_release=_can_release(model_admin, request),
        )
    }


def trend(snapshot: Snapshot) -> list[DayView]:
    """Each day of the window, newest first, for each account mode that sent."""
    rows = []
    for day in sorted(snapshot.days, reverse=True):
        for mode, rates in sorted(
            snapshot.accounts.items(), key=lambda item: _shared_first(item[1])
        ):
            counts = snapshot.days[day].get(mode, Counts())
            known = rates.bounce.value is not None and counts.sends
            rows.append(
                DayView(
                    day,
                    mode,
                    counts,
                    percent(counts.hard_bounces / counts.sends) if known else "-",
                    percent(counts.complaints / counts.sends) if known else "-",
                )
            )
    return rows


def bouncing_domains(first_day: datetime.date) -> list[tuple[str, int]]:
    """The recipient domains with the most hard bounces in the window (the status index)."""
    domain = Lower(Substr("recipient", StrIndex("recipient", Value("@")) + 1))
    rows = (
        SendLog.objects.filter(
            status=LogStatus.BOUNCED, created_at__gte=rollups.start_of(first_day)
        )
        .exclude(error_code=SendFleetSoftBounce.error_code)
        .annotate(domain=domain)
        .values_list("domain")
        .annotate(bounces=Count("pk"))
        .order_by("-bounces", "domain")[:TOP_DOMAINS]
    )
    return [(name, bounces) for name, bounces in rows]


def gauge(rate: Rate, name: str) -> SafeString:
    """A bar for the rate on a scale to twice the danger level (a rate past it fills the bar
    and is marked), the warning level marked above the bar and the danger level below."""
    warning, danger = rate.thresholds
    top = danger * 2
    left, right = 4, GAUGE_WIDTH - 14

    def x(value: float) -> float:
        return left + (right - left) * min(value / top, 1)

    parts = [
        format_html(
            '<rect x="{}" y="{}" width="{}" height="{}" fill="#eeeeee" rx="2"/>',
            left,
            GAUGE_TOP,
            right - left,
            GAUGE_BAR,
        )
    ]
    if rate.value is not None:
        parts.append(
            format_html(
                '<rect class="value" x="{}" y="{}" width="{}" height="{}" fill="{}" rx="2"/>',
                left,
                GAUGE_TOP,
                coord(max(x(rate.value) - left, 1)),
                GAUGE_BAR,
                LEVEL_COLOURS[rate.level],
            )
        )
        if rate.value > top:  # off the scale
            parts.append(
                format_html(
                    '<text x="{}" y="{}" class="beyond">&#9656;</text>',
                    right + 2,
                    GAUGE_TOP + GAUGE_BAR - 3,
                )
            )
    marks = (("warning", warning, "#ef6c00", 9), ("danger", danger, "#c62828", GAUGE_HEIGHT - 2))
    for label, value, tone, text_y in marks:
        parts.append(
            format_html(
                '<line x1="{}" x2="{}" y1="{}" y2="{}" stroke="{}" stroke-width="2"/>'
                '<text x="{}" y="{}" text-anchor="middle">{} {}</text>',
                coord(x(value)),
                coord(x(value)),
                GAUGE_TOP - 2,
                GAUGE_TOP + GAUGE_BAR + 2,
                tone,
                coord(min(max(x(value), 40), right - 40)),  # the label stays inside the drawing
                text_y,
                label,
                percent(value),
            )
        )
    title = (
        f"{name} rate {percent(rate.value)}: {rate.level}"
        + (f" ({rate.reason})" if rate.reason else "")
        + f"; warning at {percent(warning)}, danger at {percent(danger)}"
    )
    return format_html(
        '<svg xmlns="http://www.w3.org/2000/svg" class="reputation-gauge" viewBox="0 0 {} {}" '
        'width="100%" role="img" aria-label="{}"><title>{}</title>{}</svg>',
        GAUGE_WIDTH,
        GAUGE_HEIGHT,
        title,
        title,
        mark_safe("".join(parts)),  # each part was built with format_html
    )


# Releasing held sends.


def urls(model_admin: ModelAdmin) -> list[URLPattern]:
    @require_POST
    def release(request: HttpRequest) -> HttpResponse:
        return release_view(model_admin, request)

    view = model_admin.admin_site.admin_view(release)
    return [path("reputation/release/", view, name=_url_name(model_admin))]


def release_view(model_admin: ModelAdmin, request: HttpRequest) -> HttpResponse:
    """Send the held bulk sends now, and let bulk mailers send until the level changes."""
    if not _can_release(model_admin, request):
        raise PermissionDenied
    released = release_held_sends()
    modes = ", ".join(released.modes) or "none at danger"
    model_admin.message_user(
        request,
        f"Released {released.rows} held bulk send(s); they are being sent. Bulk mailers send "
        f"again until the reputation level changes (released: {modes}).",
        messages.SUCCESS,
    )
    dashboard = f"{model_admin.opts.app_label}_{model_admin.opts.model_name}_dashboard"
    site = model_admin.admin_site.name
    return HttpResponseRedirect(reverse(f"{site}:{dashboard}", current_app=site))


def _can_release(model_admin: ModelAdmin, request: HttpRequest) -> bool:
    """Releasing sends email: it takes the send log's change permission, as resending does."""
    opts = model_admin.opts
    return request.user.has_perm(f"{opts.app_label}.change_{opts.model_name}")


def _url_name(model_admin: ModelAdmin) -> str:
    return f"{model_admin.opts.app_label}_{model_admin.opts.model_name}_reputation_release"


def _is_bulk(alias: str) -> bool:
    try:
        return SendFleetSettings(mailer_options(alias)).bulk
    except SendFleetConfigurationError:  # sendfleet_check reports it
        return False


def _shared_first(rates: Rates) -> tuple[bool, str]:
    return (rates.mode != "shared", rates.mode)
