"""Django test support: send through django-sendfleet to a sandbox for one test, or a class.

    from django.test import TestCase
    from django_sendfleet.sandbox.testing import use_sendfleet_sandbox

    @use_sendfleet_sandbox()
    class SignupTests(TestCase):
        def test_welcome_mail(self):
            self.client.post("/signup/", {"email": "ann@example.com"})
            [payload] = self.sandbox.payloads_to("ann@example.com")

It works like ``override_settings``: as a class decorator (each test gets a fresh sandbox as
``self.sandbox``), as a function or method decorator (the sandbox is passed as the ``sandbox``
keyword argument), or as a context manager (``with use_sendfleet_sandbox() as sandbox:``).
The pytest plugin's ``sendfleet_backend`` fixture uses the same settings.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import django
from django.test.utils import TestContextDecorator, override_settings

from . import InProcessSandbox, Sandbox
from .base import BaseSandbox
from .defaults import SANDBOX_API_KEY
from .plans import DEFAULT_PLAN, get_plan

BACKEND = "django_sendfleet.backends.EmailBackend"


def backend_settings(sandbox: BaseSandbox, sendfleet: Mapping[str, Any] | None) -> dict[str, Any]:
    """Settings that make django-sendfleet's ``EmailBackend`` the default mailer, sending to
    ``sandbox`` with its key: your ``SENDFLEET`` (``sendfleet``) with the sandbox's URL and key,
    and the rate limiter off (its log lives in the cache, which outlasts each test)."""
    settings: dict[str, Any] = {
        "SENDFLEET": {
            **(sendfleet or {}),
            "API_KEY": SANDBOX_API_KEY,
            "API_URL": sandbox.url,
            "RATE_LIMIT": None,
        }
    }
    if django.VERSION >= (6, 1):
        settings["MAILERS"] = {"default": {"BACKEND": BACKEND}}
    else:
        settings["EMAIL_BACKEND"] = BACKEND
    return settings


def make_sandbox(
    *,
    socket: bool = False,
    plan: str = DEFAULT_PLAN,
    usage_lag: float = 0.0,
    rate_limit: tuple[int, float] = (60, 60.0),
) -> BaseSandbox:
    """A new, unstarted sandbox: in process unless ``socket``."""
    kind = Sandbox if socket else InProcessSandbox
    return kind(plan=plan, usage_lag=usage_lag, rate_limit=rate_limit)


class use_sendfleet_sandbox(TestContextDecorator):  # lower case, like override_settings
    """Send through django-sendfleet to a fresh sandbox (in process unless ``socket=True``),
    on ``plan``, for the decorated test, class or ``with`` block. ``sendfleet``: more
    ``SENDFLEET`` settings for it (a ``WEBHOOK_SECRET``...)."""

    def __init__(
        self,
        *,
        socket: bool = False,
        plan: str = DEFAULT_PLAN,
        usage_lag: float = 0.0,
        rate_limit: tuple[int, float] = (60, 60.0),
        sendfleet: Mapping[str, Any] | None = None,
        attr_name: str | None = "sandbox",
        kwarg_name: str | None = "sandbox",
    ) -> None:
        self.options: dict[str, Any] = {
            "socket": socket,
            "plan": plan,
            "usage_lag": usage_lag,
            "rate_limit": rate_limit,
        }
        get_plan(plan)  # refuse a bad option here, not in each test's setUp
        self.sendfleet = dict(sendfleet or {})
        self._active: list[tuple[BaseSandbox, override_settings]] = []
        super().__init__(attr_name=attr_name, kwarg_name=kwarg_name)

    def enable(self) -> BaseSandbox:
        from django.conf import settings

        sandbox = make_sandbox(**self.options).start()
        current = {**getattr(settings, "SENDFLEET", {}), **self.sendfleet}
        override = override_settings(**backend_settings(sandbox, current))
        try:
            override.enable()
        except BaseException:
            sandbox.stop()
            raise
        self._active.append((sandbox, override))
        return sandbox

    def disable(self) -> None:
        sandbox, override = self._active.pop()
        try:
            override.disable()
        finally:
            sandbox.stop()
