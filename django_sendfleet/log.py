"""The send log: one ``SendLog`` row per recipient send, written together per batch."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from django.db import DatabaseError, transaction

from .events import apply_waiting_events
from .models import DETAIL_MAX_LENGTH, SendLog
from .outcome import PENDING
from .payloads import build_payload
from .redaction import redact
from .status import log_status_for

if TYPE_CHECKING:
    from django.core.mail import EmailMessage

    from .message import OutgoingMessage
    from .outcome import RecipientStatus

logger = logging.getLogger("django_sendfleet")


def stored_detail(text: str, secrets: tuple[str, ...]) -> str:
    """An error's detail as the log stores it: without secrets, of bounded length."""
    text = redact(text, secrets)
    if len(text) > DETAIL_MAX_LENGTH:
        text = text[: DETAIL_MAX_LENGTH - 1] + "…"
    return text


def _fit(name: str, value: Any) -> Any:
    """Text as a database column takes it: no NUL, no lone surrogate, within the column.

    Refused messages are logged too, and their text is whatever the caller passed.
    """
    if not isinstance(value, str):
        return value
    text = value.replace("\x00", "\ufffd").encode("utf-8", "replace").decode("utf-8")
    max_length = getattr(SendLog._meta.get_field(name), "max_length", None)
    return text[:max_length] if max_length else text


def outcome_fields(result: RecipientStatus, secrets: tuple[str, ...]) -> dict[str, Any]:
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
    """Collects the rows of one ``send_messages`` call and writes them in one statement."""

    def __init__(
        self,
        *,
        mailer: str,
        log_content: bool,
        secrets: tuple[str, ...],
        webhooks_enabled: bool = False,
    ) -> None:
        self.mailer = mailer
        self.log_content = log_content
        self.webhooks_enabled = webhooks_enabled
        self._secrets = secrets
        self.rows: list[SendLog] = []

    def add(
        self,
        message: EmailMessage,
        outgoing: OutgoingMessage | None,
        recipient: str,
        result: RecipientStatus,
    ) -> None:
        fields: dict[str, Any] = {
            "mailer": self.mailer,
            "recipient": recipient[:254],
            "from_email": (outgoing.from_email if outgoing else str(message.from_email))[:254],
            "subject": ((outgoing.subject if outgoing else str(message.subject)) or "")[:256],
            **outcome_fields(result, self._secrets),
        }
        if result.status == PENDING and outgoing is not None:
            # The outbox of the queued backend: what its worker will send.
            fields["payload"] = build_payload(outgoing, recipient)
        if self.log_content and outgoing is not None:
            fields |= {
                "from_name": outgoing.from_name or "",
                "reply_to": outgoing.reply_to or "",
                "text_body": outgoing.text,
                "html_body": outgoing.html or "",
            }
        self.rows.append(SendLog(**{name: _fit(name, value) for name, value in fields.items()}))

    def take_rows(self) -> list[SendLog]:
        rows, self.rows = self.rows, []
        return rows

    def write(self) -> None:
        """Write the collected rows. A failure is logged, never raised: the mail already went."""
        rows = self.take_rows()
        if not rows:
            return
        try:
            # A savepoint, so a failure here cannot break the caller's transaction.
            with transaction.atomic():
                SendLog.objects.bulk_create(rows)
        except DatabaseError:
            logger.exception("SendFleet could not write %d send log rows", len(rows))
            return
        if self.webhooks_enabled:
            # Only once the rows are visible to the webhook endpoint: see apply_waiting_events.
            message_ids = [row.message_id for row in rows]
            transaction.on_commit(lambda: apply_waiting_events(message_ids))
