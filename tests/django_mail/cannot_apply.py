"""The Django email-backend tests that cannot apply to SendFleet's API, and what refuses each.

One table, read by the harness (each listed test must fail exactly as its row says, then it is
reported as skipped with the reason) and by the docs: the table in docs/django-mail-tests.md is
rendered from it. After changing a row, rewrite the docs' table:

    python -m tests.django_mail.cannot_apply

(tests/django_mail/test_docs_table.py fails while the two differ.)
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass
from pathlib import Path

from django_sendfleet.exceptions import (
    SendFleetInvalidAddress,
    SendFleetInvalidMessage,
    SendFleetUnsupportedFeature,
)

#: What the API cannot carry, so a message loses it on the way: sent, not refused.
#: docs/sending.md documents both.
LOSSES = {
    "cc": "The API has no cc field: each cc address gets its own copy, addressed To it, and no "
    "copy carries a Cc header.",
    "recipient display names": "The API's `to` is a bare address: a recipient's display name "
    "is not sent.",
}


@dataclass(frozen=True)
class CannotApply:
    """A Django test that cannot pass against the API, and how it fails instead."""

    #: The test method's name in Django's tests/mail, or ``<name>_with_body`` for the run of
    #: a ``with_body`` test with a body.
    test: str
    django: tuple[str, ...]  # the Django series whose tests/mail has it
    reason: str  # why (Markdown, one sentence)
    #: The exception our backend refuses the message with; None for a message that is sent
    #: with a documented loss (``loss``), which the test's own assertion then sees.
    refused_by: type[Exception] | None
    #: Text the refusal's message contains (the field or feature refused).
    detail: str = ""
    loss: str | None = None  # a key of LOSSES
    #: The test's messages have no body, which the API requires: the harness also runs it as
    #: ``<test>_with_body``, its messages given one, so the rest of the test still checks us.
    with_body: bool = False


WITH_BODY = "_with_body"
NO_BODY = "Its messages have no body; the API requires a non-blank `message`."
NO_DOMAIN = "Its addresses (`tester`, `django`...) have no domain; the API's `from_email` and `to`"
NO_DOMAIN += " take email addresses."

_ROWS = [
    CannotApply(
        "test_send_many", ("5.2", "6.1"), NO_BODY, SendFleetInvalidMessage, "body", with_body=True
    ),
    CannotApply(
        "test_send_verbose_name", ("5.2",), NO_BODY, SendFleetInvalidMessage, "body", with_body=True
    ),
    CannotApply(
        "test_does_not_reencode_idna",
        ("5.2", "6.1"),
        NO_BODY,
        SendFleetInvalidMessage,
        "body",
        with_body=True,
    ),
    CannotApply(
        "test_idn_send",
        ("5.2",),
        "Its second message has no body; the API requires a non-blank `message`.",
        SendFleetInvalidMessage,
        "body",
        with_body=True,
    ),
    CannotApply(
        "test_idn_send_with_body",
        ("5.2",),
        "Its second message has a cc address and the test reads its Cc header (the first "
        "message, from and to an IDN domain, passes).",
        None,
        loss="cc",
    ),
    CannotApply(
        "test_encodes_idna_in_smtp_commands",
        ("5.2", "6.1"),
        "It sets `From` and `To` headers that differ from the envelope; the API has no header "
        "fields.",
        SendFleetUnsupportedFeature,
        "custom headers (From, To)",
    ),
    CannotApply(
        "test_recipient_without_domain", ("5.2",), NO_DOMAIN, SendFleetInvalidAddress, "tester"
    ),
    CannotApply(
        "test_lazy_addresses", ("5.2", "6.1"), NO_DOMAIN, SendFleetInvalidAddress, "tester"
    ),
    CannotApply(
        "test_message_cc_header",
        ("5.2",),
        "It reads the Cc header of the one message sent.",
        None,
        loss="cc",
    ),
]
CANNOT_APPLY: dict[str, CannotApply] = {row.test: row for row in _ROWS}

#: Tests (or ``_with_body`` variants) that fail today and must pass once the backend is fixed:
#: run as expected failures, so the day they pass the harness says to remove them from here.
#: Not in the docs. Name -> (Django series, what they wait for).
PENDING: dict[str, tuple[tuple[str, ...], str]] = {}


def render_table() -> str:
    """The docs' table and the losses it links to, in Markdown."""
    lines = [
        "| Django test | Django | Why it cannot apply | What our backend does "
        "| Also run with a body |",
        "|---|---|---|---|---|",
    ]
    for row in _ROWS:
        if row.refused_by is not None:
            outcome = f"refuses the message: `{row.refused_by.__name__}`"
        else:
            outcome = f"sends it; [loses the {row.loss}](#what-a-message-loses)"
        lines.append(
            f"| {_test_name(row.test)} | {', '.join(row.django)} | {row.reason} | {outcome} "
            f"| {'yes' if row.with_body else ''} |"
        )
    lines += ["", "### What a message loses", ""]
    lines += [f"- **{loss.capitalize()}.** {text}" for loss, text in LOSSES.items()]
    return "\n".join(lines) + "\n"


def _test_name(test: str) -> str:
    if test.endswith(WITH_BODY):
        return f"`{test.removesuffix(WITH_BODY)}`, run with a body"
    return f"`{test}`"


DOCS_PAGE = Path(__file__).resolve().parents[2] / "docs" / "django-mail-tests.md"
START = "<!-- cannot-apply table: rendered from tests/django_mail/cannot_apply.py -->\n"
END = "<!-- end of the cannot-apply table -->\n"
_TABLE = re.compile(re.escape(START) + r"(.*?)" + re.escape(END), re.DOTALL)


def table_in_docs(text: str) -> str:
    found = _TABLE.search(text)
    if found is None:
        raise LookupError(f"{DOCS_PAGE.name} has no table between {START.strip()} and its end.")
    return found.group(1)


def write_docs_table() -> None:
    text = DOCS_PAGE.read_text()
    table_in_docs(text)  # the markers are there
    DOCS_PAGE.write_text(_TABLE.sub(lambda _: START + render_table() + END, text))


if __name__ == "__main__":
    write_docs_table()
    sys.stdout.write(f"wrote the table in {DOCS_PAGE}\n")
