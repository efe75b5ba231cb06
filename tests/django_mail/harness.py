"""Test classes that run Django's email-backend tests against django-sendfleet's EmailBackend.

Django's ``tests/mail/`` defines its backend tests once, as a mixin each backend subclasses
with a way to read what it sent (``get_mailbox_content()``, ``flush_mailbox()``): Django 5.2's
``BaseEmailBackendTests`` (the backend named by ``email_backend``), Django 6.0+'s
``SharedEmailBackendTests`` (``backend_class``). The classes built here are such subclasses
for django-sendfleet: each test sends to a fresh in-process sandbox and reads back what it
accepted (``mailbox.py``). A few of Django's SMTP backend tests check what any backend must
do with a message's addresses (the envelope); they are run too, with the SMTP backend's class
replaced by ours. The tests that cannot apply to an API with no such field are in
``cannot_apply.py``, with the exception that refuses each.
"""

from __future__ import annotations

import functools
import unittest
from collections.abc import Callable
from email.utils import parseaddr
from typing import Any
from unittest import mock

import django
from django.core.mail import EmailMessage
from django.core.mail.backends import smtp
from django.test import TestCase, override_settings

from django_sendfleet import signals
from django_sendfleet.backends import EmailBackend
from django_sendfleet.sandbox import SANDBOX_API_KEY, InProcessSandbox

from . import mailbox, source
from .cannot_apply import CANNOT_APPLY, PENDING, WITH_BODY, CannotApply

BACKEND = f"{EmailBackend.__module__}.{EmailBackend.__qualname__}"

#: Sender domains of Django's tests (IDNA-encoded as sent), verified in the sandbox's account as
#: a project verifies its own. example.com is verified in the ready-made world already.
SENDER_DOMAINS = ("xn--4ca9at.com", "xn--discusso-xza.example.org", "xn--fa-hia.example.com")

#: Tests of other Django test classes that check what any backend must do, run as ours.
#: From SMTPBackendTests, those about what is sent where rather than about SMTP: no request
#: without messages or recipients, invalid addresses refused, IDN domains encoded, never
#: re-encoded. From Django 6.1's SendMailTests and MailAdminsAndManagersTests (5.2 had them in
#: its backend tests), those that read the sent mail through get_outbox_message() alone.
ADOPTED_TESTS: dict[str, dict[str, tuple[str, ...]]] = {
    "5.2": {
        "SMTPBackendTests": (
            "test_send_messages_empty_list",
            "test_send_messages_zero_sent",
            "test_avoids_sending_to_invalid_addresses",
            "test_encodes_idna_in_smtp_commands",
            "test_does_not_reencode_idna",
        ),
    },
    "6.1": {
        "SMTPBackendTests": (
            # Our backend keeps fail_silently, as the SMTP backend does: its variant of the test.
            "test_fail_silently_arg_accepted",
            "test_send_messages_with_empty_list_does_not_open_connection",
            "test_send_messages_zero_sent",
            "test_avoids_sending_to_invalid_addresses",
            "test_encodes_idna_in_smtp_commands",
            "test_does_not_reencode_idna",
            "test_rejects_non_ascii_local_part",
        ),
        "SendMailTests": (
            "test_plaintext_send_mail",
            "test_html_send_mail",
            "test_returns_count_of_messages_sent",
            "test_idn_addresses",
            "test_lazy_addresses",
        ),
        "MailAdminsAndManagersTests": ("test_html_mail_managers", "test_html_mail_admins"),
    },
}


def django_series() -> str:
    return "{}.{}".format(*django.VERSION[:2])


