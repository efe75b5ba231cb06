"""The admin: the send log for reviewing failures, the suppression list, and a dashboard.

The send log can hold millions of rows, so its changelist never counts the whole table, every
filter matches an index, search is exact (no ``LIKE '%...%'``), and no filter lists its
choices with ``SELECT DISTINCT``.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from django import forms
from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.contrib.auth import get_permission_codename
from django.core.exceptions import PermissionDenied
from django.db.models import Q, QuerySet
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils.html import format_html

from ..error_table import spec_for_code
from ..message.addresses import MAX_ADDRESS_LENGTH
from ..models import SendLog, Suppression, WebhookEvent, normalise_email
from ..models.forgotten import FORGOTTEN
from . import dashboard
from . import reputation as reputation_admin
from .changelist import ErrorCodeFilter, EstimatedCountPaginator, ModeFilter, StatusFilter
from .erasure import ForgetPeople
from .resend import OUTBOX_STATUSES, resend_entries
from .scheduled import CancelScheduled, ScheduledFilter
from .tags import TagFilter

if TYPE_CHECKING:
    from django.utils.safestring import SafeString

logger = logging.getLogger("django_sendfleet")

#: Most rows one action may touch: "select all" on a big log must not send thousands of emails.
ACTION_ROW_LIMIT = 500


class WebhookEventInline(admin.TabularInline):
    """The delivery events SendFleet sent about this send, under its log row."""

    model = WebhookEvent
    fields = ("received_at", "event_type", "outcome", "recipient")
    readonly_fields = fields
    extra = 0
    can_delete = False
    show_change_link = True
    ordering = ("received_at", "id")

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(SendLog)
class SendLogAdmin(CancelScheduled, ForgetPeople, admin.ModelAdmin):
    inlines = (WebhookEventInline,)
    list_display = (
        "created_at",
        "recipient",
        "subject",
        "status",
        "error_code",
        "http_status",
        "mode",
        "attempts",
        "scheduled_for",
    )
    list_filter = (
        StatusFilter,
        ScheduledFilter,
        TagFilter,
        ErrorCodeFilter,
        ModeFilter,
        ("created_at", admin.DateFieldListFilter),
    )
    search_fields = ("=recipient", "=message_id")
    search_help_text = "An exact recipient address or message id."
    # Only orders an index can serve.
    sortable_by = ("created_at",)
    # Rendering a row costs about 1 ms in Django's changelist (the queries take ~5 ms in all).
    list_per_page = 50
    show_full_result_count = False
    show_facets = admin.ShowFacets.NEVER  # facet counts would count the table per choice
    paginator = EstimatedCountPaginator
    actions = ("resend", "add_to_suppression_list", "forget_people", "cancel_scheduled")
    # Named apart from Django's defaults, so another admin of SendLog does not pick them up.
    change_list_template = "admin/django_sendfleet/sendlog/sendlog_change_list.html"
    change_form_template = "admin/django_sendfleet/sendlog/sendlog_change_form.html"
    dashboard_template = "admin/django_sendfleet/sendlog/dashboard.html"

    # Rows are a record of what happened: they are never added, edited or deleted here.
    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: SendLog | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: SendLog | None = None) -> bool:
        return False

    def action_checkbox(self, obj: SendLog) -> SafeString:
        """Django's checkbox, written directly: rendering a widget per row costs ~0.4 ms."""
        return format_html(
            '<input type="checkbox" name="{}" value="{}" class="action-select" '
            'aria-label="Select this object for an action - {}">',
            helpers.ACTION_CHECKBOX_NAME,
            obj.pk,
            str(obj),
        )

    def has_resend_permission(self, request: HttpRequest) -> bool:
        """Resending sends real email: it takes the change permission, not just view."""
        codename = get_permission_codename("change", self.opts)
        return request.user.has_perm(f"{self.opts.app_label}.{codename}")

    def has_suppress_permission(self, request: HttpRequest) -> bool:
        opts = Suppression._meta
        return request.user.has_perm(f"{opts.app_label}.{get_permission_codename('add', opts)}")

    def get_search_results(
        self, request: HttpRequest, queryset: QuerySet[SendLog], search_term: str
    ) -> tuple[QuerySet[SendLog], bool]:
        """Exact matches only, each on its own index: ``LIKE '%term%'`` reads the whole table."""
        term = search_term.strip()
        if not term:
            return queryset, False
        recipients = {term, normalise_email(term)}  # as typed, and as the backend normalises
        return queryset.filter(Q(recipient__in=recipients) | Q(message_id=term)), False

    def get_fieldsets(self, request: HttpRequest, obj: SendLog | None = None) -> list[Any]:
        fieldsets: list[Any] = [
            (
                None,
                {
                    "fields": (
                        "created_at",
                        "status",
                        "recipient",
                        "from_email",
                        "subject",
                        "mailer",
                        "mode",
                        "tags",
                        "metadata",
                    )
                },
            ),
            (
                "Result",
                {
                    "fields": (
                        "message_id",
                        "error_code",
                        "http_status",
                        "detail",
                        "warnings",
                        "attempts",
                        "duration_ms",
                        "updated_at",
                    )
                },
            ),
        ]
        if obj is not None and obj.has_content:
            content = ("content_from_name", "content_reply_to", "content_text", "content_html")
            fieldsets.append(("Content", {"fields": content, "classes": ("collapse",)}))
        return fieldsets

    # The content: the message's, shared by its rows (SendLog.logged_content). Shown as text.
    @admin.display(description="from name")
    def content_from_name(self, obj: SendLog) -> str:
        return getattr(obj.logged_content, "from_name", "")

    @admin.display(description="reply-to")
    def content_reply_to(self, obj: SendLog) -> str:
        return getattr(obj.logged_content, "reply_to", "")

    @admin.display(description="text")
    def content_text(self, obj: SendLog) -> str:
        return getattr(obj.logged_content, "text", "")

    @admin.display(description="HTML")
    def content_html(self, obj: SendLog) -> str:
        return getattr(obj.logged_content, "html", "")

    def render_change_form(
        self,
        request: HttpRequest,
        context: dict[str, Any],
        add: bool = False,
        change: bool = False,
        form_url: str = "",
        obj: SendLog | None = None,
    ) -> HttpResponse:
        spec = spec_for_code(obj.error_code) if obj is not None else None
        context["error_spec"] = spec
        context["error_exception"] = spec.exception.__name__ if spec else ""
        return super().render_change_form(request, context, add, change, form_url, obj)

    def changelist_view(
        self, request: HttpRequest, extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        extra_context = {**(extra_context or {}), "dashboard_url": self._url("dashboard")}
        return super().changelist_view(request, extra_context)

    def get_urls(self) -> list[URLPattern]:
        name = f"{self.opts.app_label}_{self.opts.model_name}_dashboard"
        dashboard_url = path(
            "dashboard/", self.admin_site.admin_view(self.dashboard_view), name=name
        )
        release_url = reputation_admin.urls(self)  # the reputation panel's release button
        return [dashboard_url, *release_url, *super().get_urls()]  # before the catch-all URLs

    def dashboard_view(self, request: HttpRequest) -> HttpResponse:
        if not self.has_view_permission(request):
            raise PermissionDenied
        changelist_url = self._url("changelist")
        summary = dashboard.collect()
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": "SendFleet dashboard",
            "changelist_url": changelist_url,
            "dashboard": summary,
            "days": dashboard.DAYS,
            "sends_chart": dashboard.sends_chart(summary, changelist_url),
            "errors_chart": dashboard.errors_chart(summary, changelist_url),
            "error_rows": [(code, sends, spec_for_code(code)) for code, sends in summary.errors],
            **reputation_admin.panel(self, request, changelist_url),
            **dashboard.outbox_context(),
        }
        return TemplateResponse(request, self.dashboard_template, context)

    @admin.action(description="Resend selected messages", permissions=["resend"])
    def resend(self, request: HttpRequest, queryset: QuerySet[SendLog]) -> None:
        entries = self._selected_rows(request, queryset)
        if entries is None:
            return
        in_outbox = [entry for entry in entries if entry.status in OUTBOX_STATUSES]
        if in_outbox:
            self.message_user(
                request,
                f"Skipped {len(in_outbox)} of {len(entries)} selected: still in the outbox "
                "(pending or being sent). The worker sends them; resending now would send the "
                "email twice.",
                messages.WARNING,
            )
            entries = [entry for entry in entries if entry.status not in OUTBOX_STATUSES]
        with_content = [entry for entry in entries if entry.has_content]
        skipped = len(entries) - len(with_content)
        if skipped:
            self.message_user(
                request,
                f"Skipped {skipped} of {len(entries)} selected: their content was not logged "
                "(SENDFLEET['LOG_CONTENT'] was off when they were sent), so there is nothing "
                "to resend.",
                messages.WARNING,
            )
        if not with_content:
            return
        outcomes = resend_entries(with_content)
        summary = ", ".join(f"{count} {status}" for status, count in sorted(outcomes.items()))
        accepted = outcomes["queued"] + outcomes["sent"]
        level = messages.SUCCESS if accepted == len(with_content) else messages.WARNING
        self.message_user(
            request,
            f"Resent {len(with_content)}: {summary}. Each send has a new row in the send log; "
            "addresses on the suppression list were not sent to.",
            level,
        )

    @admin.action(description="Add recipients to the suppression list", permissions=["suppress"])
    def add_to_suppression_list(self, request: HttpRequest, queryset: QuerySet[SendLog]) -> None:
        entries = self._selected_rows(request, queryset)
        if entries is None:
            return
        # A forgotten person's rows name no address: they stay suppressed by its hash.
        entries = [entry for entry in entries if entry.recipient != FORGOTTEN]
        message_ids = {normalise_email(entry.recipient): entry.message_id for entry in entries}
        already = Suppression.objects.suppressed_among(message_ids)
        note = f"Added from the send log by {request.user.get_username()}."
        for address, message_id in message_ids.items():
            if address not in already:
                Suppression.objects.suppress(
                    address,
                    Suppression.Reason.MANUAL,
                    source="admin",
                    message_id=message_id,
                    note=note,
                )
        added = len(message_ids) - len(already)
        text = f"Added {added} address(es) to the suppression list."
        if already:
            text += f" {len(already)} already on it: " + ", ".join(sorted(already)) + "."
        self.message_user(request, text, messages.SUCCESS)

    def _selected_rows(
        self, request: HttpRequest, queryset: QuerySet[SendLog]
    ) -> list[SendLog] | None:
        entries = list(queryset[: ACTION_ROW_LIMIT + 1])
        if len(entries) > ACTION_ROW_LIMIT:
            self.message_user(
                request,
                f"Select at most {ACTION_ROW_LIMIT} rows for this action (filter the list first).",
                messages.ERROR,
            )
            return None
        return entries

    def _url(self, view: str) -> str:
        return reverse(
            f"{self.admin_site.name}:{self.opts.app_label}_{self.opts.model_name}_{view}",
            current_app=self.admin_site.name,
        )


