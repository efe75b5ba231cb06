"""The one object that reads django-sendfleet's configuration.

Values come, in order, from a Django 6.1 ``MAILERS`` entry's ``OPTIONS`` (lower-case names),
the ``SENDFLEET`` setting (upper-case names), the environment (the API key only), and the
defaults below. Nothing is read at import or construction time: every attribute looks the
setting up when it is used, so ``override_settings`` works in tests.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any
from urllib.parse import urlsplit

from django.apps import apps
from django.conf import settings
from django.views.decorators.debug import sensitive_variables

from ..credentials.api_key import API_KEY_ENVIRONMENT_VARIABLE, ApiKey
from ..credentials.secret import Secret, hide_secrets, key_shaped, reveal
from ..exceptions import SendFleetConfigurationError
from ..message.priority import HIGH, LOW, parse_priority
from .thresholds import Thresholds, parse_thresholds

DEFAULT_API_URL = "https://sendfleet.net/api/send/"
_RATE_PERIODS = {"s": 1, "sec": 1, "second": 1, "m": 60, "min": 60, "minute": 60, "h": 3600}


@dataclass(frozen=True)
class Option:
    name: str  # upper case, as in the SENDFLEET dict
    default: Any
    parse: Callable[[str, Any], Any]
    #: Settable per mailer in MAILERS OPTIONS (webhook settings belong to the project).
    per_mailer: bool = True


def _shown(value: Any) -> str:
    """A refused value, for an error message: never one that looks like an API key."""
    if key_shaped(value):
        return "a value shaped like an API key (not shown)"
    return repr(value)


@sensitive_variables("value")
def _parsed(option: Option, label: str, value: Any) -> Any:
    """``option.parse`` of a value (revealed: the parsers check the text itself). A refusal is
    raised again from here, without the parser's frame: its variables hold the value."""
    try:
        return option.parse(label, reveal(value))
    except SendFleetConfigurationError as error:
        kind, args = type(error), error.args
    raise kind(*args)


