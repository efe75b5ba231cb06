"""The sandbox's test helpers (``sandbox/testing.py``, the pytest plugin): each starts and
ends with no state of django-sendfleet's left in the process or the cache, works on a plain
pytest function, records retry waits with the socket server too, and waits for webhook events
to be applied, not only answered.

The same promises in a user's own project, run as its developer would: test_user_projects.py.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
from django.core.cache import caches
from django.core.mail import EmailMessage, send_mail
from django.urls import reverse

from django_sendfleet import signals
from django_sendfleet.api import transports
from django_sendfleet.exceptions import SendFleetAuthenticationError, SendFleetKeyRefused
from django_sendfleet.models import SendLog
from django_sendfleet.ratelimit import SlidingWindowLimiter, key_guard, shared_cache
from django_sendfleet.reputation import state as reputation_state
from django_sendfleet.sandbox import SANDBOX_API_KEY, Sandbox
from django_sendfleet.sandbox.testing import (
    backend_settings,
    sandbox_for_test,
    use_sendfleet_sandbox,
)
from django_sendfleet.webhooks import drain as event_drain

SECRET = "whsec_helpers_0123456789"


class ProcessState:
    """Each piece of state django-sendfleet keeps between sends, made and read back as the
    package's own code makes and reads it."""

    def __init__(self, alias: str = "default", failing: str = "default") -> None:
        self.alias = alias
        self.failing = failing  # the cache that fails: another than the limiter's, or it
        # would fail open and hide the window
        self.guard = key_guard.KeyGuard(SANDBOX_API_KEY, alias, pause_seconds=120)
        self.limiter = SlidingWindowLimiter(
            requests=1, seconds=60, cache_alias=alias, key_id=SANDBOX_API_KEY
        )

    def make(self) -> None:
        self.guard.record_refusal()  # a 401: the key paused, here and in the cache
        self.limiter.try_acquire()  # the window full
        shared_cache.call(self.failing, self._fail, None)  # the cache left alone for 30 s
        reputation_state.check_now()  # this process's figures
        event_drain._drain.waiting.append(object())  # an event stored, not applied
        event_drain.retry_look.due()  # the retries just looked for

    @staticmethod
    def _fail(cache: Any, timeout: float) -> None:
        raise ConnectionError("the cache is away")

    def left(self) -> list[str]:
        """The pieces still there."""
        caches[self.failing].set("sendfleet:probe", "answers")
        found = {
            "key pause": self.guard.refused_until() is not None,
            "limiter window": self.limiter.try_acquire() != 0.0,
            "cache left alone": shared_cache.get(self.failing, "sendfleet:probe") is None,
            "reputation figures": reputation_state._current is not None,
            "waiting events": bool(event_drain._drain.waiting),
            "retries' last look": not event_drain.retry_look.due(),
        }
        event_drain.retry_look.last = -float("inf")  # due() just took it: undo
        return [name for name, there in found.items() if there]


@pytest.fixture
def state(db, settings) -> Iterator[ProcessState]:
    """A test's ``ProcessState`` on the default cache, a second cache failing; whatever is
    left is removed after."""
    settings.CACHES = {
        **settings.CACHES,
        "sessions": {
            "BACKEND": "django.core.cache.backends.locmem.LocMemCache",
            "LOCATION": "sessions",
        },
    }
    state = ProcessState(failing="sessions")
    yield state
    key_guard.forget_refusals([SANDBOX_API_KEY], list(caches))
    event_drain.forget_waiting()


@pytest.mark.parametrize("socket", [False, True], ids=["inprocess", "socket"])
def test_a_sandbox_starts_and_stops_with_no_state_left(state, settings, socket):
    state.make()
    assert len(state.left()) == 6  # each piece is made, and seen
    state.make()

    with sandbox_for_test(socket=socket) as sandbox:  # what every fixture and decorator use
        assert state.left() == []
        for name, value in backend_settings(sandbox, {}).items():
            setattr(settings, name, value)
        sandbox.inject_fault("authentication_failed")
        with pytest.raises(SendFleetAuthenticationError):  # a 401: the key is paused
            send_mail("Hi", "Body", "shop@example.com", ["ann@example.com"])
        state.make()

    assert state.left() == []


def test_the_decorator_starts_and_stops_with_no_state_left(state, settings):
    state.make()

    with use_sendfleet_sandbox() as sandbox:
        assert state.left() == []
        sandbox.inject_fault("authentication_failed")
        with pytest.raises(SendFleetAuthenticationError):  # a 401: the key is paused
            send_mail("Hi", "Body", "shop@example.com", ["ann@example.com"])
        with pytest.raises(SendFleetKeyRefused):  # paused for the rest of this test
            send_mail("Hi", "Body", "shop@example.com", ["ann@example.com"])
        state.make()

    assert state.left() == []


