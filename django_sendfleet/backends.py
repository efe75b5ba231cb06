"""Django email backends that send through SendFleet.

``EmailBackend`` sends each message as one API request per recipient (to, cc and bcc together,
without duplicates), over one connection for the whole batch. Each message gets
``message.anymail_status`` describing every recipient's outcome.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from typing import Any

from django.core import mail
from django.core.mail import EmailMessage
from django.core.mail.backends.base import BaseEmailBackend
from django.db import transaction

from . import error_table, queue, signals
from .batch import BatchGuard
from .client import SendFleetClient
from .conf import MAILER_OPTION_NAMES, SendFleetSettings
from .exceptions import (
    SendFleetError,
    SendFleetInvalidMessage,
    SendFleetRecipientsRefused,
    SendFleetRecipientSuppressed,
    SendFleetUnsupportedFeature,
)
from .failures import handle_failure
from .log import SendLogBatch
from .message import OutgoingMessage, prepare_message
from .models import SendLog, normalise_email
from .outcome import (
    INVALID,
    PENDING,
    QUEUED,
    REFUSED_STATUSES,
    REJECTED,
    RecipientStatus,
    SendStatus,
)
from .payloads import build_payloads
from .ratelimit import SlidingWindowLimiter
from .status import LogStatus
from .suppressions import count_stopped_sends, suppressed_among

logger = logging.getLogger("django_sendfleet")

# Django 6.1 added MAILERS; its BaseEmailBackend takes ``alias`` and reports unknown options.
_DJANGO_HAS_MAILERS = hasattr(mail, "InvalidMailer")


class EmailBackend(BaseEmailBackend):
    """Send Django email through the SendFleet API."""

    def __init__(
        self, fail_silently: bool = False, *, alias: str | None = None, **kwargs: Any
    ) -> None:
        options = {name: kwargs.pop(name) for name in list(kwargs) if name in MAILER_OPTION_NAMES}
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

    def open(self) -> bool:
        """Open the connection; configuration errors raise here, whatever ``fail_silently``."""
        if self.client is not None:
            return False
        settings = self.settings
        settings.validate()
        self.client = SendFleetClient(
            api_url=settings.api_url,
            api_key=settings.api_key,
            timeout=settings.timeout,
            max_retry_wait=settings.max_retry_wait,
            rate_limiter=SlidingWindowLimiter.for_settings(settings),
        )
        self.client.open()
        return True

    def close(self) -> None:
        if self.client is not None:
            self.client.close()
            self.client = None

    def send_messages(self, email_messages: Sequence[EmailMessage]) -> int:
        """Send the messages; return how many had at least one recipient accepted."""
        if not email_messages:
            return 0
        opened_here = self.open()
        batch = BatchGuard()
        log = self._log_batch()
        sent = 0
        try:
            for message in email_messages:
                try:
                    if self._send_message(message, batch, log):
                        sent += 1
                except SendFleetError as error:
                    if not self.fail_silently:
                        raise
                    logger.warning("SendFleet send failed (fail_silently): %s", error)
        finally:
            if log is not None:
                self._write_log(log)
            if opened_here:
                self.close()
        return sent

    def _write_log(self, log: SendLogBatch) -> None:
        log.write()

    def _log_batch(self) -> SendLogBatch | None:
        return self._new_log_batch() if self.settings.send_log else None

    def _new_log_batch(self) -> SendLogBatch:
        return SendLogBatch(
            mailer=self.alias or "default",
            log_content=self.settings.log_content,
            secrets=self.settings.secrets,
            webhooks_enabled=bool(self.settings.webhook_secrets),
        )

    def _send_message(
        self, message: EmailMessage, batch: BatchGuard, log: SendLogBatch | None
    ) -> bool:
        status = SendStatus()
        message.anymail_status = status  # type: ignore[attr-defined]
        if not message.recipients():
            return False
        if signals.cancelled_by_receiver(type(self), message=message, mailer=self.alias):
            status.cancelled = True
            logger.info("SendFleet send cancelled by a pre_send receiver: %s", message.subject)
            return False
        report = _Reporter(self, message, status, log)
        try:
            outgoing = prepare_message(
                message, ignore_unsupported_features=self.settings.ignore_unsupported_features
            )
        except (SendFleetInvalidMessage, SendFleetUnsupportedFeature) as error:
            error.email_message = message
            logger.warning("SendFleet refused a message locally: %s", error)
            for recipient in message.recipients():
                report(None, str(recipient), RecipientStatus(INVALID, error=error))
            report.finish()
            raise

        for given, reason in outgoing.invalid_recipients:
            error = SendFleetInvalidMessage(reason, email_message=message, recipient=given)
            logger.warning("SendFleet refused recipient %s locally: %s", given, reason)
            report(outgoing, given, RecipientStatus(INVALID, error=error))
        payloads = build_payloads(outgoing)
        suppressed = suppressed_among(payloads) if self.settings.check_suppressions else set()
        for recipient, payload in payloads.items():
            if normalise_email(recipient) in suppressed:
                result = self._stopped_by_suppression(message, recipient)
            else:
                result = self._send_one(message, outgoing, recipient, payload, batch)
            report(outgoing, recipient, result)
        if suppressed:
            count_stopped_sends(suppressed)
        report.finish()
        self._raise_for(message, status)
        return status.accepted

    def _stopped_by_suppression(self, message: EmailMessage, recipient: str) -> RecipientStatus:
        logger.warning("SendFleet send to %s rejected: on the local suppression list", recipient)
        error = SendFleetRecipientSuppressed(
            "On the local suppression list: not sent.",
            email_message=message,
            recipient=recipient,
        )
        return RecipientStatus(REJECTED, error=error)

    def _send_one(
        self,
        message: EmailMessage,
        outgoing: OutgoingMessage,
        recipient: str,
        payload: dict[str, Any],
        batch: BatchGuard,
    ) -> RecipientStatus:
        blocker = batch.blocker(outgoing.from_domain)
        if blocker is not None:
            logger.warning(
                "SendFleet skipped %s: an earlier send in this batch failed with %s",
                recipient,
                blocker.error_code,
            )
            return RecipientStatus(
                error_table.spec_for_error(blocker).recipient_status, error=blocker
            )
        assert self.client is not None
        started = time.monotonic()
        try:
            accepted = self.client.send(payload)
        except SendFleetError as error:
            error.email_message = message
            batch.record(error, outgoing.from_domain)
            result = RecipientStatus(
                error_table.spec_for_error(error).recipient_status,
                error=error,
                attempts=error.attempts,
                esp_response=error.response,
                duration_ms=_milliseconds_since(started),
            )
            logger.warning(
                "SendFleet send to %s %s after %d attempt(s): %s",
                recipient,
                result.status,
                error.attempts,
                error,
            )
            return result
        logger.info(
            "SendFleet send to %s queued: message_id=%s mode=%s attempts=%d",
            recipient,
            accepted.message_id,
            accepted.mode,
            accepted.attempts,
        )
        return RecipientStatus(
            QUEUED,
            message_id=accepted.message_id,
            attempts=accepted.attempts,
            mode=accepted.mode,
            warnings=accepted.warnings,
            esp_response=accepted.response,
            duration_ms=_milliseconds_since(started),
        )

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


def _milliseconds_since(started: float) -> int:
    return round((time.monotonic() - started) * 1000)


class _Reporter:
    """Tells everyone who listens what became of each recipient: the status, the log, signals."""

    def __init__(
        self,
        backend: EmailBackend,
        message: EmailMessage,
        status: SendStatus,
        log: SendLogBatch | None,
    ) -> None:
        self.sender = type(backend)
        self.message = message
        self.status = status
        self.log = log

    def __call__(
        self, outgoing: OutgoingMessage | None, recipient: str, result: RecipientStatus
    ) -> None:
        self.status.record(recipient, result)
        if self.log is not None:
            self.log.add(self.message, outgoing, recipient, result)
        if result.error is not None:
            handle_failure(
                self.sender,
                self.message,
                recipient,
                result.error,
                outgoing.from_domain if outgoing else None,
            )

    def finish(self) -> None:
        signals.post_send.send_robust(self.sender, message=self.message, status=self.status)


class QueuedEmailBackend(EmailBackend):
    """Put messages in an outbox and let a Django task send them after the transaction commits.

    ``send_messages`` checks each message as the synchronous backend does (invalid messages and
    suppressed recipients are refused at once), then writes one ``SendLog`` row per recipient
    with status ``pending`` and what the worker needs to send it, inside the caller's
    transaction. The task is enqueued on commit: a rolled-back transaction sends nothing. The
    worker (``django_sendfleet.queue``) sends through the same client, error table, log and
    signals as ``EmailBackend``. The outbox is the send log, so ``SEND_LOG`` does not apply.
    """

    def open(self) -> bool:
        self.settings.validate()
        queue.require_tasks()
        return False

    def close(self) -> None:
        pass

    def _log_batch(self) -> SendLogBatch:
        return self._new_log_batch()  # the outbox: written whatever SEND_LOG says

    def _send_one(
        self,
        message: EmailMessage,
        outgoing: OutgoingMessage,
        recipient: str,
        payload: dict[str, Any],
        batch: BatchGuard,
    ) -> RecipientStatus:
        return RecipientStatus(PENDING)

    def _write_log(self, log: SendLogBatch) -> None:
        # Unlike a log of sends already made, the outbox must not fail quietly.
        rows = log.take_rows()
        SendLog.objects.bulk_create(rows)
        pending = [row.pk for row in rows if row.status == LogStatus.PENDING]
        if pending:
            transaction.on_commit(lambda: queue.schedule(pending, self.settings))
