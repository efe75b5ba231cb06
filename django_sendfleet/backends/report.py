"""What became of each recipient, told to everyone who listens: the message's status, the
log's row, the signals."""

from __future__ import annotations

from django.core.mail import EmailMessage

from .. import signals
from ..message.outgoing import OutgoingMessage
from ..message.tags import NO_LABELS
from ..outcome import RecipientStatus, SendStatus
from ..records.send_log import SendLogBatch
from ..sending.recipient import SuppressionCheck, finish_recipient


class Reporter:
    """Tells everyone who listens what became of each recipient: the status, the log, signals."""

    def __init__(
        self,
        sender: type,
        mailer: str,
        message: EmailMessage,
        status: SendStatus,
        log: SendLogBatch | None,
        suppressions: SuppressionCheck | None,
    ) -> None:
        self.sender = sender
        self.mailer = mailer
        self.message = message
        self.status = status
        self.log = log
        self.suppressions = suppressions

    def __call__(
        self, outgoing: OutgoingMessage | None, recipient: str, result: RecipientStatus
    ) -> None:
        self.status.record(recipient, result)
        if self.log is not None:
            self.log.add(self.message, outgoing, recipient, result)
        labels = outgoing.labels if outgoing is not None else NO_LABELS
        failed = result.error is not None  # only a failure's signals need them
        finish_recipient(
            backend_class=self.sender,
            mailer=self.mailer,
            message=self.message,
            recipient=recipient,
            from_domain=outgoing.from_domain if outgoing else "",
            result=result,
            suppressions=self.suppressions,
            tags=list(labels.tags) if failed else None,
            metadata=labels.for_recipient(recipient) if failed else None,
        )

    def finish(self, outgoing: OutgoingMessage | None = None) -> None:
        """``post_send``, with the message's tags and metadata (its ``merge_metadata`` is per
        recipient: in the failure signals and each recipient's log row)."""
        if not signals.post_send.has_listeners(self.sender):
            return  # nothing to build the arguments for
        labels = outgoing.labels if outgoing is not None else NO_LABELS
        signals.post_send.send_robust(
            self.sender,
            message=self.message,
            status=self.status,
            mailer=self.mailer,
            tags=list(labels.tags),
            metadata=dict(labels.metadata),
        )
