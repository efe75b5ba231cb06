"""Pytest fixtures for projects testing against the sandbox.

Enable with ``pytest_plugins = ["django_sendfleet.sandbox.pytest_plugin"]`` in a root
``conftest.py``.

``sendfleet_sandbox`` is in process (no socket; ``inprocess.py``) unless the test asks for the
socket server: by using the ``sendfleet_socket_sandbox`` fixture (then both names are the same
server), by ``@pytest.mark.sendfleet_sandbox(socket=True)``, or, for a whole suite, with
``sendfleet_sandbox = socket`` in the pytest ini file. The same marker and ini file choose the
plan (``plan="starter-byoc"``, ``sendfleet_plan = pro``) and the usage lag.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from . import InProcessSandbox, Sandbox
from .base import BaseSandbox
from .plans import DEFAULT_PLAN
from .testing import BACKEND, backend_settings, make_sandbox

__all__ = ["BACKEND"]

MODES = ("inprocess", "socket")
MARKER = "sendfleet_sandbox"


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


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        f"{MARKER}(socket=False, plan='{DEFAULT_PLAN}', usage_lag=0, rate_limit=(60, 60)): "
        "options of this test's SendFleet sandbox",
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
    marker = request.node.get_closest_marker(MARKER)
    if marker is not None:
        unknown = set(marker.kwargs) - {"socket", "plan", "usage_lag", "rate_limit"}
        if marker.args or unknown:
            raise pytest.UsageError(f"{MARKER} takes socket, plan, usage_lag and rate_limit.")
        options.update(marker.kwargs)
    if "sendfleet_socket_sandbox" in request.fixturenames:
        options["socket"] = True
    return options


@pytest.fixture
def sendfleet_socket_sandbox(request: pytest.FixtureRequest) -> Iterator[Sandbox]:
    """A started socket sandbox (HTTP on 127.0.0.1, a free port), stopped after the test: for
    other processes (workers, a subprocess), ``live_server`` webhooks and wire-level tests.

    Each test gets its own server: starting and stopping one takes a few milliseconds, and
    nothing a test configures (faults, rate limits, latency, keys) can leak into the next.
    """
    options = sandbox_options(request) | {"socket": True}
    with make_sandbox(**options) as sandbox:
        assert isinstance(sandbox, Sandbox)
        yield sandbox


@pytest.fixture
def sendfleet_inprocess_sandbox(request: pytest.FixtureRequest) -> Iterator[InProcessSandbox]:
    """A started in-process sandbox, removed after the test."""
    options = sandbox_options(request) | {"socket": False}
    with make_sandbox(**options) as sandbox:
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
    mailer with the locmem backend; this puts the SendFleet backend back as the default
    mailer and returns the ``SENDFLEET`` dict (yours, with the sandbox's URL and key and the
    rate limiter off), which the test may change further. Turn ``RATE_LIMIT`` on in a test to
    test pacing.
    """
    for name, value in backend_settings(
        sendfleet_sandbox, getattr(settings, "SENDFLEET", None)
    ).items():
        setattr(settings, name, value)
    return settings.SENDFLEET
