"""``send_messages`` takes any iterable of messages, as Django's own backends do.

Django's ``test_send_many`` passes an iterator; a generator is as common. The suppression check
must not consume it before the send loop (issue 19, item 1: it once sent nothing).
"""

import pytest
from django.core.mail import EmailMessage

from django_sendfleet.backends import EmailBackend, QueuedEmailBackend
from django_sendfleet.backends import base as backends
from django_sendfleet.models import SendLog, Suppression
from django_sendfleet.models.suppression import SuppressionManager
from django_sendfleet.sandbox import SUPPRESSED_EMAIL

pytestmark = [pytest.mark.usefixtures("sendfleet_settings"), pytest.mark.django_db]

ADDRESSES = ["ann@example.com", "bob@example.com", "carol@example.com"]


def messages(addresses=ADDRESSES):
    return [EmailMessage("Hi", "Body", "shop@example.com", [address]) for address in addresses]


def as_generator(items):
    yield from items


SHAPES = {
    "iterator": iter,
    "generator": as_generator,
    "tuple": tuple,
}


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("check_suppressions", [True, False])
def test_the_sync_backend_sends_every_message_of_any_iterable(
    sandbox, sendfleet_settings, shape, check_suppressions
):
    sendfleet_settings["CHECK_SUPPRESSIONS"] = check_suppressions
    assert EmailBackend().send_messages(SHAPES[shape](messages())) == 3
    assert [r.payload["to"] for r in sandbox.requests] == ADDRESSES
    assert SendLog.objects.count() == 3


@pytest.mark.parametrize("shape", SHAPES)
def test_the_queued_backend_queues_and_sends_every_message_of_any_iterable(
    sandbox, shape, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        assert QueuedEmailBackend().send_messages(SHAPES[shape](messages())) == 3
    assert sorted(r.payload["to"] for r in sandbox.requests) == ADDRESSES
    assert sorted(SendLog.objects.values_list("status", flat=True)) == ["queued"] * 3


@pytest.mark.parametrize("backend_class", [EmailBackend, QueuedEmailBackend])
def test_an_empty_iterator_sends_nothing_and_returns_zero(sandbox, backend_class):
    assert backend_class().send_messages(iter([])) == 0
    assert sandbox.requests == []


def test_a_long_generator_is_read_in_chunks_one_suppression_query_each(sandbox, monkeypatch):
    monkeypatch.setattr(backends, "SUPPRESSION_CHUNK", 2)
    queries: list[set[str]] = []
    real_suppressed_among = SuppressionManager.suppressed_among

    def suppressed_among(manager, addresses):
        queries.append(set(addresses))
        return real_suppressed_among(manager, addresses)

    monkeypatch.setattr(SuppressionManager, "suppressed_among", suppressed_among)
    # The suppressed address is in the last chunk: that chunk's query must still stop it.
    addresses = [*ADDRESSES, "dave@example.com", SUPPRESSED_EMAIL]
    Suppression.objects.create(email=SUPPRESSED_EMAIL)
    consumed: list[str] = []

    def generate():
        for message in messages(addresses):
            consumed.append(message.to[0])
            yield message

    assert EmailBackend(fail_silently=True).send_messages(generate()) == 4
    assert queries == [set(addresses[0:2]), set(addresses[2:4]), {SUPPRESSED_EMAIL}]
    assert consumed == addresses
    assert [r.payload["to"] for r in sandbox.requests] == addresses[:4]  # stopped locally
