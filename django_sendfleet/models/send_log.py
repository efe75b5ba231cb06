"""The send log: one row per recipient send, its content, and the webhook events about it."""

from __future__ import annotations

from typing import Any

from django.db import models
from django.utils import timezone

from ..message.addresses import MAX_ADDRESS_LENGTH, with_ascii_domain
from ..message.priority import CHOICES as PRIORITY_CHOICES
from ..message.priority import HIGH, RANKS
from .log_status import LogStatus
from .rollups import SendLogQuerySet, deleting, saving

DETAIL_MAX_LENGTH = 1000


def normalise_email(address: str) -> str:
    """Suppression lookups are case-insensitive and by the address as sent (an IDN domain in
    its IDNA form): addresses are stored and compared like this."""
    return with_ascii_domain(address.strip()).lower()


# Some django-stubs releases find this model's manager, some do not: unused-ignore keeps mypy
# quiet with either (here and on SendLog.objects).
class MessageContent(models.Model):  # type: ignore[django-manager-missing, unused-ignore]
    """What one message says, stored once for all of its recipients' send log rows.

    A queued message's rows refer to it until each is sent (the worker builds each request from
    it and the row's recipient); with ``LOG_CONTENT`` every logged message's rows keep it. It is
    deleted with the last row that refers to it (``message_content.release``).
    """

    created_at = models.DateTimeField(default=timezone.now)
    from_email = models.CharField(max_length=MAX_ADDRESS_LENGTH)
    from_name = models.CharField(max_length=156, blank=True)
    subject = models.CharField(max_length=256, blank=True)
    reply_to = models.CharField(max_length=MAX_ADDRESS_LENGTH, blank=True)
    text = models.TextField()
    html = models.TextField(blank=True)

    class Meta:
        verbose_name = "message content"
        verbose_name_plural = "message contents"

    def __str__(self) -> str:
        return self.subject or f"message content {self.pk}"


