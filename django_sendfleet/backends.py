"""Django email backends that send through SendFleet.

``EmailBackend`` sends each message as one API request per recipient (to, cc and bcc together,
without duplicates), over one connection for the whole batch. Each message gets
``message.anymail_status`` describing every recipient's outcome.
"""

from __future__ import annotations

import functools
import itertools
import logging
from collections.abc import Iterable, Iterator
from typing import Any

from django.core import mail
from django.core.mail import EmailMessage
from django.core.mail.backends.base import BaseEmailBackend
from django.db import transaction

from . import signals
from .api.client import SendFleetClient
from .conf import SendFleetSettings, pop_mailer_options
from .exceptions import (
    SendFleetError,
    SendFleetInvalidMessage,
    SendFleetRecipientsRefused,
    SendFleetUnsupportedFeature,
)
from .message import payloads, priority
from .message.outgoing import OutgoingMessage, prepare_message
from .outcome import INVALID, PENDING, REFUSED_STATUSES, RecipientStatus, SendStatus
from .queued import outbox, tasks
from .ratelimit import SlidingWindowLimiter
from .ratelimit.key_guard import KeyGuard
from .records.send_log import SendLogBatch
from .reputation.guard import ReputationGuard
from .sending.recipient import (
    Deferred,
    RecipientSender,
    SuppressionCheck,
    finish_recipient,
    recipient_addresses,
)
from .sending.retry import WaitInProcess
from .webhooks.events import apply_waiting_events

