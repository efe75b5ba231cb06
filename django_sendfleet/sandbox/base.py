"""What every sandbox offers a test, however requests reach it: setup, scripting and traffic.

``Sandbox`` (``__init__.py``) serves it over a socket; ``InProcessSandbox`` (``inprocess.py``)
answers the client's requests in process. Both keep their world in a ``SandboxState``.
"""

from __future__ import annotations

import secrets
import string
import threading
import time
from collections.abc import Mapping
from datetime import datetime
from types import TracebackType
from typing import Any, Self
from urllib.parse import urlsplit

from . import defaults
from .applied import wait_until_applied
from .clock import SandboxClock
from .defaults import DEFAULT_ACCOUNT
from .plans import DEFAULT_PLAN, PLAN_FOR_MODE, Plan, get_plan
from .server import SEND_PATH
from .state import RecordedRequest, SandboxState, WebhookDeliverer
from .webhooks import Delivery, InProcessWebhooks, WebhookSender
from .world import DOMAIN_STATES, Account, ApiKey, Domain, check_choice

_KEY_ALPHABET = string.ascii_letters + string.digits


def generate_api_key() -> str:
    """A random key shaped like SendFleet's: ``<8-char prefix>.<32-char secret>``."""
    prefix = "sbx" + "".join(
        secrets.choice(string.ascii_lowercase + string.digits) for _ in range(5)
    )
    return prefix + "." + "".join(secrets.choice(_KEY_ALPHABET) for _ in range(32))


