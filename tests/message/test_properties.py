"""Property-based tests: whatever Django message the backend is given, it either sends requests
the API accepts or refuses the message locally with its own exception.

Messages are generated with random unicode subjects and display names, IDN and unusual but
valid addresses, lazy strings, CR/LF injection attempts, empty and huge bodies, HTML, reply-to
and to/cc/bcc mixes with duplicates in different case. For each one the test works out, from
the API's rules alone, what must happen (sent to which recipients, or refused and why) and
checks that the backend does exactly that:

- the bulk of the examples go through the real ``EmailBackend`` with the HTTP call replaced by
  the sandbox's copy of the API's validator (fast, many examples);
- a bounded number go through the real client to a sandbox (in process: the same bytes an HTTP
  request would carry), through ``EmailBackend`` and through ``QueuedEmailBackend`` and its
  worker; no answer may ever be a 400.

Hypothesis runs derandomized with no example database, so CI sees the same examples each run.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from email.headerregistry import Address
from email.utils import formataddr
from typing import Any

import pytest
from django.core.exceptions import ValidationError
from django.core.mail import EmailMessage, EmailMultiAlternatives
from django.core.validators import validate_email
from django.utils.functional import lazy
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from django_sendfleet.api import client as client_module
from django_sendfleet.backends import EmailBackend, QueuedEmailBackend
from django_sendfleet.exceptions import (
    SendFleetInvalidAddress,
    SendFleetInvalidMessage,
    SendFleetRecipientsRefused,
    SendFleetUnsupportedFeature,
)
from django_sendfleet.models import SendLog, Suppression
from django_sendfleet.sandbox import SUPPRESSED_EMAIL
from django_sendfleet.sandbox.validation import parse_json_body, validate_send_payload
from tests.support.examples import examples

pytestmark = [pytest.mark.usefixtures("sendfleet_settings"), pytest.mark.django_db]

LOCAL_ERRORS = (SendFleetInvalidMessage, SendFleetUnsupportedFeature, SendFleetRecipientsRefused)
SUBJECT_MAX, FROM_NAME_MAX = 256, 156  # the API's limits (sendfleet-api.md)
HEALTH = [
    HealthCheck.function_scoped_fixture,  # fixtures hold state reset inside each example
    HealthCheck.too_slow,
    HealthCheck.data_too_large,
    HealthCheck.large_base_example,
]
COMMON = {"deadline": None, "derandomize": True, "database": None, "suppress_health_check": HEALTH}

make_lazy = lazy(lambda text: text, str)


# The API's rules, as the oracle applies them (not the library's code).


def valid_address(address: str) -> bool:
    """What the API's EmailField accepts (Django's validate_email, as DRF uses it)."""
    try:
        validate_email(address)
    except ValidationError:
        return False
    return True


def as_sent(address: str) -> str | None:
    """The address as Django's SMTP backend sends it (issue 10): the domain IDNA-encoded; None
    for a non-ASCII local part, which cannot be sent."""
    local_part, _, domain = address.rpartition("@")
    if not local_part.isascii():
        return None
    try:
        return f"{local_part}@{domain.encode('idna').decode('ascii')}"
    except UnicodeError:
        return None


# Every character str.splitlines() breaks at, found by asking it (the BMP holds them all).
LINE_BREAKS = {chr(c) for c in range(0x10000) if len(f"a{chr(c)}b".splitlines()) > 1}
# ASCII control characters other than tab: the email package's parser refuses them in names.
NON_PRINTABLE = {chr(c) for c in [*range(0x20), 0x7F]} - {"\t"}
CONTROLS = {chr(c) for c in [*range(0x20), *range(0x7F, 0xA0)]} - {"\t"}


def api_text_ok(text: str) -> bool:
    """No NUL and no lone surrogate: DRF's CharField refuses both."""
    return "\x00" not in text and not any(0xD800 <= ord(c) <= 0xDFFF for c in text)


