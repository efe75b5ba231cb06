"""The fault matrix: every failure the network or the API can produce, what each must leave behind,
and how to run one through either backend. Its fixtures (world, fired) are registered by
tests/conftest.py.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from django.core.mail import EmailMessage
from django.utils import timezone

from django_sendfleet import exceptions as exc
from django_sendfleet import signals, tasks
from django_sendfleet.api import client as client_module
from django_sendfleet.api.client import SendFleetClient
from django_sendfleet.backends import EmailBackend, QueuedEmailBackend
from django_sendfleet.message import payloads as payloads_module
from django_sendfleet.models import SendLog
from django_sendfleet.sandbox import (
    BYOC_BROKEN_API_KEY,
    REVOKED_API_KEY,
    SUPPRESSED_EMAIL,
    SUSPENDED_API_KEY,
    UNAPPROVED_API_KEY,
    Sandbox,
)
from tests.support.messages import SENDER

RECIPIENT = "ann@example.com"


PRIMER = "primer@example.com"  # a send made before the one under test, to set something up


#: Rows for refusals before any request: tests/message/test_properties.py covers them.
LOCAL_ROWS = {"invalid_message", "invalid_address", "unsupported_feature", "recipients_refused"}


#: Rows whose outcome differs in kind between the backends: tested after the matrix.
TESTED_APART = {"rate_limit_wait", "lease_expired", "key_refused", "reputation_hold", "soft_bounce"}


#: Rows the queued worker holds (pending) instead of failing: not the message's fault.
HELD_CODES = {"usage_limit_exceeded", "authentication_failed"}


@dataclass
class World:
    """What a case may arrange: the sandbox, the settings, and test doubles."""

    sandbox: Sandbox
    settings: dict[str, Any]
    monkeypatch: pytest.MonkeyPatch
    sender: str = SENDER
    recipient: str = RECIPIENT
    #: Requests that reached a stub server standing in for something other than the sandbox.
    elsewhere: list[int] = field(default_factory=list)
    #: Nothing listens at API_URL: attempts can only be counted by the backend.
    unreachable: bool = False
    cleanups: list[Callable[[], None]] = field(default_factory=list)


@dataclass(frozen=True)
class Fault:
    id: str
    code: str  # the error table row the failure ends in ("" when it ends accepted)
    arrange: Callable[[World], None]
    attempts: int
    status: str  # the final log status
    http_status: int | None
    #: The failure signals fired, in order.
    signals: tuple[str, ...] = ("send_failed",)
    #: What EmailBackend raises; None: it returns 1.
    raises: type[Exception] | None = None
    #: Messages the sandbox ends up holding for the recipient (0: lost as documented; never 2).
    accepted: int = 0
    #: Waits between attempts, as (shortest, longest) each.
    waits: tuple[tuple[float, float], ...] = ()
    #: Between attempts: change the world (a throttle lifting, say).
    between_attempts: Callable[[World], None] | None = None
    #: For QueuedEmailBackend, where it differs: (status, signals).
    queued: tuple[str, tuple[str, ...]] | None = None


def use_key(key: str) -> Callable[[World], None]:
    def arrange(world: World) -> None:
        world.settings["API_KEY"] = key

    return arrange


def send_from(address: str) -> Callable[[World], None]:
    def arrange(world: World) -> None:
        world.sender = address

    return arrange


def send_to(address: str) -> Callable[[World], None]:
    def arrange(world: World) -> None:
        world.recipient = address

    return arrange


def fault(kind: int | str, count: int = 10) -> Callable[[World], None]:
    def arrange(world: World) -> None:
        world.sandbox.inject_fault(kind, count)

    return arrange


def invalid_payload(world: World) -> None:
    """A payload the API refuses, as if the library's own checks had missed a field."""
    original = payloads_module.build_payload

    def build_payload(message, recipient):
        return {**original(message, recipient), "reply_to": "not an address"}

    # Both backends build every request here (the worker from the row's stored content).
    world.monkeypatch.setattr(payloads_module, "build_payload", build_payload)


def ip_blocked_after_ten_401s(world: World) -> None:
    """SendFleet blocks an IP after 10 consecutive 401s: then even a good key gets a 403
    without an error code."""
    bad = SendFleetClient(api_url=world.sandbox.url, api_key=REVOKED_API_KEY, timeout=5)
    for _ in range(10):
        with pytest.raises(exc.SendFleetAuthenticationError):
            bad.attempt({"to": PRIMER, "from_email": "shop@example.com", "message": "x"})