class SandboxMailbox:
    """Each test sends through the real backend to a fresh in-process sandbox; the mailbox is
    what the sandbox accepted. Needs the database: the send log and the suppression list."""

    parse: Callable[[bytes], Any]  # the Django tests' message_from_bytes

    def setUp(self) -> None:
        super().setUp()  # type: ignore[misc]
        self.sandbox = InProcessSandbox().start()
        self.addCleanup(self.sandbox.stop)  # type: ignore[attr-defined]
        for domain in SENDER_DOMAINS:
            self.sandbox.add_domain(domain)
        sendfleet = {"API_KEY": SANDBOX_API_KEY, "API_URL": self.sandbox.url, "RATE_LIMIT": None}
        if django.VERSION >= (6, 1):  # send_mail() and mail_admins() use the default mailer
            settings = override_settings(
                SENDFLEET=sendfleet, MAILERS={"default": {"BACKEND": BACKEND}}
            )
        else:  # BaseEmailBackendTests sets EMAIL_BACKEND
            settings = override_settings(SENDFLEET=sendfleet)
        settings.enable()
        self.addCleanup(settings.disable)  # type: ignore[attr-defined]
        # Every message the backend finished with, and its outcome (message.anymail_status).
        self.sent: list[tuple[EmailMessage, Any]] = []
        signals.post_send.connect(self._record_sent)
        self.addCleanup(signals.post_send.disconnect, self._record_sent)  # type: ignore[attr-defined]

    def _record_sent(self, sender: type, message: EmailMessage, status: Any, **kwargs: Any) -> None:
        self.sent.append((message, status))

    def get_mailbox_content(self) -> list[Any]:
        return [
            mailbox.message_from_payload(payload, type(self).parse)
            for payload in self.sandbox.payloads
        ]

    def get_outbox_message(self, index: int = 0, expected_count: int | None = 1) -> Any:
        """Django 6.1's reading of the locmem outbox (MailTestsMixin), from the mailbox."""
        mailbox = self.get_mailbox_content()
        if expected_count is not None:
            self.assertEqual(len(mailbox), expected_count)  # type: ignore[attr-defined]
        else:
            self.assertGreater(len(mailbox), index)  # type: ignore[attr-defined]
        return mailbox[index]

    def flush_mailbox(self) -> None:
        self.sandbox.reset()

    def get_smtp_envelopes(self) -> list[dict[str, Any]]:
        return mailbox.envelopes(self.sandbox.payloads)


def build_test_classes() -> dict[str, type]:
    """The test classes for the installed Django, by name."""
    series = django_series()
    source.load(source.mail_tests_dir())
    tests_module = source.module("tests")
    modules = [tests_module]
    if _has_module("test_backends"):  # Django 6.0+
        modules.insert(0, source.module("test_backends"))
        shared = modules[0].SharedEmailBackendTests
        attrs: dict[str, Any] = {"backend_class": EmailBackend}
        adopt = _unchanged
    else:  # Django 5.2: the backend tests are in tests.py, the backend is a setting
        shared = tests_module.BaseEmailBackendTests
        attrs = {"email_backend": BACKEND}
        adopt = _with_our_backend_as_smtp
    attrs["parse"] = staticmethod(tests_module.message_from_bytes)
    tests = {name: getattr(shared, name) for name in dir(shared) if name.startswith("test_")}
    for class_name, names in ADOPTED_TESTS[series].items():
        [source_class] = [vars(m)[class_name] for m in modules if class_name in vars(m)]
        tests.update({name: adopt(vars(source_class)[name]) for name in names})
    rows = [row for row in CANNOT_APPLY.values() if series in row.django]
    for row in rows:
        if row.with_body:
            tests[row.test + WITH_BODY] = _with_a_body(tests[row.test])
    for row in rows:
        if row.test not in tests:
            raise LookupError(f"cannot_apply.py: Django {series}'s tests have no {row.test}")
        tests[row.test] = _refused(tests[row.test], row)
    for name, (pending_series, _why) in PENDING.items():
        if series in pending_series:
            tests[name] = unittest.expectedFailure(tests[name])
    cls = type("DjangoMailBackendTests", (SandboxMailbox, shared, TestCase), attrs | tests)
    cls.__module__ = __name__.rpartition(".")[0] + ".test_django_mail"
    return {cls.__name__: cls}


