"""The sandbox behaves like the SendFleet plan chosen at start (docs/sandbox.md says which
behaviours SendFleet documents and which are the sandbox's assumptions)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest

from django_sendfleet.sandbox import (
    NO_SPF_DOMAIN,
    QUOTA_API_KEY,
    SANDBOX_API_KEY,
    SHARED_DOMAIN,
    VERIFIED_DOMAIN,
    InProcessSandbox,
    SandboxState,
)
from django_sendfleet.sandbox.__main__ import build_parser, build_sandbox, main
from django_sendfleet.sandbox.clock import SandboxClock
from django_sendfleet.sandbox.defaults import BYOC_DOMAIN, mode_mismatch_domain, populate
from django_sendfleet.sandbox.plans import PLANS


class Recorder:
    """A webhook deliverer that only remembers which messages it was told about."""

    def __init__(self) -> None:
        self.accepted: list[tuple[str, str]] = []

    def message_accepted(self, recipient: str, message_id: str) -> None:
        self.accepted.append((recipient, message_id))

    def close(self) -> None:
        pass


def state_on(plan: str, at: datetime | None = None, **options: Any) -> SandboxState:
    """A populated state on ``plan``, its clock frozen at ``at`` (default: mid-month)."""
    at = at or datetime(2027, 3, 15, 12, tzinfo=UTC)  # fixed date: the state's clock, not now
    state = SandboxState(clock=SandboxClock(frozen_at=at.timestamp()), **options)
    populate(state, plan=plan)
    return state


def send(state: SandboxState, key: str = SANDBOX_API_KEY, **fields: str) -> Any:
    payload = {"to": "user@example.org", "from_email": f"app@{VERIFIED_DOMAIN}", "message": "Hi"}
    return state.handle(key, json.dumps(payload | fields).encode(), "127.0.0.1")


# Sending mode and the success message.


@pytest.mark.parametrize(
    ("plan", "mode", "message"),
    [
        ("starter-byoc", "byoc", "Email queued for delivery via your SES account."),
        ("byoc", "byoc", "Email queued for delivery via your SES account."),
        ("growth", "shared", "Email queued for delivery."),
        ("pro", "shared", "Email queued for delivery."),
    ],
)
def test_the_success_message_and_mode_follow_the_plan(plan, mode, message):
    answer = send(state_on(plan))
    assert answer.status == 200
    assert (answer.body["mode"], answer.body["message"]) == (mode, message)


@pytest.mark.parametrize("plan", list(PLANS))
def test_the_ready_made_domains_are_in_the_plans_mode(plan):
    state = state_on(plan)
    assert send(state).status == 200
    mismatch = mode_mismatch_domain(plan)
    assert mismatch == (SHARED_DOMAIN if PLANS[plan].mode == "byoc" else BYOC_DOMAIN)
    answer = send(state, from_email=f"app@{mismatch}")
    assert answer.body["error"] == "domain_mode_mismatch"


# Webhooks: Shared SES plans only.


@pytest.mark.parametrize(("plan", "events"), [("growth", 1), ("pro", 1), ("byoc", 0)])
def test_only_shared_plans_have_webhooks(plan, events):
    state = state_on(plan)
    recorder = Recorder()
    state.configure_webhook(recorder)
    assert send(state).status == 200
    assert len(recorder.accepted) == events


def test_webhooks_follow_the_account_that_sent_not_the_sandboxs_plan():
    state = state_on("starter-byoc")
    recorder = Recorder()
    state.configure_webhook(recorder)
    send(state)  # the default account: BYOC
    send(state, key=QUOTA_API_KEY)  # the quota account: Growth
    assert [recipient for recipient, _ in recorder.accepted] == ["user@example.org"]
    assert len(state.accepted) == 2


# Warnings quote the DNS records.


def test_warnings_quote_the_dns_records_to_add():
    answer = send(state_on("growth"), from_email=f"app@{NO_SPF_DOMAIN}")
    spf, dmarc = answer.body["warnings"]
    assert spf.startswith("SPF record not verified.")
    assert f'TXT record to {NO_SPF_DOMAIN}: "v=spf1 include:amazonses.com ~all"' in spf
    assert dmarc.startswith("DMARC record not found.")
    assert f'TXT record to _dmarc.{NO_SPF_DOMAIN}: "v=DMARC1; p=none;"' in dmarc


# The monthly quota.


@pytest.mark.parametrize(
    ("plan", "quota"),
    [("starter-byoc", 50), ("growth", 25_000), ("pro", 100_000), ("byoc", None)],
)
def test_each_plans_monthly_quota(plan, quota):
    state = state_on(plan)
    account = state.account("default")
    assert account.monthly_quota == quota
    # fixed date: the month of state_on's frozen clock
    account.used, account.used_month = (quota or 10**7) - 1, "2027-03"
    assert send(state).status == 200  # the last one allowed (or any number: no cap)
    expected = 200 if quota is None else 429
    assert send(state).status == expected


def test_starter_byoc_refuses_the_51st_send_of_the_month():
    state = state_on("starter-byoc")
    assert [send(state).status for _ in range(51)] == [200] * 50 + [429]
    assert "quota of 50" in send(state).body["detail"]


def test_the_quota_resets_at_midnight_utc_on_the_first():
    # fixed date: the state's clock is frozen there; the quota compares with it, not with now
    state = state_on("growth", at=datetime(2027, 3, 31, 23, 59, 59, tzinfo=UTC))
    quota = state.account("quota")
    quota.used, quota.used_month = 3, "2027-03"  # fixed date: the frozen clock's month
    assert send(state, key=QUOTA_API_KEY).body["error"] == "usage_limit_exceeded"
    state.clock.advance(0.5)
    assert send(state, key=QUOTA_API_KEY).status == 429  # 23:59:59.5 UTC
    state.clock.advance(0.5)
    assert send(state, key=QUOTA_API_KEY).status == 200  # 00:00 UTC, April 1st


def test_usage_counts_may_lag_by_up_to_30_seconds():
    state = state_on("growth", usage_lag=30)
    assert [send(state, key=QUOTA_API_KEY).status for _ in range(5)] == [200] * 5
    state.clock.advance(29)
    assert send(state, key=QUOTA_API_KEY).status == 200  # still not counted
    state.clock.advance(1)
    assert send(state, key=QUOTA_API_KEY).status == 429
    assert state.account("quota").used == 6


def test_usage_lag_is_zero_to_thirty_seconds():
    with pytest.raises(ValueError):
        SandboxState(usage_lag=31)


# Choosing the plan.


def test_the_in_process_sandbox_takes_the_plan_and_lag():
    with InProcessSandbox(plan="pro", usage_lag=10) as sandbox:
        assert sandbox.plan.label == "Pro" and sandbox.usage_lag == 10
        assert sandbox.add_account("other").plan == "pro"
        assert sandbox.add_domain("acme.test").mode == "shared"


def test_an_unknown_plan_is_refused():
    with pytest.raises(ValueError, match="starter-byoc"):
        InProcessSandbox(plan="enterprise")


def test_the_command_line_takes_the_plan_and_the_usage_lag():
    options = build_parser().parse_args(["--plan", "starter-byoc", "--usage-lag", "30"])
    sandbox = build_sandbox(options)
    assert sandbox.plan.name == "starter-byoc" and sandbox.usage_lag == 30
    assert sandbox.state.account("default").monthly_quota == 50
    quota = build_sandbox(build_parser().parse_args(["--plan", "byoc", "--quota", "7"]))
    assert quota.state.account("default").monthly_quota == 7


@pytest.mark.parametrize("argv", [["--plan", "enterprise"], ["--usage-lag", "31"]])
def test_the_command_line_refuses_what_sendfleet_has_not(argv, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--port", "0", *argv])
    assert exit_info.value.code == 2