__all__ = [
    "EmailBackend",
    "QueuedEmailBackend",
]

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
    """Send Django email through the SendFleet API."""

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

    def open(self) -> bool:
        """Open the connection; configuration errors raise here, whatever ``fail_silently``."""
        if self.client is not None:
            return False
        self.settings.validate()
        self.client = SendFleetClient.for_settings(self.settings)
        self.limiter = SlidingWindowLimiter.for_settings(self.settings)
        self.key_guard = KeyGuard.for_settings(self.settings)
        self.client.open()
        return True

    def close(self) -> None:
        if self.client is not None:
            self.client.close()
            self.client = None

    def send_messages(self, email_messages: Iterable[EmailMessage]) -> int:
        """Send the messages; return how many had at least one recipient accepted.

        Any iterable will do, as with Django's own backends: a list, a generator, an iterator.
        It is read once, in chunks of ``SUPPRESSION_CHUNK`` messages.
        """
        chunks = _chunks(email_messages, SUPPRESSION_CHUNK)
        first = next(chunks, None)
        if first is None:
            return 0
        opened_here = self.open()
        suppressions = SuppressionCheck() if self.settings.check_suppressions else None
        sender = self._recipient_sender(suppressions)
        log = self._log_batch()
        sent = 0
        try:
            for chunk in itertools.chain([first], chunks):
                if suppressions is not None:
                    # One query for each chunk; a message's own check then asks only for what
                    # this missed, and a 422 met mid-batch is learnt (SuppressionCheck.learn).
                    suppressions.load(recipient_addresses(chunk))
                for message in chunk:
                    try:
                        if self._send_message(message, sender, suppressions, log):
                            sent += 1
                    except SendFleetError as error:
                        if not self.fail_silently:
                            raise
                        logger.warning("SendFleet send failed (fail_silently): %s", error)
        finally:
            if suppressions is not None:
                suppressions.count_stopped()
            if log is not None:
                self._write_log(log)
            if opened_here:
                self.close()
        return sent

    def _recipient_sender(self, suppressions: SuppressionCheck | None) -> RecipientSender | None:
        assert self.client is not None
        return RecipientSender(
            client=self.client,
            limiter=self.limiter,
            policy=WaitInProcess(self.settings.max_retry_wait),
            suppressions=suppressions,
            key_guard=self.key_guard,
            # Without the send log there is nothing to count: such a mailer is not guarded.
            reputation=ReputationGuard.for_mailer(self.mailer, self.settings)
            if self.settings.send_log
            else None,
        )

    def _write_log(self, log: SendLogBatch) -> None:
        log.write()

    def _log_batch(self) -> SendLogBatch | None:
        return self._new_log_batch() if self.settings.send_log else None

    def _new_log_batch(self, **options: Any) -> SendLogBatch:
        return SendLogBatch(
            mailer=self.mailer,
            log_content=self.settings.log_content,
            secrets=self.settings.secrets,
            after_write=apply_waiting_events if self.settings.webhook_secrets else None,
            priority=self.settings.priority,
            bulk=self.settings.bulk,
            **options,
        )

    @property
    def mailer(self) -> str:
        return self.alias or "default"

    def _send_message(
        self,
        message: EmailMessage,
        sender: RecipientSender | None,
        suppressions: SuppressionCheck | None,
        log: SendLogBatch | None,
    ) -> bool:
        status = SendStatus()
        message.anymail_status = status  # type: ignore[attr-defined]
        if not message.recipients():
            return False
        if signals.cancelled_by_receiver(type(self), message=message, mailer=self.mailer):
            status.cancelled = True
            logger.info("SendFleet send cancelled by a pre_send receiver: %s", message.subject)
            return False
        report = _Reporter(self, message, status, log, suppressions)
        try:
            outgoing = prepare_message(
                message, ignore_unsupported_features=self.settings.ignore_unsupported_features
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
            suppressions.load(outgoing.recipients)
        for recipient in outgoing.recipients:
            result = self._send_recipient(sender, suppressions, message, outgoing, recipient)
            report(outgoing, recipient, result)
        report.finish()
        self._raise_for(message, status)
        return status.accepted

    def _send_recipient(
        self,
        sender: RecipientSender | None,
        suppressions: SuppressionCheck | None,
        message: EmailMessage,
        outgoing: OutgoingMessage,
        recipient: str,
    ) -> RecipientStatus:
        assert sender is not None
        payload = payloads.build_payload(outgoing, recipient)  # one at a time: memory
        result = sender.send(
            recipient,
            payload,
            outgoing.from_domain,
            message=message,
            priority=priority.of_message(message, self.settings.priority),
        )
        assert not isinstance(result, Deferred)  # WaitInProcess never defers
        return result

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


class _Reporter:
    """Tells everyone who listens what became of each recipient: the status, the log, signals."""

    def __init__(
        self,
        backend: EmailBackend,
        message: EmailMessage,
        status: SendStatus,
        log: SendLogBatch | None,
        suppressions: SuppressionCheck | None,
    ) -> None:
        self.sender = type(backend)
        self.mailer = backend.mailer
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


class QueuedEmailBackend(EmailBackend):
    """Put messages in an outbox and let a Django task send them after the transaction commits.

    ``send_messages`` checks each message as the synchronous backend does (invalid messages and
    suppressed recipients are refused at once), then writes one ``SendLog`` row per recipient
    with status ``pending`` and what the worker needs to send it, inside the caller's
    transaction. The task is enqueued on commit: a rolled-back transaction sends nothing. The
    worker (``django_sendfleet.queued.worker``) sends each row through the same path as
    ``EmailBackend``. The outbox is the send log, so ``SEND_LOG`` does not apply.
    """

    def open(self) -> bool:
        self.settings.validate()
        tasks.require_tasks()
        return False

    def close(self) -> None:
        pass

    def _recipient_sender(self, suppressions: SuppressionCheck | None) -> None:
        return None  # nothing is sent here: the worker sends

    def send_messages(self, email_messages: Iterable[EmailMessage]) -> int:
        # The outbox is written in chunks as the messages are checked, all in one transaction
        # (a savepoint in the caller's): whole or not at all, and the tasks are enqueued when
        # it commits. A message refused with a SendFleetError is part of the outcome: the rows
        # written so far stay (the refused one's too), then the error is raised.
        refused: SendFleetError | None = None
        with transaction.atomic():
            try:
                sent = super().send_messages(email_messages)
            except SendFleetError as error:
                refused = error
        if refused is not None:
            raise refused
        return sent

    def _log_batch(self) -> SendLogBatch:
        # The outbox: written whatever SEND_LOG says, and errors raise.
        write_rows = functools.partial(outbox.write_rows, task_backend=self.settings.task_backend)
        return self._new_log_batch(write_rows=write_rows)

    def _send_recipient(
        self,
        sender: RecipientSender | None,
        suppressions: SuppressionCheck | None,
        message: EmailMessage,
        outgoing: OutgoingMessage,
        recipient: str,
    ) -> RecipientStatus:
        # The send path's first step, the local suppression list, applies now; the rest later.
        stopped = suppressions.stop(recipient, message) if suppressions is not None else None
        return stopped or RecipientStatus(PENDING)