def quota_used_up(world: World) -> None:
    world.sandbox.add_account("spent", quota=0)
    world.sandbox.add_domain("example.com", account="spent")
    world.settings["API_KEY"] = world.sandbox.add_key(account="spent")


def throttled(world: World) -> None:
    """The key's one request in 30 s is used up: every attempt gets 429 + Retry-After: 30."""
    world.settings["MAX_RETRY_WAIT"] = 600  # let EmailBackend wait out every Retry-After
    world.sandbox.set_rate_limit(1, 30)
    primer = SendFleetClient(
        api_url=world.sandbox.url, api_key=world.settings["API_KEY"], timeout=5
    )
    primer.attempt({"to": PRIMER, "from_email": "shop@example.com", "message": "x"})


def lift_throttle(world: World) -> None:
    world.sandbox.set_rate_limit(1000, 30)


def read_timeout(world: World) -> None:
    world.settings["TIMEOUT"] = 0.3
    world.sandbox.inject_fault("slow:1")


def refused_connection(world: World) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    world.settings["API_URL"] = f"http://127.0.0.1:{closed_port}/api/send/"
    world.unreachable = True


def answered_by(status: int, body: bytes, content_type: str) -> Callable[[World], None]:
    """Something other than SendFleet answers at API_URL (a proxy, another page)."""

    def arrange(world: World) -> None:
        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length", "0")))
                world.elsewhere.append(status)
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True
        )
        thread.start()
        world.cleanups += [server.shutdown, server.server_close]
        world.settings["API_URL"] = f"http://127.0.0.1:{server.server_address[1]}/api/send/"

    return arrange


proxy_504 = answered_by(504, b"<html><body>504 Gateway Time-out</body></html>", "text/html")


not_found_404 = answered_by(404, b'{"detail": "Not found."}', "application/json")


FORBIDDEN = ("send_forbidden", "send_failed")


BACKOFF_502 = ((1, 1), (2, 2), (4, 4))


RETRY_AFTER_30 = ((29, 30),)  # Retry-After: the seconds left in the throttle's window


MATRIX = [
    Fault("400 field errors", "validation_error", invalid_payload, 1, "failed", 400,
          raises=exc.SendFleetValidationError),
    Fault("401 revoked key", "authentication_failed", use_key(REVOKED_API_KEY), 1, "failed", 401,
          raises=exc.SendFleetAuthenticationError,
          queued=("pending", ())),  # held while the key is refused
    Fault("403 unauthorized", "unauthorized", use_key(UNAPPROVED_API_KEY), 1, "failed", 403,
          signals=FORBIDDEN, raises=exc.SendFleetAccountNotAuthorized),
    Fault("403 domain_not_registered", "domain_not_registered",
          send_from("shop@unregistered.example"), 1, "failed", 403, signals=FORBIDDEN,
          raises=exc.SendFleetDomainNotRegistered),
    Fault("403 domain_not_verified", "domain_not_verified", send_from("shop@unverified.example"),
          1, "failed", 403, signals=FORBIDDEN, raises=exc.SendFleetDomainNotVerified),
    Fault("403 dkim_not_verified", "dkim_not_verified", send_from("shop@nodkim.example"), 1,
          "failed", 403, signals=FORBIDDEN, raises=exc.SendFleetDKIMNotVerified),
    Fault("403 domain_mode_mismatch", "domain_mode_mismatch", send_from("shop@byoc.example"), 1,
          "failed", 403, signals=FORBIDDEN, raises=exc.SendFleetDomainModeMismatch),
    Fault("403 sending_suspended", "sending_suspended", use_key(SUSPENDED_API_KEY), 1, "failed",
          403, signals=FORBIDDEN, raises=exc.SendFleetSendingSuspended),
    Fault("403 without a code (IP blocked)", "forbidden", ip_blocked_after_ten_401s, 1, "failed",
          403, signals=FORBIDDEN, raises=exc.SendFleetForbidden),
    Fault("422 recipient_suppressed", "recipient_suppressed", send_to(SUPPRESSED_EMAIL), 1,
          "rejected", 422, signals=("recipient_suppressed",),
          raises=exc.SendFleetRecipientsRefused),
    Fault("429 usage_limit_exceeded", "usage_limit_exceeded", quota_used_up, 1, "failed", 429,
          raises=exc.SendFleetUsageLimitExceeded,
          queued=("pending", ())),  # held until the quota resets
    Fault("429 throttle, retried until it gives up", "rate_limited", throttled, 6, "failed", 429,
          raises=exc.SendFleetRateLimited, waits=RETRY_AFTER_30 * 5),
    Fault("429 throttle, retried then accepted", "", throttled, 2, "queued", 200,
          signals=(), accepted=1, waits=RETRY_AFTER_30, between_attempts=lift_throttle),
    Fault("500 twice", "server_error", fault(500), 2, "failed", 500,
          raises=exc.SendFleetServerError, waits=((2, 5),)),
    Fault("500 once, then accepted", "", fault(500, 1), 2, "queued", 200,
          signals=(), accepted=1, waits=((2, 5),)),
    Fault("502 four times", "queue_error", fault(502), 4, "failed", 502,
          raises=exc.SendFleetQueueError, waits=BACKOFF_502),
    Fault("502 three times, then accepted", "", fault(502, 3), 4, "queued", 200,
          signals=(), accepted=1, waits=BACKOFF_502),
    Fault("503 byoc_not_configured", "byoc_not_configured", use_key(BYOC_BROKEN_API_KEY), 1,
          "failed", 503, raises=exc.SendFleetBYOCNotConfigured),
    Fault("504 from a proxy", "gateway_error", proxy_504, 1, "unknown", 504,
          raises=exc.SendFleetGatewayError),
    Fault("404 from a wrong API_URL", "api_error", not_found_404, 1, "failed", 404,
          raises=exc.SendFleetAPIError),
    Fault("read timeout (the sandbox accepts it late)", "network_error", read_timeout, 1,
          "unknown", None, raises=exc.SendFleetNetworkError, accepted=1),
    Fault("connection dropped without an answer", "network_error", fault("drop", 1), 1,
          "unknown", None, raises=exc.SendFleetNetworkError),
    Fault("connection refused", "connection_failed", refused_connection, 4, "failed", None,
          raises=exc.SendFleetConnectionFailed, waits=BACKOFF_502),
    Fault("malformed 200", "malformed_response", fault("malformed", 1), 1, "unknown", 200,
          raises=exc.SendFleetMalformedResponse),
]  # fmt: skip


