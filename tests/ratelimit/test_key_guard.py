"""A 401 pauses the key for every process, so refusals never add up to SendFleet's IP block.

SendFleet blocks a server's IP after 10 consecutive 401s within 60 s. Each test here sends with
a revoked key more than once, from one process or several, and counts the 401s the sandbox
answered: one, whatever the number of sends, processes or queued rows.
"""

from __future__ import annotations

import os
import subprocess
import sys
from io import StringIO
from pathlib import Path

import pytest
from django.core.mail import EmailMessage, send_mail
from django.core.management import call_command

from django_sendfleet import exceptions as exc
from django_sendfleet.backends import QueuedEmailBackend
from django_sendfleet.models import SendLog
from django_sendfleet.sandbox import REVOKED_API_KEY, SANDBOX_API_KEY, Sandbox

ROOT = Path(__file__).resolve().parents[2]
SENDER = "shop@example.com"

pytestmark = pytest.mark.django_db


def refusals(sandbox: Sandbox) -> int:
    return sum(1 for request in sandbox.requests if request.status == 401)


def test_after_a_401_the_next_sends_are_not_attempted_and_say_until_when(
    sandbox, sendfleet_settings
):
    sendfleet_settings["API_KEY"] = REVOKED_API_KEY
    with pytest.raises(exc.SendFleetAuthenticationError):
        send_mail("One", "Body", SENDER, ["ann@example.com"])
    for n in range(12):  # more than SendFleet's 10: no IP block, since none is sent
        with pytest.raises(exc.SendFleetKeyRefused) as refused:
            send_mail(f"Again {n}", "Body", SENDER, ["ann@example.com"])
    assert refusals(sandbox) == 1 and len(sandbox.requests) == 1
    message = str(refused.value)
    assert "401" in message and "until" in message and "IP blocked" in message
    assert REVOKED_API_KEY not in message and REVOKED_API_KEY.partition(".")[2] not in message
    row = SendLog.objects.filter(subject="Again 11").get()
    assert (row.status, row.error_code, row.attempts) == ("failed", "key_refused", 0)


def test_a_fixed_key_is_used_at_once(sandbox, sendfleet_settings):
    sendfleet_settings["API_KEY"] = REVOKED_API_KEY
    with pytest.raises(exc.SendFleetAuthenticationError):
        send_mail("One", "Body", SENDER, ["ann@example.com"])
    sendfleet_settings["API_KEY"] = SANDBOX_API_KEY
    send_mail("Two", "Body", SENDER, ["ann@example.com"])
    assert [r.status for r in sandbox.requests] == [401, 200]


def test_several_processes_sharing_a_cache_send_one_401_between_them(redis_url):
    """Three processes (one after the other, like three web requests) with a revoked key."""
    with Sandbox() as sandbox:
        env = os.environ | {
            "DJANGO_SETTINGS_MODULE": "tests.settings",
            "PYTHONPATH": str(ROOT),
            "SENDFLEET_TEST_API_URL": sandbox.url,
            "SENDFLEET_TEST_API_KEY": REVOKED_API_KEY,
            "SENDFLEET_TEST_REDIS_URL": redis_url,
            "SENDFLEET_TEST_RATE_LIMIT": "600/min",
            "SENDFLEET_TEST_SEND_LOG": "0",
        }
        script = (
            "import django; django.setup()\n"
            "from django.core.cache import cache; from django.core.mail import send_mail\n"
            "from django_sendfleet import exceptions as exc\n"
            "try:\n"
            "    send_mail('Hi', 'Body', 'shop@example.com', ['ann@example.com'])\n"
            "except exc.SendFleetKeyRefused:\n"
            "    print('paused')\n"
            "except exc.SendFleetAuthenticationError:\n"
            "    print('refused')\n"
        )
        outputs = []
        for _ in range(3):
            done = subprocess.run(
                [sys.executable, "-c", script],
                env=env,
                cwd=ROOT,
                capture_output=True,
                text=True,
                timeout=60,
            )
            assert done.returncode == 0, done.stderr
            outputs.append(done.stdout.strip())
        assert outputs == ["refused", "paused", "paused"]
        assert refusals(sandbox) == 1
        import redis

        redis.Redis.from_url(redis_url).flushdb()  # the pause must not outlast the test


def test_queued_rows_are_held_while_the_key_is_refused_and_sent_once_it_is_fixed(
    sandbox, sendfleet_settings, django_capture_on_commit_callbacks
):
    sendfleet_settings["API_KEY"] = REVOKED_API_KEY
    for n in range(3):
        with django_capture_on_commit_callbacks(execute=True):
            QueuedEmailBackend().send_messages(
                [EmailMessage(f"Hi {n}", "Body", SENDER, [f"user{n}@example.com"])]
            )
    rows = list(SendLog.objects.order_by("pk"))
    assert [r.status for r in rows] == ["pending"] * 3  # held, not failed
    assert [r.error_code for r in rows] == ["authentication_failed", "key_refused", "key_refused"]
    assert all(r.not_before is not None and r.content_id is not None for r in rows)
    assert refusals(sandbox) == 1

    sendfleet_settings["API_KEY"] = SANDBOX_API_KEY  # the operator fixes the key
    out = StringIO()
    call_command("sendfleet_requeue", key_fixed=True, stdout=out)
    assert "3 held rows due now" in out.getvalue()
    assert [r.status for r in SendLog.objects.order_by("pk")] == ["queued"] * 3
    assert sorted(r.payload["to"] for r in sandbox.accepted) == [
        "user0@example.com",
        "user1@example.com",
        "user2@example.com",
    ]
    assert refusals(sandbox) == 1
