"""The local mirror of the suppression list: checked before sending, fed by 422s and webhooks."""

from __future__ import annotations

from collections.abc import Iterable

from django.db.models import F
from django.utils import timezone

from .models import Suppression, normalise_email


def suppressed_among(addresses: Iterable[str]) -> set[str]:
    """The normalised addresses, of those given, that are on the list. One query."""
    wanted = {normalise_email(address) for address in addresses}
    if not wanted:
        return set()
    return set(Suppression.objects.filter(email__in=wanted).values_list("email", flat=True))


def count_stopped_sends(addresses: Iterable[str]) -> None:
    """Record that the list stopped sends to these addresses."""
    emails = {normalise_email(address) for address in addresses}
    if emails:
        Suppression.objects.filter(email__in=emails).update(
            hits=F("hits") + 1, last_seen_at=timezone.now()
        )


def suppress(
    address: str, reason: str, *, source: str, message_id: str = "", note: str = ""
) -> Suppression:
    """Add an address to the list, or refresh its entry. Safe against concurrent callers."""
    now = timezone.now()
    entry, created = Suppression.objects.get_or_create(
        email=normalise_email(address),
        defaults={
            "reason": reason,
            "source": source,
            "message_id": message_id,
            "note": note,
            "created_at": now,
            "last_seen_at": now,
        },
    )
    if not created:
        Suppression.objects.filter(pk=entry.pk).update(last_seen_at=now)
        entry.last_seen_at = now
    return entry
