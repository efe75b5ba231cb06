"""Pytest fixtures for projects testing against the sandbox.

Enable with ``pytest_plugins = ["django_sendfleet.sandbox.pytest_plugin"]`` in a root
``conftest.py``.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from . import SANDBOX_API_KEY, Sandbox

BACKEND = "django_sendfleet.backends.EmailBackend"


@pytest.fixture
def sendfleet_sandbox() -> Iterator[Sandbox]:
    """A started sandbox with the default world, on a free port, stopped after the test.

    Each test gets its own server: starting and stopping one takes a few milliseconds, and
    nothing a test configures (faults, rate limits, latency, keys) can leak into the next.
    """
    with Sandbox() as sandbox:
        yield sandbox


@pytest.fixture
def sendfleet_backend(settings: Any, sendfleet_sandbox: Sandbox) -> dict[str, Any]:
    """Send this test's email through django-sendfleet to ``sendfleet_sandbox``.

    Needs pytest-django (its ``settings`` fixture). Django's test environment replaces every
    mailer with the locmem backend; this puts the SendFleet backend back as the default
    mailer and returns the ``SENDFLEET`` dict, which the test may change further.
    """
    import django

    # RATE_LIMIT off: the limiter's log lives in the cache and would outlast each test (every
    # test gets a fresh sandbox, whose own throttle still applies). Turn it on in a test to
    # test pacing.
    settings.SENDFLEET = {
        "API_KEY": SANDBOX_API_KEY,
        "API_URL": sendfleet_sandbox.url,
        "RATE_LIMIT": None,
    }
    if django.VERSION >= (6, 1):
        settings.MAILERS = {"default": {"BACKEND": BACKEND}}
    else:
        settings.EMAIL_BACKEND = BACKEND
    return settings.SENDFLEET
