"""The socket sandbox's control API answers local programs only, never a web page.

A page a developer visits can POST ``text/plain`` to 127.0.0.1 without a preflight (CSRF), and
with DNS rebinding read what it answers: every captured mail, reset links included (issue 23,
item 8). Real HTTP on 127.0.0.1, raw requests so that every header is the test's choice.
"""

from __future__ import annotations

import http.client
import json

import pytest


def call(sandbox, method: str, name: str, body: bytes = b"", **headers: str):
    connection = http.client.HTTPConnection("127.0.0.1", sandbox.port, timeout=5)
    try:
        connection.putrequest(method, f"/_sandbox/{name}", skip_host=True)
        for header, value in {"Host": f"127.0.0.1:{sandbox.port}", **headers}.items():
            connection.putheader(header.replace("_", "-"), value)
        connection.putheader("Content-Length", str(len(body)))
        connection.endheaders(body)
        response = connection.getresponse()
        return response.status, json.loads(response.read() or b"null")
    finally:
        connection.close()


RESET = json.dumps({}).encode()


@pytest.fixture
def sandbox(sendfleet_socket_sandbox):
    return sendfleet_socket_sandbox


@pytest.mark.parametrize("host", ["evil.example", "127.0.0.1.evil.example", "rebind.test:8025"])
def test_a_foreign_host_name_is_refused(sandbox, host):
    # DNS rebinding: the page's own name now points at 127.0.0.1; its Host header says so.
    assert call(sandbox, "GET", "requests", Host=host)[0] == 403
    assert (
        call(sandbox, "POST", "reset", RESET, Host=host, Content_Type="application/json")[0] == 403
    )


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "LOCALHOST", "[::1]"])
def test_loopback_host_names_are_answered(sandbox, host):
    status, body = call(sandbox, "GET", "requests", Host=f"{host}:{sandbox.port}")
    assert (status, body) == (200, [])


def test_a_cross_origin_request_is_refused(sandbox):
    status, _ = call(
        sandbox,
        "POST",
        "config",
        json.dumps({"latency": 30}).encode(),
        Content_Type="application/json",
        Origin="https://evil.example",
    )
    assert status == 403
    assert call(sandbox, "GET", "accepted", Origin="null")[0] == 403
    assert sandbox.state.latency == 0  # nothing was changed


@pytest.mark.parametrize(
    "content_type",
    ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x", None],
)
def test_a_post_that_needs_no_preflight_is_refused(sandbox, content_type):
    headers = {"Content_Type": content_type} if content_type else {}
    body = json.dumps({"kind": 502}).encode()
    assert call(sandbox, "POST", "fault", body, **headers)[0] == 415
    assert not sandbox.state._faults  # no fault was injected


def test_a_local_json_call_still_works(sandbox):
    status, body = call(
        sandbox, "POST", "config", b'{"latency": 0}', Content_Type="application/json; charset=utf-8"
    )
    assert status == 200 and body["success"] is True
