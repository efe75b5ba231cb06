"""Signals a host app connects to, to react to sends.

Every signal is sent with ``send_robust``: a receiver that raises is logged (by Django, on the
``django.dispatch`` logger) and never breaks, stops or repeats a send. ``sender`` is the
backend class.

- ``pre_send(message, mailer)``: before a message is sent. Raise ``CancelSend`` to skip it.
- ``post_send(message, status)``: after a message, with ``message.anymail_status``.
- ``send_failed(message, recipient, error)``: a recipient's send failed, was refused locally as
  invalid, or ended ``unknown``.
- ``send_forbidden(message, recipient, error, error_code, from_domain)``: any 403 (account or
  domain problem): usually a page to someone.
- ``recipient_suppressed(message, recipient, error, source)``: a recipient is suppressed;
  ``source`` is ``"local"`` (stopped by the local list before any request), ``"api"`` (a 422
  from SendFleet) or ``"webhook"`` (a bounce or complaint event). ``error`` is the 422's
  exception, a ``SendFleetRecipientSuppressed`` for a local stop, or None for a webhook.
"""

from __future__ import annotations

from typing import Any

from django.dispatch import Signal


class CancelSend(Exception):
    """Raise from a ``pre_send`` receiver to skip the message: nothing is sent or logged."""


class _SendFleetSignal(Signal):
    def _log_robust_failure(self, receiver: Any, err: Exception) -> None:
        # A pre_send receiver cancelling a message is not an error worth an ERROR line.
        if not isinstance(err, CancelSend):
            super()._log_robust_failure(receiver, err)


pre_send = _SendFleetSignal()
post_send = _SendFleetSignal()
send_failed = _SendFleetSignal()
send_forbidden = _SendFleetSignal()
recipient_suppressed = _SendFleetSignal()


def cancelled_by_receiver(sender: type, **kwargs: Any) -> CancelSend | None:
    """Send ``pre_send``; return the ``CancelSend`` a receiver raised, if any."""
    for _receiver, response in pre_send.send_robust(sender=sender, **kwargs):
        if isinstance(response, CancelSend):
            return response
    return None
