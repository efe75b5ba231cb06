"""django-anymail's ``tags``, ``metadata`` and ``merge_metadata``, done locally (issue 22): kept
on each recipient's send log row (never sent: the API has no field), given to the signals, and
set on every tracking event of the send from its row."""

from contextlib import nullcontext

import pytest
from django.core.mail import EmailMultiAlternatives
from django.urls import reverse

from django_sendfleet import signals
from django_sendfleet.backends import EmailBackend, QueuedEmailBackend
from django_sendfleet.exceptions import (
    SendFleetForbidden,
    SendFleetInvalidMessage,
    SendFleetRecipientsRefused,
)
from django_sendfleet.models import SendLog
from django_sendfleet.sandbox import SUPPRESSED_EMAIL, UNVERIFIED_DOMAIN

pytestmark = [pytest.mark.usefixtures("sendfleet_settings"), pytest.mark.django_db]

SENDER = "Shop <shop@example.com>"
SECRET = "tags-secret"


def message(to=("ann@example.com",), sender=SENDER, **attributes):
    msg = EmailMultiAlternatives("Welcome", "Hello", sender, list(to))
    for name, value in attributes.items():
        setattr(msg, name, value)
    return msg


@pytest.fixture(params=["EmailBackend", "QueuedEmailBackend"])
def send(request, django_capture_on_commit_callbacks):
    """Send through either backend; the queued one's task runs as its transaction commits."""
    backend_class = {"EmailBackend": EmailBackend, "QueuedEmailBackend": QueuedEmailBackend}[
        request.param
    ]

    def run(*messages, **options):
        with django_capture_on_commit_callbacks(execute=True):
            return backend_class(**options).send_messages(list(messages))

    run.backend_class = backend_class
    return run


def raised_by(send, exception):
    """The synchronous backend raises a send's failure; the queued one's worker records it."""
    return pytest.raises(exception) if send.backend_class is EmailBackend else nullcontext()


@pytest.fixture
def received():
    """Every signal's keyword arguments, by signal name."""
    seen = {}
    connected = []
    for name in ("pre_send", "post_send", "send_failed", "send_forbidden", "recipient_suppressed"):
        signal = getattr(signals, name)

        def receiver(sender, _name=name, **kwargs):
            seen.setdefault(_name, []).append(kwargs)

        signal.connect(receiver, weak=False)
        connected.append((signal, receiver))
    yield seen
    for signal, receiver in connected:
        signal.disconnect(receiver)


def test_tags_and_metadata_are_kept_on_every_row_and_never_sent(sandbox, send):
    msg = message(
        to=["ann@example.com", "bob@example.com"],
        tags=["welcome", "onboarding"],
        metadata={"user_id": 42, "plan": "pro", "trial": True, "score": 1.5, "ref": None},
    )
    assert send(msg) == 1
    rows = list(SendLog.objects.order_by("pk"))
    assert [row.status for row in rows] == ["queued", "queued"]
    for row in rows:
        assert row.tags == ["welcome", "onboarding"]
        assert row.metadata == {
            "user_id": 42,
            "plan": "pro",
            "trial": True,
            "score": 1.5,
            "ref": None,
        }
    assert len(sandbox.requests) == 2
    for request in sandbox.requests:
        assert set(request.payload) == {"to", "from_email", "from_name", "subject", "message"}


def test_merge_metadata_is_per_recipient_and_wins_over_metadata(sandbox, send):
    msg = message(
        to=["Ann <Ann@Example.com>", "bob@example.com", "carol@example.com"],
        metadata={"campaign": "spring", "user_id": 0},
        merge_metadata={
            "ann@example.com": {"user_id": 1},
            "Bob <bob@example.com>": {"user_id": 2, "campaign": "bob's own"},
        },
    )
    send(msg)
    metadata = dict(SendLog.objects.values_list("recipient", "metadata"))
    assert metadata == {
        "Ann@Example.com": {"campaign": "spring", "user_id": 1},
        "bob@example.com": {"campaign": "bob's own", "user_id": 2},
        "carol@example.com": {"campaign": "spring", "user_id": 0},
    }


