"""An in-memory SendFleet: accounts, keys, domains and the rules of ``POST /api/send/``.

No sockets here: ``SandboxState.handle()`` takes what an HTTP request carries and returns a
``Response``; ``server.py`` speaks HTTP and ``inprocess.py`` answers ``requests`` directly.
"""

from __future__ import annotations

import threading
from collections import deque
from dataclasses import dataclass, replace
from typing import Any, Protocol

from . import answers
from .answers import Response
from .clock import SandboxClock
from .faults import CONNECTION_FAULTS, Fault, parse_fault
from .throttling import AuthFailureBlock, SlidingLogThrottle
from .validation import JSONParseError, parse_json_body, validate_send_payload
from .webhooks import Delivery
from .world import Account, ApiKey, Domain, domain_key, key_prefix


@dataclass(frozen=True)
class RecordedRequest:
    """One request to ``/api/send/`` as the sandbox saw it. Never holds the full API key."""

    time: float  # epoch seconds on the sandbox clock, on arrival
    key_prefix: str | None  # None when no key was sent
    client_ip: str
    connection_id: int
    payload: dict[str, Any] | None  # the JSON body, when it was an object
    status: int  # 0 when the connection was dropped without an answer
    response: dict[str, Any] | str | None  # str for a non-JSON answer, None when dropped
    message_id: str | None  # set for accepted messages only
    user_agent: str = ""


class WebhookDeliverer(Protocol):
    """Where the events of accepted messages go (``webhooks.py``)."""

    deliveries: list[Delivery]

    def message_accepted(self, recipient: str, message_id: str) -> None: ...

    def deliver(self, timeout: float = 10.0) -> list[Delivery]: ...

    def wait_until_idle(self, timeout: float = 10.0) -> bool: ...

    def close(self) -> None: ...


