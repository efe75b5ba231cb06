"""The admin's "Forget these people" action, on the send log and on the suppression list.

It erases what the tables hold about the selected rows' addresses (``erasure.forget``) after a
confirmation page in the style of Django's *delete selected*. It takes the permission to add a
forgotten address (``django_sendfleet.add_forgottenaddress``): erasing is not deleting rows of
either list, and a user who may review the log should not thereby be able to erase it.
"""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING, Any

from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.contrib.auth import get_permission_codename
from django.db.models import QuerySet
from django.template.response import TemplateResponse

from ..erasure.forget import forget
from ..exceptions import SendFleetError
from ..message.addresses import parse_address
from ..models import SendLog, Suppression, normalise_email
from ..models.forgotten import FORGOTTEN, ForgottenAddress

if TYPE_CHECKING:
    from django.http import HttpRequest

#: Most rows one action may take: each is looked up, and the erasure runs in the request.
ROW_LIMIT = 500
TEMPLATE = "admin/django_sendfleet/forget_confirmation.html"


class ForgetPeople:
    """Mixed into a ``ModelAdmin`` of ``SendLog`` or ``Suppression``: the action and its
    permission. Add ``"forget_people"`` to the admin's ``actions``."""

    def has_forget_permission(self, request: HttpRequest) -> bool:
        opts = ForgottenAddress._meta
        return request.user.has_perm(f"{opts.app_label}.{get_permission_codename('add', opts)}")

    @admin.action(
        description="Forget these people (erase their data, keep them suppressed)",
        permissions=["forget"],
    )
    def forget_people(
        self, request: HttpRequest, queryset: QuerySet[Any]
    ) -> TemplateResponse | None:
        model_admin: Any = self
        selected = list(queryset[: ROW_LIMIT + 1])
        if len(selected) > ROW_LIMIT:
            model_admin.message_user(
                request,
                f"Select at most {ROW_LIMIT} rows for this action (filter the list first).",
                messages.ERROR,
            )
            return None
        addresses = sorted({address for row in selected if (address := _address_of(row))})
        if not request.POST.get("post"):
            return TemplateResponse(
                request,
                TEMPLATE,
                {
                    **model_admin.admin_site.each_context(request),
                    "opts": model_admin.opts,
                    "title": "Forget these people?",
                    "addresses": addresses,
                    "skipped": len(selected) - _rows_with_an_address(selected),
                    "selected": [row.pk for row in selected],
                    "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
                },
            )
        if not addresses:
            model_admin.message_user(request, "No address to forget.", messages.WARNING)
            return None
        report = forget(addresses)
        model_admin.message_user(request, f"Forgot {report.summary()}", messages.SUCCESS)
        if report.in_flight:
            model_admin.message_user(
                request,
                f"{report.in_flight} row(s) are being sent to them right now and were left to "
                "their worker: forget them again in a minute to erase those too.",
                messages.WARNING,
            )
        return None


def _address_of(row: SendLog | Suppression) -> str | None:
    """The address a selected row is about, normalised; None when it holds none."""
    if isinstance(row, Suppression):
        return row.email
    if row.recipient == FORGOTTEN:
        return None
    with contextlib.suppress(SendFleetError):
        # A refused recipient is the value as given ("Ann <ann@...>"): its address, if any.
        return normalise_email(parse_address(row.recipient, "to").addr_spec)
    return None


def _rows_with_an_address(rows: list[Any]) -> int:
    return sum(1 for row in rows if _address_of(row))
