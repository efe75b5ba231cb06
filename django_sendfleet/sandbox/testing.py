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
keyword argument; pytest functions too), or as a context manager
(``with use_sendfleet_sandbox() as sandbox:``). The pytest plugin's ``sendfleet_backend``
fixture uses the same settings (``project.py``), and every helper starts and ends with
django-sendfleet's process state reset (``isolation.py``).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any, TypeVar

from django.test.utils import TestContextDecorator, override_settings

from . import InProcessSandbox, Sandbox
from .base import BaseSandbox
from .isolation import reset_process_state
from .plans import DEFAULT_PLAN, get_plan
from .project import BACKEND, backend_settings
from .project import sender_domains as project_sender_domains

__all__ = [
    "BACKEND",
    "backend_settings",
    "make_sandbox",
    "reset_process_state",
    "sandbox_for_test",
    "use_sendfleet_sandbox",
]

_C = TypeVar("_C", bound=Callable[..., Any])
#: A sender domain's state by name, or names (verified).
SenderDomains = Mapping[str, str] | list[str] | tuple[str, ...]


def make_sandbox(
    *,
    socket: bool = False,
    plan: str = DEFAULT_PLAN,
    usage_lag: float = 0.0,
    rate_limit: tuple[int, float] = (60, 60.0),
    sender_domains: SenderDomains = (),
    project_domains: bool = True,
) -> BaseSandbox:
    """A new, unstarted sandbox: in process unless ``socket`` (which then records the retry
    waits of this process's clients as well). It knows the domains your settings send from
    (``DEFAULT_FROM_EMAIL``, ``SERVER_EMAIL``) unless ``project_domains=False``, and
    ``sender_domains``: more names, or name -> state (``"txt_unverified"``...)."""
    sandbox: BaseSandbox
    if socket:
        sandbox = Sandbox(plan=plan, usage_lag=usage_lag, rate_limit=rate_limit, record_waits=True)
    else:
        sandbox = InProcessSandbox(plan=plan, usage_lag=usage_lag, rate_limit=rate_limit)
    if project_domains:
        for name in project_sender_domains():
            sandbox.add_sender_domain(name)
    sandbox.add_sender_domains(sender_domains)
    return sandbox


@contextmanager
def sandbox_for_test(**options: Any) -> Iterator[BaseSandbox]:
    """A started sandbox (``make_sandbox(**options)``), with django-sendfleet's process state
    reset before and after: what each helper gives one test."""
    sandbox = make_sandbox(**options)
    reset_process_state(sandbox.api_keys)
    with sandbox:
        try:
            yield sandbox
        finally:
            reset_process_state(sandbox.api_keys)


class use_sendfleet_sandbox(TestContextDecorator):  # lower case, like override_settings
    """Send through django-sendfleet to a fresh sandbox (in process unless ``socket=True``),
    on ``plan``, for the decorated test, class or ``with`` block. ``sendfleet``: more
    ``SENDFLEET`` settings for it (a ``WEBHOOK_SECRET``...). ``sender_domains`` and
    ``project_domains``: as for ``make_sandbox``."""

    def __init__(
        self,
        *,
        socket: bool = False,
        plan: str = DEFAULT_PLAN,
        usage_lag: float = 0.0,
        rate_limit: tuple[int, float] = (60, 60.0),
        sendfleet: Mapping[str, Any] | None = None,
        sender_domains: SenderDomains = (),
        project_domains: bool = True,
        attr_name: str | None = "sandbox",
        kwarg_name: str | None = "sandbox",
    ) -> None:
        self.options: dict[str, Any] = {
            "socket": socket,
            "plan": plan,
            "usage_lag": usage_lag,
            "rate_limit": rate_limit,
            "sender_domains": sender_domains,
            "project_domains": project_domains,
        }
        get_plan(plan)  # refuse a bad option here, not in each test's setUp
        self.sendfleet = dict(sendfleet or {})
        self._active: list[tuple[Any, override_settings]] = []
        super().__init__(attr_name=attr_name, kwarg_name=kwarg_name)

    def enable(self) -> BaseSandbox:
        from django.conf import settings

        running = sandbox_for_test(**self.options)
        sandbox = running.__enter__()
        try:
            current = {**getattr(settings, "SENDFLEET", {}), **self.sendfleet}
            override = override_settings(**backend_settings(sandbox, current))
            override.enable()
        except BaseException as error:
            running.__exit__(type(error), error, error.__traceback__)
            raise
        self._active.append((running, override))
        return sandbox

    def disable(self) -> None:
        running, override = self._active.pop()
        try:
            override.disable()
        finally:
            running.__exit__(None, None, None)

    def decorate_callable(self, func: _C) -> _C:
        """Django's wrapper, whose signature leaves out the keyword argument it passes: pytest
        reads a test function's parameters as fixtures, and there is no ``sandbox`` fixture."""
        wrapper = super().decorate_callable(func)
        if self.kwarg_name:
            signature = inspect.signature(func)
            parameters = [p for name, p in signature.parameters.items() if name != self.kwarg_name]
            wrapper.__signature__ = signature.replace(parameters=parameters)  # type: ignore[attr-defined]
        return wrapper
