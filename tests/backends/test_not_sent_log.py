"""What the log says of a send that is not attempted: its own reason when the send itself is
ruled out (the pause after a 401), "an earlier send in this batch failed" only when one did."""

from __future__ import annotations

import pytest
from django.core.mail import send_mail

from django_sendfleet import exceptions as exc
from django_sendfleet.sandbox import REVOKED_API_KEY

pytestmark = pytest.mark.django_db
SENDER = "shop@example.com"


def not_sent_lines(caplog, address: str) -> list[str]:
    return [
        record.getMessage()
        for record in caplog.records
        if record.name == "django_sendfleet" and address in record.getMessage()
    ]


def test_a_paused_key_is_logged_as_the_reason_of_the_first_and_only_recipient(
    sandbox, sendfleet_settings, caplog
):
    sendfleet_settings["API_KEY"] = REVOKED_API_KEY
    with pytest.raises(exc.SendFleetAuthenticationError):
        send_mail("One", "Body", SENDER, ["ann@example.com"])
    caplog.clear()
    with pytest.raises(exc.SendFleetKeyRefused):
        send_mail("Two", "Body", SENDER, ["bob@example.com"])
    [line] = not_sent_lines(caplog, "bob@example.com")
    assert line.startswith("SendFleet did not send to bob@example.com [key_refused]: ")
    assert "SendFleet refused this API key (HTTP 401)" in line
    assert "earlier send" not in line
    assert REVOKED_API_KEY.partition(".")[2] not in caplog.text


def test_a_recipient_skipped_after_an_earlier_failure_of_the_batch_says_so(
    sandbox, sendfleet_settings, caplog
):
    """A 401 for the first recipient stops the batch: the second is skipped because of it."""
    sendfleet_settings["API_KEY"] = REVOKED_API_KEY
    with pytest.raises(exc.SendFleetAuthenticationError):
        send_mail("One", "Body", SENDER, ["ann@example.com", "bob@example.com"])
    assert [request.status for request in sandbox.requests] == [401]
    assert not_sent_lines(caplog, "bob@example.com") == [
        "SendFleet skipped bob@example.com: an earlier send in this batch failed with "
        "authentication_failed"
    ]
