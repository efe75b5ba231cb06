"""Features the API has no field for (django-anymail's among them) are refused, never dropped
silently: a send_at of tomorrow must not be sent now. anymail's attributes done locally (tags,
metadata, merge data, send_at on the queued backend) are tested in tests/test_anymail_*.py."""

import logging
from datetime import UTC, datetime, timedelta

import pytest
from django.core.mail import EmailMessage, EmailMultiAlternatives

from django_sendfleet.backends import EmailBackend, QueuedEmailBackend
from django_sendfleet.exceptions import SendFleetUnsupportedFeature
from django_sendfleet.message.features import (
    ANYMAIL_ATTRIBUTES,
    LOCAL_ATTRIBUTES,
    is_set,
    unsupported_features,
)
from django_sendfleet.models import SendLog

pytestmark = [pytest.mark.usefixtures("sendfleet_settings"), pytest.mark.django_db]

SENDER = "Shop <shop@example.com>"
TOMORROW = datetime.now(UTC) + timedelta(days=1)
#: A value code written for anymail would set, for each of anymail's attributes.
ANYMAIL_VALUES = {
    "send_at": TOMORROW,
    "merge_data": {"ann@example.com": {"name": "Ann"}},
    "merge_global_data": {"shop": "Example Shop"},
    "merge_metadata": {"ann@example.com": {"user_id": 1}},
    "merge_headers": {"ann@example.com": {"List-Unsubscribe": "<https://example.com/u/1>"}},
    "template_id": "welcome",
    "tags": ["welcome"],
    "metadata": {"user_id": 1},
    "track_clicks": True,
    "track_opens": False,  # anymail refuses any value an ESP cannot honour, False included
    "esp_extra": {"priority": "high"},
    "envelope_sender": "bounces@example.com",
}
# One tiny GIF, as anymail's attach_inline_image takes it.
GIF = b"GIF89a\x01\x00\x01\x00\x80\x00\x00\x00\x00\x00\xff\xff\xff!\xf9\x04\x01\x00\x00\x00\x00,"
GIF += b"\x00\x00\x00\x00\x01\x00\x01\x00\x00\x02\x02D\x01\x00;"


def message(to=("ann@example.com",), **attributes):
    msg = EmailMultiAlternatives("Dear {{name}}", "Hello {{name}}", SENDER, list(to))
    for name, value in attributes.items():
        setattr(msg, name, value)
    return msg


def test_every_anymail_attribute_is_covered():
    assert set(ANYMAIL_VALUES) == set(ANYMAIL_ATTRIBUTES)


#: Refused by EmailBackend: what nothing local stands in for, and a future send_at (it cannot wait).
REFUSED = sorted({*ANYMAIL_VALUES} - LOCAL_ATTRIBUTES | {"send_at"})


def test_only_the_attributes_done_locally_are_not_refused():
    assert {
        "send_at",
        "tags",
        "metadata",
        "merge_metadata",
        "merge_data",
        "merge_global_data",
    } == LOCAL_ATTRIBUTES


@pytest.mark.parametrize("name", REFUSED)
def test_an_anymail_attribute_is_refused_by_name_with_no_request(sandbox, name):
    msg = message(**{name: ANYMAIL_VALUES[name]})
    with pytest.raises(SendFleetUnsupportedFeature) as caught:
        EmailBackend().send_messages([msg])
    assert f"SendFleet cannot send {name} (" in str(caught.value)
    assert "Migrating from django-anymail" in str(caught.value)
    assert sandbox.requests == []
    assert msg.anymail_status.status == {"invalid"}


def test_send_at_tomorrow_is_not_sent_now_even_with_fail_silently(sandbox):
    msg = message(send_at=TOMORROW)
    assert EmailBackend(fail_silently=True).send_messages([msg]) == 0
    assert sandbox.requests == []


def test_the_queued_backend_refuses_them_before_writing_the_outbox(sandbox):
    msg = message(template_id=ANYMAIL_VALUES["template_id"])
    with pytest.raises(SendFleetUnsupportedFeature, match="template_id"):
        QueuedEmailBackend().send_messages([msg])
    assert not SendLog.objects.filter(status="pending").exists()
    assert sandbox.requests == []


def test_every_feature_is_named_at_once():
    msg = message(send_at=TOMORROW, template_id="t", esp_extra={"k": "v"})
    msg.attach("a.txt", "data", "text/plain")
    assert [feature.split(" ")[0] for feature in unsupported_features(msg)] == [
        "attachments",
        "send_at",
        "template_id",
        "esp_extra",
    ]


@pytest.mark.parametrize("value", [None, [], {}, "", ()])
def test_unset_and_empty_values_ask_for_nothing_and_are_sent(sandbox, value):
    msg = message(**dict.fromkeys(ANYMAIL_VALUES, value))
    assert EmailBackend().send_messages([msg]) == 1
    assert len(sandbox.requests) == 1


def test_is_set_reads_values_as_anymail_does():
    assert not is_set(None)
    assert not is_set([])
    assert is_set(False)  # track_opens=False asks that opens not be tracked
    assert is_set(0)
    assert is_set(TOMORROW)


def test_an_anymail_message_with_nothing_set_is_sent(sandbox):
    anymail_message = pytest.importorskip("anymail.message")
    msg = anymail_message.AnymailMessage("Hi", "Body", SENDER, ["ann@example.com"])
    assert EmailBackend().send_messages([msg]) == 1
    assert len(sandbox.requests) == 1


def test_an_anymail_message_with_send_at_and_an_inline_image_is_refused(sandbox):
    anymail_message = pytest.importorskip("anymail.message")
    msg = anymail_message.AnymailMessage("Hi", "Body", SENDER, ["ann@example.com"])
    msg.send_at = TOMORROW
    msg.attach_inline_image(GIF, "logo.gif")
    with pytest.raises(SendFleetUnsupportedFeature) as caught:
        EmailBackend().send_messages([msg])
    assert "inline images in attachments (1)" in str(caught.value)
    assert "send_at (scheduled sending)" in str(caught.value)
    assert sandbox.requests == []


def test_ignored_features_are_dropped_and_each_logged_once_per_message(
    sandbox, sendfleet_settings, caplog
):
    sendfleet_settings["IGNORE_UNSUPPORTED_FEATURES"] = True
    to = ["ann@example.com", "bob@example.com", "carol@example.com"]
    first = message(to=to, send_at=TOMORROW, template_id="welcome")
    second = message(to=to[:1], track_clicks=True)
    with caplog.at_level(logging.WARNING, logger="django_sendfleet"):
        assert EmailBackend().send_messages([first, second]) == 2
    assert len(sandbox.requests) == 4
    dropped = [r.getMessage() for r in caplog.records if "SendFleet dropped" in r.getMessage()]
    assert len(dropped) == 3
    assert [text.split(" ")[2] for text in dropped] == ["send_at", "template_id", "track_clicks"]


def test_a_plain_email_message_without_alternatives_is_still_checked(sandbox):
    msg = EmailMessage("Hi", "Body", SENDER, ["ann@example.com"])
    msg.template_id = "welcome"  # code written for anymail sets it on any EmailMessage
    with pytest.raises(SendFleetUnsupportedFeature, match="template_id"):
        msg.send()
    assert sandbox.requests == []
