"""A message's content, stored once for all of its recipients (``MessageContent``).

A message to 10,000 recipients is one content row and 10,000 small send log rows that refer to
it, not 10,000 copies of its text and HTML. ``content_of`` makes the content row (unsaved) from
the message as it is sent; ``insert_with_rows`` writes new content, then the rows that refer to
it; ``release`` deletes content that no row needs any more: the outbox's once its last
recipient is sent (unless ``LOG_CONTENT`` keeps it), logged content once its rows are pruned.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from django.db.models import Exists, OuterRef

from ..db.routing import atomic_for
from ..models import MessageContent, SendLog

if TYPE_CHECKING:
    from ..message.outgoing import OutgoingMessage

#: Content rows released per query: within every database's limit on query parameters.
RELEASE_CHUNK = 500

_content_field = SendLog._meta.get_field("content")


def content_of(message: OutgoingMessage) -> MessageContent:
    """The content of a message as it is sent, unsaved. It shares the message's strings."""
    return MessageContent(
        from_email=message.from_email,
        from_name=message.from_name or "",
        subject=message.subject or "",
        reply_to=message.reply_to or "",
        text=message.text,
        html=message.html or "",
    )


def says(content: MessageContent, message: OutgoingMessage) -> bool:
    """Whether the content is what this message says (then they can share one row)."""
    return (
        content.text == message.text  # cheap when it is the same string, as in a loop
        and content.html == (message.html or "")
        and content.subject == (message.subject or "")
        and content.from_email == message.from_email
        and content.from_name == (message.from_name or "")
        and content.reply_to == (message.reply_to or "")
    )


def size_of(content: MessageContent) -> int:
    """Characters of text and HTML: what makes a content row big."""
    return len(content.text) + len(content.html)


def insert_with_rows(contents: list[MessageContent], rows: list[SendLog]) -> None:
    """Insert new content, then the send log rows (which may refer to it and to older content).

    Safe to call again after a failed, rolled-back attempt: ids that attempt was given are
    dropped first, and the rows point at the content's new ids.
    """
    forget_ids(contents)
    forget_ids(rows)
    # The ids come back from the INSERT (PostgreSQL, SQLite, MariaDB), as the outbox's row ids
    # do; the rows need them.
    MessageContent.objects.bulk_create(contents)
    for row in rows:
        content = _content_field.get_cached_value(row, None)
        if content is not None:
            row.content_id = content.pk
    SendLog.objects.bulk_create(rows)


def forget_ids(objects: list[MessageContent] | list[SendLog]) -> None:
    """Make these unsaved again, after the transaction that inserted them rolled back."""
    for obj in objects:
        obj.pk = None
        obj._state.adding = True


def release(content_ids: Iterable[int | None]) -> None:
    """Delete the content rows, among these, that no send log row refers to any more.

    Call it after clearing (or deleting) the rows' references, in the same transaction. The
    content rows are locked before their rows are looked for, so of several workers finishing
    a message's last rows at once, the last to take the lock sees every other's change, and
    deletes it: content is never left behind, and never deleted while a row still needs it.
    """
    ids = sorted({content_id for content_id in content_ids if content_id})
    for start in range(0, len(ids), RELEASE_CHUNK):
        with atomic_for(MessageContent, savepoint=False):
            locked = MessageContent.objects.select_for_update().filter(
                pk__in=ids[start : start + RELEASE_CHUNK]
            )
            present = list(locked.values_list("pk", flat=True))
            if present:
                needed = Exists(SendLog.objects.filter(content_id=OuterRef("pk")))
                # only("pk"): deleting must not read the text and HTML it deletes.
                unneeded = MessageContent.objects.filter(pk__in=present).exclude(needed)
                unneeded.only("pk").delete()
