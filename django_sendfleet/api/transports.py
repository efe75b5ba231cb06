"""Where ``SendFleetClient``'s requests go, and how it waits between attempts.

Normally: over the network, and in real time. A test may install an in-process transport for an
API URL prefix (``django_sendfleet.sandbox.InProcessSandbox`` does): every client then opened
for a URL under that prefix mounts the transport's ``requests`` adapter on its session, so the
real client, backend, retries, log and signals run against it with no socket. While any such
transport is installed, the waits between retries are handed to the newest one, which records
them instead of sleeping. Nothing here is installed outside tests.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Protocol

import requests
from requests.adapters import BaseAdapter


class Transport(Protocol):
    def adapter(self) -> BaseAdapter | None:
        """A new adapter for one client session; None: the network (a socket sandbox that
        only records the waits)."""
        ...

    def wait_before_retry(self, seconds: float) -> None:
        """The client would sleep ``seconds`` before its next attempt."""
        ...


_lock = threading.Lock()
_installed: dict[str, Transport] = {}  # by URL prefix, oldest first


def install(prefix: str, transport: Transport) -> None:
    """Answer requests to URLs starting with ``prefix`` (``scheme://host[:port]/``) in process."""
    if not prefix.endswith("/") or "://" not in prefix:
        raise ValueError(f"A transport prefix is 'scheme://host/', not {prefix!r}.")
    with _lock:
        if prefix.lower() in _installed:
            raise RuntimeError(f"A transport is already installed for {prefix}.")
        _installed[prefix.lower()] = transport


def uninstall(prefix: str) -> None:
    with _lock:
        _installed.pop(prefix.lower(), None)


def mount(session: requests.Session, url: str) -> None:
    """Mount the installed transport for ``url`` on ``session``, if there is one."""
    with _lock:
        found = [(p, t) for p, t in _installed.items() if url.lower().startswith(p)]
    for prefix, transport in found:
        adapter = transport.adapter()
        if adapter is not None:
            session.mount(prefix, adapter)


_recorders: list[list[float]] = []


@contextmanager
def recording_waits() -> Iterator[list[float]]:
    """Within the block, every wait between retries in this process is appended to the list
    returned instead of slept (an installed transport still hears of it, and its clock moves)."""
    waits: list[float] = []
    with _lock:
        _recorders.append(waits)
    try:
        yield waits
    finally:
        with _lock:
            _recorders.remove(waits)


def wait(seconds: float) -> None:
    """Sleep, unless an in-process transport is installed or waits are being recorded."""
    with _lock:
        transport = next(reversed(_installed.values()), None)
        recorders = list(_recorders)
    for recorder in recorders:
        recorder.append(seconds)
    if transport is not None:
        transport.wait_before_retry(seconds)
    elif not recorders:
        time.sleep(seconds)