@pytest.fixture
def fired():
    """(signal name, kwargs) of every failure signal, in order."""
    calls: list[tuple[str, dict[str, Any]]] = []
    receivers = []
    for name in ("send_failed", "send_forbidden", "recipient_suppressed"):

        def receiver(sender, _name=name, **kwargs):
            calls.append((_name, kwargs))

        getattr(signals, name).connect(receiver, weak=False)
        receivers.append((getattr(signals, name), receiver))
    yield calls
    for signal, receiver in receivers:
        signal.disconnect(receiver)


@pytest.fixture
def world(sandbox, sendfleet_settings, monkeypatch):
    world = World(sandbox, sendfleet_settings, monkeypatch)
    yield world
    for cleanup in world.cleanups:
        cleanup()


def run_sync(case: Fault, world: World) -> tuple[Any, list[float]]:
    waits: list[float] = []

    def wait_before_retry(seconds: float) -> None:
        waits.append(seconds)
        if case.between_attempts is not None:
            case.between_attempts(world)

    world.monkeypatch.setattr(client_module, "wait_before_retry", wait_before_retry)
    message = EmailMessage("Matrix", "Body", world.sender, [world.recipient])
    try:
        outcome: Any = EmailBackend().send_messages([message])
    except exc.SendFleetError as error:
        outcome = error
    return outcome, waits


def run_queued(case: Fault, world: World, capture) -> tuple[Any, list[float]]:
    """Send through the outbox, then drive the worker until the row is final: each time the row
    is back to pending for a retry, fast-forward its not_before and run the worker again."""
    message = EmailMessage("Matrix", "Body", world.sender, [world.recipient])
    started = timezone.now()
    with capture(execute=True):
        outcome = QueuedEmailBackend().send_messages([message])
    row = SendLog.objects.get(recipient=world.recipient)
    waits: list[float] = []
    for _ in range(10):
        row.refresh_from_db()
        if row.status != "pending" or row.not_before is None:
            break
        if row.error_code in HELD_CODES:
            break  # held (until the quota resets, or the key's pause ends): final for this test
        wait = (row.not_before - started).total_seconds()
        waits.append(wait)
        if case.between_attempts is not None:
            case.between_attempts(world)
        SendLog.objects.filter(pk=row.pk).update(not_before=timezone.now())
        started = timezone.now()
        tasks.send_and_reschedule([row.pk])
    return outcome, waits


def attempts_made(world: World, recipient: str) -> int:
    on_sandbox = [r for r in world.sandbox.requests if (r.payload or {}).get("to") == recipient]
    return len(on_sandbox) + len(world.elsewhere)