def test_a_message_without_them_gives_an_empty_list_and_dict(sandbox, send):
    send(message())
    row = SendLog.objects.get()
    assert (row.tags, row.metadata) == ([], {})


@pytest.mark.parametrize(
    ("attributes", "says"),
    [
        ({"tags": "welcome"}, "tags: a list of strings"),
        ({"tags": ["ok", 3]}, "tags: 3 is not a string"),
        ({"tags": [" "]}, "tags: a tag may not be blank"),
        ({"tags": ["x" * 129]}, "tags: a tag of 129 characters"),
        ({"tags": [str(i) for i in range(51)]}, "tags: 51 tags"),
        ({"metadata": ["a"]}, "metadata: a dict"),
        ({"metadata": {"nested": {"a": 1}}}, "metadata['nested']: a dict"),
        ({"metadata": {"list": [1]}}, "metadata['list']: a list"),
        ({"metadata": {1: "a"}}, "metadata: the key 1"),
        ({"metadata": {"nul": "a\x00b"}}, "NUL characters cannot be stored"),
        ({"metadata": {"nan": float("nan")}}, "is not valid JSON"),
        ({"metadata": {"huge": 2**64}}, "an integer beyond 64 bits"),
        ({"metadata": {"lone": "\ud800"}}, "lone surrogates cannot be stored"),
        ({"metadata": {"quote": '"' * 1000 + "\x01" * 500}}, "metadata: 5013 characters as JSON"),
        ({"metadata": {"big": "x" * 5000}}, "metadata: 5011 characters as JSON"),
        (
            {
                "metadata": {"a": "x" * 2500},
                "merge_metadata": {"ann@example.com": {"b": "y" * 2500}},
            },
            "merged over metadata",
        ),
        ({"merge_metadata": {"ann@example.com": "x"}}, "merge_metadata['ann@example.com']"),
        ({"merge_metadata": {"not an address": {"a": 1}}}, "merge_metadata['not an address']"),
    ],
)
def test_what_cannot_be_stored_is_refused_before_any_request(sandbox, send, attributes, says):
    with pytest.raises(SendFleetInvalidMessage, match=says.replace("[", r"\[").replace("(", r"\(")):
        send(message(**attributes))
    assert sandbox.requests == []
    assert not SendLog.objects.filter(status__in=["pending", "queued"]).exists()


def test_the_bounds_are_the_documented_ones():
    from django_sendfleet.message import tags as tags_module

    assert (tags_module.MAX_TAGS, tags_module.MAX_TAG_LENGTH) == (50, 128)
    assert tags_module.MAX_METADATA_CHARACTERS == 4000


def test_pre_send_and_post_send_carry_them(sandbox, send, received):
    send(message(tags=["welcome"], metadata={"user_id": 7}))
    labels = (["welcome"], {"user_id": 7})
    assert [(k["tags"], k["metadata"]) for k in received["pre_send"]] == [labels]
    # The queued backend's post_send: once queued, once sent by the worker (from the row).
    times = 2 if send.backend_class is QueuedEmailBackend else 1
    assert [(k["tags"], k["metadata"]) for k in received["post_send"]] == [labels] * times
    assert [k["status"].status for k in received["post_send"]][-1] == {"queued"}
    if send.backend_class is QueuedEmailBackend:  # the worker's message, rebuilt from the row
        assert (
            received["post_send"][-1]["message"].tags,
            received["post_send"][-1]["message"].metadata,
        ) == labels


def test_failure_signals_carry_the_recipients_metadata(sandbox, send, received):
    msg = message(
        sender=f"shop@{UNVERIFIED_DOMAIN}",
        tags=["receipt"],
        metadata={"order": 1},
        merge_metadata={"ann@example.com": {"user_id": 5}},
    )
    with raised_by(send, SendFleetForbidden):  # the worker's failure is not the caller's
        send(msg)
    [forbidden] = received["send_forbidden"]
    [failed] = received["send_failed"]
    for kwargs in (forbidden, failed):
        assert kwargs["tags"] == ["receipt"]
        assert kwargs["metadata"] == {"order": 1, "user_id": 5}


