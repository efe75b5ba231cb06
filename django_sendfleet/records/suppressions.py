"""The local mirror of the suppression list: checked before sending, fed by 422s and webhooks.

Forgotten addresses (``forgotten.py``, erased by ``sendfleet_forget``) are on the list too, as a
keyed hash: every lookup here asks both tables, in one query.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from django.db import connections, router
from django.db.models import F
from django.utils import timezone

from ..models import Suppression, forgotten, normalise_email
from ..models.forgotten import ForgottenAddress

#: Addresses per query: within every database's limit on query parameters.
QUERY_CHUNK = 500
#: Parameters per lookup query: Django 5.2 allows SQLite 999.
LOOKUP_PARAMETERS = 999
_EMAIL = next(f for f in Suppression._meta.concrete_fields if f.name == "email")
_DIGEST = next(f for f in ForgottenAddress._meta.concrete_fields if f.name == "digest")


def suppressed_among(addresses: Iterable[str]) -> set[str]:
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


def count_stopped_sends(addresses: Iterable[str]) -> None:
    """Record that the list stopped sends to these addresses."""
    emails = {normalise_email(address) for address in addresses}
    if emails:
        Suppression.objects.filter(email__in=emails).update(
            hits=F("hits") + 1, last_seen_at=timezone.now()
        )


def suppress(
    address: str, reason: str, *, source: str, message_id: str = "", note: str = ""
) -> Suppression | None:
    """Add an address to the list, or refresh its entry. Safe against concurrent callers.

    None for a forgotten address: it stays suppressed by its digest, never written in clear
    again (a 422 for a send that was on its way when it was forgotten)."""
    email = normalise_email(address)
    if forgotten.forgotten_among([email]):
        return None
    now = timezone.now()
    entry, created = Suppression.objects.get_or_create(
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
        Suppression.objects.filter(pk=entry.pk).update(last_seen_at=now)
        entry.last_seen_at = now
    return entry


def suppress_many(entries: Iterable[tuple[str, str, str]], *, source: str) -> None:
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
    found = suppressed_among(wanted)
    new = [
        Suppression(
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
    Suppression.objects.bulk_create(new, ignore_conflicts=True, batch_size=QUERY_CHUNK)
    for chunk in _chunks(found):
        Suppression.objects.filter(email__in=chunk).update(last_seen_at=now)
