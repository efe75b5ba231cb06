"""Forgotten addresses: suppressed by a keyed hash once the person's data is erased.

Why: docs/internals.md#models-forgotten-addresses
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Callable, Collection, Iterable

from django.conf import settings
from django.db import models
from django.utils import timezone
from django.utils.crypto import salted_hmac
from django.utils.encoding import force_bytes

#: The salt of the derived key: this table's digests, and nothing else's.
KEY_SALT = "django_sendfleet.models.forgotten.ForgottenAddress"
#: What a send log row's recipient becomes once erased: never an address.
FORGOTTEN = "(forgotten)"


class ForgottenAddress(models.Model):
    """An address erased by ``sendfleet_forget`` that stays suppressed: only its keyed hash."""

    #: HMAC-SHA256 of the normalised address, under a key derived from SECRET_KEY (hex).
    digest = models.CharField(max_length=64, unique=True)
    #: Which SECRET_KEY made the digest (``key_id``): not a secret, not the address.
    key_id = models.CharField(max_length=16)
    forgotten_at = models.DateTimeField(default=timezone.now)

    class Meta:
        verbose_name = "forgotten address"
        verbose_name_plural = "forgotten addresses"

    def __str__(self) -> str:
        return f"forgotten address {self.pk}"


def _secrets() -> list[str | bytes]:
    """SECRET_KEY, then each of SECRET_KEY_FALLBACKS, read now (override_settings works)."""
    return [settings.SECRET_KEY, *getattr(settings, "SECRET_KEY_FALLBACKS", ())]


def digest_of(email: str, secret: str | bytes | None = None) -> str:
    """The digest of a normalised address under ``secret`` (SECRET_KEY when None): what
    ``salted_hmac(KEY_SALT, email, secret, algorithm="sha256").hexdigest()`` gives."""
    return _hmac_of(force_bytes(settings.SECRET_KEY if secret is None else secret))(email)


@functools.lru_cache(maxsize=16)
def _hmac_of(secret: bytes) -> Callable[[str], str]:
    """salted_hmac's HMAC for one secret, with its key derived and its inner and outer
    SHA-256 states (RFC 2104) computed once: the send path hashes each address of a batch
    under each key, and this costs a third of building an HMAC per address."""
    key = hashlib.sha256(KEY_SALT.encode() + secret).digest()  # salted_hmac's derivation
    block = key.ljust(hashlib.sha256().block_size, b"\0")
    inner = hashlib.sha256(bytes(byte ^ 0x36 for byte in block))
    outer = hashlib.sha256(bytes(byte ^ 0x5C for byte in block))

    def digest(email: str) -> str:
        hashed = inner.copy()
        hashed.update(email.encode())
        result = outer.copy()
        result.update(hashed.digest())
        return result.hexdigest()

    return digest


def key_id(secret: str | bytes | None = None) -> str:
    """A short name for a key: the digest of a fixed text under it. It identifies the key
    among those configured; it tells nothing about an address."""
    return salted_hmac(KEY_SALT, "key id", secret=secret, algorithm="sha256").hexdigest()[:16]


def current_digests(emails: Iterable[str]) -> dict[str, str]:
    """Each normalised address's digest under SECRET_KEY."""
    return {email: digest_of(email) for email in emails}


def all_digests(emails: Collection[str]) -> dict[str, tuple[str, bool]]:
    """Digest -> (address, made with the current key), for every configured key."""
    found: dict[str, tuple[str, bool]] = {}
    for position, secret in enumerate(_secrets()):
        digest = _hmac_of(force_bytes(secret))
        for email in emails:
            found[digest(email)] = (email, position == 0)
    return found


def keys_configured() -> int:
    return len(_secrets())


def forgotten_among(emails: Collection[str]) -> set[str]:
    """The normalised addresses, of those given, that are forgotten: one indexed query (the
    caller keeps ``emails`` within the parameter limit). Reads only."""
    if not emails:
        return set()
    digests = all_digests(emails)
    found = ForgottenAddress.objects.filter(digest__in=list(digests)).values_list(
        "digest", flat=True
    )
    return {digests[digest][0] for digest in found}


def rekey(matches: Iterable[tuple[str, bool]]) -> None:
    """Store the current key's digest of addresses found only under a fallback key, so that
    they stay recognised once that key leaves SECRET_KEY_FALLBACKS. Rare: a send to a
    forgotten address after a rotation."""
    by_key: dict[str, bool] = {}
    for email, current in matches:
        by_key[email] = by_key.get(email, False) or current
    stale = [email for email, current in by_key.items() if not current]
    if stale:
        remember(stale)


def remember(emails: Iterable[str]) -> int:
    """Store the current digests of these normalised addresses; how many were new."""
    digests = current_digests(emails)
    if not digests:
        return 0
    known = set(
        ForgottenAddress.objects.filter(digest__in=list(digests.values())).values_list(
            "digest", flat=True
        )
    )
    now, made_by = timezone.now(), key_id()
    new = [
        ForgottenAddress(digest=digest, key_id=made_by, forgotten_at=now)
        for digest in digests.values()
        if digest not in known
    ]
    # A concurrent caller may store one meanwhile: either is the same entry.
    ForgottenAddress.objects.bulk_create(new, ignore_conflicts=True)
    return len(new)


def lift(emails: Collection[str]) -> int:
    """Suppress these normalised addresses no more (their entries under every configured
    key go): how many were forgotten. For a person who asks for mail again; what was erased
    stays erased."""
    digests = all_digests(emails)
    entries = ForgottenAddress.objects.filter(digest__in=list(digests))
    lifted = {digests[digest][0] for digest in entries.values_list("digest", flat=True)}
    entries.delete()
    return len(lifted)


def entries_under_other_keys() -> int:
    """Entries made with a key that is neither SECRET_KEY nor a fallback: no lookup finds
    them any more (the addresses are then suppressed only at SendFleet, if at all)."""
    configured = [key_id(secret) for secret in _secrets()]
    return ForgottenAddress.objects.exclude(key_id__in=configured).count()
