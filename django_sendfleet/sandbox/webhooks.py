"""The sandbox's webhook deliveries: signed delivery events for the messages it accepted.

By default an accepted message produces ``email.sent`` then ``email.delivered``. The
recipient's local part asks for other outcomes (the part before "+" or "@"):

==================  =====================================================================
``bounce@...``      ``email.sent`` then ``email.bounced`` (``bounce_type: Permanent``)
``softbounce@...``  ``email.sent`` then ``email.bounced`` (``bounce_type: Transient``)
``complaint@...``   ``email.sent``, ``email.delivered``, then ``email.complained``
``fail@...``        ``email.sent`` then ``email.failed``
==================  =====================================================================

Like SendFleet, the sandbox delivers each event once, in order, and never retries, and only for
messages accepted on a Shared SES plan (BYOC plans have no webhooks).

Two ways to deliver: ``WebhookSender`` posts over HTTP from a background thread (the socket
sandbox: the receiver is a running server, e.g. pytest-django's ``live_server``);
``InProcessWebhooks`` keeps the events until the test asks for them, then posts them through
Django's test client to the app's own URLconf, in the test's thread (the in-process sandbox).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import queue
import threading
import urllib.error
import urllib.request
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

logger = logging.getLogger("django_sendfleet.sandbox")

_OUTCOMES: dict[str, list[tuple[str, dict[str, Any]]]] = {
    "bounce": [
        ("email.sent", {}),
        ("email.bounced", {"bounce_type": "Permanent", "description": "Mailbox does not exist"}),
    ],
    "softbounce": [
        ("email.sent", {}),
        ("email.bounced", {"bounce_type": "Transient", "description": "Mailbox full"}),
    ],
    "complaint": [
        ("email.sent", {}),
        ("email.delivered", {}),
        ("email.complained", {"description": "Recipient marked the message as spam"}),
    ],
    "fail": [("email.sent", {}), ("email.failed", {"description": "Rejected by SES"})],
}
_DELIVERED: list[tuple[str, dict[str, Any]]] = [("email.sent", {}), ("email.delivered", {})]


def events_for(recipient: str, message_id: str) -> list[dict[str, Any]]:
    """The events the sandbox sends for one accepted message, in order."""
    local_part = recipient.partition("@")[0].partition("+")[0].lower()
    now = datetime.now(UTC).isoformat()
    return [
        {"event_type": event_type, "message_id": message_id, "to": recipient, "timestamp": now}
        | extra
        for event_type, extra in _OUTCOMES.get(local_part, _DELIVERED)
    ]


def signature(body: bytes, secret: str) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def signed(event: dict[str, Any], secret: str) -> tuple[bytes, dict[str, str]]:
    """The body and headers SendFleet posts for one event."""
    body = json.dumps(event).encode()
    headers = {
        "Content-Type": "application/json",
        "X-SendFleet-Signature": signature(body, secret),
        "X-SendFleet-Event": event["event_type"],
        "User-Agent": "SendFleet-Webhook/1.0",
    }
    return body, headers


@dataclass(frozen=True)
class Delivery:
    event_type: str
    message_id: str
    status: int  # 0: the receiver could not be reached


class WebhookSender:
    """Posts events to one URL from a background thread, in the order they were queued."""

    def __init__(self, url: str, secret: str, timeout: float = 5.0) -> None:
        self.url = url
        self._secret = secret
        self.timeout = timeout
        self.deliveries: list[Delivery] = []
        self._reported = 0  # deliveries deliver() returned already
        self._queue: queue.Queue[dict[str, Any] | None] = queue.Queue()
        self._thread = threading.Thread(target=self._run, name="sandbox-webhooks", daemon=True)
        self._thread.start()

    def message_accepted(self, recipient: str, message_id: str) -> None:
        for event in events_for(recipient, message_id):
            self._queue.put(event)

    def wait_until_idle(self, timeout: float = 10.0) -> bool:
        """Block until every queued event was delivered (or failed); False on timeout."""
        done = threading.Event()
        self._queue.put({"_marker": done})
        return done.wait(timeout)

    def deliver(self, timeout: float = 10.0) -> list[Delivery]:
        """Wait (up to ``timeout``) until every event queued so far was posted; return the
        deliveries made since the last call."""
        self.wait_until_idle(timeout)
        made = self.deliveries[self._reported :]
        self._reported += len(made)
        return made

    def close(self) -> None:
        self._queue.put(None)
        self._thread.join(timeout=self.timeout + 1)

    def _run(self) -> None:
        while (event := self._queue.get()) is not None:
            marker = event.get("_marker")
            if isinstance(marker, threading.Event):
                marker.set()
                continue
            self.deliveries.append(self._post(event))

    def _post(self, event: dict[str, Any]) -> Delivery:
        body, headers = signed(event, self._secret)
        request = urllib.request.Request(self.url, data=body, method="POST", headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as answer:
                status = answer.status
        except urllib.error.HTTPError as error:
            status = error.code
        except OSError as error:  # refused, timed out: SendFleet does not retry, nor do we
            logger.warning("sandbox webhook to %s failed: %s", self.url, error)
            status = 0
        logger.debug("sandbox webhook %s -> %s", event["event_type"], status)
        return Delivery(event["event_type"], event["message_id"], status)


class InProcessWebhooks:
    """Keeps each accepted message's events until ``deliver()`` posts them, through Django's
    test client, to ``url``'s path in the app's URLconf.

    Deferring is deliberate: SendFleet's events arrive after the send has returned (and after
    the caller's transaction committed), so delivering them in the middle of a send would test
    a race the app never sees. A test that wants that race posts an event itself.
    """

    def __init__(self, url: str, secret: str) -> None:
        parts = urlsplit(url)
        self.url = url
        self.path = parts.path + (f"?{parts.query}" if parts.query else "")
        if not self.path.startswith("/"):
            raise ValueError(f"Give the webhook's URL or path, e.g. '/sendfleet/webhook/': {url!r}")
        self._secret = secret
        self._lock = threading.Lock()
        self._pending: list[dict[str, Any]] = []
        self.deliveries: list[Delivery] = []

    def message_accepted(self, recipient: str, message_id: str) -> None:
        with self._lock:
            self._pending.extend(events_for(recipient, message_id))

    @property
    def pending(self) -> int:
        """Events waiting for ``deliver()``."""
        return len(self._pending)

    def deliver(self, timeout: float = 10.0) -> list[Delivery]:
        """Post every waiting event, in order, in this thread; return these deliveries.
        (``timeout``: for the protocol; each post is answered before the next.)"""
        # Imported here: the sandbox itself runs without Django settings (the CLI).
        from django.test import Client

        # As SendFleet would: no CSRF token, no session; a view error is a 500, not a raise
        # (Django logs it on the django.request logger).
        client = Client(enforce_csrf_checks=True, raise_request_exception=False)
        made = []
        while True:
            with self._lock:
                if not self._pending:
                    break
                event = self._pending.pop(0)
            body, headers = signed(event, self._secret)
            content_type = headers.pop("Content-Type")
            answer = client.post(self.path, data=body, content_type=content_type, headers=headers)
            delivery = Delivery(event["event_type"], event["message_id"], answer.status_code)
            logger.debug("sandbox webhook %s -> %s", delivery.event_type, delivery.status)
            made.append(delivery)
            with self._lock:
                self.deliveries.append(delivery)
        return made

    def wait_until_idle(self, timeout: float = 10.0) -> bool:
        """Deliver what is waiting now: in process there is nothing to wait for."""
        self.deliver()
        return True

    def close(self) -> None:
        with self._lock:
            self._pending.clear()
