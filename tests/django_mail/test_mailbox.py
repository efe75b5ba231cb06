"""The harness's mailbox: every field the API takes comes back in the email it rebuilds."""

from email import message_from_bytes, policy

import pytest
from django.core.mail import EmailMultiAlternatives

from django_sendfleet.sandbox.validation import SEND_FIELDS

from .mailbox import PAYLOAD_FIELDS, envelopes, message_from_payload


def parse(data: bytes):
    return message_from_bytes(data, policy=policy.default)


FULL_PAYLOAD = {
    "to": "ann@example.com",
    "from_email": "shop@example.com",
    "from_name": "Shop Sürname",
    "subject": "Chère Ann",
    "message": "Text body\n",
    "html": "<p>HTML body</p>\n",
    "reply_to": "help@example.com",
}


def test_the_mailbox_knows_every_field_of_the_api():
    assert set(PAYLOAD_FIELDS) == {field.name for field in SEND_FIELDS} == set(FULL_PAYLOAD)


def test_every_field_is_in_the_rebuilt_email():
    email = message_from_payload(FULL_PAYLOAD, parse)

    assert email["To"] == "ann@example.com"
    assert email["From"] == "Shop Sürname <shop@example.com>"
    assert email["Subject"] == "Chère Ann"
    assert email["Reply-To"] == "help@example.com"
    text, html = email.get_payload()
    assert (text.get_content_type(), text.get_content()) == ("text/plain", "Text body\n")
    assert (html.get_content_type(), html.get_content()) == ("text/html", "<p>HTML body</p>\n")


def test_a_field_the_mailbox_does_not_know_fails_rather_than_being_left_out():
    with pytest.raises(AssertionError, match="cc"):
        message_from_payload({**FULL_PAYLOAD, "cc": "bob@example.com"}, parse)


def test_consecutive_requests_with_the_same_content_are_one_envelope():
    first = {"from_email": "shop@example.com", "message": "One"}
    second = {"from_email": "shop@example.com", "message": "Two"}
    payloads = [{**first, "to": "a@example.com"}, {**first, "to": "b@example.com"}]
    payloads.append({**second, "to": "a@example.com"})

    assert envelopes(payloads) == [
        {"mail_from": "shop@example.com", "rcpt_tos": ["a@example.com", "b@example.com"]},
        {"mail_from": "shop@example.com", "rcpt_tos": ["a@example.com"]},
    ]


@pytest.mark.django_db
def test_what_the_backend_sends_comes_back_whole(sendfleet_backend, sendfleet_sandbox):
    # Django 6.1's own backend tests send no display name, reply-to or HTML: this does, through
    # the backend, so the mailbox Django's tests read is known to carry each of them.
    message = EmailMultiAlternatives(
        "Chère Ann",
        "Text body\n",
        '"Shop Sürname" <shop@example.com>',
        ["Ann <ann@example.com>"],
        reply_to=["help@example.com"],
    )
    message.attach_alternative("<p>HTML body</p>\n", "text/html")
    message.send()

    [payload] = sendfleet_sandbox.payloads
    assert payload == FULL_PAYLOAD
    email = message_from_payload(payload, parse)
    assert (email["From"], email["To"]) == ("Shop Sürname <shop@example.com>", "ann@example.com")