def header_ok(text: str, max_length: int | None = None) -> bool:
    """A header value: API-safe, no line breaks (header injection), within the API's limit
    (which counts the text as sent: trimmed, as the API trims it)."""
    if not api_text_ok(text) or not LINE_BREAKS.isdisjoint(text):
        return False
    if not CONTROLS.isdisjoint(text):  # ESC, DEL, C1...: refused as line breaks are
        return False
    return max_length is None or len(text.strip()) <= max_length


def name_ok(name: str) -> bool:
    return header_ok(name) and NON_PRINTABLE.isdisjoint(name)


# Generated messages.


@dataclass
class Mailbox:
    """One generated address value, and what the API would make of it."""

    value: Any  # str, lazy str or email.headerregistry.Address, as given to EmailMessage
    address: str  # the addr-spec it stands for
    name: str = ""
    well_formed: bool = True  # False: a deliberately broken header value

    @property
    def sent_address(self) -> str | None:
        return as_sent(self.address)

    @property
    def valid(self) -> bool:
        sent = self.sent_address
        return self.well_formed and name_ok(self.name) and sent is not None and valid_address(sent)

    @property
    def truthy(self) -> bool:
        return bool(self.value)


@dataclass
class Case:
    sender: Mailbox | None
    subject: Any
    body: Any
    html: Any  # None, or the HTML alternative / HTML body
    html_as_body: bool
    extra_html: bool  # a second HTML body: unsupported
    attachment: bool
    reply_to: list[Mailbox]
    to: list[Mailbox]
    cc: list[Mailbox]
    bcc: list[Mailbox]
    log_content: bool = False

    def message(self) -> EmailMessage:
        cls = EmailMultiAlternatives if (self.html is not None or self.extra_html) else EmailMessage
        msg = cls(
            subject=self.subject,
            body="" if self.html_as_body else self.body,
            from_email=self.sender.value if self.sender else None,
            to=[m.value for m in self.to],
            cc=[m.value for m in self.cc],
            bcc=[m.value for m in self.bcc],
            reply_to=[m.value for m in self.reply_to],
        )
        if self.html is not None:
            if self.html_as_body:
                msg.body = self.html
                msg.content_subtype = "html"
            else:
                msg.attach_alternative(self.html, "text/html")
        if self.extra_html:
            msg.attach_alternative("<p>second</p>", "text/html")
        if self.attachment:
            msg.attach("invoice.pdf", b"%PDF-1.4", "application/pdf")
        return msg

    # What must happen.

    @property
    def recipients(self) -> list[Mailbox]:
        return [m for m in self.to + self.cc + self.bcc if m.truthy]

    def expected_recipients(self) -> list[str]:
        """Valid recipient addresses, in order, without case-insensitive duplicates."""
        seen: dict[str, str] = {}
        for mailbox in self.recipients:
            if mailbox.valid and mailbox.sent_address:
                seen.setdefault(mailbox.sent_address.lower(), mailbox.sent_address)
        return list(seen.values())

    def unsupported(self) -> bool:
        html_bodies = (self.html is not None) + self.extra_html
        return self.attachment or html_bodies > 1 or len(self.reply_to) > 1

    def invalid(self) -> bool:
        """Refused as a whole: the API would refuse a field, or a header carries a line break."""
        sender = self.sender
        if sender is not None and not (sender.valid and header_ok(sender.name, FROM_NAME_MAX)):
            return True
        if not header_ok(str(self.subject), SUBJECT_MAX):
            return True
        if self.reply_to and not self.reply_to[0].valid:
            return True
        body = "" if self.html_as_body else str(self.body)
        html = str(self.html) if self.html is not None else None
        if not api_text_ok(body) or (html is not None and not api_text_ok(html)):
            return True
        return not body.strip() and not (html and html.strip())

    def refused_recipient(self) -> bool:
        """A recipient that cannot be sent refuses the whole message, as in Django's SMTP
        backend: never sent to the others, never to a different address."""
        return any(not mailbox.valid for mailbox in self.recipients)

    def expected_from_name(self) -> str | None:
        name = self.sender.name.strip() if self.sender else "Example Shop"
        return name or None


