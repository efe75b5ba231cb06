"""HTTP to SendFleet: one session per opened backend, one request per payload, no retries."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import requests
from requests.adapters import HTTPAdapter
from requests.utils import get_netrc_auth
from urllib3.exceptions import NewConnectionError

from .. import __version__
from ..credentials.api_key import ApiKey
from ..credentials.redaction import redact
from ..credentials.secret import Secret
from ..exceptions import (
    SendFleetConnectionFailed,
    SendFleetError,
    SendFleetMalformedResponse,
    SendFleetNetworkError,
)
from . import answers, transports

if TYPE_CHECKING:
    from ..conf import SendFleetSettings

logger = logging.getLogger("django_sendfleet")

USER_AGENT = f"django-sendfleet/{__version__}"


def milliseconds_since(started: float) -> int:
    """Milliseconds from a ``time.monotonic()`` reading until now: a request's duration."""
    return round((time.monotonic() - started) * 1000)


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


class SendFleetClient:
    """Posts payloads to the send endpoint over one reused connection. One attempt per call:
    retries, waits and the rate limiter belong to the send path (``sending.py``)."""

    def __init__(
        self, *, api_url: str, api_key: str | Secret[str], timeout: float | tuple[float, float]
    ) -> None:
        self.api_url = api_url
        # Revealed only into the session's header: no frame holds the key as a bare str.
        self._api_key = ApiKey(api_key)
        self.timeout = timeout
        self._session: requests.Session | None = None
        #: What ``prepare`` built: the payload it is for, the request and how to send it.
        self._prepared: tuple[dict[str, Any], requests.PreparedRequest, dict[str, Any]] | None
        self._prepared = None
        #: Set when opening the connection ahead failed: the attempts connect as they go.
        self._connect_ahead_failed = False
        #: The session's connection pool for the API, and what it was found for.
        self._pool: tuple[tuple[Any, ...], Any] | None = None
        #: Session.send's options for every request of the session (see ``open``).
        self._send_options: dict[str, Any] = {}

    @classmethod
    def for_settings(cls, settings: SendFleetSettings) -> SendFleetClient:
        """The client a mailer's settings describe: the one place that builds it."""
        return cls(api_url=settings.api_url, api_key=settings.api_key, timeout=settings.timeout)

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
            {
                "X-API-Key": self._api_key.reveal(),
                "User-Agent": USER_AGENT,
                "Accept": "application/json",
            }
        )
        self._send_options = {"timeout": self.timeout, "allow_redirects": True}
        try:
            # What the environment says about requests to the API (proxies, NO_PROXY, a CA
            # bundle, ~/.netrc), read once for the session: requests reads it again for each
            # request otherwise, which costs about a quarter of a request to a nearby server.
            self._send_options.update(
                session.merge_environment_settings(self.api_url, {}, None, None, None)
            )
            session.auth = get_netrc_auth(self.api_url)
            session.trust_env = False
        except Exception:  # requests reads it for each request, as it does by default
            self._send_options = {"timeout": self.timeout, "allow_redirects": True}
        self._session = session
        return True

    def close(self) -> None:
        self._prepared = self._pool = None
        if self._session is not None:
            self._session.close()
            self._session = None

    def prepare(self, payload: dict[str, Any]) -> None:
        """Do now what an attempt to send ``payload`` would do before its request leaves:
        build the request and open the connection to the API (TCP, and TLS for https).

        The send path calls this before it takes the rate limiter's slot, so that the time
        from the slot to the request's arrival is the send alone, short and steady, even in
        a fresh process (RQ forks one per job) whose first request would also connect and do
        every first-use step. ``attempt(payload)`` then sends what was built. Opening the
        connection may fail: then nothing is raised here, the attempt connects (and fails) as
        it would have, and this client stops connecting ahead until an attempt is answered.
        """
        self.open()
        self._prepared = None
        try:
            request, options = self._request_for(payload)
        except requests.RequestException:
            return  # the attempt builds it again, and reports why it cannot be sent
        self._prepared = (payload, request, options)
        if not self._connect_ahead_failed:
            self._connect_ahead(request, options)

    def _request_for(
        self, payload: dict[str, Any]
    ) -> tuple[requests.PreparedRequest, dict[str, Any]]:
        """The POST of ``payload`` and how to send it, as ``Session.post`` makes them."""
        assert self._session is not None
        session = self._session
        request = session.prepare_request(requests.Request("POST", self.api_url, json=payload))
        options = self._send_options
        if session.trust_env:  # the environment could not be read ahead
            options = options | session.merge_environment_settings(
                request.url, {}, None, None, None
            )
        return request, options

    def _connect_ahead(self, request: requests.PreparedRequest, options: dict[str, Any]) -> None:
        """Open a connection in the session's pool for ``request``, if none is open."""
        assert self._session is not None and request.url is not None
        adapter = self._session.get_adapter(request.url)
        if not isinstance(adapter, HTTPAdapter):
            return  # an in-process transport: no connection to open
        try:
            # The pool for the API, found once a session: finding it is most of the cost.
            key = (request.url, repr(options["proxies"]), options["verify"], options["cert"])
            if self._pool is None or self._pool[0] != key:
                found = adapter.get_connection_with_tls_context(
                    request, options["verify"], options["proxies"], options["cert"]
                )
                self._pool = (key, found)
            pool: Any = self._pool[1]  # an HTTP(S)ConnectionPool
            # urllib3 has no public way to open a pooled connection without a request. Taking
            # one hangs up a connection the server closed, as a request would.
            connection = pool._get_conn()
            try:
                if getattr(connection, "sock", None) is None:  # not open yet
                    connect_timeout = (
                        self.timeout[0] if isinstance(self.timeout, tuple) else self.timeout
                    )
                    connection.timeout = connect_timeout
                    connection.connect()
            except Exception:
                connection.close()
                raise
            finally:
                pool._put_conn(connection)
        except Exception as error:
            # The attempt connects itself and reports the failure as a send's failure.
            self._connect_ahead_failed = True
            logger.debug("SendFleet could not connect ahead of a send: %s", type(error).__name__)

    def _without_key(self, error: SendFleetError) -> SendFleetError:
        """A gateway may echo the request's headers back: keep the key out of the error."""
        secrets = self._api_key.secrets
        redacted = redact(error.detail, secrets)
        if redacted != error.detail:
            error.detail = redacted
            error.args = (redacted,)
        if isinstance(error, SendFleetNetworkError):
            error.cause = redact(error.cause, secrets)
        return error

    def attempt(self, payload: dict[str, Any], *, attempt: int = 1) -> Accepted:
        """One POST, no retry. Returns ``Accepted`` or raises the answer's ``SendFleetError``."""
        self.open()
        assert self._session is not None
        context: dict[str, Any] = {"payload": payload, "recipient": payload.get("to")}
        prepared, self._prepared = self._prepared, None
        try:
            if prepared is None or prepared[0] is not payload:
                prepared = (payload, *self._request_for(payload))
            response = self._session.send(prepared[1], **prepared[2])
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
        self._connect_ahead_failed = False  # answered: the API is reachable again
        if not 200 <= response.status_code < 300:
            raise self._without_key(answers.error_for_response(response, **context))
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
        )


def _network_error(error: requests.RequestException, **context: Any) -> SendFleetNetworkError:
    """Say whether the request may have reached SendFleet, which decides if a retry is safe."""
    reached = not _never_connected(error)
    kind = SendFleetNetworkError if reached else SendFleetConnectionFailed
    what = "may have been sent" if reached else "was not sent"
    cause = f"{type(error).__name__}: {error}"
    return kind(f"{cause} (the email {what})", cause=cause, cause_type=type(error), **context)


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