class BaseSandbox:
    """A SendFleet world with the ready-made keys, domains and addresses (``defaults.py``)."""

    in_process = False

    def __init__(
        self,
        rate_limit: tuple[int, float] = (60, 60.0),
        latency: float = 0.0,
        populate: bool = True,
        plan: str = DEFAULT_PLAN,
        usage_lag: float = 0.0,
    ) -> None:
        self.plan: Plan = get_plan(plan)
        self.clock = SandboxClock()
        self.state = SandboxState(
            rate_limit=rate_limit,
            latency=latency,
            clock=self.clock,
            usage_lag=usage_lag,
            in_process=self.in_process,
        )
        #: Seconds the client would have slept before each retry, in order, when this
        #: sandbox records the waits (in process always; the socket sandbox if asked).
        self.retry_waits: list[float] = []
        self._waits_lock = threading.Lock()
        if populate:
            defaults.populate(self.state, plan=self.plan.name)

    # Lifecycle: subclasses say what starting and stopping mean.

    def start(self) -> Self:
        raise NotImplementedError

    def stop(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
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
        raise NotImplementedError

    @property
    def url(self) -> str:
        """The send endpoint, the sandbox's equivalent of https://sendfleet.net/api/send/."""
        return self.base_url + SEND_PATH

    # Configuration.

    def add_account(
        self,
        name: str,
        state: str = "active",
        plan_mode: str | None = None,
        quota: int | None = None,
        login_email: str | None = None,
        plan: str | None = None,
    ) -> Account:
        """Add an account on ``plan`` (or the usual plan of ``plan_mode``; else the sandbox's
        plan). ``quota`` overrides the plan's monthly quota."""
        if plan_mode is not None and plan_mode not in PLAN_FOR_MODE:
            raise ValueError(f"Unknown plan mode {plan_mode!r}: choose one of shared, byoc.")
        if plan is None:
            plan = PLAN_FOR_MODE[plan_mode] if plan_mode else self.plan.name
        elif plan_mode is not None and get_plan(plan).mode != plan_mode:
            raise ValueError(f"Plan {plan!r} sends in {get_plan(plan).mode} mode, not {plan_mode}.")
        account = Account(name, state, plan, quota, login_email or "")
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
        mode: str | None = None,
        spf_verified: bool = True,
        dmarc: bool = True,
    ) -> Domain:
        """Add a domain; its mode defaults to its account's plan's."""
        mode = mode or self.state.account(account).plan_mode
        return self.state.add_domain(Domain(name, account, state, mode, spf_verified, dmarc))

    def add_sender_domain(self, name: str, state: str = "verified", replace: bool = False) -> None:
        """Register ``name`` in every account (in each account's plan's mode): your project's
        own sender domain, in every ready-made account. ``replace``: also where it is known."""
        check_choice(state, DOMAIN_STATES, "domain state")
        for account in self.state.account_names:
            if replace or not self.state.has_domain(account, name):
                self.add_domain(name, account, state)

    def add_sender_domains(self, domains: Mapping[str, str] | list[str] | tuple[str, ...]) -> None:
        """``add_sender_domain`` for each name (a mapping: name -> state), replacing."""
        states = domains if isinstance(domains, Mapping) else dict.fromkeys(domains, "verified")
        for name, state in states.items():
            self.add_sender_domain(name, state, replace=True)

    @property
    def api_keys(self) -> list[str]:
        """Every key the sandbox knows, whatever its state (never recorded with requests)."""
        return self.state.api_keys

    def suppress(self, email: str, account: str = DEFAULT_ACCOUNT) -> None:
        self.state.suppress(email, account)

    def set_rate_limit(self, requests: int, seconds: float) -> None:
        self.state.set_rate_limit(requests, seconds)

    @property
    def latency(self) -> float:
        """Seconds added before every answer to /api/send/."""
        return self.state.latency

    @latency.setter
    def latency(self, seconds: float) -> None:
        self.state.latency = seconds

    @property
    def usage_lag(self) -> float:
        """Seconds before an accepted send shows in the usage count the quota check reads
        (SendFleet: up to 30). 0 by default, so a quota refuses exactly at the limit."""
        return self.state.usage_lag

    @usage_lag.setter
    def usage_lag(self, seconds: float) -> None:
        self.state.usage_lag = seconds

    # Scripting the next answers, and time.

    def inject_fault(self, kind: int | str, count: int = 1) -> None:
        """Answer the next ``count`` sends that would be accepted this way instead: a
        documented error code (``"domain_not_verified"``, ``502``...), ``"rate_limited"``
        (``":<seconds>"`` for its Retry-After, ``":none"`` for none), ``"drop"``,
        ``"malformed"``, ``"slow:<seconds>"`` or ``"timeout"``. See ``faults.py``."""
        self.state.inject_fault(kind, count)

    def wait_before_retry(self, seconds: float) -> None:
        """django_sendfleet.api.transports.Transport: record a wait the client would have slept,
        and let the sandbox's clock move on by it."""
        with self._waits_lock:
            self.retry_waits.append(seconds)
        self.clock.advance(seconds)

    def advance_clock(self, seconds: float) -> None:
        """Let ``seconds`` pass for the sandbox at once: rate windows, IP blocks and the usage
        lag run out as if that time had passed."""
        self.clock.advance(seconds)

    def travel_to(self, when: datetime) -> None:
        """Move the sandbox's clock forward to ``when`` (e.g. the 1st of next month, when the
        monthly quota resets)."""
        self.clock.travel_to(when)

    # Webhooks.

    def configure_webhook(self, url: str | None, secret: str = "") -> None:
        """Deliver signed events for messages accepted on a Shared plan to ``url`` (None stops
        deliveries). A path (``/sendfleet/webhook/``), or any URL in process: the events wait
        for ``deliver_webhooks()``, which posts them through Django's test client. A URL on
        the socket sandbox: posted over HTTP from a thread as they come. See ``webhooks.py``
        for the events and the addresses that ask for bounces and complaints."""
        if url and not secret:
            raise ValueError("A webhook needs a signing secret.")
        self.state.configure_webhook(self._webhook_deliverer(url, secret) if url else None)

    def _webhook_deliverer(self, url: str, secret: str) -> WebhookDeliverer:
        if self.in_process or not urlsplit(url).scheme:
            return InProcessWebhooks(url, secret)
        return WebhookSender(url, secret)

    def deliver_webhooks(self, timeout: float = 10.0) -> list[Delivery]:
        """Post every event waiting so far, in order, and return these deliveries (each with
        the status your view answered) once your project has applied them. Through Django's
        test client in this thread; for a URL on the socket sandbox, wait for its thread
        (up to ``timeout`` seconds)."""
        webhooks = self.state.webhooks
        if webhooks is None:
            return []
        deadline = time.monotonic() + timeout
        made = webhooks.deliver(timeout)
        wait_until_applied(made, deadline)
        return made

    @property
    def webhook_deliveries(self) -> list[Delivery]:
        """Every webhook post made so far, with the receiver's HTTP status."""
        webhooks = self.state.webhooks
        return list(webhooks.deliveries) if webhooks is not None else []

    def wait_for_webhooks(self, timeout: float = 10.0) -> bool:
        """Return True once every event so far has been posted and, when your project's
        webhook view accepted it, applied to its send log (or failed); False on timeout.
        (Events waiting for ``deliver_webhooks()`` are posted now.)"""
        webhooks = self.state.webhooks
        if webhooks is None:
            return True
        deadline = time.monotonic() + timeout
        if not webhooks.wait_until_idle(timeout):
            return False
        return wait_until_applied(webhooks.deliveries, deadline)

    # Traffic.

    @property
    def requests(self) -> list[RecordedRequest]:
        """Every request to the send endpoint, refused ones included, in order."""
        return self.state.requests

    @property
    def accepted(self) -> list[RecordedRequest]:
        """The accepted requests, each with its ``message_id``."""
        return self.state.accepted

    @property
    def payloads(self) -> list[dict[str, Any]]:
        """The JSON payloads of the accepted messages, in order: one per recipient."""
        return [request.payload for request in self.accepted if request.payload is not None]

    def payloads_to(self, recipient: str) -> list[dict[str, Any]]:
        """The accepted payloads sent to ``recipient`` (compared case-insensitively)."""
        wanted = recipient.strip().lower()
        return [p for p in self.payloads if str(p.get("to", "")).strip().lower() == wanted]

    @property
    def recipients(self) -> list[str]:
        """The ``to`` of each accepted message, in order."""
        return [str(payload.get("to")) for payload in self.payloads]

    def reset(self) -> None:
        """Forget traffic, rate windows, IP blocks, quota use, faults and recorded waits;
        keep the setup."""
        self.state.reset()
        with self._waits_lock:
            self.retry_waits.clear()