# Strategies.

UNSTORABLE = ("\x00", "\ud800")

ANY_TEXT = st.characters(codec="utf-8")  # any code point but lone surrogates
# Text for the fields the send log stores (subject, sender, recipients).
HEADER_TEXT = ANY_TEXT
PLAIN_NAME = st.text(
    st.characters(categories=("L", "M", "Nd"), exclude_characters="\u0345"), max_size=12
)
NASTY = st.sampled_from(
    [
        c
        for c in (
            *("\r", "\n", "\r\n", "\x00", '"', ",", "<", ">", "\\", ";", ":", "@", "(", ")"),
            *("=?", "?=", "\t", "\u2028", "\x85", "\x1c", "\u200b", "\ufeff", " ", "  ", "\xa0"),
            "\ud800",
        )
    ]
)


# Hypothesis favours the first choice and small integers: the usual case goes first.
RARELY = st.sampled_from([False] * 15 + [True])


def mostly(usual, unusual, times=4):
    """``usual`` about ``times`` times as often as ``unusual``: most examples should be sent,
    or there is little left to check about the requests."""
    return st.sampled_from([True] * times + [False]).flatmap(
        lambda is_usual: usual if is_usual else unusual
    )


NAME = mostly(
    st.one_of(st.just(""), PLAIN_NAME, st.text(HEADER_TEXT, max_size=25)),
    st.one_of(
        st.lists(st.one_of(PLAIN_NAME, NASTY), max_size=6).map("".join),
        st.sampled_from([157, 156, 155, 200]).map(lambda n: "N" * n),  # around the API limit
    ),
)
ATOM = "A-Za-z0-9!#$%&'*+/=?^_`{|}~-"
LOCAL_PART = st.one_of(
    st.from_regex(rf"[{ATOM}]{{1,12}}(\.[{ATOM}]{{1,8}}){{0,2}}", fullmatch=True),
    st.sampled_from(
        [
            *("ann", "o'brien", "a+tag", "first.last", "x_y-z", "UPPER", "1234"),
            *("\u017f", "\u212aelvin"),  # long s, Kelvin sign: ASCII letters to re.IGNORECASE
            *('"john doe"', '"a@b"', '"quoted\\"escape"'),
            "r" * 250,  # 262 characters with its domain
        ]
    ),
)
DOMAIN = st.one_of(
    st.sampled_from(
        [
            *("example.com", "example.net", "Example.ORG", "sub.mail.example.co.uk", "localhost"),
            *("bücher.de", "例え.jp", "xn--mller-kva.de", "пример.рф", "[127.0.0.1]", "[::1]"),
        ]
    ),
    st.from_regex(r"[a-z0-9]([a-z0-9-]{0,8}[a-z0-9])?\.(com|org|dev|museum)", fullmatch=True),
)
RECIPIENT_ADDRESS = st.builds(lambda local, domain: f"{local}@{domain}", LOCAL_PART, DOMAIN)
BROKEN_ADDRESSES = [
    "not-an-address",
    "ann@",
    "@example.com",
    "ann@@example.com",
    "ann example@example.com",
    "ann@example..com",
    "ann@-example.com",
    "ünïcode@example.com",
    "ann@example.com, bob@example.com",
    "<>",
    "ann@example.com\r\nBcc: eve@evil.example",
    "ann@example.com\nX-Injected: yes",
    "Ann\r\n <ann@example.com>",
    "ann@exa mple.com",
    "a" * 320 + "@example.com",
    "ann\x00@example.com",
    "ann\ud800@example.com",
]
CASE_CHANGES = [str, str.upper, str.lower, str.swapcase, str.title]