def _boolean(name: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise SendFleetConfigurationError(
            f"SendFleet {name} must be True or False, not {_shown(value)}."
        )
    return value


def _seconds(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        raise SendFleetConfigurationError(
            f"SendFleet {name} must be a number of seconds (0 or more), not {_shown(value)}."
        )
    return float(value)


def _positive_int(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise SendFleetConfigurationError(f"SendFleet {name} must be a whole number above 0.")
    return value


def _timeout(name: str, value: Any) -> float | tuple[float, float]:
    """Seconds, or (connect, read) seconds as requests takes them."""
    pair = isinstance(value, tuple | list) and len(value) == 2
    parts = tuple(_seconds(name, part) for part in (value if pair else (value,)))
    if not all(parts):
        raise SendFleetConfigurationError(f"SendFleet {name} must be more than 0 seconds.")
    return (parts[0], parts[1]) if pair else parts[0]


def _api_url(name: str, value: Any) -> str:
    parts = urlsplit(value) if isinstance(value, str) else None
    if parts is None or parts.scheme not in ("http", "https") or not parts.hostname:
        raise SendFleetConfigurationError(
            f"SendFleet {name} must be an http(s) URL such as {DEFAULT_API_URL!r}, "
            f"not {_shown(value)}."
        )
    return value


def _rate_limit(name: str, value: Any) -> tuple[int, float] | None:
    """``"60/min"``, ``"10/s"``, ``"500/h"`` or ``(requests, seconds)``; None disables."""
    if value is None:
        return None
    if isinstance(value, str) and len(value) <= 64:
        match = re.fullmatch(r"\s*(\d+)\s*/\s*(\d*)\s*([a-z]+)\s*", value.lower())
        if match and match[3] in _RATE_PERIODS:
            count, multiple, unit = match.groups()
            requests, seconds = int(count), float(int(multiple or 1) * _RATE_PERIODS[unit])
            # "0/min" or "5/0s" would pass here and fail every send: refuse them like (0, 60).
            if requests > 0 and seconds > 0:
                return requests, seconds
    elif isinstance(value, tuple | list) and len(value) == 2:
        count, seconds = value
        valid_count = isinstance(count, int) and not isinstance(count, bool) and count > 0
        if valid_count and isinstance(seconds, int | float) and seconds > 0:
            return count, float(seconds)
    raise SendFleetConfigurationError(
        f"SendFleet {name} must look like '60/min', '10/s', '500/h' or (requests, seconds), "
        f"with at least 1 request in more than 0 seconds, or be None; not {_shown(value)}."
    )


def _secret(name: str, value: Any) -> Secret[Any]:
    """The API key as configured, checked by ``SendFleetSettings.api_key``."""
    return Secret.wrap(value)


def _split_secrets(value: Secret[Any]) -> tuple[Secret[Any], ...] | None:
    """The secrets a WEBHOOK_SECRET value lists, each a ``Secret``; None for a value that is not
    a string or a list. Raises nothing: its frame holds the revealed value."""
    values = value.reveal()
    if values is None:
        return ()
    if isinstance(values, str):
        return (value,)
    if isinstance(values, list | tuple):
        return tuple(Secret.wrap(v) for v in values)
    return None


def _secrets(name: str, value: Any) -> tuple[Secret[str], ...]:
    """One webhook signing secret, or several while rotating (old and new both accepted)."""
    secrets = _split_secrets(Secret.wrap(value))
    if secrets is None or not all(
        isinstance(reveal(s), str) and reveal(s).strip() for s in secrets
    ):
        raise SendFleetConfigurationError(
            f"SendFleet {name} must be a non-empty string or a list of them (while rotating)."
        )
    return secrets


def _max_age(name: str, value: Any) -> float | None:
    """Seconds (or a ``timedelta``) above 0, or None: no event is refused for its age."""
    if value is None:
        return None
    seconds = _seconds(name, value.total_seconds() if isinstance(value, timedelta) else value)
    if not 0 < seconds < float("inf"):
        raise SendFleetConfigurationError(f"SendFleet {name} must be more than 0 seconds or None.")
    return seconds


def _alias(name: str, value: Any) -> str:
    if not isinstance(value, str) or not value:
        raise SendFleetConfigurationError(f"SendFleet {name} must be an alias such as 'default'.")
    return value


def _cache_alias(name: str, value: Any) -> str:
    alias = _alias(name, value)
    if alias not in settings.CACHES:
        raise SendFleetConfigurationError(
            f"SendFleet {name} is {alias!r}, which is not in settings.CACHES."
        )
    return alias


OPTIONS: tuple[Option, ...] = (
    Option("API_KEY", None, _secret),  # checked by SendFleetSettings.api_key
    Option("API_URL", DEFAULT_API_URL, _api_url),
    Option("TIMEOUT", 10.0, _timeout),
    Option("MAX_RETRY_WAIT", 10.0, _seconds),
    Option("IGNORE_UNSUPPORTED_FEATURES", False, _boolean),
    Option("IGNORE_RECIPIENT_STATUS", False, _boolean),
    Option("RATE_LIMIT", "60/min", _rate_limit),
    Option("RATE_LIMIT_CACHE", "default", _cache_alias),
    Option("SEND_LOG", True, _boolean),
    Option("CHECK_SUPPRESSIONS", True, _boolean),
    Option("LOG_CONTENT", False, _boolean),
    Option("WEBHOOK_SECRET", None, _secrets),  # a mailer's own: its account's secret
    Option("WEBHOOK_MAX_BODY_BYTES", 256 * 1024, _positive_int, per_mailer=False),
    # Events signed longer ago than this are stored but not applied (replays): 7 days.
    Option("WEBHOOK_MAX_AGE", 7 * 24 * 3600, _max_age, per_mailer=False),
    # Queued sending: the Django Tasks backend alias, and how long a worker's claim on a row
    # lasts; past it, a row still "sending" is marked "unknown" (the worker died mid-send).
    Option("TASK_BACKEND", "default", _alias),
    Option("LEASE_SECONDS", 300, _positive_int),
    # After a 401, the key is not used for this long, by any process (key_guard.py).
    Option("KEY_REFUSED_PAUSE", 120, _positive_int),
    # The reputation guard (docs/reputation.md): a bulk mailer stops while a rate is at danger.
    Option("BULK", False, _boolean),
    Option("REPUTATION", None, parse_thresholds, per_mailer=False),
    # Which sends go first (priority.py): None is "low" for a BULK mailer, else "high".
    Option("PRIORITY", None, parse_priority),
    # sendfleet_check warns when the oldest due high-priority row has waited longer: seconds.
    Option("HIGH_PRIORITY_MAX_WAIT", 120, _max_age, per_mailer=False),
)
OPTIONS_BY_NAME: Mapping[str, Option] = {option.name: option for option in OPTIONS}
#: The names a MAILERS entry's OPTIONS may use.
MAILER_OPTION_NAMES = frozenset(option.name.lower() for option in OPTIONS if option.per_mailer)


class SendFleetSettings:
    """django-sendfleet's configuration for one mailer, looked up when used."""

    # Django's error reports show every frame's locals, and ``sensitive_variables`` hides
    # them only when DEBUG is off: the key and the secrets are held as ``Secret``s, whose repr
    # is redacted, from the moment they are read (``hide_secrets``).
    @sensitive_variables("options")
    def __init__(self, options: Mapping[str, Any] | None = None) -> None:
        self._options = hide_secrets(options or {})
        unknown = set(self._options) - MAILER_OPTION_NAMES
        if unknown:
            raise SendFleetConfigurationError(
                f"Unknown SendFleet options: {', '.join(sorted(unknown))}."
            )

    @sensitive_variables("configured", "value")  # "value": the parsers' argument
    def _get(self, name: str) -> Any:
        option = OPTIONS_BY_NAME[name]
        if name.lower() in self._options:
            return _parsed(option, name.lower(), self._options[name.lower()])
        configured = _project_options()
        unknown = set(configured) - set(OPTIONS_BY_NAME)
        if unknown:
            raise SendFleetConfigurationError(
                f"Unknown keys in settings.SENDFLEET: {', '.join(sorted(unknown))}."
            )
        if name in configured:
            return _parsed(option, f"SENDFLEET[{name!r}]", configured[name])
        return _parsed(option, name, option.default)

    def given(self, name: str) -> bool:
        """Whether this mailer's own options set ``name`` (the backend's keyword arguments,
        which on Django 6.1 carry its ``MAILERS`` ``OPTIONS``), not ``SENDFLEET`` or the default."""
        return name.lower() in self._options

    def validate(self) -> None:
        """Read every option now, so a mistake raises before anything is sent."""
        for option in OPTIONS:
            self._get(option.name)
        self.api_key, self.send_log, self.check_suppressions  # noqa: B018  (their own checks)

    @property
    @sensitive_variables("raw")
    def api_key(self) -> ApiKey:
        """The API key, refused if it cannot be right. The error never shows the key itself."""
        raw = self._get("API_KEY") or Secret(os.environ.get(API_KEY_ENVIRONMENT_VARIABLE))
        return ApiKey.parse(raw)

    @property
    def api_key_prefix(self) -> str:
        """The part of the key SendFleet's dashboard shows; safe to log."""
        return self.api_key.prefix

    @property
    def secrets(self) -> tuple[Secret[str], ...]:
        """What must never be logged or stored: the key, its secret part, webhook secrets."""
        return (*self.api_key.secrets, *self.webhook_secrets)

    @property
    def api_url(self) -> str:
        return self._get("API_URL")

    @property
    def timeout(self) -> float | tuple[float, float]:
        return self._get("TIMEOUT")

    @property
    def max_retry_wait(self) -> float:
        return self._get("MAX_RETRY_WAIT")

    @property
    def ignore_unsupported_features(self) -> bool:
        return self._get("IGNORE_UNSUPPORTED_FEATURES")

    @property
    def ignore_recipient_status(self) -> bool:
        return self._get("IGNORE_RECIPIENT_STATUS")

    @property
    def rate_limit(self) -> tuple[int, float] | None:
        return self._get("RATE_LIMIT")

    @property
    def rate_limit_cache(self) -> str:
        return self._get("RATE_LIMIT_CACHE")

    @property
    def task_backend(self) -> str:
        return self._get("TASK_BACKEND")

    @property
    def lease_seconds(self) -> int:
        return self._get("LEASE_SECONDS")

    @property
    def key_refused_pause(self) -> int:
        return self._get("KEY_REFUSED_PAUSE")

    @property
    def bulk(self) -> bool:
        return self._get("BULK")

    @property
    def priority(self) -> str:
        """This mailer's sends' priority: ``PRIORITY``, else low for a BULK mailer, else high."""
        configured: str | None = self._get("PRIORITY")
        return configured or (LOW if self.bulk else HIGH)

    @property
    def high_priority_max_wait(self) -> timedelta | None:
        """The age of the oldest due high-priority row past which checks warn; None: never."""
        seconds = self._get("HIGH_PRIORITY_MAX_WAIT")
        return None if seconds is None else timedelta(seconds=seconds)

    @property
    def reputation(self) -> Thresholds:
        return self._get("REPUTATION")

    @property
    def send_log(self) -> bool:
        return self._uses_models("SEND_LOG")

    @property
    def check_suppressions(self) -> bool:
        return self._uses_models("CHECK_SUPPRESSIONS")

    @property
    def log_content(self) -> bool:
        return self._get("LOG_CONTENT")

    @property
    def webhook_secrets(self) -> tuple[Secret[str], ...]:
        """The signing secrets accepted for webhooks; empty means every event is refused."""
        return self._get("WEBHOOK_SECRET")

    @property
    def webhook_max_body_bytes(self) -> int:
        return self._get("WEBHOOK_MAX_BODY_BYTES")

    @property
    def webhook_max_age(self) -> timedelta | None:
        """Events signed longer ago are refused (a replay); None: no limit."""
        seconds = self._get("WEBHOOK_MAX_AGE")
        return None if seconds is None else timedelta(seconds=seconds)

    def _uses_models(self, name: str) -> bool:
        enabled: bool = self._get(name)
        if enabled and not apps.is_installed("django_sendfleet"):
            raise SendFleetConfigurationError(
                f"SENDFLEET['{name}'] is on, which needs 'django_sendfleet' in INSTALLED_APPS "
                f"(then run migrate); or set it to False."
            )
        return enabled


def _project_options() -> dict[str, Any]:
    """``settings.SENDFLEET``, its secrets as ``Secret``s (``SendFleetSettings._get``'s frame
    holds it while an option's value is parsed, and may be in an error report)."""
    if not isinstance(getattr(settings, "SENDFLEET", {}), Mapping):
        raise SendFleetConfigurationError("settings.SENDFLEET must be a dict.")
    return hide_secrets(getattr(settings, "SENDFLEET", {}))


def mailer_options(alias: str) -> dict[str, Any]:
    """The SendFleet options of a Django 6.1 ``MAILERS`` entry ({} before 6.1 or if absent),
    the key as a ``Secret``.

    For code that works for a mailer without a backend instance: the queued worker, checks.
    """
    entry = getattr(settings, "MAILERS", {}).get(alias) or {}
    options = hide_secrets(entry.get("OPTIONS") or {})
    return {name: value for name, value in options.items() if name in MAILER_OPTION_NAMES}


def pop_mailer_options(kwargs: dict[str, Any]) -> dict[str, Any]:
    """Take the SendFleet options out of a backend's keyword arguments (the MAILERS entry's
    OPTIONS on Django 6.1), the key as a ``Secret``. What stays in ``kwargs`` is for Django,
    which refuses unknown options by name (``InvalidMailer``): the value of one named like a
    secret (a misspelt ``api_key``) or shaped like a key is made a ``Secret`` there too, so that
    neither the backend's frame nor Django's ``BaseEmailBackend`` frame shows it in the error's
    report."""
    ours = {name: kwargs.pop(name) for name in list(kwargs) if name in MAILER_OPTION_NAMES}
    kwargs.update(hide_secrets(kwargs))
    return hide_secrets(ours)
