"""The sandbox's webhook deliveries: signed delivery events for the messages it accepted.

By default an accepted message produces ``email.sent`` then ``email.delivered``. The
recipient's local part asks for other outcomes (the part before "+" or "@"):

==================  =====================================================================
``bounce@...``      ``email.sent`` then ``email.bounced`` (``bounce_type: Permanent``)
``softbounce@...``  ``email.sent`` then ``email.bounced`` (``bounce_type: Transient``)
``complaint@...``   ``email.sent``, ``email.delivered``, then ``email.complained``
``fail@...``        ``email.sent`` then ``email.failed``
==================  =====================================================================

Like SendFleet, the sandbox delivers each event once, in order, and never retries.
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
        body = json.dumps(event).encode()
        request = urllib.request.Request(
            self.url,
            data=body,
            method="POST",
            headers={
                "Content-Type": "application/json",
                "X-SendFleet-Signature": signature(body, self._secret),
                "X-SendFleet-Event": event["event_type"],
                "User-Agent": "SendFleet-Webhook/1.0",
            },
        )
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