def render(address: str, name: str, style: str, lazy_value: bool) -> Mailbox:
    """The address as a header value in one of the ways Django code writes them."""
    if style == "bare":
        text = address
    elif style == "angle":
        text = f"<{address}>"
    elif style == "phrase":  # "Name <addr>" written by hand, with a plain name
        text = f"{name} <{address}>" if name else address
    else:  # "quoted": properly quoted/encoded by the stdlib
        try:
            text = formataddr((name, address))
        except UnicodeError:  # formataddr wants ASCII addresses
            try:
                text = str(Address(display_name=name, addr_spec=address))
            except (ValueError, IndexError, TypeError):
                return Mailbox(address, address)  # not expressible: send it bare
    if style in ("bare", "angle"):
        name = ""
    return Mailbox(make_lazy(text) if lazy_value else text, address, name)


@st.composite
def mailboxes(draw, addresses, names=NAME):
    address = draw(addresses)
    style = draw(st.sampled_from(["bare", "angle", "phrase", "quoted", "object"]))
    if style == "object":
        name = draw(names)
        try:
            value = Address(display_name=name, addr_spec=address)
        except (ValueError, IndexError, TypeError):
            style = "bare"  # Address() refuses CR/LF and unparsable addr-specs itself
        else:
            return Mailbox(value, value.addr_spec, name)
    name = draw(PLAIN_NAME) if style == "phrase" else draw(names)
    return render(address, name, style, draw(st.booleans()))


@st.composite
def recipient_lists(draw, pool_addresses):
    """to, cc and bcc drawn from a small pool, so duplicates in different case are common."""
    pool = draw(st.lists(pool_addresses, min_size=1, max_size=4))
    same_or_other_case = st.builds(
        lambda address, change: change(address),
        st.sampled_from(pool),
        st.sampled_from(CASE_CHANGES),
    )
    entry = mailboxes(same_or_other_case)
    broken = st.sampled_from(BROKEN_ADDRESSES).map(
        lambda text: Mailbox(text, text, well_formed=False)
    )
    empty = st.sampled_from(["", make_lazy("")]).map(lambda value: Mailbox(value, ""))
    item = mostly(entry, st.one_of(broken, empty), times=6)
    to = draw(st.lists(item, min_size=draw(st.sampled_from([1, 1, 1, 0])), max_size=4))
    return to, draw(st.lists(item, max_size=3)), draw(st.lists(item, max_size=3))


def senders(domains):
    local = st.sampled_from(["shop", "no-reply", "Billing.Team", "o'reilly", "a+b"])
    address = st.builds(lambda local_part, domain: f"{local_part}@{domain}", local, domains)
    broken = st.sampled_from(
        ["shop@example.com\r\nBcc: eve@evil.example", "shop", "a@example.com, b@example.com"]
    ).map(lambda text: Mailbox(text, text, well_formed=False))
    return mostly(st.one_of(st.none(), mailboxes(address)), broken, times=8)


SUBJECT = mostly(
    st.one_of(
        st.just(""),
        st.text(HEADER_TEXT, max_size=40),
        st.sampled_from([" \t ", "\u2028", "Grüße 👋", "Ünïcödé ✓ 件名", "=?utf-8?q?x?="]),
    ),
    st.one_of(
        st.builds(
            lambda n, tail: "S" * n + tail,
            st.sampled_from([257, 256, 300]),
            st.sampled_from(["", "  "]),
        ),
        st.builds(
            lambda a, b: f"{a}\r\nBcc: eve@evil.example{b}",
            st.text(HEADER_TEXT, max_size=5),
            st.text(HEADER_TEXT, max_size=5),
        ),
        st.sampled_from(["Hi\nthere", "Hi\rthere", "nul\x00", "lone \ud800 surrogate"]),
    ),
)
HTML = st.one_of(
    st.text(ANY_TEXT, max_size=60),
    st.sampled_from(
        [
            *("<p>Hello <b>there</b></p>", "<br>", "<img src='x.png'>", "   ", "<p>\x00</p>"),
            *("<script>x</script>", "&#0;&#xd800;", "<a href='https://e.example'>link</a>"),
            "<p>lone \ud800 surrogate</p>",
        ]
    ),
)
BODY = mostly(
    st.text(ANY_TEXT, min_size=1, max_size=80),
    st.sampled_from(["", " ", "\n\n", "\t", "\u2028", "with \x00 nul", "lone \ud800 surrogate"]),
)


