"""One skeleton for both backends: what differs is the disposition, and addresses are parsed
once per batch."""

from __future__ import annotations

import sys

import pytest
from django.core.mail import EmailMessage

from django_sendfleet.backends import EmailBackend, QueuedEmailBackend
from django_sendfleet.backends.dispositions import SendNow, WriteOutbox
from django_sendfleet.message.addresses import parse_address

pytestmark = [pytest.mark.usefixtures("sendfleet_settings"), pytest.mark.django_db]


def test_the_queued_backend_differs_only_in_its_disposition():
    own = {name for name in vars(QueuedEmailBackend) if not name.startswith("__")}
    assert own == {"disposition_class"}
    assert QueuedEmailBackend.disposition_class is WriteOutbox
    assert EmailBackend.disposition_class is SendNow


def test_each_recipient_of_a_batch_is_parsed_once(sandbox, monkeypatch):
    parsed: list[tuple[str, str]] = []

    def counting(value, field):
        parsed.append((field, value))
        return parse_address(value, field)

    # Wherever the package holds the parser (the suppression query's pass and the checks).
    for module in list(sys.modules.values()):
        if module.__name__.startswith("django_sendfleet") and (
            getattr(module, "parse_address", None) is parse_address
        ):
            monkeypatch.setattr(module, "parse_address", counting)
    messages = [
        EmailMessage("Hi", "Body", "shop@example.com", [f"a{n}@example.com"], cc=[f"b{n}@x.org"])
        for n in range(3)
    ]
    assert EmailBackend().send_messages(messages) == 3
    recipients = [(field, value) for field, value in parsed if field in ("to", "cc", "bcc")]
    assert len(recipients) == 6 == len(set(recipients))
    assert len(sandbox.accepted) == 6