def _has_module(name: str) -> bool:
    try:
        source.module(name)
    except ModuleNotFoundError:
        return False
    return True


def _unchanged(test: Callable[..., None]) -> Callable[..., None]:
    return test


def _with_our_backend_as_smtp(test: Callable[..., None]) -> Callable[..., None]:
    """Django 5.2's SMTP tests construct ``smtp.EmailBackend()`` themselves: make it ours."""

    @functools.wraps(test)
    def run(self: Any) -> None:
        with mock.patch.object(smtp, "EmailBackend", EmailBackend):
            test(self)

    return run


#: The body ``_with_a_body`` gives a message that has none.
FILLER_BODY = "A body: the API requires one."


def _with_a_body(test: Callable[..., None]) -> Callable[..., None]:
    """The test, unchanged, but every message it makes without a body gets ``FILLER_BODY``."""
    original_init = EmailMessage.__init__

    def init(message: EmailMessage, *args: Any, **kwargs: Any) -> None:
        original_init(message, *args, **kwargs)
        if not str(message.body or "").strip():
            message.body = FILLER_BODY

    @functools.wraps(test)
    def run(self: Any) -> None:
        with mock.patch.object(EmailMessage, "__init__", init):
            test(self)

    run.__name__ = test.__name__ + WITH_BODY
    return run


def _refused(test: Callable[..., None], row: CannotApply) -> Callable[..., None]:
    """Run the test; it must fail as its row says (the message refused with the named
    exception, or the test's own assertion seeing the documented loss), then it is reported
    as skipped with the reason."""

    @functools.wraps(test)
    def run(self: Any) -> None:
        # Subtests would record the failure and go on: let the first one out.
        with mock.patch.object(self, "subTest", _no_subtest):
            try:
                test(self)
            except Exception as error:  # compared with the row below
                failure = error
            else:
                self.fail(f"{row.test} passes now: remove it from cannot_apply.py and the docs")
        if row.refused_by is None:
            if not isinstance(failure, self.failureException):
                raise failure
            LOSS_CHECKS[row.loss](self)  # type: ignore[index]
            seen = str(failure).splitlines()[0]  # its first line: the rest may be whole emails
            self.skipTest(f"cannot apply: {row.reason} Loses the {row.loss}: {seen}")
        refusal = _in_chain(failure, row.refused_by)
        if refusal is None or row.detail not in str(refusal):
            raise AssertionError(
                f"{row.test}: expected {row.refused_by.__name__} naming {row.detail!r} "
                f"({row.reason})"
            ) from failure
        self.skipTest(f"cannot apply: {row.reason} Refused: {type(refusal).__name__}: {refusal}")

    return run


def _in_chain(error: BaseException, wanted: type[Exception]) -> BaseException | None:
    """``error`` or the exception it was raised while handling (an assertRaises that caught
    the refusal and then found the wrong message), if one is a ``wanted``."""
    seen: BaseException | None = error
    while seen is not None:
        if isinstance(seen, wanted):
            return seen
        seen = seen.__cause__ or seen.__context__
    return None


def _check_cc_loss(case: Any) -> None:
    """Each cc address of each message sent got a copy of its own, To it."""
    accepted = {str(payload["to"]).lower() for payload in case.sandbox.payloads}
    cc = [value for message, _status in case.sent for value in message.cc if value]
    case.assertTrue(cc, "the test sent no cc address")
    for value in cc:
        case.assertIn(_as_sent(value).lower(), accepted, f"cc {value!r} was dropped")


def _as_sent(value: Any) -> str:
    """A valid address as the API takes it: bare, the domain IDNA-encoded."""
    local_part, _, domain = parseaddr(str(value))[1].rpartition("@")
    return f"{local_part}@{domain.encode('idna').decode('ascii')}"


LOSS_CHECKS: dict[str, Callable[[Any], None]] = {"cc": _check_cc_loss}


class _no_subtest:
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        pass

    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None
