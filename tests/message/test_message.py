"""How a Django message becomes API payloads: checks made before any request."""

from email.utils import formataddr

import pytest
from django.core.mail import EmailMessage, EmailMultiAlternatives
from django.utils.functional import lazy

from django_sendfleet.exceptions import (
    SendFleetInvalidAddress,
    SendFleetInvalidMessage,
    SendFleetUnsupportedFeature,
)
from django_sendfleet.message.outgoing import prepare_message
from django_sendfleet.message.payloads import build_payloads
from django_sendfleet.message.text_safety import LINE_BREAKS


def prepare(message, ignore_unsupported_features=False):
    return prepare_message(message, ignore_unsupported_features=ignore_unsupported_features)


def test_recipients_are_fanned_out_across_to_cc_bcc_without_case_insensitive_duplicates():
    message = EmailMessage(
        "Hi",
        "Body",
        "shop@example.com",
        to=["Ann <ann@example.com>", "bob@example.com"],
        cc=["ANN@example.com", "carol@example.com"],
        bcc=["Bob@Example.com", "dave@example.com"],
    )
    payloads = build_payloads(prepare(message))
    assert list(payloads) == [
        "ann@example.com",
        "bob@example.com",
        "carol@example.com",
        "dave@example.com",
    ]
    assert [p["to"] for p in payloads.values()] == list(payloads)


def test_sender_display_name_becomes_from_name_and_unicode_survives():
    message = EmailMessage(
        "Hi", "Body", '"Zoë Ünïcödé, Shop" <shop@example.com>', ["a@example.com"]
    )
    payload = build_payloads(prepare(message))["a@example.com"]
    assert payload["from_email"] == "shop@example.com"
    assert payload["from_name"] == "Zoë Ünïcödé, Shop"


def test_lazy_strings_are_resolved():
    lazy_str = lazy(lambda s: s, str)
    message = EmailMessage(
        lazy_str("Lazy subject"),
        lazy_str("Lazy body"),
        lazy_str("Shop <shop@example.com>"),
        ["a@example.com"],
    )
    payload = build_payloads(prepare(message))["a@example.com"]
    assert payload["subject"] == "Lazy subject"
    assert payload["message"] == "Lazy body"
    assert payload["from_name"] == "Shop"


def test_html_alternative_becomes_html_and_blank_body_is_derived_from_it():
    message = EmailMultiAlternatives("Hi", "", "shop@example.com", ["a@example.com"])
    message.attach_alternative(
        "<html><head><style>p{}</style></head><body><h1>Order</h1><p>Thanks&nbsp;for "
        '<a href="https://example.com/o/1">your order</a>.</p><script>x()</script></body></html>',
        "text/html",
    )
    payload = build_payloads(prepare(message))["a@example.com"]
    assert payload["html"].startswith("<html>")
    assert payload["message"] == "Order\n\nThanks for your order (https://example.com/o/1)."


def test_html_content_subtype_is_sent_as_html_with_derived_text():
    message = EmailMessage("Hi", "<p>Hello <b>you</b></p>", "shop@example.com", ["a@example.com"])
    message.content_subtype = "html"
    payload = build_payloads(prepare(message))["a@example.com"]
    assert payload["html"] == "<p>Hello <b>you</b></p>"
    assert payload["message"] == "Hello you"


def test_first_reply_to_is_sent_and_optional_blank_fields_are_left_out():
    message = EmailMessage(
        "", "Body", "shop@example.com", ["a@example.com"], reply_to=["Help <help@example.com>"]
    )
    payload = build_payloads(prepare(message))["a@example.com"]
    assert payload["reply_to"] == "help@example.com"
    assert "subject" not in payload and "html" not in payload and "from_name" not in payload


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"subject": "x" * 257}, "subject"),
        ({"from_email": f"{'n' * 157} <shop@example.com>"}, "from_name"),
        ({"subject": "Hi\r\nBcc: victim@example.com"}, "subject"),
        ({"from_email": "not an address"}, "from_email"),
        ({"body": "   "}, "body"),
        ({"body": "nul\x00"}, "body"),
        ({"reply_to": ["bad@@example.com"]}, "reply_to"),
    ],
)
def test_messages_the_api_would_refuse_are_refused_locally(kwargs, field):
    fields = {"subject": "Hi", "body": "Body", "from_email": "shop@example.com"} | kwargs
    message = EmailMessage(to=["a@example.com"], **fields)
    with pytest.raises(SendFleetInvalidMessage) as caught:
        prepare(message)
    assert caught.value.detail.startswith(field)


def test_subject_of_exactly_256_characters_is_accepted():
    message = EmailMessage("x" * 256, "Body", "shop@example.com", ["a@example.com"])
    assert prepare(message).subject == "x" * 256


