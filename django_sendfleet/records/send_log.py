"""The send log: one ``SendLog`` row per recipient send, written together per batch."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from django.db import DatabaseError

from ..credentials.redaction import redact
from ..db.durable import outside_the_callers_transaction
from ..db.routing import atomic_for, db_for, on_commit_for
from ..message.priority import HIGH, RANKS, lenient_of_message
from ..models import DETAIL_MAX_LENGTH, MessageContent, SendLog
from ..models.log_status import log_status_for
from ..outcome import PENDING
from . import content as message_content

if TYPE_CHECKING:
    from django.core.mail import EmailMessage

    from ..credentials.secret import Secret
    from ..message.outgoing import OutgoingMessage
    from ..outcome import RecipientStatus

logger = logging.getLogger("django_sendfleet")

#: A batch is written whenever it holds this many rows, or this much new message content (text
#: and HTML characters): the memory it holds and each write's statements stay bounded,
#: whatever the number of recipients and messages.
ROWS_PER_WRITE = 1000
CONTENT_CHARACTERS_PER_WRITE = 2_000_000


def stored_detail(text: str, secrets: tuple[str | Secret[str], ...]) -> str:
    """An error's detail as the log stores it: without secrets, of bounded length."""
    text = redact(text, secrets)
    if len(text) > DETAIL_MAX_LENGTH:
        text = text[: DETAIL_MAX_LENGTH - 1] + "…"
    return text


#: Each column's length limit, looked up once rather than for every value of every row.
_MAX_LENGTHS = {
    field.name: getattr(field, "max_length", None) for field in SendLog._meta.concrete_fields
}


def _fit(name: str, value: Any) -> Any:
    """Text as a database column takes it: no NUL, no lone surrogate, within the column.

    Refused messages are logged too, and their text is whatever the caller passed. Whatever is
    sent fits whole (addresses up to 320 characters, the API's limits); text too long to store
    ends in "…", so that a shortened address is never taken for another (admin Resend).
    """
    if not isinstance(value, str):
        return value
    text = value
    # Plain ASCII text holds no lone surrogate (isascii() reads a flag): only a NUL can be
    # wrong. Anything else is rebuilt, which also makes a str subclass (a choice) plain text.
    if type(text) is not str or not text.isascii() or "\x00" in text:
        text = text.replace("\x00", "\ufffd").encode("utf-8", "replace").decode("utf-8")
    max_length = _MAX_LENGTHS[name]
    if max_length and len(text) > max_length:
        text = text[: max_length - 1] + "…"
    return text


def _column_defaults() -> tuple[list[Any], list[tuple[int, Callable[[], Any]]], dict[str, int]]:
    """Each column's default in the order ``Model.__init__`` takes values by position: the
    constants, once, and the defaults called for each row (``timezone.now``, ``list``)."""
    constants: list[Any] = []
    per_row: list[tuple[int, Callable[[], Any]]] = []
    for index, field in enumerate(SendLog._meta.concrete_fields):
        if field.has_default() and callable(field.default):
            per_row.append((index, field.default))
            constants.append(None)
        else:
            constants.append(field.get_default())  # what Django gives every row: the same
    positions = {field.attname: i for i, field in enumerate(SendLog._meta.concrete_fields)}
    return constants, per_row, positions


_DEFAULTS, _DEFAULTS_PER_ROW, _POSITIONS = _column_defaults()


def _new_row(values: dict[str, Any]) -> SendLog:
    """``SendLog(**values)``, the other columns at their defaults, built by position.

    Django builds the rows it reads this way; it costs a third of the keyword form, which a
    batch pays for each of its rows on the send path.
    """
    columns = _DEFAULTS.copy()
    for index, default in _DEFAULTS_PER_ROW:
        columns[index] = default()
    for name, value in values.items():
        columns[_POSITIONS[name]] = value
    by_position: Any = columns  # django-stubs knows only the keyword form
    return SendLog(*by_position)


def outcome_fields(
    result: RecipientStatus, secrets: tuple[str | Secret[str], ...]
) -> dict[str, Any]:
    """The log row's fields that say what became of a send: the same for both backends."""
    error = result.error
    return {
        "status": log_status_for(result.status),
        "message_id": result.message_id or "",
        "mode": result.mode or "",
        "warnings": result.warnings,
        "attempts": result.attempts,
        "duration_ms": result.duration_ms,
        # 200 for an accepted send; None when no request was made.
        "http_status": (error.status_code if error else 200) if result.attempts else None,
        "error_code": (error.error_code or "") if error else "",
        "detail": stored_detail(error.detail, secrets) if error else "",
    }


