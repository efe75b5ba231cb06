"""An in-memory SendFleet: accounts, keys, domains and the rules of ``POST /api/send/``.

No sockets here: ``SandboxState.handle()`` takes what an HTTP request carries and returns a
``Response``; ``server.py`` speaks HTTP.
"""

from __future__ import annotations

import math
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from .faults import Fault, parse_fault
from .throttling import AuthFailureBlock, SlidingLogThrottle
from .validation import JSONParseError, parse_json_body, validate_send_payload
from .webhooks import WebhookSender

ACCOUNT_STATES = ("active", "unapproved", "suspended", "byoc_broken")
KEY_STATES = ("valid", "revoked", "expired")
DOMAIN_STATES = ("verified", "txt_unverified", "dkim_unverified")
SENDING_MODES = ("shared", "byoc")

# The login address of accounts created without one. Its domain is never registered, which
# is what makes a send without from_email fail with domain_not_registered.
LOGIN_EMAIL_DOMAIN = "login.sendfleet.invalid"

NO_CREDENTIALS = "Authentication credentials were not provided."
INVALID_KEY = "Invalid API key."
REVOKED_KEY = "API key has been revoked."
EXPIRED_KEY = "API key has expired."
IP_BLOCKED = "Too many failed authentication attempts. This IP is temporarily blocked."
SPF_WARNING = (
    "SPF record not verified. Add an SPF record that includes amazonses.com to improve "
    "deliverability."
)
DMARC_WARNING = "DMARC record not found. Add a DMARC record to improve deliverability."
MALFORMED_BODY = b"<html>ok</html>"
_MODE_NAMES = {"shared": "Shared", "byoc": "BYOC"}


def _check_choice(value: str, choices: tuple[str, ...], what: str) -> None:
    if value not in choices:
        raise ValueError(f"Unknown {what} {value!r}: choose one of {', '.join(choices)}.")


def _domain_key(name: str) -> str:
    """Compare domains case-insensitively and IDN-insensitively (bücher.de == xn--bcher-kva.de)."""
    name = name.strip().rstrip(".").lower()
    try:
        return name.encode("idna").decode("ascii")
    except UnicodeError:
        return name


def key_prefix(key: str) -> str:
    """The public part of a key (before the dot): the only part the sandbox ever records."""
    prefix, dot, _secret = key.partition(".")
    return prefix if dot else ""


def _current_month() -> str:
    return datetime.now(UTC).strftime("%Y-%m")


@dataclass
class Account:
    name: str
    state: str = "active"  # one of ACCOUNT_STATES
    plan_mode: str = "shared"  # one of SENDING_MODES
    quota: int = 25000
    login_email: str = ""
    used: int = 0
    used_month: str = ""  # "YYYY-MM" that ``used`` counts; another month starts from 0
    suppressed: set[str] = field(default_factory=set)

    def __post_init__(self) -> None:
        _check_choice(self.state, ACCOUNT_STATES, "account state")
        _check_choice(self.plan_mode, SENDING_MODES, "plan mode")
        self.login_email = self.login_email or f"{self.name}@{LOGIN_EMAIL_DOMAIN}"
        self.suppressed = {email.lower() for email in self.suppressed}

    def used_in(self, month: str) -> int:
        return self.used if self.used_month == month else 0

    def count_send(self, month: str) -> None:
        self.used = self.used_in(month) + 1
        self.used_month = month


@dataclass
class ApiKey:
    key: str
    state: str = "valid"  # one of KEY_STATES
    account: str = "default"

    def __post_init__(self) -> None:
        _check_choice(self.state, KEY_STATES, "key state")


@dataclass
class Domain:
    name: str
    account: str = "default"
    state: str = "verified"  # one of DOMAIN_STATES
    mode: str = "shared"  # one of SENDING_MODES
    spf_verified: bool = True
    dmarc: bool = True

    def __post_init__(self) -> None:
        self.name = self.name.strip().lower()
        _check_choice(self.state, DOMAIN_STATES, "domain state")
        _check_choice(self.mode, SENDING_MODES, "domain mode")


@dataclass(frozen=True)
class Response:
    """What the server should answer. ``body`` is sent as JSON unless ``raw_body`` is set."""

    status: int
    body: dict[str, Any]
    headers: dict[str, str] = field(default_factory=dict)
    raw_body: bytes | None = None
    delay: float = 0.0  # seconds to wait before answering
    drop: bool = False  # close the connection instead of answering


@dataclass(frozen=True)
class RecordedRequest:
    """One request to ``/api/send/`` as the sandbox saw it. Never holds the full API key."""

    time: float  # time.time() on arrival
    key_prefix: str | None  # None when no key was sent
    client_ip: str
    connection_id: int
    payload: dict[str, Any] | None  # the JSON body, when it was an object
    status: int  # 0 when the connection was dropped without an answer
    response: dict[str, Any] | str | None  # str for a non-JSON answer, None when dropped
    message_id: str | None  # set for accepted messages only
    user_agent: str = ""


def _error(status: int, code: str, detail: str) -> Response:
    return Response(status, {"success": False, "error": code, "detail": detail})