def test_recipient_suppressed_carries_them(sandbox, send, received):
    msg = message(to=[SUPPRESSED_EMAIL], tags=["news"], metadata={"list": "weekly"})
    with raised_by(send, SendFleetRecipientsRefused):
        send(msg)
    [suppressed] = received["recipient_suppressed"]
    assert (suppressed["tags"], suppressed["metadata"]) == (["news"], {"list": "weekly"})


@pytest.fixture
def tracked(sandbox, sendfleet_settings):
    sendfleet_settings["WEBHOOK_SECRET"] = SECRET
    sandbox.configure_webhook(reverse("sendfleet-webhook"), SECRET)
    events = []

    def receiver(sender, event, **kwargs):
        events.append(event)

    signals.tracking.connect(receiver, weak=False)
    yield events
    signals.tracking.disconnect(receiver)


def test_every_tracking_event_carries_the_rows_tags_and_metadata(sandbox, send, tracked):
    msg = message(
        to=["ann@example.com", "bounce@example.com"],
        tags=["welcome"],
        metadata={"campaign": "spring"},
        merge_metadata={"bounce@example.com": {"user_id": 2}},
    )
    send(msg)
    sandbox.deliver_webhooks()
    seen = {(e.recipient, e.event_type): (e.tags, e.metadata) for e in tracked}
    assert seen == {
        ("ann@example.com", "sent"): (["welcome"], {"campaign": "spring"}),
        ("ann@example.com", "delivered"): (["welcome"], {"campaign": "spring"}),
        ("bounce@example.com", "sent"): (["welcome"], {"campaign": "spring", "user_id": 2}),
        ("bounce@example.com", "bounced"): (["welcome"], {"campaign": "spring", "user_id": 2}),
    }


def test_the_event_reads_them_from_the_row_not_from_this_process(sandbox, tracked):
    message(tags=["original"]).send()
    # As another worker sees it: only what the database holds.
    SendLog.objects.update(tags=["from the row"], metadata={"k": "v"})
    sandbox.deliver_webhooks()
    assert {(tuple(e.tags), tuple(e.metadata.items())) for e in tracked} == {
        (("from the row",), (("k", "v"),))
    }


def test_an_event_about_no_logged_send_has_empty_tags_and_metadata(sandbox, tracked):
    message(tags=["kept"]).send()
    SendLog.objects.all().delete()  # the event has no row to read
    sandbox.deliver_webhooks()
    assert tracked and all((e.tags, e.metadata) == ([], {}) for e in tracked)


def test_values_of_a_subclass_of_a_plain_type_are_stored_as_that_type(sandbox, send):
    import enum

    from django.utils.safestring import mark_safe

    class Plan(enum.IntEnum):
        PRO = 3

    send(message(metadata={"note": mark_safe("<b>vip</b>"), "plan": Plan.PRO}))
    row = SendLog.objects.get()
    assert row.metadata == {"note": "<b>vip</b>", "plan": 3}
    assert [type(value) for value in row.metadata.values()] == [str, int]


def test_forgetting_a_person_erases_their_metadata_and_keeps_the_tags(sandbox, send):
    from io import StringIO

    from django.core.management import call_command

    send(
        message(
            to=["ann@example.com", "bob@example.com"],
            tags=["receipt"],
            merge_metadata={
                "ann@example.com": {"customer": "Ann Smith"},
                "bob@example.com": {"customer": "Bob Jones"},
            },
        )
    )
    call_command("sendfleet_forget", "ann@example.com", stdout=StringIO())
    rows = {row.recipient: row for row in SendLog.objects.all()}
    assert rows["bob@example.com"].metadata == {"customer": "Bob Jones"}
    [forgotten] = [row for address, row in rows.items() if address != "bob@example.com"]
    assert (forgotten.tags, forgotten.metadata) == (["receipt"], {})
