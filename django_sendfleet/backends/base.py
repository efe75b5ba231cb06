"""The backends' one skeleton: every message is checked and reported the same way, and what
becomes of each checked recipient is the backend's disposition (``dispositions.py``).

``send_messages`` reads the messages in chunks; for each chunk it parses the recipients once
(one suppression query), then for each message: ``pre_send``, checks (``prepare_message``), the
disposition of each recipient, the report (status, log row, signals), ``post_send``.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Iterable, Iterator
from typing import Any

from django.core import mail
from django.core.mail import EmailMessage
from django.core.mail.backends.base import BaseEmailBackend

from .. import signals
from ..api.client import SendFleetClient
from ..conf import SendFleetSettings, pop_mailer_options
from ..exceptions import (
    SendFleetError,
    SendFleetInvalidMessage,
    SendFleetRecipientsRefused,
    SendFleetUnsupportedFeature,
)
from ..message import priority
from ..message.outgoing import ParsedRecipients, parse_recipients, prepare_message
from ..message.tags import as_set
from ..outcome import INVALID, REFUSED_STATUSES, RecipientStatus, SendStatus
from ..ratelimit import SlidingWindowLimiter
from ..ratelimit.key_guard import KeyGuard
from ..records.send_log import SendLogBatch
from ..sending.recipient import SuppressionCheck
from ..webhooks.events import apply_waiting_events
from .dispositions import Disposition, SendNow, WriteOutbox
from .report import Reporter

logger = logging.getLogger("django_sendfleet")

# Django 6.1 added MAILERS; its BaseEmailBackend takes ``alias`` and reports unknown options.
_DJANGO_HAS_MAILERS = hasattr(mail, "InvalidMailer")

#: Messages whose recipients are looked up on the suppression list in one query. A generator of
#: messages is read this many at a time, never all at once.
SUPPRESSION_CHUNK = 500


def _chunks(messages: Iterable[EmailMessage], size: int) -> Iterator[list[EmailMessage]]:
    iterator = iter(messages)
    while chunk := list(itertools.islice(iterator, size)):
        yield chunk


class EmailBackend(BaseEmailBackend):
    """Send Django email through the SendFleet API.

    Each message is sent as one API request per recipient (to, cc and bcc together, without
    duplicates), over one connection for the whole batch. Each message gets
    ``message.anymail_status`` describing every recipient's outcome.
    """

    #: What becomes of each checked recipient: sent now here; written to the outbox by
    #: ``QueuedEmailBackend``.
    disposition_class: type[Disposition] = SendNow

    def __init__(
        self, fail_silently: bool = False, *, alias: str | None = None, **kwargs: Any
    ) -> None:
        # The key as a Secret: error reports show this frame's locals, whatever DEBUG is.
        options = pop_mailer_options(kwargs)
        if _DJANGO_HAS_MAILERS:
            # Django decides what unknown options mean: InvalidMailer for a MAILERS entry, a
            # deprecation warning otherwise. fail_silently stays here: passing it up is deprecated.
            super().__init__(alias=alias, **kwargs)
        else:
            super().__init__(**kwargs)  # Django < 6.1 ignores options it does not know
        self.alias = alias
        self.fail_silently = fail_silently
        self.settings = SendFleetSettings(options)
        self.client: SendFleetClient | None = None
        self.limiter: SlidingWindowLimiter | None = None
        self.key_guard: KeyGuard | None = None
        self.disposition = self.disposition_class(self)  # type: ignore[call-arg]

    @property
    def mailer(self) -> str:
        return self.alias or "default"

    def open(self) -> bool:
        """Open the connection; configuration errors raise here, whatever ``fail_silently``."""
        return self.disposition.open()

    def close(self) -> None:
        self.disposition.close()

    def send_messages(self, email_messages: Iterable[EmailMessage]) -> int:
        """Send the messages; return how many had at least one recipient accepted.

        Any iterable will do, as with Django's own backends: a list, a generator, an iterator.
        It is read once, in chunks of ``SUPPRESSION_CHUNK`` messages.
        """
        chunks = _chunks(email_messages, SUPPRESSION_CHUNK)
        first = next(chunks, None)
        if first is None:
            return 0
        with self.disposition.batch():
            return self._send_chunks(itertools.chain([first], chunks))

    def new_log_batch(self, **options: Any) -> SendLogBatch:
        """A batch of this mailer's rows (``write_rows``: where they go, the send log's own
        write unless given)."""
        return SendLogBatch(
            mailer=self.mailer,
            log_content=self.settings.log_content,
            secrets=self.settings.secrets,
            after_write=apply_waiting_events if self.settings.webhook_secrets else None,
            priority=self.settings.priority,
            bulk=self.settings.bulk,
            **options,
        )

    def _send_chunks(self, chunks: Iterable[list[EmailMessage]]) -> int:
        opened_here = self.open()
        suppressions = SuppressionCheck() if self.settings.check_suppressions else None
        log = self.disposition.log_batch()
        self.disposition.start(suppressions)
        sent = 0
        try:
            for chunk in chunks:
                parsed = parse_recipients(chunk)
                if suppressions is not None:
                    # One query for each chunk; a message's own check then asks only for what
                    # this missed, and a 422 met mid-batch is learnt (SuppressionCheck.learn).
                    suppressions.load(parsed.values())
                for message in chunk:
                    try:
                        if self._send_message(message, parsed, suppressions, log):
                            sent += 1
                    except SendFleetError as error:
                        if not self.fail_silently:
                            raise
                        logger.warning("SendFleet send failed (fail_silently): %s", error)
        finally:
            if suppressions is not None:
                suppressions.count_stopped()
            if log is not None:
                log.write()
            if opened_here:
                self.close()
        return sent

    def _send_message(
        self,
        message: EmailMessage,
        parsed: ParsedRecipients,
        suppressions: SuppressionCheck | None,
        log: SendLogBatch | None,
    ) -> bool:
        status = SendStatus()
        message.anymail_status = status  # type: ignore[attr-defined]
        if not message.recipients():
            return False
        # has_listeners first: the arguments cost something to build, per message.
        if signals.pre_send.has_listeners(type(self)) and signals.cancelled_by_receiver(
            type(self), message=message, mailer=self.mailer, **as_set(message)
        ):
            status.cancelled = True
            logger.info("SendFleet send cancelled by a pre_send receiver: %s", message.subject)
            return False
        report = Reporter(type(self), self.mailer, message, status, log, suppressions)
        try:
            outgoing = prepare_message(
                message,
                ignore_unsupported_features=self.settings.ignore_unsupported_features,
                parsed=parsed,
                can_schedule=self.disposition.can_schedule,
            )
            priority.of_message(message, self.settings.priority)  # refuses an unknown one
        except (SendFleetInvalidMessage, SendFleetUnsupportedFeature) as error:
            error.email_message = message
            logger.warning("SendFleet refused a message locally: %s", error)
            for recipient in message.recipients():
                report(None, str(recipient), RecipientStatus(INVALID, error=error))
            report.finish()
            raise

        if suppressions is not None:
            suppressions.load(outgoing.recipients)  # those a pre_send receiver added
        for recipient in outgoing.recipients:
            result = self.disposition.dispose(message, outgoing, recipient, suppressions)
            report(outgoing, recipient, result)
        report.finish(outgoing)
        self._raise_for(message, status)
        return status.accepted

    def _raise_for(self, message: EmailMessage, status: SendStatus) -> None:
        """Raise the message's first real failure; refused recipients only if all were."""
        for result in status.recipients.values():
            if result.error is not None and result.status not in REFUSED_STATUSES:
                raise result.error
        if status.all_refused and not self.settings.ignore_recipient_status:
            raise SendFleetRecipientsRefused(
                "Every recipient was refused: "
                + ", ".join(f"{address} ({r.status})" for address, r in status.recipients.items()),
                email_message=message,
            )


class QueuedEmailBackend(EmailBackend):
    """Put messages in an outbox and let a Django task send them after the transaction commits.

    ``send_messages`` checks each message as the synchronous backend does (invalid messages and
    suppressed recipients are refused at once), then writes one ``SendLog`` row per recipient
    with status ``pending`` and what the worker needs to send it, inside the caller's
    transaction. The task is enqueued on commit: a rolled-back transaction sends nothing. The
    worker (``queued/worker.py``) sends each row through the same path as ``EmailBackend``.
    The outbox is the send log, so ``SEND_LOG`` does not apply.
    """

    disposition_class = WriteOutbox
