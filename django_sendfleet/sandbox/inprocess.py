"""The sandbox without a socket: SendFleetClient's requests are answered in process.

    with InProcessSandbox() as sandbox:
        # SENDFLEET["API_URL"] = sandbox.url (testing.py and the pytest plugin set it)
        send_mail("Hi", "Body", "shop@example.com", ["ann@example.com"])
        assert sandbox.payloads_to("ann@example.com")[0]["subject"] == "Hi"

Between ``start()`` and ``stop()`` it is installed in ``django_sendfleet.api.transports`` for its
URL, a ``.localhost`` name that is never looked up: every ``SendFleetClient`` opened for that
URL, in any thread of the process (the test's, ``live_server``'s), gets a ``SandboxAdapter`` on
its session. Everything else is the real thing: payload building, the error table, retries,
the send log, signals, the suppression list. While it is installed, the client's waits between
retries are recorded in ``retry_waits`` instead of slept, and the sandbox's clock moves forward
by each, so a retry after ``Retry-After`` finds the rate window moved on, as it would.

Other processes cannot reach it: worker processes and anything that must see real HTTP need
the socket ``Sandbox``.
"""

from __future__ import annotations

import itertools
import threading
from typing import Self

import requests

from ..api import transports
from .adapter import SandboxAdapter
from .base import BaseSandbox
from .plans import DEFAULT_PLAN


class InProcessSandbox(BaseSandbox):
    """A sandbox that SendFleetClient reaches through a ``requests`` adapter, not a socket."""

    in_process = True
    _numbers = itertools.count(1)

    def __init__(
        self,
        rate_limit: tuple[int, float] = (60, 60.0),
        latency: float = 0.0,
        populate: bool = True,
        plan: str = DEFAULT_PLAN,
        usage_lag: float = 0.0,
        client_ip: str = "127.0.0.1",
    ) -> None:
        super().__init__(rate_limit, latency, populate, plan, usage_lag)
        self.host = f"sandbox-{next(self._numbers)}.sendfleet.localhost"
        self.client_ip = client_ip
        self._lock = threading.Lock()
        self._connection_ids = itertools.count(1)
        self._connections_opened = 0
        self._started = False

    # Lifecycle.

    def start(self) -> Self:
        if self._started:
            raise RuntimeError("This sandbox is already running.")
        transports.install(self.base_url + "/", self)
        self._started = True
        return self

    def stop(self) -> None:
        if not self._started:
            return
        self._started = False
        transports.uninstall(self.base_url + "/")
        self.configure_webhook(None)

    @property
    def base_url(self) -> str:
        return f"http://{self.host}"

    # django_sendfleet.api.transports.Transport.

    def adapter(self) -> SandboxAdapter:
        return SandboxAdapter(self.state, self.client_ip, self._open_connection)

    def _open_connection(self) -> int:
        with self._lock:
            self._connections_opened += 1
            return next(self._connection_ids)

    @property
    def connections_opened(self) -> int:
        """Client sessions' "connections" since start() or reset(): one per session, plus one
        after each dropped answer, as a kept-alive HTTP connection would be."""
        return self._connections_opened

    def session(self) -> requests.Session:
        """A ``requests`` session that reaches this sandbox, for requests of your own."""
        session = requests.Session()
        session.mount(self.base_url + "/", self.adapter())
        return session

    def reset(self) -> None:
        """Forget traffic, rate windows, IP blocks, quota use, faults and recorded waits."""
        super().reset()
        with self._lock:
            self._connections_opened = 0