def huge_bodies(*sizes: int):
    # Mostly ASCII, so that even the biggest stays under the sandbox's 10 MB request limit.
    return st.sampled_from(sizes).map(
        lambda n: ("Lorem ipsum dolor sit amet, é 👋\n" * (n // 32 + 1))[:n]
    )


@st.composite
def cases(draw, sender_domains, recipient_addresses, huge_body):
    to, cc, bcc = draw(recipient_lists(recipient_addresses))
    body = draw(mostly(BODY, huge_body, times=6))
    html = draw(st.one_of(st.none(), st.none(), HTML))
    subject = draw(SUBJECT)
    if draw(st.booleans()):
        subject, body = make_lazy(subject), make_lazy(body)
    if html is not None and draw(st.booleans()):
        html = make_lazy(html)
    return Case(
        sender=draw(senders(sender_domains)),
        subject=subject,
        body=body,
        html=html,
        html_as_body=html is not None and draw(st.booleans()),
        extra_html=html is not None and draw(RARELY),
        attachment=draw(RARELY),
        reply_to=draw(
            mostly(
                st.lists(mailboxes(RECIPIENT_ADDRESS), max_size=1),
                st.lists(mailboxes(RECIPIENT_ADDRESS), min_size=2, max_size=2),
                times=12,
            )
        ),
        to=to,
        cc=cc,
        bcc=bcc,
        log_content=draw(st.booleans()),
    )


ANY_SENDER_DOMAIN = st.sampled_from(["example.com", "EXAMPLE.COM", "bücher.de", "mail.shop.dev"])
# To the sandbox only its verified domains: any other is a 403, not what this is about.
SANDBOX_SENDER_DOMAIN = st.sampled_from(["example.com", "Example.COM", "nospf.example.com"])
SANDBOX_RECIPIENT = mostly(RECIPIENT_ADDRESS, st.just(SUPPRESSED_EMAIL))


# The checks.


def check_outcome(
    case: Case, outcome: Any, payloads: list[dict[str, Any]], queued: bool = False
) -> None:
    """``outcome`` is the library exception raised, or the count send_messages returned."""
    note = f"outcome={outcome!r}"
    if not any(m.truthy for m in case.recipients):
        assert outcome == 0 and payloads == [], note  # Django's rule: nothing to send
        return
    if case.unsupported():
        assert isinstance(outcome, SendFleetUnsupportedFeature), note
        assert payloads == []
        return
    if case.invalid():
        assert isinstance(outcome, SendFleetInvalidMessage), note
        assert payloads == []
        return
    if case.refused_recipient():
        assert isinstance(outcome, SendFleetInvalidAddress), note
        assert isinstance(outcome, ValueError)
        assert outcome.field in ("to", "cc", "bcc"), note
        assert payloads == []
        return
    expected = case.expected_recipients()
    # One request per distinct (case-insensitive) valid recipient, none for the others.
    assert [p["to"] for p in payloads] == expected, note
    all_suppressed = {address.lower() for address in expected} == {SUPPRESSED_EMAIL}
    if not expected or (all_suppressed and not queued):
        assert isinstance(outcome, SendFleetRecipientsRefused), note
        return
    assert outcome == 1, note
    for payload in payloads:
        # Compared with whitespace runs folded: the email package folds them in encoded words.
        assert squash(payload.get("from_name")) == squash(case.expected_from_name())
        if case.reply_to:
            assert payload["reply_to"] == case.reply_to[0].sent_address
        subject = str(case.subject)
        assert payload.get("subject", "") == subject.strip()  # trimmed, as the API trims it
        html = str(case.html) if case.html is not None else ""
        if html.strip():
            assert payload["html"] == html
        else:
            assert "html" not in payload
        if not case.html_as_body and str(case.body).strip():
            assert payload["message"] == str(case.body)


def squash(text: str | None) -> str:
    return " ".join((text or "").split())


def check_wire_payload(payload: dict[str, Any]) -> None:
    """Encoded as requests encodes ``json=``, parsed and validated as the API does."""
    body = json.dumps(payload, allow_nan=False).encode("utf-8")
    _cleaned, errors = validate_send_payload(parse_json_body(body))
    assert errors == {}, (errors, payload)


def storable_problems(row: SendLog) -> list[str]:
    """Values a database would refuse: longer than the column, NUL (PostgreSQL), surrogates."""
    problems = []
    for field_ in SendLog._meta.concrete_fields:
        value = getattr(row, field_.attname)
        if not isinstance(value, str):
            continue
        if field_.max_length and len(value) > field_.max_length:
            problems.append(f"{field_.name}: {len(value)} > {field_.max_length} characters")
        if any(c in value for c in UNSTORABLE) or not api_text_ok(value):
            problems.append(f"{field_.name}: NUL or lone surrogate in {value!r}")
    return problems


def check_log(case: Case) -> None:
    """One row per recipient, each storable: sent, refused or invalid."""
    rows = list(SendLog.objects.all())
    for row in rows:
        assert storable_problems(row) == []
    given = case.recipients
    if case.unsupported() or case.invalid() or case.refused_recipient():
        assert len(rows) == len(given)
    else:
        assert len(rows) == len(case.expected_recipients())


def send(backend_class: type[EmailBackend], case: Case) -> Any:
    try:
        outcome = backend_class().send_messages([case.message()])
    except LOCAL_ERRORS as error:
        outcome = error
    # Shown by --hypothesis-show-statistics: how the examples were spread over the outcomes.
    event("outcome", type(outcome).__name__ if isinstance(outcome, Exception) else outcome)
    event("body", "huge" if len(str(case.body)) >= 100_000 else "small")
    return outcome


def fresh_example(sendfleet_settings, case: Case) -> None:
    """State shared by a test's examples, put back to the start of each example."""
    sendfleet_settings["LOG_CONTENT"] = case.log_content
    SendLog.objects.all().delete()
    Suppression.objects.all().delete()


# Many examples: the real EmailBackend, its HTTP call answered by the API's validator.


@pytest.fixture
def validated_posts(monkeypatch):
    """Every payload the client would post, checked by the sandbox's copy of the API's
    validator (after a JSON round trip) and answered as accepted."""
    posted: list[dict[str, Any]] = []

    def attempt(self, payload, *, attempt=1):
        check_wire_payload(payload)
        posted.append(payload)
        return client_module.Accepted(
            message_id=str(uuid.uuid4()),
            mode="shared",
            warnings=[],
            response=None,
            attempts=attempt,
        )

    monkeypatch.setattr(client_module.SendFleetClient, "attempt", attempt)
    return posted


@settings(max_examples=examples(300), **COMMON)
@given(case=cases(ANY_SENDER_DOMAIN, RECIPIENT_ADDRESS, huge_bodies(100_000, 300_000)))
def test_every_message_becomes_valid_payloads_or_a_local_refusal(
    case, validated_posts, sendfleet_settings
):
    fresh_example(sendfleet_settings, case)
    validated_posts.clear()
    outcome = send(EmailBackend, case)
    check_outcome(case, outcome, list(validated_posts))
    check_log(case)


# A bounded number through the real client to the sandbox: it never answers 400.


@settings(max_examples=examples(40), **COMMON)
@given(case=cases(SANDBOX_SENDER_DOMAIN, SANDBOX_RECIPIENT, huge_bodies(1_000_000, 3_000_000)))
def test_over_http_the_api_never_refuses_what_the_backend_sends(case, sandbox, sendfleet_settings):
    sandbox.set_rate_limit(1_000_000, 60)
    sandbox.reset()
    fresh_example(sendfleet_settings, case)
    outcome = send(EmailBackend, case)
    assert [r.status for r in sandbox.requests if r.status != 200] == [
        422 for r in sandbox.requests if r.payload["to"].lower() == SUPPRESSED_EMAIL
    ]
    check_outcome(case, outcome, [r.payload for r in sandbox.requests])
    check_log(case)


@settings(max_examples=examples(25), **COMMON)
@given(case=cases(SANDBOX_SENDER_DOMAIN, SANDBOX_RECIPIENT, huge_bodies(200_000)))
def test_over_http_the_queued_backend_sends_the_same_requests(
    case, sandbox, sendfleet_settings, django_capture_on_commit_callbacks
):
    sandbox.set_rate_limit(1_000_000, 60)
    sandbox.reset()
    fresh_example(sendfleet_settings, case)
    with django_capture_on_commit_callbacks(execute=True):
        outcome = send(QueuedEmailBackend, case)
    assert [r.status for r in sandbox.requests if r.status != 200] == [
        422 for r in sandbox.requests if r.payload["to"].lower() == SUPPRESSED_EMAIL
    ]
    check_outcome(case, outcome, [r.payload for r in sandbox.requests], queued=True)
    check_log(case)
    # The worker finished every row it was given.
    assert not SendLog.objects.filter(status__in=["pending", "sending"]).exists()


# Library bugs the properties above found (since fixed), pinned as examples.


def test_a_lone_surrogate_in_the_subject_is_refused_with_the_library_error(sandbox):
    message = EmailMessage("lone \ud800 surrogate", "Body", "shop@example.com", ["a@example.com"])
    with pytest.raises(SendFleetInvalidMessage):
        EmailBackend().send_messages([message])
    assert sandbox.requests == []
    [row] = SendLog.objects.all()
    assert row.error_code == "invalid_message" and storable_problems(row) == []


def test_an_unstorable_invalid_recipient_is_refused_and_logged_storably(sandbox):
    message = EmailMessage("Hi", "Body", "shop@example.com", ["ann@example.com", "b\ud800@x.org"])
    with pytest.raises(SendFleetInvalidAddress):
        EmailBackend().send_messages([message])
    assert sandbox.requests == []
    rows = SendLog.objects.all()
    assert sorted((r.status, r.error_code) for r in rows) == [
        ("failed", "invalid_address"),
        ("failed", "invalid_address"),
    ]
    assert [storable_problems(row) for row in rows] == [[], []]


def test_a_nul_in_a_refused_subject_is_not_stored(sandbox):
    message = EmailMessage("nul\x00subject", "Body", "shop@example.com", ["a@example.com"])
    with pytest.raises(SendFleetInvalidMessage):
        EmailBackend().send_messages([message])
    [row] = SendLog.objects.all()
    assert storable_problems(row) == []


def test_logged_content_fits_its_columns(sandbox, sendfleet_settings):
    sendfleet_settings["LOG_CONTENT"] = True
    padded_name = "   " + "N" * 150 + ", Inc.   "  # 156 characters once stripped
    long_reply_to = "r" * 250 + "@example.com"  # a valid address of 262 characters
    message = EmailMessage(
        "Hi",
        "Body",
        formataddr((padded_name, "shop@example.com")),
        ["ann@example.com"],
        reply_to=[long_reply_to],
    )
    assert EmailBackend().send_messages([message]) == 1
    [request] = sandbox.accepted
    assert request.payload["reply_to"] == long_reply_to
    assert storable_problems(SendLog.objects.get()) == []


@pytest.mark.parametrize(
    "value", ["=?utf-8?q?bob?=@example.com", "Bob <=?utf-8?q?bob?=@example.com>"]
)
def test_an_encoded_word_local_part_is_refused_not_sent_to_another_address(sandbox, value):
    # Django decodes the local part and sends to bob@example.com; sending to the encoded form
    # would be a different address (issue 10): refused instead, as Django 6.1's SMTP backend does.
    message = EmailMessage("Hi", "Body", None, [value, "ann@example.com"])
    with pytest.raises(SendFleetInvalidAddress):
        EmailBackend().send_messages([message])
    assert sandbox.requests == []
    assert message.anymail_status.recipients[value].status == "invalid"
