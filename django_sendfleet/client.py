"""HTTP to SendFleet: one session per opened backend, one request per payload, retries as the
error table prescribes.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any

import requests
from requests.adapters import HTTPAdapter
from urllib3.exceptions import NewConnectionError

from . import __version__, error_table, transports
from .exceptions import (
    SendFleetError,
    SendFleetMalformedResponse,
    SendFleetNetworkError,
    SendFleetRateLimitWait,
)
from .ratelimit import SlidingWindowLimiter
from .redaction import redact

logger = logging.getLogger("django_sendfleet")

USER_AGENT = f"django-sendfleet/{__version__}"


def wait_before_retry(seconds: float) -> None:
    """Block between attempts. A module function so tests can record waits instead; an
    in-process sandbox records them (``transports.py``)."""
    transports.wait(seconds)


@dataclass
class Accepted:
    """A 200 from SendFleet: the email is queued for delivery."""

    message_id: str
    mode: str | None
    warnings: list[str]
    response: requests.Response
    attempts: int
    #: Seconds from the first attempt to the answer, waits included.
    duration: float
    body: dict[str, Any] = field(default_factory=dict)


class SendFleetClient:
    """Posts payloads to the send endpoint over one reused connection."""

    def __init__(
        self,
        *,
        api_url: str,
        api_key: str,
        timeout: float | tuple[float, float],
        max_retry_wait: float,
        rate_limiter: SlidingWindowLimiter | None = None,
    ) -> None:
        self.api_url = api_url
        #: Paces every attempt, retries included, with every other process using the key.
        self.rate_limiter = rate_limiter
        self._api_key = api_key
        self.timeout = timeout
        self.max_retry_wait = max_retry_wait
        self._session: requests.Session | None = None

    def __repr__(self) -> str:
        # Never the key.
        return f"<SendFleetClient {self.api_url}>"

    def open(self) -> bool:
        """Start a session; return False when one is already open."""
        if self._session is not None:
            return False
        session = requests.Session()
        # One connection, kept alive for a whole batch; retries are ours, never urllib3's.
        session.mount("http://", HTTPAdapter(pool_connections=1, pool_maxsize=1, max_retries=0))
        session.mount("https://", HTTPAdapter(pool_connections=1, pool_maxsize=1, max_retries=0))
        transports.mount(session, self.api_url)  # a test's in-process sandbox, when installed
        session.headers.update(
            {"X-API-Key": self._api_key, "User-Agent": USER_AGENT, "Accept": "application/json"}
        )
        self._session = session
        return True

    def close(self) -> None:
        if self._session is not None:
            self._session.close()
            self._session = None

    def send(self, payload: dict[str, Any]) -> Accepted:
        """POST one payload, retrying what the error table allows within ``max_retry_wait``.

        Returns ``Accepted`` or raises the ``SendFleetError`` of the last attempt, with
        ``attempts`` set.
        """
        opened_here = self.open()
        started = time.monotonic()
        waited = 0.0
        attempt = 0
        try:
            while True:
                attempt += 1
                try:
                    if self.rate_limiter is not None:
                        waited += self.rate_limiter.acquire(max(self.max_retry_wait - waited, 0))
                    return self.attempt(payload, attempt=attempt, started=started)
                except SendFleetRateLimitWait as error:
                    # No slot within MAX_RETRY_WAIT: nothing was sent by this attempt.
                    error.attempts = attempt - 1
                    error.recipient, error.payload = payload.get("to"), payload
                    raise
                except SendFleetError as error:
                    error.attempts = attempt
                    wait = error_table.retry_wait(error, attempt)
                    if wait is None:
                        raise
                    if waited + wait > self.max_retry_wait:
                        error.detail += (
                            f" (not retried: waiting {wait:.1f} s more would pass "
                            f"MAX_RETRY_WAIT={self.max_retry_wait:g} s)"
                        )
                        error.args = (error.detail,)
                        raise
                    logger.info(
                        "SendFleet %s for %s; retry %d in %.1f s",
                        error.error_code,
                        payload.get("to"),
                        attempt,
                        wait,
                    )
                    wait_before_retry(wait)
                    waited += wait
        finally:
            if opened_here:
                self.close()

    def _without_key(self, error: SendFleetError) -> SendFleetError:
        """A gateway may echo the request's headers back: keep the key out of the error."""
        secrets = (self._api_key, self._api_key.partition(".")[2])
        redacted = redact(error.detail, secrets)
        if redacted != error.detail:
            error.detail = redacted
            error.args = (redacted,)
        if isinstance(error, SendFleetNetworkError):
            error.cause = redact(error.cause, secrets)
        return error

    def attempt(
        self, payload: dict[str, Any], *, attempt: int = 1, started: float | None = None
    ) -> Accepted:
        """One POST, no retry: the queued backend schedules its own retries."""
        if started is None:
            started = time.monotonic()
        if self._session is None:
            raise RuntimeError("SendFleetClient.open() first.")
        context: dict[str, Any] = {"payload": payload, "recipient": payload.get("to")}
        try:
            response = self._session.post(self.api_url, json=payload, timeout=self.timeout)
        except requests.RequestException as error:
            failure = self._without_key(_network_error(error, **context))
        else:
            failure = None
        if failure is not None:
            # Chained to nothing (raised outside the except block, so no __context__ either):
            # urllib3's frames in the requests error hold the request's headers, the key among
            # them, and Django's error reports show the locals of every chained exception's
            # frames. ``failure.cause`` keeps its type and text.
            raise failure from None
        if not 200 <= response.status_code < 300:
            raise self._without_key(error_table.error_for_response(response, **context))
        try:
            body = response.json()
        except ValueError:
            body = None
        if not isinstance(body, dict) or not isinstance(body.get("message_id"), str):
            raise SendFleetMalformedResponse(
                f"HTTP {response.status_code} without the documented JSON body; the email may "
                "have been queued.",
                response=response,
                status_code=response.status_code,
                **context,
            )
        warnings = body.get("warnings") or []
        return Accepted(
            message_id=body["message_id"],
            mode=body.get("mode"),
            warnings=[str(w) for w in warnings] if isinstance(warnings, list) else [str(warnings)],
            response=response,
            attempts=attempt,
            duration=time.monotonic() - started,
            body=body,
        )


def _network_error(error: requests.RequestException, **context: Any) -> SendFleetNetworkError:
    """Say whether the request may have reached SendFleet, which decides if a retry is safe."""
    reached = not _never_connected(error)
    code = "network_error" if reached else "connection_failed"
    what = "may have been sent" if reached else "was not sent"
    cause = f"{type(error).__name__}: {error}"
    return SendFleetNetworkError(
        f"{cause} (the email {what})",
        may_have_been_sent=reached,
        cause=cause,
        error_code=code,
        retryable=error_table.SPECS_BY_CODE[code].retryable,
        **context,
    )


def _never_connected(error: requests.RequestException) -> bool:
    if isinstance(error, requests.ConnectTimeout | requests.exceptions.SSLError):
        return True
    if isinstance(error, requests.exceptions.InvalidURL | requests.exceptions.MissingSchema):
        return True
    if isinstance(error, requests.ConnectionError) and not isinstance(error, requests.ReadTimeout):
        reason = error.args[0] if error.args else None
        reason = getattr(reason, "reason", reason)  # urllib3's MaxRetryError wraps the cause
        return isinstance(reason, NewConnectionError)
    return False
