"""What became of each recipient, told to everyone who listens: the message's status, the
log's row, the signals."""

from __future__ import annotations

from django.core.mail import EmailMessage

from .. import signals
from ..message.outgoing import OutgoingMessage
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
        finish_recipient(
            backend_class=self.sender,
            mailer=self.mailer,
            message=self.message,
            recipient=recipient,
            from_domain=outgoing.from_domain if outgoing else "",
            result=result,
            suppressions=self.suppressions,
        )

    def finish(self) -> None:
        signals.post_send.send_robust(
            self.sender, message=self.message, status=self.status, mailer=self.mailer
        )