class SendLog(models.Model):
    """One recipient of one message, and what became of it."""

    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(auto_now=True)
    mailer = models.CharField(max_length=100, blank=True, help_text="The mailer alias.")
    message_id = models.CharField(max_length=100, blank=True, db_index=True)
    recipient = models.CharField(max_length=MAX_ADDRESS_LENGTH, db_index=True)
    from_email = models.CharField(max_length=MAX_ADDRESS_LENGTH)
    subject = models.CharField(max_length=256, blank=True)
    status = models.CharField(max_length=16, choices=LogStatus.choices, default=LogStatus.PENDING)
    http_status = models.PositiveSmallIntegerField(null=True, blank=True)
    # No index of its own: sendfleet_log_error (error_code, -created_at) serves its lookups,
    # and every index is paid for on each row the send path writes.
    error_code = models.CharField(max_length=40, blank=True)
    detail = models.CharField(max_length=DETAIL_MAX_LENGTH, blank=True)
    mode = models.CharField(max_length=8, blank=True, help_text="byoc or shared")
    warnings = models.JSONField(default=list, blank=True)
    attempts = models.PositiveSmallIntegerField(default=0)
    duration_ms = models.PositiveIntegerField(null=True, blank=True)
    # What the message said: the outbox's until the row is sent, kept when
    # SENDFLEET["LOG_CONTENT"] is True. Shared by all the message's rows.
    content = models.ForeignKey(
        MessageContent,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="send_logs",
        db_index=False,  # the partial index below: most rows have no content
    )
    # Content of rows logged before MessageContent (0006): one copy per row.
    from_name = models.CharField(max_length=156, blank=True)
    reply_to = models.CharField(max_length=MAX_ADDRESS_LENGTH, blank=True)
    text_body = models.TextField(blank=True)
    html_body = models.TextField(blank=True)
    # Queued sending (QueuedEmailBackend): the claim a worker holds while sending. ``payload``
    # is the request of rows queued before MessageContent (0006); newer rows have ``content``.
    payload = models.JSONField(null=True, blank=True)
    not_before = models.DateTimeField(null=True, blank=True, help_text="Held or backing off.")
    claim_token = models.CharField(max_length=32, blank=True)
    lease_expires_at = models.DateTimeField(null=True, blank=True)
    # Which due outbox row is sent first (priority.py): the lower rank, then the older row.
    # db_default too: rows written without these columns (code of a release before 0010,
    # still running during a deploy; raw SQL) get the defaults, not an error.
    priority = models.PositiveSmallIntegerField(
        choices=PRIORITY_CHOICES, default=RANKS[HIGH], db_default=RANKS[HIGH]
    )
    # Queued by a BULK backend (an option of the backend, not only of the mailer): the
    # worker holds it as a BULK mailer's while the reputation is at danger.
    bulk = models.BooleanField(default=False, db_default=False)
    # The message's tags and this recipient's metadata (django-anymail's tags, metadata and
    # merge_metadata; never sent: SendFleet has no field for them), set on its tracking events.
    # db_default: rows written by a release before 0012 get them too.
    tags = models.JSONField(default=list, db_default=[], blank=True)
    metadata = models.JSONField(default=dict, db_default={}, blank=True)

    #: Its writes keep the per-day rollups current (rollups.py), as save() and delete() do.
    # django-stubs cannot follow a queryset defined in a module that imports this one.
    objects = SendLogQuerySet.as_manager()  # type: ignore[django-manager-missing, unused-ignore]

    class Meta:
        verbose_name = "send log entry"
        verbose_name_plural = "send log"
        ordering = ["-created_at", "-id"]
        indexes = [
            # The changelist's default order, its date filter and the retention query.
            models.Index(fields=["-created_at", "-id"], name="sendfleet_log_created"),
            # One per admin filter, each ordered like the changelist.
            models.Index(fields=["status", "-created_at"], name="sendfleet_log_status"),
            models.Index(fields=["error_code", "-created_at"], name="sendfleet_log_error"),
            models.Index(fields=["mode", "-created_at"], name="sendfleet_log_mode"),
            # "Does a row still need this content?", asked as each row is finished.
            models.Index(
                fields=["content"],
                name="sendfleet_log_content",
                condition=models.Q(content__isnull=False),
            ),
            # The worker's claim and the backlog figures: the outbox, most urgent first.
            models.Index(
                fields=["priority", "id"],
                name="sendfleet_log_outbox",
                condition=models.Q(status=LogStatus.PENDING),
            ),
        ]

    def __str__(self) -> str:
        return f"{self.recipient}: {self.status}"

    def save(self, *args: Any, **kwargs: Any) -> None:
        with saving(self, *args, **kwargs):
            super().save(*args, **kwargs)

    def delete(self, *args: Any, **kwargs: Any) -> tuple[int, dict[str, int]]:
        with deleting(self, *args, **kwargs):
            return super().delete(*args, **kwargs)

    @property
    def has_content(self) -> bool:
        return self.content_id is not None or bool(self.text_body)

    @property
    def logged_content(self) -> MessageContent | None:
        """The message content of this row: its ``MessageContent``, or for rows logged before
        it (0006), one built (unsaved) from the row's own columns; None when not kept."""
        if self.content_id is not None:
            return self.content
        if not self.text_body:
            return None
        return MessageContent(
            from_email=self.from_email,
            from_name=self.from_name,
            subject=self.subject,
            reply_to=self.reply_to,
            text=self.text_body,
            html=self.html_body,
        )


