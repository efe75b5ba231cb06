"""What the settings say about whether email through SendFleet will work.

Facts read from settings alone (no network, no database), shared by the Django system checks
(``checks.py``) and ``manage.py sendfleet_check`` (``diagnostics.py``), with the fix for each
problem, so both say the same thing in the same words.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from django.urls import reverse

from ..conf import DEFAULT_API_URL, SendFleetSettings, mailer_options
from ..conf.mailers import DEFAULT_MAILER_BACKEND, configured_mailers, is_sendfleet_backend
from ..exceptions import SendFleetConfigurationError
from ..ratelimit import is_shared

WEBHOOK_URL_NAME = "sendfleet-webhook"
#: Above this many seconds a web request waits too long on a slow API.
TIMEOUT_MAX = 30.0
#: Below this many seconds a slow answer ends as "unknown": the email may have been sent.
TIMEOUT_MIN = 1.0
MAX_RETRY_WAIT_MAX = 60.0

KEY_MISSING_FIX = (
    "Create a key in Dashboard -> API Keys and provide it as the SENDFLEET_API_KEY environment "
    "variable, SENDFLEET['API_KEY'] or the mailer's 'api_key' option."
)
KEY_MALFORMED_FIX = (
    "Copy the whole key from Dashboard -> API Keys: '<prefix>.<secret>', the part after the "
    "dot included, without spaces or quotes."
)
KEY_SHAPE_FIX = (
    "'manage.py sendfleet_check' posts the key to the API: if it works, silence this with "
    "SILENCED_SYSTEM_CHECKS = ['sendfleet.W002']. " + KEY_MALFORMED_FIX
)
LEASE_FIX = (
    "Raise SENDFLEET['LEASE_SECONDS'] (default 300) above the longest send, or lower TIMEOUT "
    "or MAX_RETRY_WAIT."
)
PLAIN_HTTP_FIX = (
    f"Use https (the default is {DEFAULT_API_URL}): plain http sends the API key unencrypted. "
    "Only a loopback address (a local sandbox) may use http."
)
WEBHOOK_SECRET_FIX = (
    "Set SENDFLEET['WEBHOOK_SECRET'] to the endpoint's signing secret from the SendFleet "
    "dashboard. SendFleet does not retry, so every event refused until then is lost."
)
MIGRATE_FIX = (
    "Check DATABASES and that the database server is up, then run 'python manage.py migrate'."
)
SETTINGS_FIX = "Correct the setting the message names (see docs/configuration.md)."


@dataclass(frozen=True)
class Mailer:
    """A configured mailer whose backend is django-sendfleet's."""

    alias: str
    backend: str
    #: The OPTIONS the backend reads (the SendFleet ones).
    options: Mapping[str, Any] = field(default_factory=dict)

    @property
    def conf(self) -> SendFleetSettings:
        return SendFleetSettings(self.options)


# Finding the SendFleet mailers.


def sendfleet_mailers() -> list[Mailer]:
    """Every configured mailer whose BACKEND is (a subclass of) our ``EmailBackend``."""
    mailers = []
    for alias, config in configured_mailers().items():
        backend = config.get("BACKEND", DEFAULT_MAILER_BACKEND)
        if is_sendfleet_backend(backend):
            mailers.append(Mailer(alias, backend, mailer_options(alias)))
    return mailers


def key_problem(conf: SendFleetSettings) -> tuple[str, str] | None:
    """("missing" or "malformed", the error text) when the key is unusable, else None.

    Other configuration errors (a wrong SENDFLEET) are left to ``settings_problem``.
    """
    try:
        conf.api_key  # noqa: B018  (the property checks the key)
    except SendFleetConfigurationError as error:
        text = str(error)
        for kind in ("missing", "malformed"):
            if f"API key is {kind}" in text:
                return kind, text
    return None


def key_shape_warning(conf: SendFleetSettings) -> str | None:
    """Why a key that will be used does not look like SendFleet's (never the key), or None."""
    try:
        key = conf.api_key
    except SendFleetConfigurationError:
        return None  # missing or malformed: key_problem says so
    return key.shape_warning()


def longest_claimed_send(conf: SendFleetSettings) -> float:
    """The most seconds a queued worker holds one row's claim: a wait for the shared rate
    limiter's slot (at most MAX_RETRY_WAIT), then one attempt (connect plus read timeout; a
    single TIMEOUT applies to each). Retries are not in it: the worker reschedules them, and
    each is sent under a new claim."""
    timeout = conf.timeout
    connect, read = timeout if isinstance(timeout, tuple) else (timeout, timeout)
    limiter_wait = conf.max_retry_wait if conf.rate_limit is not None else 0.0
    return limiter_wait + connect + read


def lease_problem(conf: SendFleetSettings) -> str | None:
    """LEASE_SECONDS too short for the longest send, or None. A lease that expires during a
    send gets a row that was sent marked ``unknown``, with no message id."""
    try:
        lease, longest = conf.lease_seconds, longest_claimed_send(conf)
    except SendFleetConfigurationError:
        return None  # settings_problem reports it
    if lease > longest:
        return None
    return (
        f"SendFleet LEASE_SECONDS is {lease} s, but one queued send can take {longest:g} s "
        "(the rate limiter's wait up to MAX_RETRY_WAIT, then the connect and read TIMEOUT): "
        "its lease would expire while it is being sent, and a sent email would be recorded "
        "'unknown'."
    )


def settings_problem(conf: SendFleetSettings) -> str | None:
    """The first configuration error other than the key's, or None."""
    try:
        conf.validate()
    except SendFleetConfigurationError as error:
        problem = key_problem(conf)
        if problem is None or problem[1] != str(error):
            return str(error)
    return None


def is_loopback(host: str | None) -> bool:
    if not host:
        return False
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def is_plain_http_outside_loopback(url: str) -> bool:
    parts = urlsplit(url)
    return parts.scheme == "http" and not is_loopback(parts.hostname)


def webhook_path() -> str | None:
    """The routed path of the webhook view, or None when the project does not route it."""
    try:
        return reverse(WEBHOOK_URL_NAME)
    except Exception:  # NoReverseMatch; a broken URLconf is Django's own checks' business
        return None


PER_PROCESS_CACHE_FIX = (
    "Point SENDFLEET['RATE_LIMIT_CACHE'] at a cache every process shares, such as Django's "
    "RedisCache (pip install redis). With one process only, this warning can be silenced "
    "with SILENCED_SYSTEM_CHECKS = ['sendfleet.W001']."
)


def rate_limit_cache_problem(conf: SendFleetSettings) -> str | None:
    """Why the shared rate limiter would not be shared, or None."""
    try:
        if conf.rate_limit is None:
            return None
        alias = conf.rate_limit_cache
    except SendFleetConfigurationError:
        return None  # sendfleet.E005
    if is_shared(alias):
        return None
    return (
        f"SendFleet's rate limiter keeps its log in the cache {alias!r}, which is per process: "
        "N web processes or workers can together send N times SENDFLEET['RATE_LIMIT'] and "
        "hit SendFleet's 429s."
    )
