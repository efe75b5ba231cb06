"""A local, SendFleet-compatible API for development and tests, over a socket or in process.

    with Sandbox() as sandbox:  # an HTTP server on 127.0.0.1
        requests.post(sandbox.url, headers={"X-API-Key": SANDBOX_API_KEY}, json={...})
        assert len(sandbox.accepted) == 1

    with InProcessSandbox() as sandbox:  # no socket: SendFleetClient's requests are answered
        send_mail(...)                    # in process (settings pointing at sandbox.url)
        assert sandbox.recipients == [...]

Both answer ``POST /api/send/`` as SendFleet's docs describe (auth, throttling, validation,
account, domain, suppression and quota errors, the plan's behaviour) and can be told to answer
otherwise (every documented error, throttles, dropped connections, timeouts, non-JSON
answers). See ``defaults.py`` for the ready-made keys, domains and addresses that trigger each
outcome, ``plans.py`` for the plans, ``server.py`` for the control API other processes can use,
and docs/sandbox.md for which behaviours SendFleet documents and which are the sandbox's
assumptions.
"""

from __future__ import annotations

import threading

from ..api import transports
from .answers import Response
from .base import BaseSandbox, generate_api_key
from .defaults import (
    BYOC_BROKEN_API_KEY,
    BYOC_DOMAIN,
    DEFAULT_ACCOUNT,
    EXPIRED_API_KEY,
    NO_DKIM_DOMAIN,
    NO_SPF_DOMAIN,
    QUOTA_ACCOUNT_LIMIT,
    QUOTA_API_KEY,
    REVOKED_API_KEY,
    SANDBOX_API_KEY,
    SHARED_DOMAIN,
    SUPPRESSED_EMAIL,
    SUSPENDED_API_KEY,
    UNAPPROVED_API_KEY,
    UNREGISTERED_DOMAIN,
    UNVERIFIED_DOMAIN,
    VERIFIED_DOMAIN,
)
from .inprocess import InProcessSandbox
from .plans import DEFAULT_PLAN, PLANS, Plan
from .server import CONTROL_PREFIX, SEND_PATH, SandboxServer
from .state import RecordedRequest, SandboxState
from .webhooks import Delivery
from .world import Account, ApiKey, Domain

__all__ = [
    "BYOC_BROKEN_API_KEY",
    "BYOC_DOMAIN",
    "CONTROL_PREFIX",
    "DEFAULT_ACCOUNT",
    "EXPIRED_API_KEY",
    "NO_DKIM_DOMAIN",
    "NO_SPF_DOMAIN",
    "PLANS",
    "QUOTA_ACCOUNT_LIMIT",
    "QUOTA_API_KEY",
    "REVOKED_API_KEY",
    "SANDBOX_API_KEY",
    "SEND_PATH",
    "SHARED_DOMAIN",
    "SUPPRESSED_EMAIL",
    "SUSPENDED_API_KEY",
    "UNAPPROVED_API_KEY",
    "UNREGISTERED_DOMAIN",
    "UNVERIFIED_DOMAIN",
    "VERIFIED_DOMAIN",
    "Account",
    "ApiKey",
    "BaseSandbox",
    "Delivery",
    "Domain",
    "InProcessSandbox",
    "Plan",
    "RecordedRequest",
    "Response",
    "Sandbox",
    "SandboxServer",
    "SandboxState",
    "generate_api_key",
]


class Sandbox(BaseSandbox):
    """A SendFleet sandbox served over HTTP from a daemon thread, between start() and stop().

    For anything another process must reach: the demo, worker processes, ``live_server``
    webhooks, and tests of what happens on the wire (connections, keep-alive, drops).

    ``record_waits``: while it runs, django-sendfleet's clients in this process record their
    waits between retries in ``retry_waits`` (and move the sandbox's clock on by each)
    instead of sleeping, as with the in-process sandbox. The test helpers ask for it.
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        rate_limit: tuple[int, float] = (60, 60.0),
        latency: float = 0.0,
        populate: bool = True,
        plan: str = DEFAULT_PLAN,
        usage_lag: float = 0.0,
        record_waits: bool = False,
    ) -> None:
        super().__init__(rate_limit, latency, populate, plan, usage_lag)
        self.host = host
        self.port = port
        self.record_waits = record_waits
        self._server: SandboxServer | None = None
        self._thread: threading.Thread | None = None

    # Lifecycle.

    def start(self) -> Sandbox:
        if self._server is not None:
            raise RuntimeError("This sandbox is already running.")
        self._server = SandboxServer((self.host, self.port), self.state)
        self.port = self._server.port
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            # stop() waits up to one poll interval, and test suites stop a sandbox per test.
            kwargs={"poll_interval": 0.01},
            name=f"sendfleet-sandbox-{self.port}",
            daemon=True,
        )
        self._thread.start()
        if self.record_waits:
            transports.install(self.base_url + "/", self)
        return self

    def stop(self) -> None:
        if self._server is None:
            return
        server, thread = self._server, self._thread
        self._server = self._thread = None
        transports.uninstall(self.base_url_of(server) + "/")
        self.configure_webhook(None)
        server.shutdown()
        server.close_open_connections()
        server.server_close()
        if thread is not None:
            thread.join()

    @property
    def base_url(self) -> str:
        if self._server is None:
            raise RuntimeError("Start the sandbox before asking for its URL.")
        return self.base_url_of(self._server)

    def base_url_of(self, server: SandboxServer) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{server.port}"

    def adapter(self) -> None:
        """django_sendfleet.api.transports.Transport: requests go over the network."""
        return None

    @property
    def connections_opened(self) -> int:
        """TCP connections accepted since start() or the last reset()."""
        return self._server.connections_opened if self._server is not None else 0

    def reset(self) -> None:
        """Forget traffic, rate windows, IP blocks, quota use and faults; keep the setup."""
        super().reset()
        if self._server is not None:
            self._server.reset_connection_count()
