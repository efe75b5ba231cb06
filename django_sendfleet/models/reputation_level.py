"""The last reputation level seen for each account mode and mailer (``reputation/state.py``)."""

from __future__ import annotations

from django.db import models
from django.utils import timezone

#: A rate's levels, from least to most worrying (what each means: ``reputation/levels.py``).
UNKNOWN = "unknown"
HEALTHY = "healthy"
WARNING = "warning"
DANGER = "danger"
#: From least to most worrying; a scope's level is the worse of its two rates'.
LEVELS = (UNKNOWN, HEALTHY, WARNING, DANGER)


class ReputationLevel(models.Model):
    """The last level seen for an account mode (``mailer`` blank) or a mailer in it."""

    mode = models.CharField(max_length=8)
    mailer = models.CharField(max_length=100, blank=True)
    level = models.CharField(max_length=8, default=UNKNOWN)
    changed_at = models.DateTimeField(default=timezone.now)
    released_at = models.DateTimeField(
        null=True, blank=True, help_text="An operator released the sends held at this danger."
    )

    class Meta:
        app_label = "django_sendfleet"
        verbose_name = "reputation level"
        constraints = [
            models.UniqueConstraint(fields=["mode", "mailer"], name="sendfleet_reputation_scope")
        ]

    def __str__(self) -> str:
        return f"{self.mode} {self.mailer or '(account)'}: {self.level}"

    @property
    def released(self) -> bool:
        return self.released_at is not None and self.released_at >= self.changed_at
