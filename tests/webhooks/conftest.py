"""Fixtures the webhook tests share."""

import pytest

from django_sendfleet.models import SendLog


@pytest.fixture
def logged_send():
    """The send log row of "msg-1", to Ann, accepted by SendFleet: what events are about."""
    return SendLog.objects.create(
        message_id="msg-1",
        recipient="ann@example.com",
        from_email="shop@example.com",
        status="queued",
    )
