"""Which rows are about an address, for ``erasure.py``: the send log's and the webhook events'.

Rows keep an address as the app wrote it ("Ann@Example.com", an IDN domain in IDNA form), and a
refused recipient as the value given ("Ann <ann@example.com>"), while a person asks to be
forgotten as "ann@example.com". So a row is about the address when its recipient, lower-cased,
is the normalised address (or the same with its domain in Unicode), or holds it between angle
brackets. The send log's recipient index answers exact forms only; the other forms are found by
reading the table in primary key ranges (``pk_ranges``), a bounded read each, never the whole
table at once.
"""

from __future__ import annotations

import json
import re
from collections.abc import Collection, Iterator
from typing import Any

from django.db import models
from django.db.models import Max, Min, Q
from django.db.models.functions import Lower

from ..models import normalise_email

#: Primary keys per range read (each read returns only the rows that match).
SCAN_STEP = 50_000
#: Characters that may stand next to an address inside a longer text without ending it.
_ADDRESS_CHARACTER = r"[A-Za-z0-9._%+'=!#$&*/?^`{|}~-]"


class AddressMatch:
    """The forms of a set of addresses that rows may hold, and the queries that find them."""

    def __init__(self, given: Collection[str]) -> None:
        #: The normalised addresses: what the suppression list and the digests use.
        self.emails = sorted({normalise_email(address) for address in given})
        lowered: set[str] = set()
        for email in self.emails:
            lowered |= {email, _unicode_domain(email).lower()}
        #: Every lower-cased form a recipient column may hold.
        self.lowered = sorted(lowered)
        #: The exact forms, for the recipient index: as given and as normalised.
        self.exact = sorted({address.strip() for address in given} | set(self.lowered))
        self._pattern = re.compile(
            "|".join(
                # Not inside a longer local part before it, nor a longer domain after it.
                rf"(?<!{_ADDRESS_CHARACTER}){re.escape(form)}(?![A-Za-z0-9-]|\.[A-Za-z0-9])"
                for form in self.lowered
            ),
            re.IGNORECASE,
        )

    def recipient_q(self, field: str = "recipient") -> Q:
        """Rows whose ``field`` is one of the addresses (case-insensitively), or holds one
        between angle brackets. Needs ``with_lowered``. The cheap test of each pair comes
        first: a database evaluates the conditions of an OR's AND in the order written."""
        bracketed = Q(pk__in=[])
        for form in self.lowered:
            bracketed |= Q(**{f"{field}__icontains": f"<{form}>"})
        return Q(**{f"{field}_lower__in": self.lowered}) | (
            Q(**{f"{field}__contains": "<"}) & bracketed
        )

    def body_q(self) -> Q:
        """Webhook events whose body may hold one of the addresses (checked with ``mentions``):
        the text kept as received, and the JSON of events without a recipient field."""
        in_text, in_json = Q(pk__in=[]), Q(pk__in=[])
        for form in self.lowered:
            in_text |= Q(raw_body__icontains=form)
            in_json |= Q(raw__icontains=form)
        # Most events have neither: their body is JSON with a recipient.
        return (~Q(raw_body="") & in_text) | (Q(recipient="") & in_json)

    def mentions(self, raw: Any, raw_body: str) -> bool:
        """Whether a body names one of the addresses as a whole (not "joann@..." for "ann@...")."""
        text = raw_body or (json.dumps(raw, ensure_ascii=False) if raw is not None else "")
        return bool(self._pattern.search(text))


def with_lowered(queryset: models.QuerySet, field: str = "recipient") -> models.QuerySet:
    return queryset.alias(**{f"{field}_lower": Lower(field)})


def pk_ranges(queryset: models.QuerySet, step: int | None = None) -> Iterator[tuple[int, int]]:
    """[start, end) ranges of primary keys covering the table, up to its last row at the time
    each range is given: rows written while the scan runs are read too."""
    step = step or SCAN_STEP
    bounds = queryset.aggregate(first=Min("pk"), last=Max("pk"))
    if bounds["first"] is None:
        return
    start = bounds["first"]
    while True:
        yield start, start + step
        start += step
        last = queryset.aggregate(last=Max("pk"))["last"]  # the index's last entry
        if last is None or start > last:
            return


def _unicode_domain(email: str) -> str:
    """The address with its IDNA domain in Unicode, as an app may have written it."""
    local_part, at, domain = email.rpartition("@")
    if not at or "xn--" not in domain:
        return email
    try:
        unicode_domain = domain.encode("ascii").decode("idna")
    except UnicodeError:
        return email
    return f"{local_part}@{unicode_domain}"
