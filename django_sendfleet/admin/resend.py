"""Resending logged messages, for the admin's Resend action.

A resend is a new send: it goes through the row's mailer (so its backend checks the suppression
list and writes a new log row), rebuilt from the logged content. Rows still in the outbox are
never resent: their worker sends them, and a resend would send the email twice.
"""

from __future__ import annotations

import logging
from collections import Counter, defaultdict

from django.core import mail
from django.core.mail import EmailMultiAlternatives
from django.core.mail.backends.base import BaseEmailBackend
from django.db.models import prefetch_related_objects

from ..exceptions import SendFleetError
from ..message.payloads import build_payload, message_from_payload
from ..models import SendLog
from ..models.log_status import LogStatus

logger = logging.getLogger("django_sendfleet")

#: Rows a worker will still send (or is sending): not to be resent.
OUTBOX_STATUSES = frozenset({LogStatus.PENDING, LogStatus.SENDING})


def mailer_connection(alias: str) -> BaseEmailBackend:
    """The row's mailer on Django 6.1+ when it is still configured, else the default one."""
    if hasattr(mail, "mailers"):
        if alias in mail.mailers:
            return mail.mailers[alias]
        return mail.mailers.default  # the alias was renamed or removed since the send
    return mail.get_connection()


def message_from(entry: SendLog) -> EmailMultiAlternatives:
    """The logged message, rebuilt for its one recipient (``ValueError`` if it has no content).

    The content is the message's ``MessageContent``, shared with its other recipients' rows,
    or the row's own columns for rows logged before it (migration 0006).
    """
    content = entry.logged_content
    if content is None:
        raise ValueError("This row's content was not logged: there is nothing to resend.")
    return message_from_payload(build_payload(content, entry.recipient))


def resend_entries(entries: list[SendLog]) -> Counter[str]:
    """Send each entry again through its mailer; count the outcomes by recipient status.

    The backend does the rest as for any send: it checks the suppression list and writes a new
    log row per send. Rows in the outbox are refused here too, whatever the caller checked.
    """
    if any(entry.status in OUTBOX_STATUSES for entry in entries):
        raise ValueError("Rows still in the outbox are sent by the worker: not resent.")
    # One query for the content of them all; rows of one message share it.
    prefetch_related_objects(entries, "content")
    outcomes: Counter[str] = Counter()
    by_mailer: dict[str, list[SendLog]] = defaultdict(list)
    for entry in entries:
        by_mailer[entry.mailer].append(entry)
    for alias, group in by_mailer.items():
        done = 0
        try:
            with mailer_connection(alias) as connection:  # one connection for the group
                for entry in group:
                    outcomes[resend_one(connection, entry)] += 1
                    done += 1
        except Exception:  # a broken mailer (configuration, network) is reported, not a 500
            logger.exception("SendFleet admin could not resend through mailer %r", alias)
            outcomes["not sent (mailer error: see the server log)"] += len(group) - done
    return outcomes


def resend_one(connection: BaseEmailBackend, entry: SendLog) -> str:
    message = message_from(entry)
    try:
        sent = connection.send_messages([message])
    except SendFleetError:
        sent = 0  # the outcome is in anymail_status and the new log row
    status = getattr(message, "anymail_status", None)
    if status is not None and status.recipients:
        return next(iter(status.recipients.values())).status
    return "sent" if sent else "not sent"
