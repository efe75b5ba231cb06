"""The client's send path: the connection to the API opened before the rate limiter's slot,
and the environment's settings (proxies) read once per session and still applied.

The limiter's margin (1 % of the window) must cover the time from a slot to the request's
arrival. A fresh process (RQ forks one per job) would otherwise connect, and do every other
first-use step, inside that time. Against the socket sandbox over real HTTP, with the limiter
on: what the sandbox had seen when the slot was taken, for both backends.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import pytest
from django.core.mail import EmailMessage

from django_sendfleet import exceptions as exc
from django_sendfleet.backends import EmailBackend, QueuedEmailBackend
from django_sendfleet.models import SendLog
from django_sendfleet.ratelimit import SlidingWindowLimiter
from django_sendfleet.ratelimit.limiter import Slot
from tests.support.messages import SENDER

pytestmark = [
    pytest.mark.usefixtures("sendfleet_socket_sandbox", "sendfleet_settings"),
    pytest.mark.django_db,
]


@dataclass
class Slots:
    """What the sandbox had seen each time a send took its slot: (connections, requests);
    ``then`` runs just after each slot is taken."""

    seen: list[tuple[int, int]] = field(default_factory=list)
    then: list[Callable[[], None]] = field(default_factory=list)


@pytest.fixture
def slots(monkeypatch, sendfleet_settings, sandbox) -> Slots:
    sendfleet_settings["RATE_LIMIT"] = "1000/min"
    slots = Slots()
    original = SlidingWindowLimiter.take

    def take(self: SlidingWindowLimiter, max_wait: float, priority: str = "high") -> Slot:
        slot = original(self, max_wait, priority)
        # The sandbox counts a connection when its thread takes it up, a moment after the
        # client's connect() returns: give it that moment (never needed once it answered).
        deadline = time.monotonic() + 2
        while not sandbox.connections_opened and time.monotonic() < deadline:
            time.sleep(0.005)
        slots.seen.append((sandbox.connections_opened, len(sandbox.requests)))
        for action in slots.then:
            action()
        return slot

    monkeypatch.setattr(SlidingWindowLimiter, "take", take)
    return slots


def messages(count: int) -> list[EmailMessage]:
    return [EmailMessage(f"Hello {n}", "Body", SENDER, [f"r{n}@example.com"]) for n in range(count)]


def test_the_connection_is_open_before_the_slot_and_the_send_uses_it(sandbox, slots):
    with EmailBackend() as connection:
        assert connection.send_messages(messages(3)) == 3
    # At the first slot the connection was open and no request had been made; the batch's
    # sends then went over that one connection.
    assert slots.seen == [(1, 0), (1, 1), (1, 2)]
    assert sandbox.connections_opened == 1 and len(sandbox.accepted) == 3


def test_the_queued_worker_opens_its_connection_before_its_slot_too(
    sandbox, slots, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        assert QueuedEmailBackend().send_messages(messages(2)) == 2
    assert set(SendLog.objects.values_list("status", flat=True)) == {"queued"}
    assert slots.seen == [(1, 0), (1, 1)]
    assert sandbox.connections_opened == 1


def test_a_connection_the_api_closed_during_the_wait_for_a_slot_is_opened_again(sandbox, slots):
    def restart_the_api() -> None:  # it hangs up every connection; its state stays
        sandbox.stop()
        sandbox.start()

    slots.then.append(restart_the_api)
    with EmailBackend() as connection:
        assert connection.send_messages(messages(2)) == 2
    # Each send found its connection hung up after its slot, and connected again to send.
    assert slots.seen == [(1, 0), (1, 1)]
    assert len(sandbox.accepted) == 2 and sandbox.connections_opened == 1


def test_the_environments_proxy_settings_still_apply(sandbox, monkeypatch, retry_waits):
    """The environment is read once per session now, not per request: it still decides."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    for name in ("NO_PROXY", "no_proxy", "http_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{closed_port}")
    with pytest.raises(exc.SendFleetNetworkError), EmailBackend() as connection:
        connection.send_messages(messages(1))
    assert sandbox.requests == []  # it went to the (absent) proxy
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    with EmailBackend() as connection:
        assert connection.send_messages(messages(1)) == 1
    assert len(sandbox.accepted) == 1