class SuppressionForm(forms.ModelForm):
    email = forms.EmailField(max_length=MAX_ADDRESS_LENGTH, help_text="Stored in lower case.")

    class Meta:
        model = Suppression
        fields = ("email", "reason", "note")

    def clean_email(self) -> str:
        # Normalised before the unique check, so "Ann@X" is found to clash with "ann@x".
        return normalise_email(self.cleaned_data["email"])


@admin.register(Suppression)
class SuppressionAdmin(ForgetPeople, admin.ModelAdmin):
    form = SuppressionForm
    actions = ("forget_people",)  # erasure_admin.py; Django's delete_selected stays
    list_display = ("email", "reason", "source", "hits", "created_at", "last_seen_at")
    list_filter = ("reason",)
    search_fields = ("=email",)
    search_help_text = "An exact email address."
    readonly_fields = ("source", "message_id", "hits", "created_at", "last_seen_at")
    # The confirmation pages (admin/django_sendfleet/suppression/delete_*confirmation.html)
    # warn that SendFleet's own suppression list is separate.

    def get_readonly_fields(
        self, request: HttpRequest, obj: Suppression | None = None
    ) -> tuple[str, ...]:
        if obj is None:
            return self.readonly_fields
        return ("email", *self.readonly_fields)

    def get_search_results(
        self, request: HttpRequest, queryset: QuerySet[Suppression], search_term: str
    ) -> tuple[QuerySet[Suppression], bool]:
        term = search_term.strip()
        if not term:
            return queryset, False
        return queryset.filter(email=normalise_email(term)), False

    def save_model(
        self, request: HttpRequest, obj: Suppression, form: forms.ModelForm, change: bool
    ) -> None:
        if not change:
            obj.source = "admin"
        super().save_model(request, obj, form, change)


@admin.register(WebhookEvent)
class WebhookEventAdmin(admin.ModelAdmin):
    """Every verified event, as stored; filter by outcome for the ones that need a look
    (unknown message id, unknown type, failed and being retried, unprocessable, too old)."""

    list_display = ("received_at", "event_type", "message_id", "recipient", "outcome", "detail")
    list_filter = ("outcome",)
    search_fields = ("=message_id",)
    search_help_text = "An exact message id."
    show_full_result_count = False
    readonly_fields = tuple(field.name for field in WebhookEvent._meta.fields if field.name != "id")

    # Events are evidence of what SendFleet said: never added or edited by hand.
    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False
