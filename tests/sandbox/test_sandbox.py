"""The sandbox, over real HTTP on 127.0.0.1, plus its pure logic with a fake clock."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import requests

from django_sendfleet.sandbox import (
    BYOC_BROKEN_API_KEY,
    BYOC_DOMAIN,
    EXPIRED_API_KEY,
    NO_DKIM_DOMAIN,
    NO_SPF_DOMAIN,
    QUOTA_ACCOUNT_LIMIT,
    QUOTA_API_KEY,
    REVOKED_API_KEY,
    SANDBOX_API_KEY,
    SUPPRESSED_EMAIL,
    SUSPENDED_API_KEY,
    UNAPPROVED_API_KEY,
    UNREGISTERED_DOMAIN,
    UNVERIFIED_DOMAIN,
    VERIFIED_DOMAIN,
    Sandbox,
    SandboxState,
)
from django_sendfleet.sandbox.__main__ import main, parse_domain, parse_rate_limit
from django_sendfleet.sandbox.clock import SandboxClock
from django_sendfleet.sandbox.defaults import populate
from tests.support.sandbox_keys import DEFAULT_KEYS

# The sandbox's own HTTP server, over real sockets (tests/sandbox/test_inprocess.py covers the
# in-process transport).
pytestmark = pytest.mark.sendfleet_sandbox(socket=True)

KEY_SHAPE = re.compile(r"[A-Za-z0-9_]{8}\.[A-Za-z0-9]{32}")


def valid_payload(**fields: Any) -> dict[str, Any]:
    return {
        "to": "user@example.org",
        "from_email": f"app@{VERIFIED_DOMAIN}",
        "message": "Hello",
        **fields,
    }


def send(
    sandbox: Sandbox,
    payload: Any = None,
    key: str | None = SANDBOX_API_KEY,
    client: Any = requests,
) -> requests.Response:
    headers = {} if key is None else {"X-API-Key": key}
    body = valid_payload() if payload is None else payload
    return client.post(sandbox.url, json=body, headers=headers, timeout=5)


def send_raw(sandbox: Sandbox, body: bytes) -> requests.Response:
    headers = {"X-API-Key": SANDBOX_API_KEY, "Content-Type": "application/json"}
    return requests.post(sandbox.url, data=body, headers=headers, timeout=5)


def control(sandbox: Sandbox, name: str, body: dict[str, Any] | None = None) -> Any:
    url = f"{sandbox.base_url}/_sandbox/{name}"
    response = requests.get(url, timeout=5) if body is None else requests.post(url, json=body)
    assert response.status_code == 200, response.text
    return response.json()


def assert_error(response: requests.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["success"] is False
    assert body["error"] == code
    assert body["detail"]
    return body


# The default world.


def test_default_keys_are_shaped_like_sendfleet_keys():
    assert SANDBOX_API_KEY.startswith("sbxlive1.")
    for key in DEFAULT_KEYS:
        assert KEY_SHAPE.fullmatch(key), key
    assert len(set(DEFAULT_KEYS)) == len(DEFAULT_KEYS)


def test_generated_keys_are_well_formed_and_work(sendfleet_sandbox):
    key = sendfleet_sandbox.add_key()
    assert KEY_SHAPE.fullmatch(key)
    assert key != sendfleet_sandbox.add_key()
    assert send(sendfleet_sandbox, key=key).status_code == 200


def test_url_and_base_url(sendfleet_sandbox):
    assert re.fullmatch(r"http://127\.0\.0\.1:\d+", sendfleet_sandbox.base_url)
    assert sendfleet_sandbox.url == sendfleet_sandbox.base_url + "/api/send/"


def test_url_needs_a_started_sandbox():
    with pytest.raises(RuntimeError):
        Sandbox().url  # noqa: B018


# Accepted sends.


def test_accepts_a_valid_send(sendfleet_sandbox):
    response = send(sendfleet_sandbox)
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "application/json"
    body = response.json()
    assert body.keys() == {"success", "message", "message_id", "mode"}
    assert body["success"] is True
    assert body["message"] == "Email queued for delivery."
    assert body["mode"] == "shared"
    uuid.UUID(body["message_id"])
    [accepted] = sendfleet_sandbox.accepted
    assert accepted.message_id == body["message_id"]
    assert accepted.payload == valid_payload()
    assert accepted.status == 200
    assert accepted.key_prefix == "sbxlive1"
    assert accepted.client_ip == "127.0.0.1"


def test_warns_about_missing_spf_and_dmarc(sendfleet_sandbox):
    response = send(sendfleet_sandbox, valid_payload(from_email=f"app@{NO_SPF_DOMAIN}"))
    assert response.status_code == 200
    warnings = response.json()["warnings"]
    assert len(warnings) == 2
    assert warnings[0].startswith("SPF record not verified.")
    assert warnings[1].startswith("DMARC record not found.")


def test_byoc_account_sends_in_byoc_mode(sendfleet_sandbox):
    sendfleet_sandbox.add_account("byoc_ok", plan_mode="byoc")
    sendfleet_sandbox.add_domain("byoc-ok.example", account="byoc_ok", mode="byoc")
    key = sendfleet_sandbox.add_key(account="byoc_ok")
    response = send(sendfleet_sandbox, valid_payload(from_email="a@byoc-ok.example"), key=key)
    assert response.status_code == 200
    assert response.json()["mode"] == "byoc"


def test_domains_match_case_and_idn_insensitively(sendfleet_sandbox):
    sendfleet_sandbox.add_domain("Bücher.Example")
    for sender in ["info@BÜCHER.example", "info@xn--bcher-kva.example", "info@EXAMPLE.COM"]:
        response = send(sendfleet_sandbox, valid_payload(from_email=sender))
        assert response.status_code == 200, sender


def test_unknown_fields_are_ignored_and_numbers_are_strings(sendfleet_sandbox):
    # Like DRF's CharField: numbers are accepted as strings.
    payload = valid_payload(cc="someone@example.org", tags=["x"], message=42)
    assert send(sendfleet_sandbox, payload).status_code == 200


def test_optional_fields_are_accepted(sendfleet_sandbox):
    payload = valid_payload(
        from_name="A" * 156,
        subject="S" * 256,
        html="<p>Hello</p>",
        reply_to="  replies@example.org  ",
        to="  user@example.org ",
    )
    assert send(sendfleet_sandbox, payload).status_code == 200


# Authentication and the IP block.


@pytest.mark.parametrize(
    ("key", "detail"),
    [
        (None, "Authentication credentials were not provided."),
        ("", "Authentication credentials were not provided."),
        ("sbxnope1.NoSuchKeyNoSuchKeyNoSuchKeyNoSuch", "Invalid API key."),
        (REVOKED_API_KEY, "API key has been revoked."),
        (EXPIRED_API_KEY, "API key has expired."),
    ],
)
def test_authentication_errors(sendfleet_sandbox, key, detail):
    response = send(sendfleet_sandbox, key=key)
    assert response.status_code == 401
    assert response.json() == {"detail": detail}


def test_ip_is_blocked_after_ten_consecutive_401s(sendfleet_sandbox):
    for _ in range(10):
        assert send(sendfleet_sandbox, key=REVOKED_API_KEY).status_code == 401
    response = send(sendfleet_sandbox)  # even a good key
    assert response.status_code == 403
    assert response.json() == {
        "detail": "Too many failed authentication attempts. This IP is temporarily blocked."
    }


def test_a_non_401_answer_resets_the_run_of_failures(sendfleet_sandbox):
    for _ in range(9):
        send(sendfleet_sandbox, key=None)
    assert send(sendfleet_sandbox, {}).status_code == 400
    for _ in range(9):
        send(sendfleet_sandbox, key=None)
    assert send(sendfleet_sandbox).status_code == 200


def test_ip_block_expires_after_60_seconds_and_only_counts_recent_failures():
    clock = frozen_clock()
    state = populated_state(clock)
    for _ in range(9):
        state.handle(None, b"", "10.0.0.1")
    clock.advance(61)  # the first nine fall out of the 60 s window
    for _ in range(9):
        assert state.handle(None, b"", "10.0.0.1").status == 401
    assert state.handle(None, b"", "10.0.0.1").status == 401  # the 10th in a row
    assert state.handle(SANDBOX_API_KEY, good_body(), "10.0.0.1").status == 403
    assert state.handle(SANDBOX_API_KEY, good_body(), "10.0.0.2").status == 200  # per IP
    clock.advance(59)
    assert state.handle(SANDBOX_API_KEY, good_body(), "10.0.0.1").status == 403
    clock.advance(1)
    assert state.handle(SANDBOX_API_KEY, good_body(), "10.0.0.1").status == 200


# Rate limit.


def test_rate_limit_is_a_sliding_log_over_http():
    with Sandbox(rate_limit=(3, 1.0)) as sandbox:
        started = time.monotonic()
        assert send(sandbox).status_code == 200
        time.sleep(0.4)
        assert send(sandbox).status_code == 200
        assert send(sandbox).status_code == 200
        throttled = send(sandbox)
        assert throttled.status_code == 429
        assert throttled.headers["Retry-After"] == "1"
        assert throttled.json() == {
            "detail": "Request was throttled. Expected available in 1 second."
        }
        # The first request leaves the window one second after it was made; the other two
        # are still in it, so exactly one more request gets through.
        time.sleep(max(0.0, started + 1.05 - time.monotonic()))
        assert send(sandbox).status_code == 200
        assert send(sandbox).status_code == 429
        assert [r.status for r in sandbox.requests] == [200, 200, 200, 429, 200, 429]


def test_rate_limit_is_per_key(sendfleet_sandbox):
    sendfleet_sandbox.set_rate_limit(1, 60)
    other_key = sendfleet_sandbox.add_key()
    assert send(sendfleet_sandbox).status_code == 200
    assert send(sendfleet_sandbox).status_code == 429
    assert send(sendfleet_sandbox, key=other_key).status_code == 200


def test_throttled_requests_do_not_extend_the_window():
    clock = frozen_clock()
    state = populated_state(clock, rate_limit=(2, 10.0))  # the clock starts at 1000
    assert state.handle(SANDBOX_API_KEY, good_body(), "ip").status == 200
    clock.advance(1)
    assert state.handle(SANDBOX_API_KEY, good_body(), "ip").status == 200
    for _ in range(8):
        clock.advance(1)
        throttled = state.handle(SANDBOX_API_KEY, good_body(), "ip")
        assert throttled.status == 429
        wait = round(1010 - clock.monotonic())
        assert throttled.headers == {"Retry-After": str(wait)}
        assert throttled.body["detail"].endswith(f"in {wait} second{'s' if wait > 1 else ''}.")
    set_clock(clock, 1010)  # the first request has left the window
    assert state.handle(SANDBOX_API_KEY, good_body(), "ip").status == 200
    assert state.handle(SANDBOX_API_KEY, good_body(), "ip").status == 429
    set_clock(clock, 1010.5)
    throttled = state.handle(SANDBOX_API_KEY, good_body(), "ip")
    assert throttled.headers == {"Retry-After": "1"}  # 0.5 s, rounded up


def test_throttling_comes_after_authentication_and_before_validation(sendfleet_sandbox):
    sendfleet_sandbox.set_rate_limit(1, 60)
    assert send(sendfleet_sandbox, key=REVOKED_API_KEY).status_code == 401
    assert send(sendfleet_sandbox, {}).status_code == 400
    assert send(sendfleet_sandbox, {}).status_code == 429


# Validation.


@pytest.mark.parametrize(
    ("payload", "errors"),
    [
        (
            {},
            {"to": ["This field is required."], "message": ["This field is required."]},
        ),
        (
            {"to": "not-an-email", "message": " \n\t "},
            {"to": ["Enter a valid email address."], "message": ["This field may not be blank."]},
        ),
        (valid_payload(to=""), {"to": ["This field may not be blank."]}),
        (valid_payload(to=None), {"to": ["This field may not be null."]}),
        (valid_payload(to=["a@example.org"]), {"to": ["Not a valid string."]}),
        (valid_payload(message=True), {"message": ["Not a valid string."]}),
        (valid_payload(subject={"a": 1}), {"subject": ["Not a valid string."]}),
        (valid_payload(message="a\x00b"), {"message": ["Null characters are not allowed."]}),
        (
            valid_payload(from_name="n" * 157),
            {"from_name": ["Ensure this field has no more than 156 characters."]},
        ),
        (
            valid_payload(subject="s" * 257),
            {"subject": ["Ensure this field has no more than 256 characters."]},
        ),
        (
            valid_payload(subject="\x00" * 257),
            {
                "subject": [
                    "Ensure this field has no more than 256 characters.",
                    "Null characters are not allowed.",
                ]
            },
        ),
        (valid_payload(from_email="nope"), {"from_email": ["Enter a valid email address."]}),
        (valid_payload(reply_to="a@b"), {"reply_to": ["Enter a valid email address."]}),
        (
            valid_payload(to="a\x00@example.org"),
            {"to": ["Null characters are not allowed.", "Enter a valid email address."]},
        ),
        (
            {"to": "x", "from_email": "y", "reply_to": "z", "message": ""},
            {
                "to": ["Enter a valid email address."],
                "from_email": ["Enter a valid email address."],
                "message": ["This field may not be blank."],
                "reply_to": ["Enter a valid email address."],
            },
        ),
    ],
)
def test_field_errors(sendfleet_sandbox, payload, errors):
    response = send(sendfleet_sandbox, payload)
    assert response.status_code == 400
    assert response.json() == errors


@pytest.mark.parametrize(
    ("body", "errors"),
    [
        (b'"hello"', {"non_field_errors": ["Invalid data. Expected a dictionary, but got str."]}),
        (b"[1, 2]", {"non_field_errors": ["Invalid data. Expected a dictionary, but got list."]}),
        (b"null", {"non_field_errors": ["No data provided"]}),
        (b"", {"to": ["This field is required."], "message": ["This field is required."]}),
    ],
)
def test_body_that_is_not_an_object(sendfleet_sandbox, body, errors):
    response = send_raw(sendfleet_sandbox, body)
    assert response.status_code == 400
    assert response.json() == errors


@pytest.mark.parametrize("body", [b"{not json", b'{"to": NaN}', b"\xff\xfe"])
def test_malformed_json(sendfleet_sandbox, body):
    response = send_raw(sendfleet_sandbox, body)
    assert response.status_code == 400
    assert response.json().keys() == {"detail"}
    assert response.json()["detail"].startswith("JSON parse error - ")


# Account, domain, suppression, quota and relay errors, in the order the API checks them.


@pytest.mark.parametrize(
    ("key", "status", "code"),
    [
        (UNAPPROVED_API_KEY, 403, "unauthorized"),
        (SUSPENDED_API_KEY, 403, "sending_suspended"),
        (BYOC_BROKEN_API_KEY, 503, "byoc_not_configured"),
    ],
)
def test_account_state_errors(sendfleet_sandbox, key, status, code):
    assert_error(send(sendfleet_sandbox, key=key), status, code)


@pytest.mark.parametrize(
    ("domain", "code"),
    [
        (UNREGISTERED_DOMAIN, "domain_not_registered"),
        (UNVERIFIED_DOMAIN, "domain_not_verified"),
        (NO_DKIM_DOMAIN, "dkim_not_verified"),
        (BYOC_DOMAIN, "domain_mode_mismatch"),
    ],
)
def test_domain_errors_name_the_domain(sendfleet_sandbox, domain, code):
    response = send(sendfleet_sandbox, valid_payload(from_email=f"app@{domain}"))
    body = assert_error(response, 403, code)
    assert f"'{domain}'" in body["detail"]


def test_missing_from_email_falls_back_to_the_unregistered_login_address(sendfleet_sandbox):
    payload = valid_payload()
    del payload["from_email"]
    assert_error(send(sendfleet_sandbox, payload), 403, "domain_not_registered")


def test_validation_comes_before_account_and_domain_errors(sendfleet_sandbox):
    response = send(sendfleet_sandbox, {"to": "x"}, key=SUSPENDED_API_KEY)
    assert response.status_code == 400


@pytest.mark.parametrize("recipient", [SUPPRESSED_EMAIL, SUPPRESSED_EMAIL.upper()])
def test_suppressed_recipient(sendfleet_sandbox, recipient):
    response = send(sendfleet_sandbox, valid_payload(to=recipient))
    body = assert_error(response, 422, "recipient_suppressed")
    assert recipient in body["detail"]


def test_suppress_is_case_insensitive(sendfleet_sandbox):
    sendfleet_sandbox.suppress("Bounced@Example.ORG")
    assert_error(
        send(sendfleet_sandbox, valid_payload(to="bounced@example.org")),
        422,
        "recipient_suppressed",
    )


def test_monthly_quota(sendfleet_sandbox):
    for _ in range(QUOTA_ACCOUNT_LIMIT):
        assert send(sendfleet_sandbox, key=QUOTA_API_KEY).status_code == 200
    assert_error(send(sendfleet_sandbox, key=QUOTA_API_KEY), 429, "usage_limit_exceeded")
    # Refused sends don't count; a new calendar month starts from zero.
    account = sendfleet_sandbox.state.account("quota")
    assert account.used == QUOTA_ACCOUNT_LIMIT
    account.used_month = "2000-01"  # fixed date: a month long past on any clock
    assert send(sendfleet_sandbox, key=QUOTA_API_KEY).status_code == 200
    assert account.used == 1


def test_errors_that_are_not_429_throttles_keep_the_documented_shape(sendfleet_sandbox):
    response = send(sendfleet_sandbox, key=QUOTA_API_KEY)
    assert "Retry-After" not in response.headers


# Faults.


def test_502_fault_is_consumed_by_count(sendfleet_sandbox):
    sendfleet_sandbox.inject_fault(502, count=2)
    for _ in range(2):
        response = send(sendfleet_sandbox)
        assert response.status_code == 502
        assert response.json() == {
            "success": False,
            "error": "queue_error",
            "detail": "Failed to enqueue email.",
        }
    assert send(sendfleet_sandbox).status_code == 200
    assert len(sendfleet_sandbox.accepted) == 1


def test_faults_only_hit_requests_that_would_be_accepted(sendfleet_sandbox):
    sendfleet_sandbox.inject_fault(500)
    assert send(sendfleet_sandbox, key=REVOKED_API_KEY).status_code == 401
    assert send(sendfleet_sandbox, valid_payload(to=SUPPRESSED_EMAIL)).status_code == 422
    response = send(sendfleet_sandbox)
    assert response.status_code == 500
    assert response.json() == {"detail": "Internal server error."}
    assert send(sendfleet_sandbox).status_code == 200


def test_drop_fault_closes_the_connection_but_records_the_request(sendfleet_sandbox):
    sendfleet_sandbox.inject_fault("drop")
    with pytest.raises(requests.ConnectionError):
        send(sendfleet_sandbox)
    [dropped] = sendfleet_sandbox.requests
    assert dropped.status == 0
    assert dropped.response is None
    assert dropped.payload == valid_payload()
    assert sendfleet_sandbox.accepted == []
    assert send(sendfleet_sandbox).status_code == 200


def test_malformed_fault_answers_200_with_a_body_that_is_not_json(sendfleet_sandbox):
    sendfleet_sandbox.inject_fault("malformed")
    response = send(sendfleet_sandbox)
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("text/html")
    with pytest.raises(ValueError):
        response.json()
    assert sendfleet_sandbox.accepted == []
    assert sendfleet_sandbox.requests[0].response == "<html>ok</html>"


def test_slow_fault_and_latency_delay_the_answer(sendfleet_sandbox):
    sendfleet_sandbox.inject_fault("slow:0.3")
    started = time.monotonic()
    assert send(sendfleet_sandbox).status_code == 200
    assert time.monotonic() - started >= 0.3
    assert len(sendfleet_sandbox.accepted) == 1

    sendfleet_sandbox.latency = 0.2
    started = time.monotonic()
    assert send(sendfleet_sandbox, key=None).status_code == 401
    assert time.monotonic() - started >= 0.2


def test_slow_fault_times_out_a_client(sendfleet_sandbox):
    sendfleet_sandbox.inject_fault("slow:0.5")
    with pytest.raises(requests.Timeout):
        requests.post(
            sendfleet_sandbox.url,
            json=valid_payload(),
            headers={"X-API-Key": SANDBOX_API_KEY},
            timeout=0.1,
        )


@pytest.mark.parametrize("kind", [404, "explode", "slow:", "slow:-1", "slow:nan", True])
def test_unknown_faults_are_refused(sendfleet_sandbox, kind):
    with pytest.raises(ValueError):
        sendfleet_sandbox.inject_fault(kind)


# Connections.


def test_a_session_reuses_one_connection(sendfleet_sandbox):
    with requests.Session() as session:
        statuses = [
            send(sendfleet_sandbox, client=session).status_code,
            send(sendfleet_sandbox, key=None, client=session).status_code,
            send(sendfleet_sandbox, {}, client=session).status_code,
            send(sendfleet_sandbox, valid_payload(to=SUPPRESSED_EMAIL), client=session).status_code,
            send(sendfleet_sandbox, client=session).status_code,
        ]
    assert statuses == [200, 401, 400, 422, 200]
    assert sendfleet_sandbox.connections_opened == 1
    assert len({request.connection_id for request in sendfleet_sandbox.requests}) == 1


def test_requests_without_a_session_open_a_connection_each(sendfleet_sandbox):
    for _ in range(3):
        send(sendfleet_sandbox)
    assert sendfleet_sandbox.connections_opened == 3
    assert len({request.connection_id for request in sendfleet_sandbox.requests}) == 3


def test_concurrent_sends_are_all_recorded():
    with Sandbox(rate_limit=(1000, 60)) as sandbox, ThreadPoolExecutor(8) as pool:
        statuses = list(pool.map(lambda _: send(sandbox).status_code, range(80)))
        assert statuses == [200] * 80
        assert len({request.message_id for request in sandbox.accepted}) == 80
        assert sandbox.state.account("default").used == 80


def test_the_full_key_is_never_recorded(sendfleet_sandbox):
    unknown_key = "sbxnope1.TheSecretPartMustNeverBeRecorded"
    send(sendfleet_sandbox)
    send(sendfleet_sandbox, key=REVOKED_API_KEY)
    send(sendfleet_sandbox, key=unknown_key)
    send(sendfleet_sandbox, key="no-dot-in-this-key")
    recorded = repr(sendfleet_sandbox.requests) + json.dumps(control(sendfleet_sandbox, "requests"))
    for key in [SANDBOX_API_KEY, REVOKED_API_KEY, unknown_key]:
        assert key.split(".")[1] not in recorded
    assert "no-dot-in-this-key" not in recorded
    prefixes = [request.key_prefix for request in sendfleet_sandbox.requests]
    assert prefixes == ["sbxlive1", "sbxrevk1", "sbxnope1", ""]


# HTTP details and the control API.


def test_wrong_method_and_unknown_path(sendfleet_sandbox):
    response = requests.get(sendfleet_sandbox.url, timeout=5)
    assert response.status_code == 405
    assert response.json() == {"detail": 'Method "GET" not allowed.'}
    response = requests.post(sendfleet_sandbox.base_url + "/api/nope/", timeout=5)
    assert response.status_code == 404
    assert response.json() == {"detail": "Not found."}
    assert sendfleet_sandbox.requests == []


def test_control_api_lists_requests_and_accepted(sendfleet_sandbox):
    send(sendfleet_sandbox)
    send(sendfleet_sandbox, key=None)
    recorded = control(sendfleet_sandbox, "requests")
    assert [request["status"] for request in recorded] == [200, 401]
    assert recorded[0]["key_prefix"] == "sbxlive1"
    assert recorded[1]["key_prefix"] is None
    assert recorded[0]["payload"] == valid_payload()
    [accepted] = control(sendfleet_sandbox, "accepted")
    assert accepted["message_id"] == sendfleet_sandbox.accepted[0].message_id


def test_control_api_faults_suppression_and_config(sendfleet_sandbox):
    control(sendfleet_sandbox, "fault", {"kind": 502, "count": 2})
    assert [send(sendfleet_sandbox).status_code for _ in range(3)] == [502, 502, 200]
    control(sendfleet_sandbox, "fault", {"kind": "drop"})
    with pytest.raises(requests.ConnectionError):
        send(sendfleet_sandbox)

    control(sendfleet_sandbox, "suppress", {"email": "gone@example.org"})
    assert send(sendfleet_sandbox, valid_payload(to="gone@example.org")).status_code == 422

    config = control(sendfleet_sandbox, "config", {"latency": 0.05, "rate_limit": [1, 60]})
    assert config == {"success": True, "latency": 0.05, "rate_limit": [1, 60.0], "usage_lag": 0}
    assert sendfleet_sandbox.latency == 0.05
    assert send(sendfleet_sandbox, key=sendfleet_sandbox.add_key()).status_code == 200


def test_control_api_reset_keeps_configuration(sendfleet_sandbox):
    sendfleet_sandbox.set_rate_limit(2, 60)
    sendfleet_sandbox.suppress("gone@example.org")
    for _ in range(2):
        send(sendfleet_sandbox, key=QUOTA_API_KEY)
    send(sendfleet_sandbox)
    sendfleet_sandbox.inject_fault(502)

    assert control(sendfleet_sandbox, "reset", {}) == {"success": True}
    assert sendfleet_sandbox.requests == []
    assert sendfleet_sandbox.connections_opened == 0
    assert sendfleet_sandbox.state.account("quota").used == 0
    assert send(sendfleet_sandbox).status_code == 200  # no fault left, rate window cleared
    assert send(sendfleet_sandbox, valid_payload(to="gone@example.org")).status_code == 422
    assert send(sendfleet_sandbox).status_code == 429  # the 2/60 s limit is still set


@pytest.mark.parametrize(
    ("method", "name", "body", "status"),
    [
        ("POST", "fault", {"kind": "explode"}, 400),
        ("POST", "fault", {}, 400),
        ("POST", "config", {"rate_limit": [0, 1]}, 400),
        ("POST", "config", {"latency": -1}, 400),
        ("POST", "suppress", {"email": "a@example.org", "account": "nobody"}, 400),
        ("GET", "reset", None, 405),
        ("GET", "nothing", None, 404),
    ],
)
def test_control_api_errors(sendfleet_sandbox, method, name, body, status):
    url = f"{sendfleet_sandbox.base_url}/_sandbox/{name}"
    response = requests.request(method, url, json=body, timeout=5)
    assert response.status_code == status
    assert "detail" in response.json()


def test_stop_closes_idle_keep_alive_connections():
    sandbox = Sandbox().start()
    with requests.Session() as session:
        send(sandbox, client=session)
        started = time.monotonic()
        sandbox.stop()
    assert time.monotonic() - started < 1


# The command line.


def test_command_line_options():
    assert parse_rate_limit("3/1.5") == (3, 1.5)
    assert parse_domain("acme.test") == ("acme.test", "verified", "")  # the plan's mode
    assert parse_domain("acme.test:dkim_unverified:byoc") == (
        "acme.test",
        "dkim_unverified",
        "byoc",
    )


@pytest.mark.parametrize("host", ["0.0.0.0", "192.168.1.1", "sandbox.example"])
def test_command_line_refuses_non_loopback_hosts(host, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--host", host, "--port", "0"])
    assert exit_info.value.code == 2
    assert "--allow-non-loopback" in capsys.readouterr().err


def test_command_line_serves_until_sigterm():
    repository = Path(__file__).resolve().parents[2]
    env = {**os.environ, "PYTHONPATH": str(repository)}
    command = [
        sys.executable,
        "-m",
        "django_sendfleet.sandbox",
        "--port=0",
        "--quota=1",
        "--domain=acme.test",
        "--key=sbxtest1.CommandLineKeyCommandLineKey0000",
    ]
    with subprocess.Popen(command, stdout=subprocess.PIPE, text=True, env=env) as process:
        try:
            assert process.stdout is not None
            url = process.stdout.readline().split()[-1]
            headers = {"X-API-Key": "sbxtest1.CommandLineKeyCommandLineKey0000"}
            payload = valid_payload(from_email="a@acme.test")
            assert requests.post(url, json=payload, headers=headers, timeout=5).status_code == 200
            response = requests.post(url, json=payload, headers=headers, timeout=5)
            assert response.json()["error"] == "usage_limit_exceeded"
        finally:
            process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=5) == 0


# Helpers for the fake-clock tests of the pure logic.


def frozen_clock() -> SandboxClock:
    """A clock at 1000.0 that only moves when advanced."""
    return SandboxClock(frozen_at=1000.0)


def set_clock(clock: SandboxClock, when: float) -> None:
    clock.advance(when - clock.monotonic())


def populated_state(
    clock: SandboxClock, rate_limit: tuple[int, float] = (60, 60.0), plan: str = "growth"
) -> SandboxState:
    state = SandboxState(rate_limit=rate_limit, clock=clock)
    populate(state, plan=plan)
    return state


def good_body() -> bytes:
    return json.dumps(valid_payload()).encode()
