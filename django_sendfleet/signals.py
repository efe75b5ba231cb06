"""Signals a host app connects to, to react to sends.

Every signal is sent with ``send_robust``: a receiver that raises is logged on the
``django_sendfleet`` logger and never breaks, stops or repeats a send. ``sender`` is always the
class of the backend that sent (``QueuedEmailBackend`` for its worker's sends too; for webhook
events, the backend of the mailer of the send), and every signal carries ``mailer``, the
mailer alias, so one receiver sees synchronous and queued sends alike.

- ``pre_send(message, mailer)``: before a message is sent. Raise ``CancelSend`` to skip it.
- ``post_send(message, status, mailer)``: after a message, with ``message.anymail_status``.
- ``send_failed(message, recipient, error, mailer)``: a recipient's send failed, was refused
  locally as invalid, or ended ``unknown``.
- ``send_forbidden(message, recipient, error, error_code, from_domain, mailer)``: any 403
  (account or domain problem): usually a page to someone.
- ``recipient_suppressed(message, recipient, error, source, mailer)``: a recipient is
  suppressed; ``source`` is ``"local"`` (stopped by the local list before any request),
  ``"api"`` (a 422 from SendFleet) or ``"webhook"`` (a bounce or complaint event). ``error`` is
  the 422's exception, a ``SendFleetRecipientSuppressed`` for a local stop, or None for a
  webhook. ``message`` is None for a webhook.
- ``tracking(event, esp_name, mailer)``: a verified delivery event from SendFleet's webhook, as a
  ``django_sendfleet.tracking.TrackingEvent`` (fields as django-anymail's tracking event).
- ``reputation_changed(mode, mailer, level, previous, rates)``: the level of an account mode's
  bounce or complaint rates (``mailer`` None) or of one mailer's changed, e.g. ``"warning"`` ->
  ``"danger"``; sent once per change across processes. ``rates`` is a
  ``django_sendfleet.reputation.rates.Rates`` (None when the scope has no sends left in the window).
"""

from __future__ import annotations

import logging
from typing import Any

from django.dispatch import Signal

__all__ = [
    "CancelSend",
    "post_send",
    "pre_send",
    "recipient_suppressed",
    "reputation_changed",
    "send_failed",
    "send_forbidden",
    "tracking",
]

logger = logging.getLogger("django_sendfleet")


class CancelSend(Exception):
    """Raise from a ``pre_send`` receiver to skip the message: nothing is sent or logged."""


class _SendFleetSignal(Signal):
    def _log_robust_failure(self, receiver: Any, err: Exception) -> None:
        # Logged on our own logger, not Django's "django.dispatch": Django's default logging
        # mails "django.*" errors to ADMINS, and that mail would come back through this
        # backend and this receiver, forever. A pre_send cancellation is not an error.
        if not isinstance(err, CancelSend):
            logger.error(
                "SendFleet signal receiver %s raised: %r",
                getattr(receiver, "__qualname__", receiver),
                err,
                exc_info=err,
            )


pre_send = _SendFleetSignal()
post_send = _SendFleetSignal()
send_failed = _SendFleetSignal()
send_forbidden = _SendFleetSignal()
recipient_suppressed = _SendFleetSignal()
tracking = _SendFleetSignal()
reputation_changed = _SendFleetSignal()


def cancelled_by_receiver(sender: type, **kwargs: Any) -> CancelSend | None:
    """Send ``pre_send``; return the ``CancelSend`` a receiver raised, if any."""
    for _receiver, response in pre_send.send_robust(sender=sender, **kwargs):
        if isinstance(response, CancelSend):
            return response
    return None