def test_an_invalid_recipient_refuses_the_message_naming_field_and_value():
    message = EmailMessage("Hi", "Body", "shop@example.com", ["ok@example.com"], cc=["nope"])
    with pytest.raises(SendFleetInvalidAddress) as caught:
        prepare(message)
    assert (caught.value.field, caught.value.value) == ("cc", "nope")
    assert isinstance(caught.value, ValueError)


@pytest.mark.parametrize(
    ("change", "named"),
    [
        (lambda m: m.attach("a.txt", "data", "text/plain"), "attachments"),
        (lambda m: m.extra_headers.update({"X-Tag": "t"}), "custom headers (X-Tag)"),
        (lambda m: m.attach_alternative("# md", "text/markdown"), "text/markdown"),
        (lambda m: setattr(m, "reply_to", ["a@example.com", "b@example.com"]), "reply_to"),
    ],
)
def test_unsupported_features_raise_a_value_error_naming_them(change, named):
    message = EmailMultiAlternatives("Hi", "Body", "shop@example.com", ["a@example.com"])
    change(message)
    with pytest.raises(SendFleetUnsupportedFeature) as caught:
        prepare(message)
    assert isinstance(caught.value, ValueError)
    assert named in str(caught.value)


def test_unsupported_features_are_dropped_when_ignored():
    message = EmailMultiAlternatives("Hi", "Body", "shop@example.com", ["a@example.com"])
    message.attach("a.txt", "data", "text/plain")
    message.extra_headers["Reply-To"] = "Help <help@example.com>"
    outgoing = prepare(message, ignore_unsupported_features=True)
    assert outgoing.dropped_features == ("attachments (1)",)
    assert outgoing.reply_to == "help@example.com"


def test_idn_addresses_are_sent_in_idna_form():
    # Issue 10: the domain is sent IDNA-encoded, as Django does (it was sent in Unicode).
    message = EmailMessage("Hi", "Body", "shop@bücher.example", ["user@bücher.example"])
    outgoing = prepare(message)
    assert outgoing.recipients == ("user@xn--bcher-kva.example",)
    assert outgoing.from_email == "shop@xn--bcher-kva.example"


@pytest.mark.parametrize(
    ("kwargs", "field", "sent"),
    [
        ({"subject": "x" * 256 + " "}, "subject", "x" * 256),
        ({"subject": "\t " + "x" * 256 + "  "}, "subject", "x" * 256),
        ({"from_email": '"' + "n" * 156 + ' " <shop@example.com>'}, "from_name", "n" * 156),
    ],
)
def test_limits_count_the_text_that_is_sent(kwargs, field, sent):
    fields = {"subject": "Hi", "body": "Body", "from_email": "shop@example.com"} | kwargs
    payload = build_payloads(prepare(EmailMessage(to=["a@example.com"], **fields)))
    assert payload["a@example.com"][field] == sent  # trimmed, as the API trims it


@pytest.mark.parametrize(
    "kwargs",
    [
        {"subject": "x" * 257 + " "},
        {"from_email": '"' + "n" * 157 + ' " <shop@example.com>'},
        {"from_email": formataddr(("ñ" * 157, "shop@example.com"))},  # an encoded name
    ],
)
def test_text_over_the_limit_once_trimmed_is_refused(kwargs):
    fields = {"subject": "Hi", "body": "Body", "from_email": "shop@example.com"} | kwargs
    with pytest.raises(SendFleetInvalidMessage, match="at most"):
        prepare(EmailMessage(to=["a@example.com"], **fields))


@pytest.mark.parametrize("separator", list(LINE_BREAKS))
def test_every_line_break_is_refused_in_the_subject_and_display_names(separator):
    for kwargs, field in [
        ({"subject": f"Hi{separator}Bcc: victim@example.com"}, "subject"),
        ({"from_email": f'"Shop{separator}" <shop@example.com>'}, "from_email"),
        ({"reply_to": [f"Help{separator}Desk <help@example.com>"]}, "reply_to"),
    ]:
        fields = {"subject": "Hi", "body": "Body", "from_email": "shop@example.com"} | kwargs
        with pytest.raises(SendFleetInvalidMessage, match="line breaks") as caught:
            prepare(EmailMessage(to=["a@example.com"], **fields))
        assert caught.value.detail.startswith(field)
    message = EmailMessage(
        "Hi", "Body", "shop@example.com", [f"Ann{separator} <ann@example.com>", "b@example.com"]
    )
    with pytest.raises(SendFleetInvalidAddress, match="line breaks") as caught:
        prepare(message)
    assert caught.value.field == "to"


def test_line_breaks_are_allowed_in_the_bodies():
    message = EmailMessage(
        "Hi", "Line one\u2028line two\x85three\r\n", "s@example.com", ["a@example.com"]
    )
    assert prepare(message).text == "Line one\u2028line two\x85three\r\n"