class WebhookEventQuerySet(models.QuerySet["WebhookEvent"]):
    def delete(self) -> tuple[int, dict[str, int]]:
        """Reduce the events to what recognises them (their digests), as ``sendfleet_prune``
        does, instead of deleting them: whatever deletes a stored event (the admin's bulk
        delete, code), a replay of the same delivery is still refused as a duplicate. An
        event not processed yet ends ``unprocessable``."""
        now = timezone.now()
        unfinished = (WebhookEvent.Outcome.PENDING, WebhookEvent.Outcome.FAILED)
        self.filter(outcome__in=unfinished).update(
            outcome=WebhookEvent.Outcome.UNPROCESSABLE, detail="deleted before it was processed"
        )
        reduced = self.update(**PRUNED_FIELDS, pruned_at=now)
        return reduced, {self.model._meta.label: reduced}

    def delete_whole(self) -> tuple[int, dict[str, int]]:
        """Delete the rows, digests included: only for events whose replay is refused anyway
        (signed longer ago than ``WEBHOOK_MAX_AGE``)."""
        return super().delete()


#: What a pruned (or deleted) event keeps none of: its body and what it says of a person.
PRUNED_FIELDS: dict[str, Any] = {
    "raw": None,
    "raw_body": "",
    "message_id": "",
    "recipient": "",
    "sender": "",
    "detail": "",
    "send_log": None,
}


class WebhookEvent(models.Model):
    """A verified delivery event from SendFleet, stored before it is acknowledged."""

    class Outcome(models.TextChoices):
        PENDING = "pending", "not processed yet"
        APPLIED = "applied", "applied to the send log"
        UNKNOWN_MESSAGE = "unknown_message", "no send log row has this message id"
        UNKNOWN_TYPE = "unknown_type", "event type not known"
        FAILED = "failed", "processing failed: retried automatically"
        UNPROCESSABLE = "unprocessable", "unprocessable: kept as received"
        TOO_OLD = "too_old", "refused: signed longer ago than WEBHOOK_MAX_AGE"

    received_at = models.DateTimeField(default=timezone.now, db_index=True)
    event_type = models.CharField(max_length=64)
    message_id = models.CharField(max_length=100, blank=True, db_index=True)
    recipient = models.CharField(max_length=MAX_ADDRESS_LENGTH, blank=True)
    sender = models.CharField(max_length=MAX_ADDRESS_LENGTH, blank=True)
    #: The event's own time, from the signed body (when it has one).
    signed_at = models.DateTimeField(null=True, blank=True)
    raw = models.JSONField(
        null=True, blank=True, help_text="The event exactly as SendFleet sent it."
    )
    raw_body = models.TextField(
        blank=True,
        help_text="The body as received, when it could not be parsed or stored as JSON "
        "(base64 after 'base64:' when it is not UTF-8 text without NUL).",
    )
    #: SHA-256 of the raw body: the same delivery arriving twice is stored once. Kept when
    #: the event is pruned, so that a replayed old event is still recognised.
    digest = models.CharField(max_length=64, unique=True)
    outcome = models.CharField(
        max_length=16, choices=Outcome.choices, default=Outcome.PENDING, db_index=True
    )
    detail = models.CharField(max_length=500, blank=True, help_text="Why it failed or was refused.")
    attempts = models.PositiveSmallIntegerField(default=0)
    #: When a pending or failed event is next processed, if its own processing has not run.
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    #: Set by sendfleet_prune, which keeps only what recognises the event when it comes again.
    pruned_at = models.DateTimeField(null=True, blank=True)
    #: The mailers of the account whose secret signed it, a JSON list; "" for every mailer
    #: (webhooks/accounts.py).
    mailers = models.CharField(max_length=1000, blank=True)
    send_log = models.ForeignKey(
        SendLog,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="webhook_events",
    )

    objects = WebhookEventQuerySet.as_manager()  # type: ignore[django-manager-missing, unused-ignore]

    class Meta:
        ordering = ["-received_at", "-id"]
        indexes = [
            # The retries' query: pending or failed events that are due.
            models.Index(fields=["outcome", "next_attempt_at"], name="sendfleet_event_retry"),
        ]

    def __str__(self) -> str:
        return f"{self.event_type} {self.message_id}"

    def delete(self, *args: Any, **kwargs: Any) -> tuple[int, dict[str, int]]:
        """Reduced to its digest, not deleted (``WebhookEventQuerySet.delete``)."""
        return type(self).objects.filter(pk=self.pk).delete()
