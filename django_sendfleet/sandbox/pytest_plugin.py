"""Pytest fixtures for projects testing against the sandbox.

Enable with ``pytest_plugins = ["django_sendfleet.sandbox.pytest_plugin"]`` in a root
``conftest.py``.

``sendfleet_sandbox`` is in process (no socket; ``inprocess.py``) unless the test asks for the
socket server: by using the ``sendfleet_socket_sandbox`` fixture (then both names are the same
server), by ``@pytest.mark.sendfleet_sandbox(socket=True)``, or, for a whole suite, with
``sendfleet_sandbox = socket`` in the pytest ini file. The same marker and ini file choose the
plan (``plan="starter-byoc"``, ``sendfleet_plan = pro``), the usage lag, and the sender domains
beyond your settings' (``sender_domains=...``, ``sendfleet_sender_domains = a.example``).

Each sandbox starts and ends with django-sendfleet's process state reset (``isolation.py``).
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from typing import Any

import pytest

from ..api import transports
from . import InProcessSandbox, Sandbox
from .base import BaseSandbox
from .plans import DEFAULT_PLAN
from .testing import BACKEND, backend_settings, sandbox_for_test

__all__ = ["BACKEND"]

MODES = ("inprocess", "socket")
MARKER = "sendfleet_sandbox"
IN_MEMORY_LIVE_SERVER = (
    "live_server with SQLite's in-memory test database: the server's threads can fail with "
    "'database table is locked' while the test or the sandbox's webhooks write. Give the test "
    "database a file: DATABASES['default']['TEST'] = {'NAME': BASE_DIR / 'test_db.sqlite3'} "
    "(docs/testing.md, Webhooks)."
)
MARKER_OPTIONS = ("socket", "plan", "usage_lag", "rate_limit", "sender_domains", "project_domains")


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addini(
        "sendfleet_sandbox",
        "how the sendfleet_sandbox fixture is reached: inprocess (the default) or socket",
        default="inprocess",
    )
    parser.addini(
        "sendfleet_plan",
        f"the SendFleet plan of the sandbox's default account (default: {DEFAULT_PLAN})",
        default=DEFAULT_PLAN,
    )
    parser.addini(
        "sendfleet_sender_domains",
        "sender domains every sandbox knows (verified), beyond DEFAULT_FROM_EMAIL's and "
        "SERVER_EMAIL's",
        type="args",
        default=[],
    )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        f"{MARKER}(socket=False, plan='{DEFAULT_PLAN}', usage_lag=0, rate_limit=(60, 60), "
        "sender_domains=(), project_domains=True): options of this test's SendFleet sandbox",
    )


def sandbox_options(request: pytest.FixtureRequest) -> dict[str, Any]:
    """The sandbox this test asks for: the ini file's choices, then its marker's."""
    mode = str(request.config.getini("sendfleet_sandbox")).strip().lower()
    if mode not in MODES:
        raise pytest.UsageError(f"sendfleet_sandbox = {mode!r}: choose one of {MODES}.")
    options: dict[str, Any] = {
        "socket": mode == "socket",
        "plan": str(request.config.getini("sendfleet_plan")).strip(),
    }
    ini_domains = list(request.config.getini("sendfleet_sender_domains"))
    marker = request.node.get_closest_marker(MARKER)
    if marker is not None:
        unknown = set(marker.kwargs) - set(MARKER_OPTIONS)
        if marker.args or unknown:
            raise pytest.UsageError(f"{MARKER} takes {', '.join(MARKER_OPTIONS)}.")
        options.update(marker.kwargs)
    declared = options.get("sender_domains", ())
    if isinstance(declared, str):
        raise pytest.UsageError(f"{MARKER}(sender_domains=...) takes a list or a dict.")
    states = declared if isinstance(declared, dict) else dict.fromkeys(declared, "verified")
    options["sender_domains"] = dict.fromkeys(ini_domains, "verified") | states
    if "sendfleet_socket_sandbox" in request.fixturenames:
        options["socket"] = True
    return options


class SendFleetSandboxWarning(UserWarning):
    """A test set up in a way the sandbox's tests are known to fail in."""


def _in_memory_sqlite() -> bool:
    from django.db import connections
    from django.db.backends.sqlite3.base import DatabaseWrapper as SQLite

    return any(isinstance(c, SQLite) and c.is_in_memory_db() for c in connections.all())


@pytest.fixture
def sendfleet_socket_sandbox(request: pytest.FixtureRequest) -> Iterator[Sandbox]:
    """A started socket sandbox (HTTP on 127.0.0.1, a free port), stopped after the test: for
    other processes (workers, a subprocess), ``live_server`` webhooks and wire-level tests.

    Each test gets its own server: starting and stopping one takes a few milliseconds, and
    nothing a test configures (faults, rate limits, latency, keys) can leak into the next.
    """
    options = sandbox_options(request) | {"socket": True}
    if "live_server" in request.fixturenames and _in_memory_sqlite():
        warnings.warn(SendFleetSandboxWarning(IN_MEMORY_LIVE_SERVER), stacklevel=1)
    with sandbox_for_test(**options) as sandbox:
        assert isinstance(sandbox, Sandbox)
        yield sandbox


@pytest.fixture
def sendfleet_inprocess_sandbox(request: pytest.FixtureRequest) -> Iterator[InProcessSandbox]:
    """A started in-process sandbox, removed after the test."""
    options = sandbox_options(request) | {"socket": False}
    with sandbox_for_test(**options) as sandbox:
        assert isinstance(sandbox, InProcessSandbox)
        yield sandbox


@pytest.fixture
def sendfleet_sandbox(request: pytest.FixtureRequest) -> BaseSandbox:
    """This test's sandbox, with the ready-made world: in process unless the test asks for
    the socket server (see the module's docstring)."""
    if sandbox_options(request)["socket"]:
        return request.getfixturevalue("sendfleet_socket_sandbox")
    return request.getfixturevalue("sendfleet_inprocess_sandbox")


@pytest.fixture
def sendfleet_backend(settings: Any, sendfleet_sandbox: BaseSandbox) -> dict[str, Any]:
    """Send this test's email through django-sendfleet to ``sendfleet_sandbox``.

    Needs pytest-django (its ``settings`` fixture). Django's test environment replaces every
    mailer with the locmem backend; this points each of your SendFleet mailers at the sandbox
    with its own options (makes SendFleet's ``EmailBackend`` the default mailer if it is not
    one), leaves the others to locmem, and returns the ``SENDFLEET`` dict (yours, with the
    sandbox's URL and key and the rate limiter off), which the test may change further. Turn
    ``RATE_LIMIT`` on in a test to test pacing.
    """
    for name, value in backend_settings(
        sendfleet_sandbox, getattr(settings, "SENDFLEET", None)
    ).items():
        setattr(settings, name, value)
    return settings.SENDFLEET


@pytest.fixture
def sendfleet_retry_waits() -> Iterator[list[float]]:
    """The seconds the backend would have slept before each retry in this test's process,
    recorded instead of slept, whatever the API URL (a sandbox also records its own)."""
    with transports.recording_waits() as waits:
        yield waits