class SandboxState:
    """Everything a sandbox knows, behind one lock so server threads can share it."""

    def __init__(
        self,
        rate_limit: tuple[int, float] = (60, 60.0),
        latency: float = 0.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._lock = threading.Lock()
        self._clock = clock
        self._accounts: dict[str, Account] = {}
        self._keys: dict[str, ApiKey] = {}
        self._domains: dict[tuple[str, str], Domain] = {}
        self._throttle = SlidingLogThrottle(*rate_limit)
        self._auth_failures = AuthFailureBlock()
        self._faults: deque[Fault] = deque()
        self._requests: list[RecordedRequest] = []
        #: Set by Sandbox.configure_webhook(): told about every accepted message.
        self.webhooks: WebhookSender | None = None
        self.latency = latency

    # Configuration.

    def add_account(self, account: Account) -> Account:
        with self._lock:
            self._accounts[account.name] = account
        return account

    def account(self, name: str) -> Account:
        """The live account object (mutating it changes the sandbox)."""
        return self._accounts[name]

    def add_key(self, api_key: ApiKey) -> ApiKey:
        with self._lock:
            self._require_account(api_key.account)
            self._keys[api_key.key] = api_key
        return api_key

    def add_domain(self, domain: Domain) -> Domain:
        with self._lock:
            self._require_account(domain.account)
            self._domains[domain.account, _domain_key(domain.name)] = domain
        return domain

    def suppress(self, email: str, account: str = "default") -> None:
        with self._lock:
            self._require_account(account)
            self._accounts[account].suppressed.add(email.strip().lower())

    def _require_account(self, name: str) -> None:
        if name not in self._accounts:
            raise KeyError(f"No sandbox account named {name!r}.")

    @property
    def latency(self) -> float:
        return self._latency

    @latency.setter
    def latency(self, seconds: float) -> None:
        if not 0 <= seconds < float("inf"):
            raise ValueError("Latency must be a number of seconds >= 0.")
        self._latency = float(seconds)

    @property
    def rate_limit(self) -> tuple[int, float]:
        return self._throttle.requests, self._throttle.seconds

    def set_rate_limit(self, requests: int, seconds: float) -> None:
        with self._lock:
            self._throttle.configure(requests, seconds)

    def inject_fault(self, kind: int | str, count: int = 1) -> None:
        """Make the next ``count`` requests that would otherwise be accepted fail this way."""
        fault = parse_fault(kind)
        if count < 1:
            raise ValueError("A fault needs a count of at least 1.")
        with self._lock:
            self._faults.extend([fault] * count)

    def reset(self) -> None:
        """Forget traffic (requests, rate windows, blocks, quota use, faults); keep the setup."""
        with self._lock:
            self._requests.clear()
            self._throttle.clear()
            self._auth_failures.clear()
            self._faults.clear()
            for account in self._accounts.values():
                account.used = 0

    # Traffic.

    @property
    def requests(self) -> list[RecordedRequest]:
        with self._lock:
            return list(self._requests)

    @property
    def accepted(self) -> list[RecordedRequest]:
        with self._lock:
            return [request for request in self._requests if request.message_id is not None]

    def configure_webhook(self, url: str | None, secret: str = "") -> None:
        """Deliver events for accepted messages to ``url``; None stops deliveries."""
        if url and not secret:
            raise ValueError("A webhook needs a signing secret.")
        if self.webhooks is not None:
            self.webhooks.close()
            self.webhooks = None
        if url:
            self.webhooks = WebhookSender(url, secret)

    def handle(
        self,
        api_key: str | None,
        body: bytes,
        client_ip: str,
        connection_id: int = 0,
        user_agent: str = "",
    ) -> Response:
        """Answer one ``POST /api/send/`` and record it."""
        arrived = time.time()
        api_key = (api_key or "").strip() or None
        try:
            data, parse_error = parse_json_body(body), None
        except JSONParseError as exc:
            data, parse_error = None, str(exc)
        with self._lock:
            response = self._respond(api_key, data, parse_error, client_ip)
            self._record(arrived, api_key, client_ip, connection_id, data, response, user_agent)
        message_id = response.body.get("message_id") if response.status == 200 else None
        if self.webhooks is not None and message_id and isinstance(data, dict):
            self.webhooks.message_accepted(str(data["to"]), message_id)
        return replace(response, delay=response.delay + self._latency)

    def _record(
        self,
        arrived: float,
        api_key: str | None,
        client_ip: str,
        connection_id: int,
        data: Any,
        response: Response,
        user_agent: str,
    ) -> None:
        if response.drop:
            answer: dict[str, Any] | str | None = None
        elif response.raw_body is not None:
            answer = response.raw_body.decode("utf-8", "replace")
        else:
            answer = response.body
        self._requests.append(
            RecordedRequest(
                time=arrived,
                key_prefix=None if api_key is None else key_prefix(api_key),
                client_ip=client_ip,
                connection_id=connection_id,
                payload=data if isinstance(data, dict) else None,
                status=0 if response.drop else response.status,
                response=answer,
                message_id=response.body.get("message_id") if response.status == 200 else None,
                user_agent=user_agent,
            )
        )

    def _respond(
        self, api_key: str | None, data: Any, parse_error: str | None, client_ip: str
    ) -> Response:
        # The steps run in the order the real service (a DRF view) runs them.
        now = self._clock()
        if self._auth_failures.is_blocked(client_ip, now):
            return Response(403, {"detail": IP_BLOCKED})

        key, auth_error = self._authenticate(api_key)
        if key is None:
            self._auth_failures.record_failure(client_ip, now)
            return Response(401, {"detail": auth_error})
        self._auth_failures.record_success(client_ip)

        if not self._throttle.allow(key.key, now):
            wait = max(1, math.ceil(self._throttle.wait(key.key, now)))
            unit = "second" if wait == 1 else "seconds"
            detail = f"Request was throttled. Expected available in {wait} {unit}."
            return Response(429, {"detail": detail}, {"Retry-After": str(wait)})

        if parse_error is not None:
            return Response(400, {"detail": parse_error})
        cleaned, field_errors = validate_send_payload(data)
        if field_errors:
            return Response(400, field_errors)

        account = self._accounts[key.account]
        if account.state == "unapproved":
            return _error(
                403,
                "unauthorized",
                "Your account is not approved for sending. Verify your email address and, "
                "for Shared SES, wait for your verification request to be approved.",
            )
        if account.state == "suspended":
            return _error(
                403,
                "sending_suspended",
                "API sending has been suspended for this account because of high bounce or "
                "complaint rates. Contact support.",
            )

        sender = cleaned.get("from_email") or account.login_email
        domain_name = sender.rpartition("@")[2]
        domain = self._domains.get((account.name, _domain_key(domain_name)))
        if domain is None:
            return _error(
                403,
                "domain_not_registered",
                f"Domain '{domain_name}' is not registered in your account. Add it in "
                "Dashboard > Domains, then complete DNS verification.",
            )
        domain_error = self._domain_error(account, domain_name, domain)
        if domain_error is not None:
            return domain_error

        recipient = cleaned["to"]
        if recipient.lower() in account.suppressed:
            return _error(
                422,
                "recipient_suppressed",
                f"Recipient '{recipient}' is on your suppression list after a hard bounce "
                "or spam complaint. Do not resend to this address.",
            )

        month = _current_month()
        if account.used_in(month) >= account.quota:
            return _error(
                429,
                "usage_limit_exceeded",
                f"Monthly email quota of {account.quota} reached. Upgrade your plan or wait "
                "for the reset at the start of next month.",
            )

        if account.state == "byoc_broken":
            return _error(
                503,
                "byoc_not_configured",
                "SendFleet's BYOC relay credentials are not configured. Contact support.",
            )

        fault = self._faults.popleft() if self._faults else None
        if fault is not None and fault.kind != "slow":
            return self._fault_response(fault)

        account.count_send(month)
        accepted: dict[str, Any] = {
            "success": True,
            "message": "Email queued for delivery.",
            "message_id": str(uuid.uuid4()),
            "mode": account.plan_mode,
        }
        warnings = []
        if not domain.spf_verified:
            warnings.append(SPF_WARNING)
        if not domain.dmarc:
            warnings.append(DMARC_WARNING)
        if warnings:
            accepted["warnings"] = warnings
        return Response(200, accepted, delay=fault.seconds if fault is not None else 0.0)

    def _authenticate(self, api_key: str | None) -> tuple[ApiKey | None, str]:
        if api_key is None:
            return None, NO_CREDENTIALS
        key = self._keys.get(api_key)
        if key is None:
            return None, INVALID_KEY
        if key.state == "revoked":
            return None, REVOKED_KEY
        if key.state == "expired":
            return None, EXPIRED_KEY
        return key, ""

    @staticmethod
    def _domain_error(account: Account, name: str, domain: Domain) -> Response | None:
        if domain.state == "txt_unverified":
            return _error(
                403,
                "domain_not_verified",
                f"Domain '{name}' is not yet verified by SES. Add the TXT record and click "
                "Verify in the dashboard.",
            )
        if domain.state == "dkim_unverified":
            return _error(
                403,
                "dkim_not_verified",
                f"DKIM for domain '{name}' is not yet verified. Add the 3 DKIM CNAME records "
                "and click Verify DKIM in the dashboard.",
            )
        if domain.mode != account.plan_mode:
            return _error(
                403,
                "domain_mode_mismatch",
                f"Domain '{name}' is set up for {_MODE_NAMES[domain.mode]} sending but your "
                f"plan uses {_MODE_NAMES[account.plan_mode]}. Change your plan or add the "
                "domain in the matching mode.",
            )
        return None

    @staticmethod
    def _fault_response(fault: Fault) -> Response:
        if fault.kind == "502":
            return _error(502, "queue_error", "Failed to enqueue email.")
        if fault.kind == "500":
            return Response(500, {"detail": "Internal server error."})
        if fault.kind == "drop":
            return Response(0, {}, drop=True)
        # "malformed": a 200 a client must not take for an acceptance.
        return Response(
            200, {}, {"Content-Type": "text/html; charset=utf-8"}, raw_body=MALFORMED_BODY
        )