class SandboxState:
    """Everything a sandbox knows, behind one lock so server threads can share it."""

    def __init__(
        self,
        rate_limit: tuple[int, float] = (60, 60.0),
        latency: float = 0.0,
        clock: SandboxClock | None = None,
        usage_lag: float = 0.0,
        in_process: bool = False,
    ) -> None:
        self._lock = threading.Lock()
        self.clock = clock or SandboxClock()
        self.in_process = in_process
        self._accounts: dict[str, Account] = {}
        self._keys: dict[str, ApiKey] = {}
        self._domains: dict[tuple[str, str], Domain] = {}
        self._throttle = SlidingLogThrottle(*rate_limit)
        self._auth_failures = AuthFailureBlock()
        self._faults: deque[Fault] = deque()
        self._requests: list[RecordedRequest] = []
        #: Set by configure_webhook(): told about every accepted message of a Shared plan.
        self.webhooks: WebhookDeliverer | None = None
        self.latency = latency
        self.usage_lag = usage_lag

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
            self._domains[domain.account, domain_key(domain.name)] = domain
        return domain

    def suppress(self, email: str, account: str = "default") -> None:
        with self._lock:
            self._require_account(account)
            self._accounts[account].suppressed.add(email.strip().lower())

    @property
    def api_keys(self) -> list[str]:
        """Every key the sandbox knows, whatever its state."""
        with self._lock:
            return list(self._keys)

    @property
    def account_names(self) -> list[str]:
        with self._lock:
            return list(self._accounts)

    def has_domain(self, account: str, name: str) -> bool:
        with self._lock:
            return (account, domain_key(name)) in self._domains

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
    def usage_lag(self) -> float:
        """Seconds an accepted send takes to show in the usage count the quota check reads."""
        return self._usage_lag

    @usage_lag.setter
    def usage_lag(self, seconds: float) -> None:
        if not 0 <= seconds <= 30:
            raise ValueError("SendFleet's usage counts lag by 0 to 30 seconds.")
        self._usage_lag = float(seconds)

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
        if fault.kind in CONNECTION_FAULTS and not self.in_process:
            raise ValueError(
                f"A socket sandbox cannot produce {fault.kind!r}: it has already accepted the "
                "connection. Point API_URL at a closed port instead, or use the in-process "
                "sandbox."
            )
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
                account.forget_usage()

    # Traffic.

    @property
    def requests(self) -> list[RecordedRequest]:
        with self._lock:
            return list(self._requests)

    @property
    def accepted(self) -> list[RecordedRequest]:
        with self._lock:
            return [request for request in self._requests if request.message_id is not None]

    def configure_webhook(self, deliverer: WebhookDeliverer | None) -> None:
        """Tell ``deliverer`` about accepted messages from now on; None stops deliveries."""
        if self.webhooks is not None:
            self.webhooks.close()
        self.webhooks = deliverer

    def take_connection_fault(self) -> str:
        """The connection failure scripted for the next connection ("refused",
        "connect_timeout"), or "". Such a request never arrives: nothing is recorded."""
        with self._lock:
            if self._faults and self._faults[0].kind in CONNECTION_FAULTS:
                return self._faults.popleft().kind
        return ""

    def handle(
        self,
        api_key: str | None,
        body: bytes,
        client_ip: str,
        connection_id: int = 0,
        user_agent: str = "",
    ) -> Response:
        """Answer one ``POST /api/send/`` and record it."""
        api_key = (api_key or "").strip() or None
        try:
            data, parse_error = parse_json_body(body), None
        except JSONParseError as exc:
            data, parse_error = None, str(exc)
        with self._lock:
            arrived = self.clock.time()
            response, account = self._respond(api_key, data, parse_error, client_ip)
            self._record(arrived, api_key, client_ip, connection_id, data, response, user_agent)
        message_id = response.body.get("message_id") if response.status == 200 else None
        webhooks = self.webhooks
        if webhooks is not None and message_id and account and account.plan_info.has_webhooks:
            webhooks.message_accepted(str(data["to"]), message_id)  # type: ignore[index]
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
    ) -> tuple[Response, Account | None]:
        """The answer, and the account that accepted the message (None when not accepted)."""
        # The steps run in the order the real service (a DRF view) runs them.
        now = self.clock.monotonic()
        if self._auth_failures.is_blocked(client_ip, now):
            return answers.ip_blocked(), None

        key, auth_error = self._authenticate(api_key)
        if key is None:
            self._auth_failures.record_failure(client_ip, now)
            return answers.not_authenticated(auth_error), None
        self._auth_failures.record_success(client_ip)

        if not self._throttle.allow(key.key, now):
            return answers.throttled(self._throttle.wait(key.key, now)), None

        if parse_error is not None:
            return Response(400, {"detail": parse_error}), None
        cleaned, field_errors = validate_send_payload(data)
        if field_errors:
            return answers.field_errors(field_errors), None

        account = self._accounts[key.account]
        if account.state == "unapproved":
            return answers.unauthorized(), None
        if account.state == "suspended":
            return answers.sending_suspended(), None

        sender = cleaned.get("from_email") or account.login_email
        domain_name = sender.rpartition("@")[2]
        domain = self._domains.get((account.name, domain_key(domain_name)))
        if domain is None:
            return answers.domain_not_registered(domain_name), None
        domain_error = self._domain_error(account, domain_name, domain)
        if domain_error is not None:
            return domain_error, None

        recipient = cleaned["to"]
        if recipient.lower() in account.suppressed:
            return answers.recipient_suppressed(recipient), None

        month = self.clock.now().strftime("%Y-%m")
        quota = account.monthly_quota
        wall = self.clock.time()
        if quota is not None and account.usage_seen(month, wall, self._usage_lag) >= quota:
            return answers.usage_limit_exceeded(quota), None

        if account.state == "byoc_broken":
            return answers.byoc_not_configured(), None

        fault = self._faults.popleft() if self._faults else None
        if fault is not None and not fault.accepts:
            context = answers.Context(recipient, domain_name, account.plan_mode, quota)
            return fault.response(context), None

        account.count_send(month, wall, self._usage_lag)
        warnings = []
        if not domain.spf_verified:
            warnings.append(answers.spf_warning(domain.name))
        if not domain.dmarc:
            warnings.append(answers.dmarc_warning(domain.name))
        response = answers.accepted(account.plan_mode, warnings)
        if fault is not None:  # slow or timeout: accepted, answered late or never
            delay = float("inf") if fault.kind == "timeout" else fault.seconds
            response = replace(response, delay=delay)
        return response, account

    def _authenticate(self, api_key: str | None) -> tuple[ApiKey | None, str]:
        if api_key is None:
            return None, answers.NO_CREDENTIALS
        key = self._keys.get(api_key)
        if key is None:
            return None, answers.INVALID_KEY
        if key.state == "revoked":
            return None, answers.REVOKED_KEY
        if key.state == "expired":
            return None, answers.EXPIRED_KEY
        return key, ""

    @staticmethod
    def _domain_error(account: Account, name: str, domain: Domain) -> Response | None:
        if domain.state == "txt_unverified":
            return answers.domain_not_verified(name)
        if domain.state == "dkim_unverified":
            return answers.dkim_not_verified(name)
        if domain.mode != account.plan_mode:
            return answers.domain_mode_mismatch(name, domain.mode, account.plan_mode)
        return None