class SendLogBatch:
    """Collects the rows of one ``send_messages`` call and writes them in bounded chunks.

    A message's content is stored once (``MessageContent``), for those of its rows that need it:
    the outbox's (``pending``), and every row with ``LOG_CONTENT``. A row holds only its
    recipient and outcome. ``write_rows`` is where chunks go: by default the send log's own
    write (a failure is logged, never raised); the queued backend passes the outbox's.
    ``after_write`` is called with the message ids of each chunk the send log's write commits
    (the backend passes the webhook's waiting-events step when webhooks are on).
    """

    def __init__(
        self,
        *,
        mailer: str,
        log_content: bool,
        secrets: tuple[str | Secret[str], ...],
        after_write: Callable[[list[str]], None] | None = None,
        write_rows: Callable[[list[MessageContent], list[SendLog]], None] | None = None,
        priority: str = HIGH,
        bulk: bool = False,
    ) -> None:
        self.mailer = mailer
        #: The backend's priority (a message may say its own) and BULK, stored on each row.
        self.priority = priority
        self.bulk = bulk
        self.log_content = log_content
        self.after_write = after_write
        self._secrets = secrets
        self._write_rows = write_rows or self._write_log
        self.rows: list[SendLog] = []
        #: Content not written yet, and its size; the current message and its content.
        self._new_contents: list[MessageContent] = []
        self._new_characters = 0
        self._current: tuple[OutgoingMessage, MessageContent] | None = None

    def add(
        self,
        message: EmailMessage,
        outgoing: OutgoingMessage | None,
        recipient: str,
        result: RecipientStatus,
    ) -> None:
        # What this recipient is sent: with merge data, rendered with its values.
        sent = outgoing.content_for(recipient) if outgoing is not None else None
        fields: dict[str, Any] = {
            "mailer": self.mailer,
            "recipient": recipient,
            "from_email": sent.from_email if sent else str(message.from_email),
            "subject": (sent.subject if sent else str(message.subject)) or "",
            **outcome_fields(result, self._secrets),
            # A message refused for its priority is logged with the backend's.
            "priority": RANKS[lenient_of_message(message, self.priority)],
            "bulk": self.bulk,
        }
        row = _new_row({name: _fit(name, value) for name, value in fields.items()})
        if sent is not None:
            # Checked and bounded by prepare_message (message/tags.py): stored as they are.
            labels = sent.labels
            if labels.tags:
                row.tags = list(labels.tags)
            if labels.metadata or labels.per_recipient:
                row.metadata = labels.for_recipient(recipient)
            if sent.send_at is not None and result.status == PENDING:
                row.not_before = sent.send_at  # the outbox keeps it until then
        # The outbox's rows need the content (the worker sends it); logged rows keep it too.
        if sent is not None and (result.status == PENDING or self.log_content):
            row.content = self._content_of(sent)
        self.rows.append(row)
        if len(self.rows) >= ROWS_PER_WRITE or self._new_characters >= CONTENT_CHARACTERS_PER_WRITE:
            self.write()

    def _content_of(self, outgoing: OutgoingMessage) -> MessageContent:
        """The message's content row: one per message, whatever its number of recipients, and
        one for a run of messages that say the same (one message per recipient, in a loop)."""
        if self._current is None or self._current[0] is not outgoing:
            previous = self._current[1] if self._current is not None else None
            if previous is not None and message_content.says(previous, outgoing):
                content = previous
            else:
                content = message_content.content_of(outgoing)
                self._new_contents.append(content)
                self._new_characters += message_content.size_of(content)
            self._current = (outgoing, content)
        return self._current[1]

    def write(self) -> None:
        """Write the rows collected so far, and the new content they refer to."""
        rows, contents = self.rows, self._new_contents
        self.rows, self._new_contents, self._new_characters = [], [], 0
        if rows:
            self._write_rows(contents, rows)
        current = self._current[1] if self._current is not None else None
        if current is not None and current._state.adding:
            # Its write failed (and was logged): the message's next rows write it again.
            self._new_contents.append(current)
            self._new_characters += message_content.size_of(current)

    def _write_log(self, contents: list[MessageContent], rows: list[SendLog]) -> None:
        """The send log's write. A failure is logged, never raised: the mail already went."""
        try:
            outside_the_callers_transaction(
                lambda: self._insert(contents, rows), using=db_for(SendLog)
            )
        except DatabaseError:
            message_content.forget_ids(contents)  # rolled back
            logger.exception("SendFleet could not write %d send log rows", len(rows))

    def _insert(self, contents: list[MessageContent], rows: list[SendLog]) -> None:
        # A savepoint, so a failure here cannot break a transaction it is made in.
        with atomic_for(SendLog):
            message_content.insert_with_rows(contents, rows)
        after_write = self.after_write
        if after_write is not None:
            # Only once the rows are visible to the webhook endpoint: see apply_waiting_events.
            message_ids = [row.message_id for row in rows]
            # robust: a failure there is logged, and never taken for a failed write.
            on_commit_for(SendLog, lambda: after_write(message_ids), robust=True)
