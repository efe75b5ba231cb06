"""An exception reporter filter that keeps secrets out of the frames Django's reports show,
in every frame and whatever ``DEBUG`` is (``DEFAULT_EXCEPTION_REPORTER_FILTER = FILTER_PATH``).

Why: docs/internals.md#reporting-secrets-out-of-error-reports
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from django.conf import settings
from django.http import HttpRequest
from django.utils.datastructures import MultiValueDict
from django.utils.module_loading import import_string
from django.views.debug import SafeExceptionReporterFilter

from .conf.mailers import configured_mailers
from .credentials.secret import SECRET_NAME

__all__ = [
    "SecretsReporterFilter",
]

FILTER_PATH = "django_sendfleet.reporting.SecretsReporterFilter"
#: Containers nested deeper than this are not looked into: shown as a placeholder instead.
MAX_DEPTH = 20


class SecretsReporterFilter(SafeExceptionReporterFilter):
    """Django's filter, plus: secret-named variables and dict values cleansed in every frame."""

    #: Searched in variable names and dict keys, case-insensitively (``api_key``, ``secret``,
    #: ``password``, ``token``...). A subclass may set its own.
    secret_names: re.Pattern[str] = SECRET_NAME

    def get_traceback_frame_variables(self, request: HttpRequest | None, tb_frame: Any) -> Any:
        variables = super().get_traceback_frame_variables(request, tb_frame)
        return [
            (name, self.cleansed_substitute if self.is_secret(name) else self.cleanse(value))
            for name, value in variables
        ]

    def is_secret(self, name: object) -> bool:
        return isinstance(name, str) and self.secret_names.search(name) is not None

    def cleanse(self, value: Any) -> Any:
        """``value``, or a copy of it with every value under a secret-looking key replaced.
        The value itself is never changed, and is returned as it is when it holds no secret."""
        try:
            return self._cleanse(value, depth=0, path=set())
        except Exception:  # an odd mapping: show nothing rather than what it may hold
            return self.cleansed_substitute

    def _cleanse(self, value: Any, depth: int, path: set[int]) -> Any:
        if not isinstance(value, Mapping | list | tuple):
            return value  # shown by its repr: a Secret's is redacted
        if id(value) in path:  # a cycle: the copy cannot refer back to the original
            return f"<recursion on {type(value).__name__}>"
        if depth >= MAX_DEPTH:
            return f"<{type(value).__name__} nested too deeply to be shown>"
        path = path | {id(value)}
        if isinstance(value, MultiValueDict):
            secret = [key for key in value if self.is_secret(key)]
            if not secret:
                return value
            copy = value.copy()
            for key in secret:
                copy.setlist(key, [self.cleansed_substitute])
            return copy
        if isinstance(value, Mapping):
            items = list(value.items())
            values = [
                self.cleansed_substitute if self.is_secret(k) else self._cleanse(v, depth + 1, path)
                for k, v in items
            ]
            if _unchanged([v for _, v in items], values):
                return value
            return {k: v for (k, _), v in zip(items, values, strict=True)}
        members = list(value)
        cleansed = [self._cleanse(member, depth + 1, path) for member in members]
        if _unchanged(members, cleansed):
            return value
        return tuple(cleansed) if isinstance(value, tuple) else cleansed


def _unchanged(values: list[Any], cleansed: list[Any]) -> bool:
    return all(new is old for old, new in zip(values, cleansed, strict=True))


def filter_in_use() -> bool:
    """Whether ``DEFAULT_EXCEPTION_REPORTER_FILTER`` is ``SecretsReporterFilter`` (or a
    subclass of it)."""
    try:
        configured = import_string(settings.DEFAULT_EXCEPTION_REPORTER_FILTER)
    except ImportError:
        return False
    return isinstance(configured, type) and issubclass(configured, SecretsReporterFilter)


def secret_mailer_options() -> dict[str, list[str]]:
    """The ``OPTIONS`` names that look like secrets, per mailer alias (Django 6.1 ``MAILERS``,
    any backend): Django's own frames show them in an error's report. Names, never values."""
    found = {}
    for alias, config in configured_mailers().items():
        options = config.get("OPTIONS") if isinstance(config, Mapping) else None
        names = sorted(str(name) for name in (options or {}) if SECRET_NAME.search(str(name)))
        if names:
            found[alias] = names
    return found
