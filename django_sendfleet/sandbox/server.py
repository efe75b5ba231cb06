"""The sandbox's HTTP layer: ``POST /api/send/`` plus a small control API under ``/_sandbox/``.

Control API (JSON in, JSON out), for tests, demos and workers in other processes:

    GET  /_sandbox/requests   every recorded request to /api/send/
    GET  /_sandbox/accepted   the accepted ones
    POST /_sandbox/reset      forget traffic, quota use and faults; keep the configuration
    POST /_sandbox/fault      {"kind": 502 | 500 | "drop" | "malformed" | "slow:<s>", "count": 1}
    POST /_sandbox/suppress   {"email": "...", "account": "default"}
    POST /_sandbox/config     {"latency": 0.2, "rate_limit": [10, 2], "usage_lag": 30,
                               "advance_clock": 60, "webhook_url": "...", "webhook_secret": "..."}

The control API answers only what a local program asks (issue 23): a loopback ``Host`` (a web
page's DNS rebinding brings its own name, and would read every captured mail, reset links
included), no ``Origin`` from elsewhere (a page's cross-origin request), and a POST body of
``application/json`` (a page's form or ``text/plain`` POST needs no preflight; JSON does).
"""

from __future__ import annotations

import contextlib
import json
import logging
import select
import socket
import socketserver
import threading
import time
from collections.abc import Callable
from dataclasses import asdict
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, cast
from urllib.parse import urlsplit

from django.http.request import split_domain_port

from .answers import Response
from .state import SandboxState
from .webhooks import WebhookSender

logger = logging.getLogger("django_sendfleet.sandbox")

SEND_PATH = "/api/send/"
CONTROL_PREFIX = "/_sandbox/"
MAX_BODY_BYTES = 10 * 1024 * 1024
# The longest a "timeout" fault keeps a connection without answering, for clients without a
# read timeout of their own.
NO_ANSWER_LIMIT = 60.0
#: The host names the control API answers to, whatever the port.
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "[::1]"})


def _host_name(host: str) -> str:
    """The name of a ``Host`` header value, without its port ("[::1]" keeps its brackets);
    "" when it cannot be read."""
    return split_domain_port(host)[0]


class SandboxServer(ThreadingHTTPServer):
    """A threaded HTTP/1.1 server answering for one ``SandboxState``."""

    daemon_threads = True
    # socketserver's default backlog of 5 makes a burst of new connections wait for SYN
    # retransmits (a second or more).
    request_queue_size = 128

    def __init__(self, address: tuple[str, int], state: SandboxState) -> None:
        self.address_family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
        self.state = state
        self._connections_lock = threading.Lock()
        self._open_connections: set[socket.socket] = set()
        self._last_connection_id = 0
        self.connections_opened = 0
        super().__init__(address, SandboxRequestHandler)

    def server_bind(self) -> None:
        # HTTPServer.server_bind() does a reverse DNS lookup for server_name; skip it.
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = cast("tuple[str, int]", self.server_address[:2])

    @property
    def port(self) -> int:
        return self.server_address[1]

    def connection_opened(self, connection: socket.socket) -> int:
        """Count a new TCP connection and return its id."""
        with self._connections_lock:
            self._last_connection_id += 1
            self.connections_opened += 1
            self._open_connections.add(connection)
            return self._last_connection_id

    def connection_closed(self, connection: socket.socket) -> None:
        with self._connections_lock:
            self._open_connections.discard(connection)

    def reset_connection_count(self) -> None:
        with self._connections_lock:
            self.connections_opened = 0

    def close_open_connections(self) -> None:
        """Hang up idle keep-alive connections, whose threads would otherwise wait forever."""
        with self._connections_lock:
            connections = list(self._open_connections)
        for connection in connections:
            with contextlib.suppress(OSError):  # already gone
                connection.shutdown(socket.SHUT_RDWR)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # Clients hanging up mid-request are routine here; keep them off stderr.
        logger.debug("Error while serving %s", client_address, exc_info=True)


class SandboxRequestHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive: one connection serves many requests
    server_version = "SendFleetSandbox/1.0"
    sys_version = ""
    timeout = 60  # seconds an idle keep-alive connection is kept
    # Headers and body go out in two writes; without this, Nagle holds the body back until
    # the client ACKs the headers, and delayed ACKs make that ~40 ms per response.
    disable_nagle_algorithm = True
    server: SandboxServer

    def setup(self) -> None:
        super().setup()
        self.connection_id = self.server.connection_opened(self.connection)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.server.connection_closed(self.connection)

    def log_message(self, format: str, *args: Any) -> None:
        logger.debug("%s - " + format, self.address_string(), *args)

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def do_PUT(self) -> None:
        self._dispatch("PUT")

    def do_PATCH(self) -> None:
        self._dispatch("PATCH")

    def do_DELETE(self) -> None:
        self._dispatch("DELETE")

    def _dispatch(self, method: str) -> None:
        body = self._read_body()
        if body is None:
            return
        path = urlsplit(self.path).path
        if path == SEND_PATH:
            if method == "POST":
                self._send_email(body)
            else:
                self._method_not_allowed(method, allow="POST")
        elif path.startswith(CONTROL_PREFIX):
            self._control(method, path.removeprefix(CONTROL_PREFIX).strip("/"), body)
        else:
            self._write_json(404, {"detail": "Not found."})

    def _read_body(self) -> bytes | None:
        """Read exactly the request body, or answer and return None when it can't be framed."""
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            self._write_json(411, {"detail": "Send a Content-Length header."}, close=True)
            return None
        try:
            length = int(self.headers.get("Content-Length", "0"))
        except ValueError:
            length = -1
        if length < 0:
            self._write_json(400, {"detail": "Invalid Content-Length header."}, close=True)
            return None
        if length > MAX_BODY_BYTES:
            self._write_json(413, {"detail": "Request body too large."}, close=True)
            return None
        return self.rfile.read(length)

    def _send_email(self, body: bytes) -> None:
        response = self.server.state.handle(
            self.headers.get("X-API-Key"),
            body,
            self.client_address[0],
            self.connection_id,
            self.headers.get("User-Agent", ""),
        )
        if response.delay == float("inf"):
            self._wait_for_hang_up(NO_ANSWER_LIMIT)
            self.close_connection = True
            return
        if response.delay:
            time.sleep(response.delay)
        if response.drop:
            self.close_connection = True
            return
        self._write_response(response)

    def _wait_for_hang_up(self, limit: float) -> None:
        """Never answer: return when the client hangs up (its read timeout), the sandbox stops
        (which shuts the connection down) or ``limit`` seconds pass."""
        deadline = time.monotonic() + limit
        while (remaining := deadline - time.monotonic()) > 0:
            readable, _, _ = select.select([self.connection], [], [], min(remaining, 1.0))
            if readable:
                return  # closed, or the client sent more: either way this request is over

    def _method_not_allowed(self, method: str, allow: str) -> None:
        self._write_json(405, {"detail": f'Method "{method}" not allowed.'}, {"Allow": allow})

    # Control API.

    def _control_refusal(self, method: str) -> tuple[int, str] | None:
        """Why a request cannot be a local program's call to the control API, or None."""
        host = self.headers.get("Host", "")
        if _host_name(host) not in LOOPBACK_HOSTS | {self.server.server_name}:
            return 403, "The control API answers loopback host names only."
        origin = self.headers.get("Origin")
        if origin is not None and origin != f"http://{host}":
            return 403, "The control API answers no cross-origin requests."
        content_type = self.headers.get("Content-Type", "").split(";")[0].strip().lower()
        if method == "POST" and content_type != "application/json":
            return 415, "The control API takes application/json."
        return None

    def _control(self, method: str, name: str, body: bytes) -> None:
        refusal = self._control_refusal(method)
        if refusal is not None:
            self._write_json(refusal[0], {"detail": refusal[1]})
            return
        routes: dict[str, tuple[str, Callable[[Any], Any]]] = {
            "requests": ("GET", self._list_requests),
            "accepted": ("GET", self._list_accepted),
            "reset": ("POST", self._reset),
            "fault": ("POST", self._inject_fault),
            "suppress": ("POST", self._suppress),
            "config": ("POST", self._configure),
        }
        if name not in routes:
            self._write_json(404, {"detail": "Not found."})
            return
        allowed_method, action = routes[name]
        if method != allowed_method:
            self._method_not_allowed(method, allow=allowed_method)
            return
        try:
            data = json.loads(body) if body else {}
            if not isinstance(data, dict):
                raise ValueError("Expected a JSON object.")
            result = action(data)
        except (ValueError, TypeError, KeyError) as exc:
            self._write_json(400, {"detail": str(exc)})
            return
        self._write_json(200, result)

    def _list_requests(self, data: dict[str, Any]) -> list[dict[str, Any]]:
        return [asdict(request) for request in self.server.state.requests]

    def _list_accepted(self, data: dict[str, Any]) -> list[dict[str, Any]]:
        return [asdict(request) for request in self.server.state.accepted]

    def _reset(self, data: dict[str, Any]) -> dict[str, Any]:
        self.server.state.reset()
        self.server.reset_connection_count()
        return {"success": True}

    def _inject_fault(self, data: dict[str, Any]) -> dict[str, Any]:
        self.server.state.inject_fault(data["kind"], int(data.get("count", 1)))
        return {"success": True}

    def _suppress(self, data: dict[str, Any]) -> dict[str, Any]:
        self.server.state.suppress(str(data["email"]), str(data.get("account", "default")))
        return {"success": True}

    def _configure(self, data: dict[str, Any]) -> dict[str, Any]:
        state = self.server.state
        if "latency" in data:
            state.latency = float(data["latency"])
        if "rate_limit" in data:
            requests, seconds = data["rate_limit"]
            state.set_rate_limit(int(requests), float(seconds))
        if "usage_lag" in data:
            state.usage_lag = float(data["usage_lag"])
        if "advance_clock" in data:
            state.clock.advance(float(data["advance_clock"]))
        if "webhook_url" in data:
            url, secret = data["webhook_url"], str(data.get("webhook_secret", ""))
            if url and not secret:
                raise ValueError("A webhook needs a signing secret.")
            state.configure_webhook(WebhookSender(str(url), secret) if url else None)
        return {
            "success": True,
            "latency": state.latency,
            "rate_limit": list(state.rate_limit),
            "usage_lag": state.usage_lag,
        }

    # Writing answers. Every answer carries Content-Length so the connection can be reused.

    def _write_response(self, response: Response) -> None:
        if response.raw_body is not None:
            self._write(response.status, response.raw_body, response.headers)
        else:
            self._write_json(response.status, response.body, response.headers)

    def _write_json(
        self,
        status: int,
        body: Any,
        headers: dict[str, str] | None = None,
        close: bool = False,
    ) -> None:
        headers = {"Content-Type": "application/json", **(headers or {})}
        if close:
            headers["Connection"] = "close"
        self._write(status, json.dumps(body, ensure_ascii=False).encode("utf-8"), headers)

    def _write(self, status: int, content: bytes, headers: dict[str, str]) -> None:
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(content)))
        self.end_headers()
        self.wfile.write(content)
