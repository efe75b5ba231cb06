"""What follows a recipient's failed send, for the synchronous and the queued backend alike.

A 422 teaches the local suppression list the address; then the host app hears about it through
the signals: ``recipient_suppressed`` for a suppression, ``send_forbidden`` for every 403, and
``send_failed`` for any other failure.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .. import signals
from ..db.durable import outside_the_callers_transaction
from ..db.routing import db_for
from ..exceptions import SendFleetError, SendFleetForbidden, SendFleetRecipientSuppressed
from ..models import Suppression

if TYPE_CHECKING:
    from django.core.mail import EmailMessage


def handle_failure(
    sender: type,
    mailer: str,
    message: EmailMessage | None,
    recipient: str,
    error: SendFleetError,
    from_domain: str | None,
    *,
    tags: list[str] | None = None,
    metadata: dict[str, Any] | None = None,
) -> None:
    # Every signal carries the send's tags and the recipient's metadata (message/tags.py).
    labels: dict[str, Any] = {"tags": tags or [], "metadata": metadata or {}}
    if isinstance(error, SendFleetRecipientSuppressed):
        source = "local" if error.status_code is None else "api"
        if source == "api":
            # Recorded so that the caller's rollback cannot undo it: SendFleet already knows.
            outside_the_callers_transaction(
                lambda: Suppression.objects.suppress(
                    recipient, Suppression.Reason.API_REJECTED, source="api"
                ),
                using=db_for(Suppression),
            )
        signals.recipient_suppressed.send_robust(
            sender,
            message=message,
            recipient=recipient,
            error=error,
            source=source,
            mailer=mailer,
            **labels,
        )
        return
    # A batch skip reuses the error of the recipient that hit the 403: signal that one only.
    if isinstance(error, SendFleetForbidden) and error.recipient == recipient:
        signals.send_forbidden.send_robust(
            sender,
            message=message,
            recipient=recipient,
            error=error,
            error_code=error.error_code,
            from_domain=from_domain,
            mailer=mailer,
            **labels,
        )
    signals.send_failed.send_robust(
        sender, message=message, recipient=recipient, error=error, mailer=mailer, **labels
    )
