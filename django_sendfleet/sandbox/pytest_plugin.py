"""Pytest fixtures for projects testing against the sandbox.

Enable with ``pytest_plugins = ["django_sendfleet.sandbox.pytest_plugin"]`` in a root
``conftest.py``.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from . import Sandbox


@pytest.fixture
def sendfleet_sandbox() -> Iterator[Sandbox]:
    """A started sandbox with the default world, on a free port, stopped after the test.

    Each test gets its own server: starting and stopping one takes a few milliseconds, and
    nothing a test configures (faults, rate limits, latency, keys) can leak into the next.
    """
    with Sandbox() as sandbox:
        yield sandbox
