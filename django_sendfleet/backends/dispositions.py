"""What becomes of a checked recipient: sent now (``SendNow``) or written to the outbox
(``WriteOutbox``). The backend's one skeleton (``base.py``) prepares every message the same
way; the disposition is the only thing ``EmailBackend`` and ``QueuedEmailBackend`` do apart.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from typing import TYPE_CHECKING, Any, Protocol

from django.core.mail import EmailMessage

from ..api.client import SendFleetClient
from ..db.routing import atomic_for
from ..exceptions import SendFleetError
from ..message import payloads, priority
from ..message.outgoing import OutgoingMessage
from ..models import SendLog
from ..outcome import PENDING, RecipientStatus
from ..queued import outbox, tasks
from ..ratelimit import SlidingWindowLimiter
from ..ratelimit.key_guard import KeyGuard
from ..records.send_log import SendLogBatch
from ..reputation.guard import ReputationGuard
from ..sending.recipient import Deferred, RecipientSender, SuppressionCheck
from ..sending.retry import WaitInProcess

if TYPE_CHECKING:
    from ..conf import SendFleetSettings


class Backend(Protocol):
    """What a disposition uses of its backend (``base.EmailBackend``): its settings and
    connection, its mailer, and a batch of its rows."""

    settings: SendFleetSettings
    client: SendFleetClient | None
    limiter: SlidingWindowLimiter | None
    key_guard: KeyGuard | None

    @property
    def mailer(self) -> str: ...

    def new_log_batch(self, **options: Any) -> SendLogBatch: ...


class Disposition(Protocol):
    """The steps of ``send_messages`` that differ between sending now and queuing."""

    #: Whether a message may wait for a future ``send_at`` (the outbox's due time).
    can_schedule: bool

    def open(self) -> bool:
        """Get ready to dispose of recipients; True if this call opened a connection."""
        ...

    def close(self) -> None: ...

    def batch(self) -> AbstractContextManager[None]:
        """Around one ``send_messages`` call."""
        ...

    def log_batch(self) -> SendLogBatch | None:
        """Where the call's rows go: the send log, the outbox, or nowhere."""
        ...

    def start(self, suppressions: SuppressionCheck | None) -> None:
        """Before the call's first recipient."""
        ...

    def dispose(
        self,
        message: EmailMessage,
        outgoing: OutgoingMessage,
        recipient: str,
        suppressions: SuppressionCheck | None,
    ) -> RecipientStatus:
        """One checked recipient of a checked message: what became of it."""
        ...


class SendNow:
    """Each recipient's request now, over the backend's connection (``EmailBackend``)."""

    can_schedule = False  # sends now: a future send_at is refused (message/features.py)

    def __init__(self, backend: Backend) -> None:
        self.backend = backend
        self.sender: RecipientSender | None = None

    def open(self) -> bool:
        backend = self.backend
        if backend.client is not None:
            return False
        backend.settings.validate()
        backend.client = SendFleetClient.for_settings(backend.settings)
        backend.limiter = SlidingWindowLimiter.for_settings(backend.settings)
        backend.key_guard = KeyGuard.for_settings(backend.settings)
        backend.client.open()
        return True

    def close(self) -> None:
        if self.backend.client is not None:
            self.backend.client.close()
            self.backend.client = None

    def batch(self) -> AbstractContextManager[None]:
        return nullcontext()

    def log_batch(self) -> SendLogBatch | None:
        return self.backend.new_log_batch() if self.backend.settings.send_log else None

    def start(self, suppressions: SuppressionCheck | None) -> None:
        backend = self.backend
        assert backend.client is not None  # opened by send_messages
        self.sender = RecipientSender(
            client=backend.client,
            limiter=backend.limiter,
            policy=WaitInProcess(backend.settings.max_retry_wait),
            suppressions=suppressions,
            key_guard=backend.key_guard,
            # Without the send log there is nothing to count: such a mailer is not guarded.
            reputation=ReputationGuard.for_mailer(backend.mailer, backend.settings)
            if backend.settings.send_log
            else None,
        )

    def dispose(
        self,
        message: EmailMessage,
        outgoing: OutgoingMessage,
        recipient: str,
        suppressions: SuppressionCheck | None,
    ) -> RecipientStatus:
        assert self.sender is not None  # start() came first
        # One at a time (memory); with merge data, rendered with the recipient's values.
        payload = payloads.build_payload(outgoing.content_for(recipient), recipient)
        result = self.sender.send(
            recipient,
            payload,
            outgoing.from_domain,
            message=message,
            priority=priority.of_message(message, self.backend.settings.priority),
        )
        assert not isinstance(result, Deferred)  # WaitInProcess never defers
        return result


class WriteOutbox:
    """Each recipient a ``pending`` row of the outbox, in the caller's transaction; the task
    that sends them is enqueued when it commits (``QueuedEmailBackend``)."""

    can_schedule = True  # a row waits until its send_at (SendLog.not_before)

    def __init__(self, backend: Backend) -> None:
        self.backend = backend

    def open(self) -> bool:
        self.backend.settings.validate()
        tasks.require_tasks()
        return False

    def close(self) -> None:
        pass

    @contextmanager
    def batch(self) -> Iterator[None]:
        # The outbox is written in chunks as the messages are checked, all in one transaction
        # (a savepoint in the caller's): whole or not at all, and the tasks are enqueued when
        # it commits. A message refused with a SendFleetError is part of the outcome: the rows
        # written so far stay (the refused one's too), then the error is raised.
        refused: SendFleetError | None = None
        with atomic_for(SendLog):
            try:
                yield
            except SendFleetError as error:
                refused = error
        if refused is not None:
            raise refused

    def log_batch(self) -> SendLogBatch:
        # The outbox: written whatever SEND_LOG says, and errors raise.
        settings = self.backend.settings
        write_rows = functools.partial(outbox.write_rows, task_backend=settings.task_backend)
        return self.backend.new_log_batch(write_rows=write_rows)

    def start(self, suppressions: SuppressionCheck | None) -> None:
        pass  # nothing is sent here: the worker sends

    def dispose(
        self,
        message: EmailMessage,
        outgoing: OutgoingMessage,
        recipient: str,
        suppressions: SuppressionCheck | None,
    ) -> RecipientStatus:
        # The send path's first step, the local suppression list, applies now; the rest later.
        stopped = suppressions.stop(recipient, message) if suppressions is not None else None
        return stopped or RecipientStatus(PENDING)
