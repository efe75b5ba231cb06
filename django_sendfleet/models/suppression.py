"""The local mirror of the suppression list: checked before sending, fed by 422s and webhooks.

``Suppression.objects`` is where the list is read and written (``suppressed_among``,
``suppress``, ``suppress_many``, ``count_stopped_sends``), as ``User.objects.create_user`` is
for users. Forgotten addresses (``forgotten.py``, erased by ``sendfleet_forget``) are on the
list too, as a keyed hash: every lookup asks both tables, in one query.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from django.db import connections, models, router
from django.db.models import F
from django.utils import timezone

from ..message.addresses import MAX_ADDRESS_LENGTH
from . import forgotten
from .forgotten import ForgottenAddress
from .send_log import normalise_email

#: Addresses per query: within every database's limit on query parameters.
QUERY_CHUNK = 500
#: Parameters per lookup query: Django 5.2 allows SQLite 999.
LOOKUP_PARAMETERS = 999
_DIGEST = next(f for f in ForgottenAddress._meta.concrete_fields if f.name == "digest")


class SuppressionManager(models.Manager["Suppression"]):
    """The list's reads and writes, each safe against concurrent callers."""

    def suppressed_among(self, addresses: Iterable[str]) -> set[str]:
        """The normalised addresses, of those given, that are on the list, in clear or forgotten:
        one query per 499 addresses (each is asked once, and once per SECRET_KEY as a digest)."""
        found: set[str] = set()
        per_query = LOOKUP_PARAMETERS // (1 + forgotten.keys_configured())
        for chunk in _chunks({normalise_email(address) for address in addresses}, per_query):
            digests = forgotten.all_digests(chunk)
            matched = []
            # A digest never holds an "@": a value found is an address or a digest, never both.
            for value in _listed_or_hashed(chunk, list(digests)):
                if value in digests:
                    matched.append(digests[value])
                else:
                    found.add(value)
            found.update(email for email, _ in matched)
            forgotten.rekey(matched)
        return found

    def count_stopped_sends(self, addresses: Iterable[str]) -> None:
        """Record that the list stopped sends to these addresses."""
        emails = {normalise_email(address) for address in addresses}
        if emails:
            self.filter(email__in=emails).update(hits=F("hits") + 1, last_seen_at=timezone.now())

    def suppress(
        self, address: str, reason: str, *, source: str, message_id: str = "", note: str = ""
    ) -> Suppression | None:
        """Add an address to the list, or refresh its entry. Safe against concurrent callers.

        None for a forgotten address: it stays suppressed by its digest, never written in clear
        again (a 422 for a send that was on its way when it was forgotten)."""
        email = normalise_email(address)
        if forgotten.forgotten_among([email]):
            return None
        now = timezone.now()
        entry, created = self.get_or_create(
            email=email,
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
            self.filter(pk=entry.pk).update(last_seen_at=now)
            entry.last_seen_at = now
        return entry

    def suppress_many(self, entries: Iterable[tuple[str, str, str]], *, source: str) -> None:
        """Add (address, reason, message id) entries to the list, or refresh those already on it,
        as ``suppress`` does one at a time, in three statements: a batch of webhook events holds
        SQLite's write lock while it does this. The first entry for an address decides its reason.
        """
        now = timezone.now()
        wanted: dict[str, tuple[str, str]] = {}
        for address, reason, message_id in entries:
            wanted.setdefault(normalise_email(address), (reason, message_id))
        if not wanted:
            return
        found = self.suppressed_among(wanted)
        new = [
            self.model(
                email=email,
                reason=reason,
                source=source,
                message_id=message_id,
                created_at=now,
                last_seen_at=now,
            )
            for email, (reason, message_id) in wanted.items()
            if email not in found
        ]
        # A concurrent caller may add one meanwhile: theirs stands, as get_or_create's would.
        self.bulk_create(new, ignore_conflicts=True, batch_size=QUERY_CHUNK)
        for chunk in _chunks(found):
            self.filter(email__in=chunk).update(last_seen_at=now)


class Suppression(models.Model):
    """An address never to send to again; checked before every send."""

    class Reason(models.TextChoices):
        HARD_BOUNCE = "hard_bounce", "hard bounce"
        COMPLAINT = "complaint", "complaint"
        API_REJECTED = "api_rejected", "rejected by SendFleet (422)"
        MANUAL = "manual", "added by hand"

    email = models.CharField(
        max_length=MAX_ADDRESS_LENGTH, unique=True, help_text="Stored in lower case."
    )
    reason = models.CharField(max_length=16, choices=Reason.choices, default=Reason.MANUAL)
    source = models.CharField(max_length=32, blank=True, help_text="api, webhook, admin...")
    created_at = models.DateTimeField(default=timezone.now)
    last_seen_at = models.DateTimeField(default=timezone.now)
    hits = models.PositiveIntegerField(default=0, help_text="Sends stopped by this entry.")
    note = models.TextField(blank=True)
    message_id = models.CharField(max_length=100, blank=True)

    objects = SuppressionManager()

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return self.email

    def save(self, *args, **kwargs) -> None:  # type: ignore[no-untyped-def]
        self.email = normalise_email(self.email)
        super().save(*args, **kwargs)


_EMAIL = next(f for f in Suppression._meta.concrete_fields if f.name == "email")


def _listed_or_hashed(emails: list[str], digests: list[str]) -> list[str]:
    """The addresses on the list and the digests stored, of these: one round trip, each
    table by its unique index (two queries should a router put them on two databases)."""
    db = router.db_for_read(Suppression)
    if router.db_for_read(ForgottenAddress) != db:
        return [
            *Suppression.objects.filter(email__in=emails).values_list("email", flat=True),
            *ForgottenAddress.objects.filter(digest__in=digests).values_list("digest", flat=True),
        ]
    connection = connections[db]
    quote = connection.ops.quote_name
    # Written out: the ORM's preparation of a thousand parameters costs more than the query.
    # On PostgreSQL each list is one text parameter, split by the server: adapting a thousand
    # parameters (or an array's elements) costs the client more than the query costs the
    # server. A digest never holds a line break; an address that does is asked as an array.
    joined = connection.vendor == "postgresql"
    parts: list[str] = []
    params: list[str | list[str]] = []
    for field, values in ((_EMAIL, emails), (_DIGEST, digests)):
        column = quote(field.column or field.name)  # set on every concrete field
        table = quote(field.model._meta.db_table)
        if joined and not any("\n" in value for value in values):
            split = "string_to_array(%s, chr(10))"
            parts.append(f"SELECT {column} FROM {table} WHERE {column} = ANY({split})")
            params.append("\n".join(values))
        elif joined:
            parts.append(f"SELECT {column} FROM {table} WHERE {column} = ANY(%s)")
            params.append(values)
        else:
            marks = ", ".join(["%s"] * len(values))
            parts.append(f"SELECT {column} FROM {table} WHERE {column} IN ({marks})")
            params.extend(values)
    with connection.cursor() as cursor:
        cursor.execute(" UNION ALL ".join(parts), params)
        return [value for (value,) in cursor.fetchall()]


def _chunks(emails: set[str], size: int = QUERY_CHUNK) -> Iterator[list[str]]:
    """The addresses, sorted, ``size`` at a time."""
    ordered = sorted(emails)
    for start in range(0, len(ordered), size):
        yield ordered[start : start + size]