@pytest.fixture
def _made_before_the_sandbox(state):
    state.make()


@pytest.mark.usefixtures("_made_before_the_sandbox")
def test_the_fixtures_start_with_no_state_left(state, sendfleet_backend, sendfleet_sandbox):
    assert state.left() == []
    send_mail("Hi", "Body", "shop@example.com", ["ann@example.com"])
    assert sendfleet_sandbox.recipients == ["ann@example.com"]


def test_a_pause_another_process_stored_in_a_shared_cache_is_lifted(db, settings, redis_url):
    """A worker sharing the cache recorded the 401: the helpers lift it there too."""
    settings.CACHES = {
        "default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": redis_url}
    }
    shared_cache.forget_failures()
    state = ProcessState()
    state.guard.record_refusal()
    key_guard._refused_here.clear()  # this process never knew of it: another process's
    assert state.guard.refused_until() is not None  # read from Redis

    with sandbox_for_test():
        assert state.guard.refused_until() is None


# (This suite's conftest has a fixture named "sandbox", so the decorator's default name is
# tested in a user's project: test_user_projects.py.)
@pytest.mark.django_db
@use_sendfleet_sandbox(kwarg_name="outbox")
def test_the_decorator_works_on_a_pytest_function(outbox, settings):
    """pytest reads the function's parameters as fixtures: the one the decorator passes is
    not one; the others (``settings``) still are."""
    send_mail("Hi", "Body", "shop@example.com", ["ann@example.com"])
    assert outbox.recipients == ["ann@example.com"]


@pytest.mark.django_db
@pytest.mark.sendfleet_sandbox(socket=True)
def test_the_socket_sandbox_records_the_waits_and_moves_its_clock(sendfleet_settings, sandbox):
    """As in process: the client hands its waits to the sandbox (transports.wait records or
    sleeps, never both), and the throttle's window has moved on by the retry."""
    assert isinstance(sandbox, Sandbox)
    sandbox.set_rate_limit(1, 30)
    sendfleet_settings["MAX_RETRY_WAIT"] = 60

    send_mail("Hi", "Body", "shop@example.com", ["ann@example.com"])
    send_mail("Hi", "Body", "shop@example.com", ["bob@example.com"])

    assert sandbox.retry_waits == [30]
    assert [r.status for r in sandbox.requests] == [200, 429, 200]


def test_a_stopped_socket_sandbox_records_no_more_waits():
    with sandbox_for_test(socket=True) as sandbox:
        transports.wait(0.001)
    transports.wait(0.001)  # slept: no sandbox runs
    assert sandbox.retry_waits == [0.001]


@pytest.mark.django_db
@pytest.mark.sendfleet_sandbox(socket=True)
def test_the_socket_sandbox_delivers_webhooks_to_a_path(sendfleet_settings, sendfleet_sandbox):
    sendfleet_settings["WEBHOOK_SECRET"] = SECRET
    sendfleet_sandbox.configure_webhook(reverse("sendfleet-webhook"), SECRET)
    send_mail("Hi", "Body", "shop@example.com", ["bounce@example.com"])

    deliveries = sendfleet_sandbox.deliver_webhooks()

    assert [(d.event_type, d.status) for d in deliveries] == [
        ("email.sent", 200),
        ("email.bounced", 200),
    ]
    assert SendLog.objects.get().status == "bounced"


@pytest.fixture
def slow_tracking_receiver() -> Iterator[list[str]]:
    """A receiver that takes a while, as a project's may (it runs after the row is written)."""
    seen: list[str] = []

    def receiver(sender: Any, event: Any, **kwargs: Any) -> None:
        time.sleep(0.05)
        seen.append(event.event_type)

    signals.tracking.connect(receiver)
    yield seen
    signals.tracking.disconnect(receiver)


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("sendfleet_socket_sandbox")  # posts over HTTP to live_server
def test_wait_for_webhooks_returns_once_the_events_are_applied(
    live_server, sendfleet_settings, sandbox, slow_tracking_receiver
):
    sendfleet_settings["WEBHOOK_SECRET"] = SECRET
    sandbox.configure_webhook(live_server.url + reverse("sendfleet-webhook"), SECRET)
    recipients = ["ann@example.com", "bounce@example.com", "complaint@example.com"]
    EmailMessage("Hi", "Body", "shop@example.com", recipients).send()

    assert sandbox.wait_for_webhooks()

    assert dict(SendLog.objects.values_list("recipient", "status")) == {
        "ann@example.com": "delivered",
        "bounce@example.com": "bounced",
        "complaint@example.com": "complained",
    }
    assert len(slow_tracking_receiver) == 7  # every receiver has run
