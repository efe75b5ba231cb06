"""A ``requests`` transport adapter that answers from a ``SandboxState``, with no socket.

It gives the client exactly what ``requests.adapters.HTTPAdapter`` would against the socket
sandbox: the same statuses, headers and bodies, and on a dropped connection, a timeout or a
refused connection, the same exceptions wrapping the same urllib3 errors, so the client's error
handling cannot tell the difference. It never sleeps: an answer later than the request's read
timeout is a ``ReadTimeout`` at once, any other answer comes at once.
"""

from __future__ import annotations

import io
import json
import threading
from collections.abc import Callable, Mapping
from http import HTTPStatus
from http.client import RemoteDisconnected
from typing import Any
from urllib.parse import urlsplit

import requests
from requests.adapters import BaseAdapter
from requests.structures import CaseInsensitiveDict
from requests.utils import get_encoding_from_headers
from urllib3 import HTTPConnectionPool
from urllib3.connection import HTTPConnection
from urllib3.exceptions import (
    ConnectTimeoutError,
    MaxRetryError,
    NewConnectionError,
    ProtocolError,
    ReadTimeoutError,
)
from urllib3.util import Timeout

from .answers import Response
from .server import MAX_BODY_BYTES, SEND_PATH
from .state import SandboxState

SERVER = "SendFleetSandbox/1.0"


class SandboxAdapter(BaseAdapter):
    """One client session's way to the sandbox: its "connection" opens on the first request
    and closes when an answer is dropped, as a kept-alive HTTP connection would."""

    def __init__(
        self, state: SandboxState, client_ip: str, open_connection: Callable[[], int]
    ) -> None:
        super().__init__()
        self.state = state
        self.client_ip = client_ip
        self._open_connection = open_connection
        self._connection_id: int | None = None
        self._lock = threading.Lock()

    def send(
        self,
        request: requests.PreparedRequest,
        stream: bool = False,
        timeout: float | tuple[float, float] | tuple[float, None] | Timeout | None = None,
        verify: bool | str = True,
        cert: bytes | str | tuple[bytes | str, bytes | str] | None = None,
        proxies: Mapping[str, str] | None = None,
    ) -> requests.Response:
        url = request.url or ""
        headers = request.headers
        for value in headers.values():
            if isinstance(value, str):
                value.encode("latin-1")  # raises as http.client does, before anything is sent
        body: Any = request.body or b""
        if not isinstance(body, (bytes, str)):  # a generator: requests would send it chunked
            return self._answer(request, 411, {"detail": "Send a Content-Length header."})
        if isinstance(body, str):
            body = body.encode("utf-8")
        if len(body) > MAX_BODY_BYTES:
            return self._answer(request, 413, {"detail": "Request body too large."})
        if urlsplit(url).path != SEND_PATH:
            return self._answer(request, 404, {"detail": "Not found."})
        if request.method != "POST":
            detail = {"detail": f'Method "{request.method}" not allowed.'}
            return self._answer(request, 405, detail, {"Allow": "POST"})

        failure = self.state.take_connection_fault()
        if failure:  # as if the server had closed the kept-alive connection, then refused more
            self._hang_up()
            raise _connection_failure(failure, request, timeout)
        answer = self.state.handle(
            headers.get("X-API-Key"),
            body,
            self.client_ip,
            self._connection(),
            headers.get("User-Agent", ""),
        )
        read_timeout = _read_timeout(timeout)
        if answer.delay == float("inf") or (
            answer.delay and read_timeout is not None and answer.delay >= read_timeout
        ):
            self._hang_up()
            pool = HTTPConnectionPool(*_host_and_port(url))
            message = f"Read timed out. (read timeout={read_timeout})"
            raise requests.ReadTimeout(ReadTimeoutError(pool, url, message), request=request)
        if answer.drop:
            self._hang_up()
            reason = RemoteDisconnected("Remote end closed connection without response")
            raise requests.ConnectionError(
                ProtocolError("Connection aborted.", reason), request=request
            )
        return self._respond(request, answer)

    def close(self) -> None:
        self._hang_up()

    def _connection(self) -> int:
        with self._lock:
            if self._connection_id is None:
                self._connection_id = self._open_connection()
            return self._connection_id

    def _hang_up(self) -> None:
        with self._lock:
            self._connection_id = None

    def _respond(self, request: requests.PreparedRequest, answer: Response) -> requests.Response:
        if answer.raw_body is not None:
            return self._build(request, answer.status, answer.raw_body, answer.headers)
        return self._answer(request, answer.status, answer.body, answer.headers)

    def _answer(
        self,
        request: requests.PreparedRequest,
        status: int,
        body: Any,
        headers: dict[str, str] | None = None,
    ) -> requests.Response:
        content = json.dumps(body, ensure_ascii=False).encode("utf-8")
        return self._build(
            request, status, content, {"Content-Type": "application/json", **(headers or {})}
        )

    def _build(
        self,
        request: requests.PreparedRequest,
        status: int,
        content: bytes,
        headers: Mapping[str, str],
    ) -> requests.Response:
        response = requests.Response()
        response.status_code = status
        response.reason = HTTPStatus(status).phrase
        response.headers = CaseInsensitiveDict(
            {"Server": SERVER, **headers, "Content-Length": str(len(content))}
        )
        response.encoding = get_encoding_from_headers(response.headers)
        response.raw = io.BytesIO(content)
        response.url = request.url or ""
        response.request = request
        return response


def _read_timeout(timeout: float | tuple[Any, Any] | Timeout | None) -> float | None:
    if isinstance(timeout, tuple):
        timeout = timeout[1]
    if isinstance(timeout, Timeout):
        read = timeout.read_timeout
        return float(read) if isinstance(read, (int, float)) else None
    return None if timeout is None else float(timeout)


def _connect_timeout(timeout: float | tuple[Any, Any] | Timeout | None) -> Any:
    if isinstance(timeout, tuple):
        return timeout[0]
    if isinstance(timeout, Timeout):
        return timeout.connect_timeout
    return timeout


def _host_and_port(url: str) -> tuple[str, int]:
    parts = urlsplit(url)
    return parts.hostname or "", parts.port or (443 if parts.scheme == "https" else 80)


def _connection_failure(
    kind: str, request: requests.PreparedRequest, timeout: Any
) -> requests.RequestException:
    """What requests raises when the connection cannot be made, wrapping urllib3's error."""
    url = request.url or ""
    host, port = _host_and_port(url)
    pool, connection = HTTPConnectionPool(host, port), HTTPConnection(host, port)
    path = urlsplit(url).path
    if kind == "connect_timeout":
        seconds = _connect_timeout(timeout)
        message = f"Connection to {host} timed out. (connect timeout={seconds})"
        reason: Exception = ConnectTimeoutError(connection, message)
        return requests.ConnectTimeout(MaxRetryError(pool, path, reason), request=request)
    message = "Failed to establish a new connection: [Errno 111] Connection refused"
    reason = NewConnectionError(connection, message)
    return requests.ConnectionError(MaxRetryError(pool, path, reason), request=request)
