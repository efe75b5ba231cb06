"""A local, SendFleet-compatible HTTP server for development and tests.

    with Sandbox() as sandbox:
        requests.post(sandbox.url, headers={"X-API-Key": SANDBOX_API_KEY}, json={...})
        assert len(sandbox.accepted) == 1

It answers ``POST /api/send/`` as SendFleet's docs describe (auth, throttling, validation,
account, domain, suppression and quota errors) and can be told to misbehave (502, 500,
dropped connections, non-JSON answers, slowness). See ``defaults.py`` for the ready-made
keys, domains and addresses that trigger each outcome, and ``server.py`` for the control
API other processes can use.

Sandbox choices where SendFleet's docs are silent: an IP is blocked for 60 seconds after 10
consecutive 401s within 60 seconds; a fault replaces the acceptance, so a faulted message is
neither queued nor counted against the quota (except "slow", which is accepted late).
"""

from __future__ import annotations

import secrets
import string
import threading
from types import TracebackType

from . import defaults
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
    SUPPRESSED_EMAIL,
    SUSPENDED_API_KEY,
    UNAPPROVED_API_KEY,
    UNREGISTERED_DOMAIN,
    UNVERIFIED_DOMAIN,
    VERIFIED_DOMAIN,
)
from .server import CONTROL_PREFIX, SEND_PATH, SandboxServer
from .state import Account, ApiKey, Domain, RecordedRequest, Response, SandboxState
from .webhooks import Delivery

__all__ = [
    "BYOC_BROKEN_API_KEY",
    "BYOC_DOMAIN",
    "CONTROL_PREFIX",
    "DEFAULT_ACCOUNT",
    "EXPIRED_API_KEY",
    "NO_DKIM_DOMAIN",
    "NO_SPF_DOMAIN",
    "QUOTA_ACCOUNT_LIMIT",
    "QUOTA_API_KEY",
    "REVOKED_API_KEY",
    "SANDBOX_API_KEY",
    "SEND_PATH",
    "SUPPRESSED_EMAIL",
    "SUSPENDED_API_KEY",
    "UNAPPROVED_API_KEY",
    "UNREGISTERED_DOMAIN",
    "UNVERIFIED_DOMAIN",
    "VERIFIED_DOMAIN",
    "Account",
    "ApiKey",
    "Domain",
    "RecordedRequest",
    "Response",
    "Sandbox",
    "SandboxServer",
    "SandboxState",
    "generate_api_key",
]

_KEY_ALPHABET = string.ascii_letters + string.digits


def generate_api_key() -> str:
    """A random key shaped like SendFleet's: ``<8-char prefix>.<32-char secret>``."""
    prefix = "sbx" + "".join(
        secrets.choice(string.ascii_lowercase + string.digits) for _ in range(5)
    )
    return prefix + "." + "".join(secrets.choice(_KEY_ALPHABET) for _ in range(32))


class Sandbox:
    """A SendFleet sandbox server, serving from a daemon thread between start() and stop()."""

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        rate_limit: tuple[int, float] = (60, 60.0),
        latency: float = 0.0,
        populate: bool = True,
    ) -> None:
        self.host = host
        self.port = port
        self.state = SandboxState(rate_limit=rate_limit, latency=latency)
        if populate:
            defaults.populate(self.state)
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
        return self

    def stop(self) -> None:
        if self._server is None:
            return
        server, thread = self._server, self._thread
        self._server = self._thread = None
        self.configure_webhook(None)
        server.shutdown()
        server.close_open_connections()
        server.server_close()
        if thread is not None:
            thread.join()

    def __enter__(self) -> Sandbox:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        if self._server is None:
            raise RuntimeError("Start the sandbox before asking for its URL.")
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    @property
    def url(self) -> str:
        """The send endpoint, the sandbox's equivalent of https://sendfleet.net/api/send/."""
        return self.base_url + SEND_PATH

    # Configuration.

    def add_account(
        self,
        name: str,
        state: str = "active",
        plan_mode: str = "shared",
        quota: int = 25000,
        login_email: str | None = None,
    ) -> Account:
        account = Account(name, state, plan_mode, quota, login_email or "")
        return self.state.add_account(account)

    def add_key(
        self, key: str | None = None, state: str = "valid", account: str = DEFAULT_ACCOUNT
    ) -> str:
        api_key = self.state.add_key(ApiKey(key or generate_api_key(), state, account))
        return api_key.key

    def add_domain(
        self,
        name: str,
        account: str = DEFAULT_ACCOUNT,
        state: str = "verified",
        mode: str = "shared",
        spf_verified: bool = True,
        dmarc: bool = True,
    ) -> Domain:
        return self.state.add_domain(Domain(name, account, state, mode, spf_verified, dmarc))

    def suppress(self, email: str, account: str = DEFAULT_ACCOUNT) -> None:
        self.state.suppress(email, account)

    def inject_fault(self, kind: int | str, count: int = 1) -> None:
        """Fail the next ``count`` sends that would be accepted: 500, 502, "drop", "malformed"
        or "slow:<seconds>"."""
        self.state.inject_fault(kind, count)

    @property
    def latency(self) -> float:
        """Seconds added before every answer to /api/send/."""
        return self.state.latency

    @latency.setter
    def latency(self, seconds: float) -> None:
        self.state.latency = seconds

    def configure_webhook(self, url: str | None, secret: str = "") -> None:
        """Deliver signed events for accepted messages to ``url`` (None stops deliveries).

        See ``sandbox/webhooks.py`` for the events and the recipient addresses that ask for
        bounces and complaints.
        """
        self.state.configure_webhook(url, secret)

    @property
    def webhook_deliveries(self) -> list[Delivery]:
        """Every webhook post made so far, with the receiver's HTTP status."""
        return list(self.state.webhooks.deliveries) if self.state.webhooks else []

    def wait_for_webhooks(self, timeout: float = 10.0) -> bool:
        """Block until every event queued so far has been posted; False on timeout."""
        return self.state.webhooks.wait_until_idle(timeout) if self.state.webhooks else True

    def set_rate_limit(self, requests: int, seconds: float) -> None:
        self.state.set_rate_limit(requests, seconds)

    # Traffic.

    @property
    def requests(self) -> list[RecordedRequest]:
        return self.state.requests

    @property
    def accepted(self) -> list[RecordedRequest]:
        return self.state.accepted

    @property
    def connections_opened(self) -> int:
        """TCP connections accepted since start() or the last reset()."""
        return self._server.connections_opened if self._server is not None else 0

    def reset(self) -> None:
        """Forget traffic, rate windows, IP blocks, quota use and faults; keep the setup."""
        self.state.reset()
        if self._server is not None:
            self._server.reset_connection_count()
