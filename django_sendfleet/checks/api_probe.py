"""The checks of ``manage.py sendfleet_check`` that talk to SendFleet: does the API accept the
key (without sending anything), and a real test message through the normal backend.
"""

from __future__ import annotations

import re
import socket
import time
from email.utils import parseaddr
from typing import Any

import requests
from django.core.mail import EmailMessage
from django.db import DatabaseError

from .. import error_table
from ..api.client import SendFleetClient, milliseconds_since
from ..backends import EmailBackend
from ..exceptions import (
    SendFleetConfigurationError,
    SendFleetDomainError,
    SendFleetError,
    SendFleetNetworkError,
    SendFleetRateLimited,
    SendFleetValidationError,
)
from ..outcome import QUEUED
from .check_result import ERROR, OK, WARNING, CheckResult
from .config_review import (
    MIGRATE_FIX,
    SETTINGS_FIX,
    Mailer,
    is_plain_http_outside_loopback,
    key_problem,
    settings_problem,
)


def check_api_accepts_key(mailer: Mailer) -> CheckResult | None:
    """Post an empty payload: the API authenticates before it validates, so 400 = key works."""
    conf = mailer.conf
    if key_problem(conf) is not None or settings_problem(conf) is not None:
        return None  # not contacted: check_api_key or check_settings says why
    prefix, url = conf.api_key_prefix, conf.api_url
    if is_plain_http_outside_loopback(url):
        return None  # the key would cross the network unencrypted: check_api_url says so
    client = SendFleetClient(api_url=url, api_key=conf.api_key, timeout=conf.timeout)
    started = time.monotonic()
    try:
        client.attempt({})
    except SendFleetValidationError:
        ms = milliseconds_since(started)
        message = f"key {prefix} authenticated by {url} in {ms} ms (400 to an empty payload)"
        return CheckResult("API", OK, message, data={"status": 400, "ms": ms})
    except SendFleetError as error:
        return _api_problem(error, prefix, url, milliseconds_since(started))
    ms = milliseconds_since(started)
    return CheckResult(
        "API",
        WARNING,
        f"{url} accepted an empty payload in {ms} ms: it does not behave like SendFleet's API",
        error_table.SPECS_BY_CODE["malformed_response"].fix,
        {"ms": ms},
    )


def _api_problem(error: SendFleetError, prefix: str, url: str, ms: int) -> CheckResult:
    fix = error_table.spec_for_error(error).fix
    data = {"status": error.status_code, "error_code": error.error_code, "ms": ms}
    if isinstance(error, SendFleetNetworkError):
        message = f"no answer from {url}: {_network_reason(error)} (after {ms} ms)"
    elif error.status_code == 401:
        message = f"key {prefix} rejected by {url}: HTTP 401 {error.detail} ({ms} ms)"
    else:
        message = f"{url} answered HTTP {error.status_code} [{error.error_code}] {error.detail}"
        message += f" ({ms} ms)"
    if isinstance(error, SendFleetRateLimited):  # throttled after authentication: the key works
        return CheckResult("API", WARNING, f"key {prefix} works but {message}", fix, data)
    return CheckResult("API", ERROR, message, fix, data)


def _network_reason(error: SendFleetNetworkError) -> str:
    kind = error.cause_type or BaseException  # the requests error's class (it is not chained)
    if issubclass(kind, requests.ConnectTimeout):
        return "the connection timed out (TIMEOUT)"
    if issubclass(kind, requests.ReadTimeout):
        return "no answer within the read timeout (TIMEOUT)"
    text = error.cause or str(error)
    if issubclass(kind, requests.ConnectionError) and "NameResolutionError" in text:
        return "the host name does not resolve"
    found = re.search(r"\[Errno -?\d+\] [^'\")]+", text)
    return found.group(0) if found else error.detail


def check_send_test(mailer: Mailer, *, to: str, from_email: str | None = None) -> CheckResult:
    """Send one real message through the normal backend (so it is logged, and suppressions
    apply), and report what SendFleet answered."""
    backend = EmailBackend(alias=mailer.alias, **mailer.options)
    message = EmailMessage(
        subject=f"SendFleet check from {socket.gethostname()}",
        body="This message was sent by 'manage.py sendfleet_check --send-test'.",
        from_email=from_email,
        to=[to],
    )
    sender = parseaddr(message.from_email)[1]
    raised: Exception | None = None
    try:
        backend.send_messages([message])
    except (SendFleetError, SendFleetConfigurationError, DatabaseError) as error:
        raised = error
    status = getattr(message, "anymail_status", None)  # unset when open() raised
    results = list(status.recipients.values()) if status is not None else []
    result = results[0] if results else None
    data: dict[str, Any] = {"to": to, "from_email": sender}
    if result is not None and result.status == QUEUED:
        data.update(message_id=result.message_id, mode=result.mode, warnings=result.warnings)
        sent = f"queued to {to} from {sender}: message_id {result.message_id}, mode {result.mode}"
        if raised is not None:
            text = f"{sent}, but then: {raised}"
            return CheckResult("test message", ERROR, text, _fix_for(raised), data)
        if result.warnings:
            count = len(result.warnings)
            message_text = f"{sent}, with {count} warning(s) from SendFleet"
            return CheckResult(
                "test message", WARNING, message_text, " ".join(result.warnings), data
            )
        return CheckResult("test message", OK, sent, data=data)
    error = (result.error if result is not None else None) or raised
    if isinstance(error, SendFleetError):
        data.update(status=error.status_code, error_code=error.error_code)
        if isinstance(error, SendFleetDomainError):
            sender += f" (domain {sender.rpartition('@')[2]})"
    text = f"not sent from {sender} to {to}: {_describe(error)}"
    return CheckResult("test message", ERROR, text, _fix_for(error), data)


def _describe(error: Exception | None) -> str:
    if not isinstance(error, SendFleetError):
        return str(error)
    status = f"HTTP {error.status_code} " if error.status_code else ""
    return f"{status}[{error.error_code}] {error.detail}"


def _fix_for(error: Exception | None) -> str:
    if isinstance(error, SendFleetError):
        return error_table.spec_for_error(error).fix
    if isinstance(error, DatabaseError):
        return MIGRATE_FIX
    return SETTINGS_FIX
